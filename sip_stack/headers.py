"""Header field names, list splitting and parameters (RFC 3261 §7.3, §20, §25.1).

Header names compare case-insensitively and have compact forms (RFC 3261 §7.3.3 and the IANA registry);
everything inside ``sip_stack`` looks headers up by one *key*: the lower-case full name (``"via"``,
``"call-id"``). Values are split on commas only outside quoted strings and ``<...>`` (§7.3.1), and only
for headers whose grammar is a comma list: the Authorization family uses commas between its parameters,
and Date and Retry-After carry commas inside one value.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import ParseError
from .limits import MAX_HEADER_VALUES

#: Compact form → key (RFC 3261 §7.3.3 and the IANA "Header Fields" registry's compact column).
COMPACT_FORMS: Final[dict[str, str]] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

#: Key → the spelling we write on the wire when we build a header ourselves.
CANONICAL_NAMES: Final[dict[str, str]] = {
    key: name
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "History-Info",
        "Identity",
        "Identity-Info",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Min-SE",
        "Organization",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Priority",
        "Privacy",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Service-Route",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
    for key in (name.lower(),)
}

#: Headers whose grammar is ``x *(COMMA x)``; only these are split on commas.
LIST_HEADERS: Final[frozenset[str]] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "privacy",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "require",
        "route",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

#: Headers a message may carry at most once (RFC 3261 §7.3.1: only list headers may repeat; these are
#: the single-valued ones the transaction layer and framing depend on, so a second copy is a 400).
SINGLE_HEADERS: Final[frozenset[str]] = frozenset(
    {"call-id", "cseq", "from", "to", "max-forwards", "content-type", "expires"}
)

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS: Final[str] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
_TOKEN_TABLE: Final[dict[int, int | None]] = str.maketrans("", "", TOKEN_CHARS)
TOKEN_BYTES: Final[bytes] = TOKEN_CHARS.encode()
_WS: Final[str] = " \t"


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 §25.1 token."""
    return bool(text) and not text.translate(_TOKEN_TABLE)


def header_key(name: str) -> str:
    """The lookup key for a header name: lower-case full name (compact forms expanded)."""
    key = name.lower()
    return COMPACT_FORMS.get(key, key)


def canonical_name(key: str) -> str:
    """How we spell a header name on the wire, for headers we build ourselves."""
    found = CANONICAL_NAMES.get(key)
    if found is not None:
        return found
    return "-".join(part.capitalize() for part in key.split("-"))


def _split_outside(text: str, sep: str, header: str) -> list[str]:
    """Split ``text`` on ``sep`` where it stands outside quoted strings and ``<...>``. Linear time."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    in_quotes = False
    in_angle = False
    while i < n:
        c = text[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == sep and not in_angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise ParseError(f"unterminated quoted string in {header}")
    parts.append(text[start:])
    return parts


def split_list(value: str, header: str = "header") -> list[str]:
    """Split a comma-list header value (RFC 3261 §7.3.1) outside quotes and ``<...>``.

    Elements are stripped of surrounding whitespace. An empty element (``a,,b``) is kept as ``""`` so
    that each caller decides: Via rejects it, token lists skip it. Linear in ``len(value)``.
    """
    parts = _split_outside(value, ",", header)
    if len(parts) > MAX_HEADER_VALUES:
        raise ParseError(f"too many values in {header} (limit {MAX_HEADER_VALUES})")
    return [p.strip(_WS) for p in parts]


def split_params(text: str, header: str = "header") -> list[str]:
    """Split ``a;b=1;c="x;y"`` on semicolons outside quoted strings and ``<...>``."""
    return _split_outside(text, ";", header)


Params = tuple[tuple[str, str | None], ...]


def parse_params(text: str, header: str = "header") -> Params:
    """Parse generic parameters ``;name[=value]`` (RFC 3261 §25.1 generic-param).

    ``text`` starts after the first ``;``. LWS around ``;`` and ``=`` is allowed (SEMI and EQUAL carry
    SWS). Names must be tokens; values are tokens, hosts or quoted strings and are kept as received
    (quotes included) so that a value passes through unchanged.
    """
    params: list[tuple[str, str | None]] = []
    # One scan of the whole text settles the common case; values are looked at one by one only
    # when something that needs quoting (or LWS around ';' and '=') is there.
    plain = _STRUCTURAL.search(text) is None
    if plain:
        # No quotes, <> or LWS: split on ';' as is, with the checks inlined. At the first fault,
        # the general loop below starts over and names it; without one, the else clause returns.
        for raw in text.split(";"):
            name, eq, val = raw.partition("=")
            if not name or name.translate(_TOKEN_TABLE) or (eq and not val):
                params.clear()
                break
            params.append((name, val if eq else None))
        else:
            if len(params) > MAX_HEADER_VALUES:
                raise ParseError(f"too many parameters in {header}")
            return tuple(params)
    for raw in split_params(text, header):
        name, eq, val = raw.partition("=")
        name = name.strip(_WS)
        if not is_token(name):
            if not name:
                raise ParseError(f"empty parameter in {header}")
            raise ParseError(f"bad parameter name in {header}: {name[:40]!r}")
        if eq and plain:
            if not val:
                raise ParseError(f"parameter {name} in {header} has '=' but no value")
            params.append((name, val))
        elif eq:
            val = val.strip(_WS)
            if not val:
                raise ParseError(f"parameter {name} in {header} has '=' but no value")
            if val[0] == '"':
                if read_quoted(val, 0, header) != len(val):
                    raise ParseError(f"junk after the quoted value of {name} in {header}")
            elif _STRUCTURAL.search(val) is not None:
                # gen-value = token / host / quoted-string (§25.1). Peers put '@' or '/' in values,
                # which we let pass; what would change the header's structure (LWS, a comma, <>,
                # a stray quote) must be quoted.
                raise ParseError(f"parameter {name} in {header} has an unquoted value {val[:40]!r}")
            params.append((name, val))
        else:
            params.append((name, None))
    if len(params) > MAX_HEADER_VALUES:
        raise ParseError(f"too many parameters in {header}")
    return tuple(params)


_STRUCTURAL: Final = re.compile(r'[\s,<>"\\]')


def find_param(params: Params, name: str) -> str | None:
    """Value of the first parameter called ``name`` (names compare case-insensitively)."""
    for key, value in params:
        if key.lower() == name:
            return value
    return None


def has_param(params: Params, name: str) -> bool:
    return any(key.lower() == name for key, _ in params)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def unquote(text: str) -> str:
    """The content of a quoted-string with its quoted-pairs resolved (RFC 3261 §25.1)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        body = text[1:-1]
        if "\\" not in body:
            return body
        out: list[str] = []
        i = 0
        while i < len(body):
            c = body[i]
            if c == "\\" and i + 1 < len(body):
                i += 1
                c = body[i]
            out.append(c)
            i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """A quoted-string holding ``text`` (backslash and double quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_quoted(text: str, start: int, header: str) -> int:
    """Index just past the quoted-string opening at ``text[start]`` (which is ``"``)."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise ParseError(f"unterminated quoted string in {header}")
