"""Typed header field values (RFC 3261 §20 and the extensions a B2BUA meets).

Each value is a frozen ``msgspec.Struct`` (about 7x cheaper to build than a frozen dataclass, and
these are built for every message) with a ``parse(text)`` constructor that raises
:class:`~sip_stack.errors.ParseError` (status 400 unless said otherwise) and a ``__str__`` that writes it
back. Messages parse these lazily, on first access, and cache them (see :mod:`sip_stack.message`).
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from .errors import ParseError
from .headers import (
    Params,
    find_param,
    format_params,
    has_param,
    is_token,
    parse_params,
    quote,
    read_quoted,
    split_list,
    unquote,
)
from .uri import IPV4_ADDRESS_PATTERN, AbsoluteURI, SipURI, TelURI, check_host, parse_uri

_WS: Final = " \t"

#: RFC 3261 §8.1.1.7: a branch starting with this cookie was made by an RFC 3261 element.
BRANCH_MAGIC_COOKIE: Final = "z9hG4bK"

#: One RFC 3261 §25.1 token character, as a regex class (headers.TOKEN_CHARS).
_TOKEN_CHAR: Final = r"[A-Za-z0-9\-.!%*_+`'~]"

#: Largest CSeq sequence number (RFC 3261 §8.1.1.5: "MUST be expressible as a 32-bit unsigned
#: integer" and "less than 2**31").
MAX_CSEQ: Final = 2**31 - 1


def split_host_port(text: str, where: str) -> tuple[str, int | None]:
    """Split ``host [ ":" port ]`` (LWS around the colon allowed, as COLON = SWS ":" SWS)."""
    text = text.strip(_WS)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"{where}: unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :].strip(_WS)
        if not rest:
            check_host(host, where)
            return host, None
        if rest[0] != ":":
            raise ParseError(f"{where}: junk after host: {rest[:40]!r}")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.partition(":")
        host = host.rstrip(_WS)
        if not colon:
            check_host(host, where)
            return host, None
    port_text = port_text.strip(_WS)
    if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
        raise ParseError(f"{where}: port is not a number: {port_text[:20]!r}")
    port = int(port_text)
    if port > 65535:
        raise ParseError(f"{where}: port out of range: {port}")
    check_host(host, where)
    return host, port


def _int_value(text: str, where: str, maximum: int) -> int:
    text = text.strip(_WS)
    if not text.isdigit() or not text.isascii():
        raise ParseError(f"{where} is not a number: {text[:40]!r}")
    if len(text) > 12 or int(text) > maximum:
        raise ParseError(f"{where} is too large: {text[:40]!r}")
    return int(text)


def parse_delta_seconds(text: str, where: str) -> int:
    """delta-seconds (RFC 3261 §25.1). Values above 2**32-1 are a 400 (RFC 4475 §3.1.2.4)."""
    return _int_value(text, where, 2**32 - 1)


# --------------------------------------------------------------------------------------------- Via

# The host is tried as an IPv4 address first, which check_host would accept as is: a match there
# saves that call.
_VIA_FAST: Final = re.compile(
    rf"SIP/2\.0/([A-Za-z]+) (?:({IPV4_ADDRESS_PATTERN})|([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]))"
    r"(?::([0-9]{1,5}))?(?:;(.*))?\Z",
    re.S,
)
_TRANSPORT: Final = re.compile(r"[^ \t;]*")


class Via(msgspec.Struct, frozen=True):
    """One Via value (RFC 3261 §20.42): sent-protocol, sent-by and parameters."""

    transport: str
    host: str
    port: int | None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA_FAST.match(text)
        if m is not None:
            # The common spelling, "SIP/2.0/UDP host:port;params": one C-level match.
            transport, ipv4, host, port_text, param_text = m.groups()
            port = None
            if port_text is not None:
                port = int(port_text)
                if port > 65535:
                    raise ParseError(f"Via sent-by: port out of range: {port}")
            if ipv4 is not None:
                host = ipv4
            else:
                check_host(host, "Via sent-by host")
            return cls(
                transport.upper(),
                host,
                port,
                parse_params(param_text, "Via") if param_text is not None else (),
            )
        proto, sep, rest = text.partition("/")
        if not sep:
            raise ParseError(f"Via has no sent-protocol: {text[:60]!r}")
        version, sep, rest = rest.partition("/")
        if not sep:
            raise ParseError(f"Via sent-protocol is incomplete: {text[:60]!r}")
        proto = proto.strip(_WS)
        version = version.strip(_WS)
        rest = rest.lstrip(_WS)
        m = _TRANSPORT.match(rest)
        i = m.end() if m else 0
        transport = rest[:i]
        if not (is_token(proto) and is_token(version) and is_token(transport)):
            raise ParseError(f"Via sent-protocol is malformed: {text[:60]!r}")
        if proto.upper() != "SIP" or version != "2.0":
            raise ParseError(f"Via protocol {proto}/{version} is not SIP/2.0", 505)
        sent_by, semi, param_text = rest[i:].partition(";")
        if not sent_by.strip(_WS):
            raise ParseError("Via has no sent-by host")
        host, port = split_host_port(sent_by, "Via sent-by host")
        params = parse_params(param_text, "Via") if semi else ()
        return cls(transport.upper(), host, port, params, f"{proto.upper()}/{version}")

    def param(self, name: str) -> str | None:
        return find_param(self.params, name.lower())

    @property
    def branch(self) -> str | None:
        return find_param(self.params, "branch")

    @property
    def is_rfc3261_branch(self) -> bool:
        """True when the branch carries the RFC 3261 magic cookie and something after it (§17.2.3)."""
        branch = self.branch
        return branch is not None and len(branch) > 7 and branch.startswith(BRANCH_MAGIC_COOKIE)

    @property
    def received(self) -> str | None:
        return find_param(self.params, "received")

    @property
    def rport(self) -> int | bool | None:
        """RFC 3581: None when absent, True when present without a value, else the port."""
        for key, value in self.params:
            if key.lower() == "rport":
                if value is None:
                    return True
                return _int_value(value, "Via rport", 65535)
        return None

    @property
    def maddr(self) -> str | None:
        return find_param(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        value = find_param(self.params, "ttl")
        return None if value is None else _int_value(value, "Via ttl", 255)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


# ----------------------------------------------------------------------------------- name-addr


# The display name's quoted-string is written "unrolled" (runs of plain characters between
# quoted-pairs): the same language as (?:[^"\\\r\n]|\\.)*, matched without a branch per character.
# After the URI, From/To's usual lone parameter ";tag=token" gets its own group; any other
# parameter text goes to the last group, for parse_params.
_NAME_ADDR_FAST: Final = re.compile(
    r'(?:"([^"\\\r\n]*(?:\\.[^"\\\r\n]*)*)" ?)?<([^<>\s"]+)>'
    rf"(?:;(?:tag=({_TOKEN_CHAR}+)|(.*)))?\Z",
    re.S,
)


class NameAddr(msgspec.Struct, frozen=True):
    """``name-addr`` or ``addr-spec`` with header parameters (From, To, Contact, Route ...).

    RFC 3261 §20.10: without ``<...>``, parameters after the URI belong to the header, not to the URI.
    ``uri_text`` is kept as received; :attr:`uri` parses it on demand.
    """

    uri_text: str
    display_name: str | None = None
    params: Params = ()
    bracketed: bool = True

    @classmethod
    def parse(cls, text: str, header: str = "name-addr") -> NameAddr:
        m = _NAME_ADDR_FAST.match(text)
        if m is not None:
            # The common spellings, '"Name" <uri>;params' and '<uri>;params': one C-level match.
            quoted_name, uri_text, tag, param_text = m.groups()
            if quoted_name is not None and "\\" in quoted_name:
                quoted_name = unquote(f'"{quoted_name}"')
            if tag is not None:
                params: Params = (("tag", tag),)
            elif param_text is None:
                params = ()
            else:
                params = parse_params(param_text, header)
            return cls(uri_text, quoted_name, params, True)
        text = text.strip(_WS)
        if not text:
            raise ParseError(f"{header} is empty")
        display: str | None = None
        if text[0] == '"':
            end = read_quoted(text, 0, header)
            display = unquote(text[:end])
            rest = text[end:].lstrip(_WS)
            if not rest.startswith("<"):
                raise ParseError(f"{header}: quoted display name not followed by <URI>")
            lt = 0
        else:
            lt = text.find("<")
            rest = text
            if lt > 0:
                display_text = text[:lt].strip(_WS)
                # display-name = *(token LWS) / quoted-string: unquoted names are tokens only
                # (RFC 4475 §3.1.2.15 rejects "Bell, Alexander").
                if any(not is_token(word) for word in display_text.split()):
                    raise ParseError(f"{header}: display name has non-token characters; quote it")
                display = " ".join(display_text.split())
                rest = text[lt:]
                lt = 0
        if lt == 0 and rest.startswith("<"):
            gt = rest.find(">")
            if gt < 0:
                raise ParseError(f"{header}: '<' without '>'")
            # Spaces inside <...> are tolerated (RFC 4475 §3.1.2.14 lets a liberal element accept).
            uri_text = rest[1:gt].strip(_WS)
            after = rest[gt + 1 :].lstrip(_WS)
            if after and after[0] != ";":
                raise ParseError(f"{header}: junk after '>': {after[:40]!r}")
            params = parse_params(after[1:], header) if after else ()
            if not uri_text:
                raise ParseError(f"{header}: empty URI")
            return cls(uri_text, display, params, True)
        if " " in text or "\t" in text:
            # addr-spec may not contain LWS, but LWS before ';' is allowed (SEMI = SWS ";" SWS).
            uri_part, semi, param_text = text.partition(";")
            if any(c in uri_part.strip(_WS) for c in " \t"):
                raise ParseError(f"{header}: URI contains whitespace; enclose it in <>")
            uri_text = uri_part.strip(_WS)
        else:
            uri_text, semi, param_text = text.partition(";")
        if ":" not in uri_text:
            raise ParseError(f"{header}: not a URI: {uri_text[:60]!r}")
        params = parse_params(param_text, header) if semi else ()
        return cls(uri_text, None, params, False)

    @property
    def uri(self) -> SipURI | TelURI | AbsoluteURI:
        return parse_uri(self.uri_text)

    def param(self, name: str) -> str | None:
        return find_param(self.params, name.lower())

    @property
    def tag(self) -> str | None:
        return find_param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        params = (*tuple(p for p in self.params if p[0].lower() != "tag"), ("tag", tag))
        return NameAddr(self.uri_text, self.display_name, params, True)

    def __str__(self) -> str:
        if self.display_name is not None:
            return f"{quote(self.display_name)} <{self.uri_text}>{format_params(self.params)}"
        if self.bracketed:
            return f"<{self.uri_text}>{format_params(self.params)}"
        return f"{self.uri_text}{format_params(self.params)}"


class Contact(msgspec.Struct, frozen=True):
    """One Contact value (RFC 3261 §20.10): a name-addr, or ``*`` (REGISTER removes all bindings)."""

    address: NameAddr | None

    @classmethod
    def parse(cls, text: str) -> Contact:
        if text.strip(_WS) == "*":
            return cls(None)
        contact = cls(NameAddr.parse(text, "Contact"))
        contact.q  # noqa: B018 - a bad qvalue or expires is the peer's error now, not later
        contact.expires  # noqa: B018
        return contact

    @property
    def is_star(self) -> bool:
        return self.address is None

    @property
    def expires(self) -> int | None:
        if self.address is None:
            return None
        value = self.address.param("expires")
        return None if value is None else parse_delta_seconds(value, "Contact expires")

    @property
    def q(self) -> float | None:
        """RFC 3261 §20.10 qvalue, 0 to 1 with up to three decimals."""
        if self.address is None:
            return None
        value = self.address.param("q")
        if value is None:
            return None
        if not re.fullmatch(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?", value):
            raise ParseError(f"Contact q is not a qvalue: {value[:20]!r}")
        return float(value)

    def __str__(self) -> str:
        return "*" if self.address is None else str(self.address)


# ----------------------------------------------------------------------------------- CSeq etc.


_CSEQ_FAST: Final = re.compile(rf"([0-9]{{1,10}}) ({_TOKEN_CHAR}+)")


class CSeq(msgspec.Struct, frozen=True):
    """CSeq (RFC 3261 §20.16): sequence number below 2**31 and the method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        m = _CSEQ_FAST.fullmatch(text)
        if m is not None:
            # The everyday "31942 INVITE": one C-level match; the rest explains what is wrong.
            number, method = m.groups()
            seq = int(number)
            if seq <= MAX_CSEQ:
                return cls(seq, method)
        # LWS is SP and HTAB only (RFC 3261 §25.1); str.split() would also split on NBSP, U+2028 ...
        parts = text.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            parts = [p for p in text.replace("\t", " ").split(" ") if p]
        if len(parts) != 2:
            raise ParseError(f"CSeq must be 'number method': {text[:60]!r}")
        number, method = parts
        if not number.isdigit() or not number.isascii():
            raise ParseError(f"CSeq number is not a number: {number[:20]!r}")
        if len(number) > 10 or int(number) > MAX_CSEQ:
            raise ParseError(f"CSeq number is too large: {number[:20]!r}")
        if not is_token(method):
            raise ParseError(f"CSeq method is not a token: {method[:20]!r}")
        return cls(int(number), method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


class RAck(msgspec.Struct, frozen=True):
    """RAck (RFC 3262 §7.2): response-num, CSeq-num, method."""

    rseq: int
    cseq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> RAck:
        parts = text.split()
        if len(parts) != 3 or not is_token(parts[2]):
            raise ParseError(f"RAck must be 'rseq cseq method': {text[:60]!r}")
        return cls(
            _int_value(parts[0], "RAck response-num", 2**32 - 1),
            _int_value(parts[1], "RAck CSeq-num", MAX_CSEQ),
            parts[2],
        )

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


class ContentType(msgspec.Struct, frozen=True):
    """Content-Type (RFC 3261 §20.15): ``type/subtype`` lower-cased, with parameters."""

    type: str
    subtype: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> ContentType:
        media, semi, param_text = text.partition(";")
        mtype, slash, subtype = media.partition("/")
        mtype = mtype.strip(_WS)
        subtype = subtype.strip(_WS)
        if not slash or not is_token(mtype) or not is_token(subtype):
            raise ParseError(f"Content-Type is not type/subtype: {text[:60]!r}")
        params = parse_params(param_text, "Content-Type") if semi else ()
        return cls(mtype.lower(), subtype.lower(), params)

    @property
    def mime_type(self) -> str:
        return f"{self.type}/{self.subtype}"

    def param(self, name: str) -> str | None:
        value = find_param(self.params, name.lower())
        return None if value is None else unquote(value)

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_params(self.params)}"


class SessionExpires(msgspec.Struct, frozen=True):
    """Session-Expires (RFC 4028 §4): delta-seconds and the optional refresher (uac|uas)."""

    delta: int
    refresher: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> SessionExpires:
        delta_text, semi, param_text = text.partition(";")
        params = parse_params(param_text, "Session-Expires") if semi else ()
        refresher = find_param(params, "refresher")
        if refresher is not None:
            refresher = refresher.lower()
            if refresher not in ("uac", "uas"):
                raise ParseError(f"Session-Expires refresher must be uac or uas: {refresher!r}")
        return cls(parse_delta_seconds(delta_text, "Session-Expires"), refresher, params)

    def __str__(self) -> str:
        return f"{self.delta}{format_params(self.params)}"


class RetryAfter(msgspec.Struct, frozen=True):
    """Retry-After (RFC 3261 §20.33): seconds, optional comment, optional duration."""

    delta: int
    comment: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> RetryAfter:
        text = text.strip(_WS)
        i = 0
        while i < len(text) and text[i].isdigit():
            i += 1
        delta = parse_delta_seconds(text[:i], "Retry-After")
        rest = text[i:].lstrip(_WS)
        comment = None
        if rest.startswith("("):
            end = rest.find(")")
            if end < 0:
                raise ParseError("Retry-After comment has no ')'")
            comment = rest[1:end]
            rest = rest[end + 1 :].lstrip(_WS)
        params: Params = ()
        if rest:
            if rest[0] != ";":
                raise ParseError(f"Retry-After: junk after the value: {rest[:40]!r}")
            params = parse_params(rest[1:], "Retry-After")
        return cls(delta, comment, params)

    @property
    def duration(self) -> int | None:
        value = find_param(self.params, "duration")
        return None if value is None else parse_delta_seconds(value, "Retry-After duration")

    def __str__(self) -> str:
        comment = f" ({self.comment})" if self.comment is not None else ""
        return f"{self.delta}{comment}{format_params(self.params)}"


class Reason(msgspec.Struct, frozen=True):
    """One Reason value (RFC 3326): protocol (SIP, Q.850 ...), cause, text."""

    protocol: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Reason:
        protocol, semi, param_text = text.partition(";")
        protocol = protocol.strip(_WS)
        if not is_token(protocol):
            raise ParseError(f"Reason protocol is not a token: {protocol[:40]!r}")
        return cls(protocol, parse_params(param_text, "Reason") if semi else ())

    @property
    def cause(self) -> int | None:
        value = find_param(self.params, "cause")
        return None if value is None else _int_value(value, "Reason cause", 99999)

    @property
    def text(self) -> str | None:
        value = find_param(self.params, "text")
        return None if value is None else unquote(value)

    def __str__(self) -> str:
        return f"{self.protocol}{format_params(self.params)}"


class Auth(msgspec.Struct, frozen=True):
    """A challenge or credentials (RFC 3261 §20.27, §20.7, RFC 7616 §3.3/§3.4).

    Used for WWW-Authenticate, Proxy-Authenticate, Authorization and Proxy-Authorization. Parameters
    are kept in order with quoted values unquoted; an unknown scheme (RFC 4475 §3.3.7) keeps whatever
    follows it as parameters when it has that shape, else as ``raw``.
    """

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    raw: str = ""
    quoted: frozenset[str] = msgspec.field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str) -> Auth:
        text = text.strip(_WS)
        i = 0
        while i < len(text) and text[i] not in _WS:
            i += 1
        scheme = text[:i]
        if not is_token(scheme):
            raise ParseError(f"authentication scheme is not a token: {scheme[:40]!r}")
        rest = text[i:].strip(_WS)
        params: list[tuple[str, str]] = []
        quoted: set[str] = set()
        for item in split_list(rest, "authentication header") if rest else []:
            if not item:
                continue
            name, eq, value = item.partition("=")
            name = name.strip(_WS)
            value = value.strip(_WS)
            if not eq or not is_token(name):
                if scheme.lower() == "digest":
                    raise ParseError(f"bad Digest parameter: {item[:40]!r}")
                return cls(scheme, (), rest)
            if value.startswith('"'):
                if read_quoted(value, 0, "authentication header") != len(value):
                    raise ParseError(f"junk after quoted value of {name}")
                quoted.add(name.lower())
                value = unquote(value)
            params.append((name, value))
        return cls(scheme, tuple(params), rest, frozenset(quoted))

    def param(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return value
        return None

    def __str__(self) -> str:
        if not self.params:
            return f"{self.scheme} {self.raw}".rstrip()
        parts = [f"{k}={quote(v)}" if k.lower() in self.quoted else f"{k}={v}" for k, v in self.params]
        return f"{self.scheme} {', '.join(parts)}"


def parse_token_list(text: str, header: str) -> tuple[str, ...]:
    """A comma list of tokens (Allow, Supported, Require, Unsupported, Proxy-Require)."""
    out = []
    for item in split_list(text, header):
        if not item:
            continue
        if not is_token(item):
            raise ParseError(f"{header} value is not a token: {item[:40]!r}")
        out.append(item)
    return tuple(out)


__all__ = [
    "BRANCH_MAGIC_COOKIE",
    "Auth",
    "CSeq",
    "Contact",
    "ContentType",
    "NameAddr",
    "RAck",
    "Reason",
    "RetryAfter",
    "SessionExpires",
    "Via",
    "has_param",
    "parse_delta_seconds",
    "parse_token_list",
    "split_host_port",
]
