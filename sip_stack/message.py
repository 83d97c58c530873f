"""SIP requests and responses: parse one datagram, typed header access, serialize (RFC 3261 §7, §8.2.6).

:func:`parse` reads one message from bytes. It checks what every layer above needs before it will
touch the message: the start line, the header section's syntax, exactly one From, To, Call-ID and CSeq
(the CSeq method matching a request's method), at least one Via with a valid top value, a sane
Max-Forwards and Content-Length, and for requests a well-formed Request-URI. Anything else is parsed
lazily on first access and cached; a header that turns out malformed then raises
:class:`~sip_stack.errors.ParseError` at that point, so the application can still answer 400.

Header fields keep their order and their raw bytes: a parsed message serializes back to the bytes it
came from, and unknown headers pass through a B2BUA byte-for-byte.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, NoReturn, TypeVar

from .errors import LocalProtocolError, ParseError, StatelessReplyInfo
from .headers import (
    COMPACT_FORMS,
    LIST_HEADERS,
    SINGLE_HEADERS,
    TOKEN_BYTES,
    canonical_name,
    header_key,
    is_token,
    split_list,
)
from .limits import (
    MAX_BODY_SIZE,
    MAX_DATAGRAM_SIZE,
    MAX_HEADER_COUNT,
    MAX_HEADER_SECTION_SIZE,
    MAX_LINE_LENGTH,
    MAX_REQUEST_URI_LENGTH,
)
from .uri import PLAIN_SIP_URI, AbsoluteURI, SipURI, TelURI, parse_uri
from .values import (
    Auth,
    Contact,
    ContentType,
    CSeq,
    NameAddr,
    RAck,
    Reason,
    RetryAfter,
    SessionExpires,
    Via,
    parse_delta_seconds,
    parse_token_list,
)

SIP_VERSION: Final = "SIP/2.0"

#: Methods of RFC 3261 and the extensions a B2BUA meets (RFC 3262, 3265, 3311, 3428, 3515, 3903, 6086).
KNOWN_METHODS: Final = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)  # fmt: skip
#: Request-line method bytes → name, for the known methods: no token check or decode for those.
_KNOWN_METHOD_NAMES: Final = {method.encode(): method for method in KNOWN_METHODS}
_CRLF: Final = b"\r\n"
_FOLD: Final = re.compile(rb"\n[ \t]")
_WS_BYTES: Final = b" \t"

#: A header field: (key, name as received, value with folding undone, raw bytes). The value may
#: carry the whitespace around it; readers strip it (``_value``), since most values are never read.
#: ``raw`` is the whole field exactly as received (folding included), so serialize gives it back.
Field = tuple[str, bytes, bytes, bytes]

T = TypeVar("T")

#: Raw header-name bytes → key, for the spellings real peers send. Only known names are cached, so a
#: peer inventing names cannot grow it.
_KEY_CACHE: dict[bytes, str] = {}


def _seed_key_cache() -> None:
    from .headers import CANONICAL_NAMES

    for key, name in CANONICAL_NAMES.items():
        for spelling in (name, key, name.upper(), key.title()):
            _KEY_CACHE[spelling.encode()] = key
    for short, key in COMPACT_FORMS.items():
        _KEY_CACHE[short.encode()] = key
        _KEY_CACHE[short.upper().encode()] = key


_seed_key_cache()

REASON_PHRASES: Final[dict[int, str]] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}


def reason_phrase(status: int) -> str:
    """The usual reason phrase for ``status`` (RFC 3261 §21 and later RFCs)."""
    return REASON_PHRASES.get(status) or REASON_PHRASES.get(status // 100 * 100, "Unknown")


def _value(f: Field) -> str:
    """A field's value as text, whitespace around it removed."""
    return f[2].strip(_WS_BYTES).decode("utf-8", "surrogateescape")


def _decode(value: bytes) -> str:
    # surrogateescape keeps any non-UTF-8 octet recoverable, so encode(..., "surrogateescape")
    # gives the received bytes back exactly.
    return value.decode("utf-8", "surrogateescape")


def _encode(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


class Message:
    """Common part of :class:`Request` and :class:`Response`.

    A message is a value: the parser builds it and layers above read it. The few mutators
    (:meth:`add_header`, :meth:`set_header`, :meth:`remove_header`, :meth:`set_body`) exist for the
    code that builds messages to send, and drop the cached typed values they affect.
    """

    __slots__ = ("_body", "_cache", "_fields", "_index", "_wire_fields", "version")

    version: str
    _body: bytes
    _fields: list[Field]
    _index: dict[str, list[int]]
    _cache: dict[str, Any]
    #: The header fields exactly as received (between the start line and the blank line), while the
    #: message is unmodified: serialize() then copies them instead of joining every field again.
    _wire_fields: bytes | None

    def __init__(self, fields: list[Field], body: bytes, version: str = SIP_VERSION) -> None:
        self.version = version
        self._body = body
        self._fields = fields
        self._cache = {}
        self._index = _build_index(fields)
        self._wire_fields = None

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        """Setting the body keeps Content-Length true (use :meth:`set_body` to set its type too)."""
        self.set_body(value, None if not value else (self.header("content-type") or None))

    # ------------------------------------------------------------------ raw header access

    def _start_line(self) -> bytes:
        raise NotImplementedError

    @property
    def is_request(self) -> bool:
        raise NotImplementedError

    def header(self, name: str) -> str | None:
        """The first field value of header ``name`` (any spelling or compact form), unsplit."""
        positions = self._index.get(header_key(name))
        if not positions:
            return None
        return _value(self._fields[positions[0]])

    def header_fields(self, name: str) -> list[str]:
        """Every field value of ``name``, one per header line, unsplit."""
        fields = self._fields
        return [_value(fields[i]) for i in self._index.get(header_key(name), ())]

    def header_values(self, name: str) -> list[str]:
        """Every value of ``name``: the field values split on commas for list headers (§7.3.1)."""
        key = header_key(name)
        fields = self.header_fields(key)
        if key not in LIST_HEADERS:
            return fields
        out: list[str] = []
        for value in fields:
            out.extend(split_list(value, canonical_name(key)))
        return out

    def has_header(self, name: str) -> bool:
        return bool(self._index.get(header_key(name)))

    @property
    def headers(self) -> list[tuple[str, str]]:
        """All header fields in order as (name as received, value)."""
        return [(_decode(f[1]), _value(f)) for f in self._fields]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    def _invalidate(self) -> None:
        self._index = _build_index(self._fields)
        self._cache.clear()
        self._wire_fields = None

    def add_header(self, name: str, value: str, *, first: bool = False) -> None:
        """Add a header field; ``first=True`` puts it before any existing field of that name
        (a proxy's or B2BUA's own Via goes on top, RFC 3261 §16.6 step 8)."""
        new = _make_field(name, value)
        positions = self._index.get(new[0])
        if first and positions:
            self._fields.insert(positions[0], new)
        elif first:
            self._fields.insert(0, new)
        else:
            self._fields.append(new)
        self._invalidate()

    def set_header(self, name: str, value: str) -> None:
        """Replace every field of ``name`` by one field holding ``value`` (in the first one's place)."""
        new = _make_field(name, value)
        positions = self._index.get(new[0])
        if not positions:
            self._fields.append(new)
        else:
            self._fields[positions[0]] = new
            for i in reversed(positions[1:]):
                del self._fields[i]
        self._invalidate()

    def remove_header(self, name: str) -> int:
        """Remove every field of ``name``; returns how many were removed."""
        positions = self._index.get(header_key(name), [])
        for i in reversed(positions):
            del self._fields[i]
        self._invalidate()
        return len(positions)

    def remove_first_value(self, name: str) -> str | None:
        """Remove the first value of a list header (the top Via on a response a proxy forwards)."""
        key = header_key(name)
        positions = self._index.get(key)
        if not positions:
            return None
        idx = positions[0]
        values = split_list(_value(self._fields[idx]), canonical_name(key))
        if len(values) <= 1:
            del self._fields[idx]
        else:
            self._fields[idx] = _make_field(_decode(self._fields[idx][1]), ", ".join(values[1:]))
        self._invalidate()
        return values[0]

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        """Replace the body and keep Content-Length (and Content-Type when given) in step."""
        self._body = body
        self.set_header("Content-Length", str(len(body)))
        if content_type is not None:
            self.set_header("Content-Type", content_type)
        elif not body:
            self.remove_header("Content-Type")
        self._invalidate()

    # ------------------------------------------------------------------ serialize

    def serialize(self) -> bytes:
        """The message as bytes: start line, header fields as stored, blank line, body."""
        wire = self._wire_fields
        if wire is not None:
            if not wire:
                return self._start_line() + b"\r\n\r\n" + self._body
            return b"".join((self._start_line(), _CRLF, wire, b"\r\n\r\n", self._body))
        parts = [self._start_line()]
        parts.extend(f[3] for f in self._fields)
        parts.append(b"")
        return _CRLF.join(parts) + _CRLF + self._body

    def __bytes__(self) -> bytes:
        return self.serialize()

    # ------------------------------------------------------------------ typed access

    def _typed(self, key: str, build: Callable[[], T]) -> T:
        cache = self._cache
        if key in cache:
            value: T = cache[key]
            return value
        value = build()
        cache[key] = value
        return value

    def _optional(self, key: str, parse: Callable[[str], T]) -> T | None:
        """A single-valued header that may be absent, parsed on first read."""
        cache = self._cache
        if key in cache:
            found: T | None = cache[key]
            return found
        value = self._single(key)
        result = None if value is None else parse(value)
        cache[key] = result
        return result

    def _single(self, key: str) -> str | None:
        positions = self._index.get(key)
        if not positions:
            return None
        return _value(self._fields[positions[0]])

    def _required(self, key: str) -> str:
        value = self._single(key)
        if value is None:
            raise ParseError(f"missing {canonical_name(key)} header")
        return value

    @property
    def via(self) -> list[Via]:
        """Every Via value, top first (RFC 3261 §20.42)."""

        def build() -> list[Via]:
            values = self.header_values("via")
            if any(not v for v in values):
                raise ParseError("empty value in Via")
            return [Via.parse(v) for v in values]

        return self._typed("via", build)

    @property
    def top_via(self) -> Via:
        """The first Via value: the one that identifies the transaction (RFC 3261 §17.2.3)."""
        # parse() fills these five; a message built by hand parses them on first read.
        value = self._cache.get("top_via")
        return value if value is not None else self._typed("top_via", lambda: _parse_top_via(self))

    @property
    def from_(self) -> NameAddr:
        value = self._cache.get("from")
        if value is not None:
            return value  # type: ignore[no-any-return]
        return self._typed("from", lambda: NameAddr.parse(self._required("from"), "From"))

    @property
    def to(self) -> NameAddr:
        value = self._cache.get("to")
        if value is not None:
            return value  # type: ignore[no-any-return]
        return self._typed("to", lambda: NameAddr.parse(self._required("to"), "To"))

    @property
    def call_id(self) -> str:
        value = self._cache.get("call-id")
        if value is not None:
            return value  # type: ignore[no-any-return]
        return self._typed("call-id", lambda: _check_call_id(self._required("call-id")))

    @property
    def cseq(self) -> CSeq:
        value = self._cache.get("cseq")
        if value is not None:
            return value  # type: ignore[no-any-return]
        return self._typed("cseq", lambda: CSeq.parse(self._required("cseq")))

    @property
    def max_forwards(self) -> int | None:
        def build() -> int | None:
            value = self._single("max-forwards")
            if value is None:
                return None
            value = value.strip(" \t")
            # RFC 3261 §20.22: 0-255; "0068" (RFC 4475 wsinv) is a valid spelling of 68.
            if not value.isdigit() or not value.isascii() or len(value) > 10:
                raise ParseError(f"Max-Forwards is not a number: {value[:20]!r}")
            if int(value) > 255:
                raise ParseError(f"Max-Forwards is above 255: {value[:20]!r}")
            return int(value)

        return self._typed("max-forwards", build)

    @property
    def contact(self) -> list[Contact]:
        return self._typed("contact", lambda: [Contact.parse(v) for v in self._nonempty_values("contact")])

    @property
    def route(self) -> list[NameAddr]:
        return self._typed("route", lambda: self._name_addrs("route", "Route"))

    @property
    def record_route(self) -> list[NameAddr]:
        return self._typed("record-route", lambda: self._name_addrs("record-route", "Record-Route"))

    @property
    def content_length(self) -> int:
        """The body's length: what framing used (Content-Length, or the datagram's rest)."""
        return len(self.body)

    @property
    def content_type(self) -> ContentType | None:
        return self._optional("content-type", ContentType.parse)

    @property
    def expires(self) -> int | None:
        return self._optional("expires", lambda value: parse_delta_seconds(value, "Expires"))

    @property
    def authorization(self) -> list[Auth]:
        return self._typed("authorization", lambda: self._auths("authorization"))

    @property
    def proxy_authorization(self) -> list[Auth]:
        return self._typed("proxy-authorization", lambda: self._auths("proxy-authorization"))

    @property
    def www_authenticate(self) -> list[Auth]:
        return self._typed("www-authenticate", lambda: self._auths("www-authenticate"))

    @property
    def proxy_authenticate(self) -> list[Auth]:
        return self._typed("proxy-authenticate", lambda: self._auths("proxy-authenticate"))

    @property
    def reason(self) -> list[Reason]:
        return self._typed("reason", lambda: [Reason.parse(v) for v in self._nonempty_values("reason")])

    @property
    def allow(self) -> tuple[str, ...]:
        return self._typed("allow", lambda: self._tokens("allow", "Allow"))

    @property
    def supported(self) -> tuple[str, ...]:
        return self._typed("supported", lambda: self._tokens("supported", "Supported"))

    @property
    def require(self) -> tuple[str, ...]:
        return self._typed("require", lambda: self._tokens("require", "Require"))

    @property
    def proxy_require(self) -> tuple[str, ...]:
        return self._typed("proxy-require", lambda: self._tokens("proxy-require", "Proxy-Require"))

    @property
    def unsupported(self) -> tuple[str, ...]:
        return self._typed("unsupported", lambda: self._tokens("unsupported", "Unsupported"))

    @property
    def session_expires(self) -> SessionExpires | None:
        return self._optional("session-expires", SessionExpires.parse)

    @property
    def min_se(self) -> int | None:
        """Min-SE (RFC 4028 §5): delta-seconds, parameters ignored."""

        return self._optional("min-se", lambda value: parse_delta_seconds(value.split(";")[0], "Min-SE"))

    @property
    def rseq(self) -> int | None:
        return self._optional("rseq", lambda value: parse_delta_seconds(value, "RSeq"))

    @property
    def rack(self) -> RAck | None:
        return self._optional("rack", RAck.parse)

    @property
    def retry_after(self) -> RetryAfter | None:
        return self._optional("retry-after", RetryAfter.parse)

    def _nonempty_values(self, key: str) -> list[str]:
        values = self.header_values(key)
        if any(not v for v in values):
            raise ParseError(f"empty value in {canonical_name(key)}")
        return values

    def _name_addrs(self, key: str, header: str) -> list[NameAddr]:
        return [NameAddr.parse(v, header) for v in self._nonempty_values(key)]

    def _auths(self, key: str) -> list[Auth]:
        return [Auth.parse(v) for v in self.header_fields(key)]

    def _tokens(self, key: str, header: str) -> tuple[str, ...]:
        out: list[str] = []
        for value in self.header_fields(key):
            out.extend(parse_token_list(value, header))
        return tuple(out)

    def reply_info(self) -> StatelessReplyInfo | None:
        """The raw fields a stateless reply copies, when all are present."""
        return _reply_info(self._fields, self._index, self._method_for_reply())

    def _method_for_reply(self) -> str:
        raise NotImplementedError


class Request(Message):
    """A SIP request (RFC 3261 §7.1)."""

    __slots__ = ("method", "uri_text")

    method: str
    uri_text: str

    def __init__(
        self,
        method: str,
        uri_text: str,
        fields: list[Field],
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(fields, body, version)
        self.method = method
        self.uri_text = uri_text

    @classmethod
    def build(
        cls,
        method: str,
        uri: str,
        headers: Iterable[tuple[str, str]],
        body: bytes = b"",
    ) -> Request:
        """Build a request to send; Content-Length is set from ``body``."""
        if not is_token(method):
            raise LocalProtocolError(f"method is not a token: {method!r}")
        if not uri or any(c in uri for c in " \t\r\n"):
            raise LocalProtocolError(f"Request-URI is empty or has whitespace: {uri!r}")
        return cls(method, uri, _build_fields(headers, body), body)

    @property
    def is_request(self) -> bool:
        return True

    @property
    def uri(self) -> SipURI | TelURI | AbsoluteURI:
        """The Request-URI, parsed (RFC 3261 §19)."""

        return self._typed("request-uri", lambda: parse_uri(self.uri_text))

    def _start_line(self) -> bytes:
        return _encode(f"{self.method} {self.uri_text} {self.version}")

    def _method_for_reply(self) -> str:
        return self.method

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text}>"


class Response(Message):
    """A SIP response (RFC 3261 §7.2)."""

    __slots__ = ("reason_phrase", "status")

    status: int
    reason_phrase: str

    def __init__(
        self,
        status: int,
        reason: str,
        fields: list[Field],
        body: bytes = b"",
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(fields, body, version)
        self.status = status
        self.reason_phrase = reason

    @classmethod
    def build(
        cls,
        status: int,
        headers: Iterable[tuple[str, str]],
        body: bytes = b"",
        reason: str | None = None,
    ) -> Response:
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status code out of range: {status}")
        return cls(status, _check_reason(reason or reason_phrase(status)), _build_fields(headers, body), body)

    @property
    def is_request(self) -> bool:
        return False

    def _start_line(self) -> bytes:
        return _encode(f"{self.version} {self.status} {self.reason_phrase}")

    def _method_for_reply(self) -> str:
        return self.cseq.method

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason_phrase}>"


# ================================================================================== building


def _make_field(name: str, value: str) -> Field:
    if not is_token(name):
        raise LocalProtocolError(f"header name is not a token: {name!r}")
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"header {name} value contains CR or LF")
    key = header_key(name)
    raw_name = _encode(name)
    raw_value = _encode(value)
    return (key, raw_name, raw_value, raw_name + b": " + raw_value)


def _build_fields(headers: Iterable[tuple[str, str]], body: bytes) -> list[Field]:
    fields = [_make_field(n, v) for n, v in headers if header_key(n) != "content-length"]
    fields.append(_make_field("Content-Length", str(len(body))))
    return fields


def _build_index(fields: list[Field]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for i, f in enumerate(fields):
        positions = index.get(f[0])
        if positions is None:
            index[f[0]] = [i]
        else:
            positions.append(i)
    return index


def _check_reason(reason: str) -> str:
    if "\r" in reason or "\n" in reason:
        raise LocalProtocolError("a reason phrase may not contain CR or LF")
    return reason


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    copy_record_route: bool = False,
) -> Response:
    """Build a response to ``request`` as RFC 3261 §8.2.6 says.

    Via (every value, in order), From, Call-ID and CSeq are copied byte-for-byte; To is copied and,
    when the request's To has no tag and the status is above 100, ``to_tag`` is added (§8.2.6.2).
    A 100 copies Timestamp (§8.2.6.1). ``copy_record_route`` is for responses that create a dialog
    (§12.1.1). ``headers`` are appended; Content-Length is set from ``body``.
    """
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"status code out of range: {status}")
    if reason is not None:
        _check_reason(reason)
    if to_tag is not None and not is_token(to_tag):
        raise LocalProtocolError(f"a tag must be a token: {to_tag!r}")
    fields: list[Field] = []
    src = request._fields
    index = request._index
    for key in ("via", "record-route") if copy_record_route else ("via",):
        fields.extend(src[i] for i in index.get(key, ()))
    fields.extend(src[i] for i in index.get("from", ()))
    to_positions = index.get("to", ())
    if to_positions:
        to_field = src[to_positions[0]]
        if status > 100 and request.to.tag is None:
            if not to_tag:
                raise LocalProtocolError(f"a {status} to a request without To tag needs to_tag")
            to_field = _make_field(_decode(to_field[1]), f"{_value(to_field)};tag={to_tag}")
        fields.append(to_field)
    for key in ("call-id", "cseq"):
        fields.extend(src[i] for i in index.get(key, ()))
    if status == 100:
        fields.extend(src[i] for i in index.get("timestamp", ()))
    for name, value in headers:
        if header_key(name) != "content-length":
            fields.append(_make_field(name, value))
    fields.append(_make_field("Content-Length", str(len(body))))
    return Response(status, reason or reason_phrase(status), fields, body)


def _safe_reason(reason: str) -> str:
    # A reason phrase may not carry CR/LF; ours quote peer input, so keep printable ASCII only.
    return "".join(c if " " <= c <= "~" else "?" for c in reason)[:200]


def _to_has_no_tag(to: bytes) -> bool:
    """Whether a raw To value lacks a tag; when it does not parse, read it as tagless (the reply
    then carries one, which a peer can always match)."""
    try:
        return NameAddr.parse(_decode(to.strip(_WS_BYTES)), "To").tag is None
    except ParseError:
        return b";tag=" not in to.replace(b" ", b"").lower()


def stateless_reply(error: ParseError, *, server: str | None = None) -> bytes | None:
    """The bytes of a stateless reply to a request that failed to parse, or None when the request
    cannot be answered (a response, or a request whose Via/From/To/Call-ID/CSeq were not readable).

    The To tag is derived from the request, so a retransmitted bad request gets the same reply
    (RFC 3261 §8.2.6.2 asks tags to be stable for one request).
    """
    info = error.reply_info
    if info is None:
        return None
    digest = hashlib.sha1(b"|".join((*info.vias, info.from_ or b"", info.call_id or b"")))
    lines = [_encode(f"{SIP_VERSION} {error.status} {_safe_reason(error.reason)}")]
    lines.extend(b"Via: " + v for v in info.vias)
    if info.from_ is not None:
        lines.append(b"From: " + info.from_)
    if info.to is not None:
        to = info.to
        if _to_has_no_tag(to) and error.status > 100:
            to = to + b";tag=" + digest.hexdigest()[:16].encode()
        lines.append(b"To: " + to)
    for name, value in ((b"Call-ID: ", info.call_id), (b"CSeq: ", info.cseq)):
        if value is not None:
            lines.append(name + value)
    if server:
        lines.append(_encode(f"Server: {server}"))
    lines.append(b"Content-Length: 0")
    return _CRLF.join(lines) + _CRLF + _CRLF


# ================================================================================== parsing


def parse(data: bytes) -> Request | Response:
    """Parse one SIP message from a datagram (RFC 3261 §7, §18.3).

    End of datagram ends the message: a missing Content-Length means the rest of the datagram is the
    body, octets beyond Content-Length are ignored (RFC 4475 §3.1.1.8), and a Content-Length larger
    than what arrived is a 400 (§3.1.2.2). Raises :class:`ParseError` and nothing else.
    """
    if len(data) > MAX_DATAGRAM_SIZE:
        raise ParseError(f"message of {len(data)} bytes exceeds {MAX_DATAGRAM_SIZE}", 513)
    try:
        return _parse(data, stream=False)
    except ParseError:
        raise
    except (ValueError, IndexError, UnicodeError, TypeError, AttributeError, KeyError) as exc:
        # Defence in depth: a peer must never be able to raise anything but ParseError.
        raise ParseError(f"unparseable message ({type(exc).__name__})") from exc


def _parse(data: bytes, *, stream: bool) -> Request | Response:
    head_end = data.find(b"\r\n\r\n")
    lf_only = False
    if head_end >= 0:
        body_start = head_end + 4
    else:
        head_end, body_start, lf_only = _head_without_crlf_blank_line(data)
    if head_end > MAX_HEADER_SECTION_SIZE:
        raise ParseError(f"header section exceeds {MAX_HEADER_SECTION_SIZE} bytes", 513)
    head = data[:head_end]
    if not lf_only:
        lines = head.split(_CRLF)
        if head.count(b"\r") != len(lines) - 1 or head.count(b"\n") != len(lines) - 1:
            # A bare CR or LF: either a bare-LF header section whose body holds a CRLF blank line,
            # or a CR/LF inside a value, which RFC 3261 §7.3.1 forbids (a peer's parser would see
            # two headers where we see one). Only this rare case pays for looking further.
            lf_end = data.find(b"\n\n", 0, head_end)
            if lf_end < 0 or b"\r\n" in data[:lf_end]:
                raise ParseError("bare CR or LF inside the header section")
            head_end, body_start, lf_only = lf_end, lf_end + 2, True
            head = data[:head_end]
    if lf_only:
        lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
        if any(b"\r" in line for line in lines):
            raise ParseError("bare CR inside the header section")
    start = lines[0]
    if not start:
        raise ParseError("empty start line")
    if head_end > MAX_LINE_LENGTH and max(map(len, lines)) > MAX_LINE_LENGTH:
        # Only a section longer than the limit can hold a line longer than it: no cost otherwise.
        raise ParseError(f"header line longer than {MAX_LINE_LENGTH} bytes", 513)
    # Lines bound fields unless they fold; a folded (or bare-LF) section is parsed by
    # _parse_folded_fields, which counts its fields one by one.
    if len(lines) > MAX_HEADER_COUNT + 1 and not lf_only and _FOLD.search(head) is None:
        raise ParseError(f"more than {MAX_HEADER_COUNT} header fields")
    fields: list[Field] = []
    index: dict[str, list[int]] = {}
    if lf_only:
        _parse_folded_fields(lines, fields, index)
    elif not _parse_fields(head, lines, fields, index):
        fields, index = [], {}
        _parse_folded_fields(lines, fields, index)
    msg: Request | Response
    if start[:4] == b"SIP/":
        msg = _finish_response(start, fields, index, data, body_start, stream)
    else:
        msg = _finish_request(start, fields, index, data, body_start, stream)
    msg._wire_fields = None if lf_only else head[len(start) + 2 :]
    return msg


def _head_without_crlf_blank_line(data: bytes) -> tuple[int, int, bool]:
    """(end of the header section, start of the body, bare-LF?) when there is no CRLF CRLF."""
    lf_end = data.find(b"\n\n")
    if lf_end >= 0 and b"\r\n" not in data[:lf_end]:
        # Bare-LF messages from broken UAs: accept, as the robustness principle asks.
        return lf_end, lf_end + 2, True
    # A datagram that ends without the blank line (RFC 4475 baddn, inv2543): the end of the
    # datagram ends the header section.
    head_end = len(data)
    while data.endswith(b"\r\n", 0, head_end):
        head_end -= 2
    return head_end, len(data), False


def _add_field(line: bytes, raw: bytes, fields: list[Field], index: dict[str, list[int]]) -> None:
    colon = line.find(b":")
    if colon <= 0:
        if not line.strip(_WS_BYTES):
            raise ParseError("whitespace-only line in the header section")
        raise ParseError(f"header line without a colon: {_decode(line[:40])!r}")
    name = line[:colon]
    key = _KEY_CACHE.get(name)
    if key is None:
        name = name.rstrip(_WS_BYTES)
        key = _KEY_CACHE.get(name)
        if key is None:
            key = _new_key(name)
    positions = index.get(key)
    if positions is None:
        index[key] = [len(fields)]
    else:
        positions.append(len(fields))
    fields.append((key, name, line[colon + 1 :], raw))


def _new_key(name: bytes) -> str:
    if not name or name.translate(None, TOKEN_BYTES):
        raise ParseError(f"header name is not a token: {_decode(name[:40])!r}")
    text = name.decode("ascii").lower()
    return COMPACT_FORMS.get(text, text)


def _parse_fields(head: bytes, lines: list[bytes], fields: list[Field], index: dict[str, list[int]]) -> bool:
    """Header lines (after the start line) → fields; False when the section has folding, which
    :func:`_parse_folded_fields` then parses from the start. The hot path: values are stored
    unstripped and stripped when read, since most are never read."""
    known = _KEY_CACHE.get
    append = fields.append
    unfolded = False  # the section was searched for folding and has none
    for i, line in enumerate(lines[1:]):
        name, sep, value = line.partition(b":")
        key = known(name)
        if key is None or not sep:
            # Anything unusual comes here, a continuation line included (it starts with SP or
            # HTAB, so its "name" is never a known one). The section is searched for folding on
            # the first such line, before any error: a folded section is always parsed whole by
            # _parse_folded_fields, and one made of known names only is never searched.
            if not unfolded:
                if _FOLD.search(head) is not None:
                    return False
                unfolded = True
            if not sep or not name:
                _add_field(line, line, fields, index)  # raises the precise error
            name = name.rstrip(_WS_BYTES)
            key = known(name) or _new_key(name)
        if key in index:
            index[key].append(i)
        else:
            index[key] = [i]
        append((key, name, value, line))
    return True


def _parse_folded_fields(lines: list[bytes], fields: list[Field], index: dict[str, list[int]]) -> None:
    """Header lines with folding (RFC 3261 §7.3.1): a line starting with SP or HTAB continues the
    previous one, and each fold reads as one SP. ``raw`` keeps the folded bytes for serialize."""
    n = len(lines)
    i = 1
    while i < n:
        line = lines[i]
        i += 1
        if line[:1] in (b" ", b"\t"):
            if line.strip(_WS_BYTES):
                raise ParseError("continuation line before any header")
            raise ParseError("whitespace-only line in the header section")
        raw = line
        if i < n and lines[i][:1] in (b" ", b"\t"):
            parts = [line]
            while i < n and lines[i][:1] in (b" ", b"\t"):
                parts.append(lines[i])
                i += 1
            raw = _CRLF.join(parts)
            line = b" ".join(p.strip(_WS_BYTES) for p in parts)
        _add_field(line, raw, fields, index)
        if len(fields) > MAX_HEADER_COUNT:
            raise ParseError(f"more than {MAX_HEADER_COUNT} header fields")


def _body(
    fields: list[Field], index: dict[str, list[int]], data: bytes, body_start: int, stream: bool
) -> bytes:
    positions = index.get("content-length")
    if not positions:
        if stream:
            raise ParseError("Content-Length is required on stream transports (RFC 3261 §18.3)")
        return data[body_start:]
    value = fields[positions[0]][2].strip(_WS_BYTES)
    if len(positions) > 1:
        for i in positions[1:]:
            if fields[i][2].strip(_WS_BYTES) != value:
                raise ParseError("conflicting Content-Length values")
    if not value.isdigit():
        raise ParseError(f"Content-Length is not a number: {_decode(value[:20])!r}")
    if len(value) > 9 or (length := int(value)) > MAX_BODY_SIZE:
        raise ParseError(f"Content-Length above {MAX_BODY_SIZE}", 413)
    rest = len(data) - body_start
    if length > rest:
        raise ParseError(f"Content-Length {length} is larger than the {rest}-byte body")
    if length == rest:
        return data[body_start:] if body_start else data
    return data[body_start : body_start + length]


def _check_call_id(value: str) -> str:
    # RFC 3261 §25.1: callid = word [ "@" word ] — no whitespace inside.
    if not value or " " in value or "\t" in value:
        raise ParseError(f"Call-ID is empty or has whitespace: {value[:40]!r}")
    return value


def _parse_top_via(msg: Message) -> Via:
    positions = msg._index.get("via")
    if not positions:
        raise ParseError("missing Via header")
    text = _value(msg._fields[positions[0]])
    first = split_list(text, "Via")[0] if "," in text else text
    if not first:
        raise ParseError("empty value in Via")
    return Via.parse(first)


def _validate(msg: Message, fields: list[Field], index: dict[str, list[int]]) -> None:
    """The checks every message passes before any layer sees it (module docstring); the typed
    values it parses go straight into the message's cache. Written out flat: this runs for every
    message, and a loop over the header names cost a tenth of the parse."""
    get = index.get
    from_at, to_at, call_id_at, cseq_at = get("from"), get("to"), get("call-id"), get("cseq")
    if (
        from_at is None
        or to_at is None
        or call_id_at is None
        or cseq_at is None
        or len(from_at) + len(to_at) + len(call_id_at) + len(cseq_at) != 4
    ):
        _missing_or_repeated(index)
    cache = msg._cache
    via_at = get("via")
    if not via_at:
        raise ParseError("missing Via header")
    # _value() inlined: this runs for every message.
    ws = _WS_BYTES
    via = fields[via_at[0]][2].strip(ws).decode("utf-8", "surrogateescape")
    if "," in via:
        via = split_list(via, "Via")[0]
    if not via:
        raise ParseError("empty value in Via")
    cache["top_via"] = Via.parse(via)
    cache["from"] = NameAddr.parse(fields[from_at[0]][2].strip(ws).decode("utf-8", "surrogateescape"), "From")
    cache["to"] = NameAddr.parse(fields[to_at[0]][2].strip(ws).decode("utf-8", "surrogateescape"), "To")
    cache["call-id"] = _check_call_id(fields[call_id_at[0]][2].strip(ws).decode("utf-8", "surrogateescape"))
    cache["cseq"] = CSeq.parse(fields[cseq_at[0]][2].strip(ws).decode("utf-8", "surrogateescape"))
    for key in _OTHER_SINGLE_HEADERS:
        positions = get(key)
        if positions is not None and len(positions) > 1:
            raise ParseError(f"more than one {canonical_name(key)} header")
    positions = get("max-forwards")
    if positions is not None:
        value = fields[positions[0]][2].strip(_WS_BYTES)
        if value.isdigit() and len(value) <= 3 and int(value) <= 255:
            cache["max-forwards"] = int(value)
        else:
            msg.max_forwards  # noqa: B018 - raises the precise 400


def _missing_or_repeated(index: dict[str, list[int]]) -> NoReturn:
    for key, name in _REQUIRED_SINGLE:
        positions = index.get(key)
        if not positions:
            raise ParseError(f"missing {name} header")
        if len(positions) > 1:
            raise ParseError(f"more than one {name} header")
    raise AssertionError("called with From, To, Call-ID and CSeq each present once")


_REQUIRED_SINGLE: Final = (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq"))
_OTHER_SINGLE_HEADERS: Final = tuple(sorted(SINGLE_HEADERS - {"from", "to", "call-id", "cseq"}))


def _reply_info(fields: list[Field], index: dict[str, list[int]], method: str) -> StatelessReplyInfo | None:
    vias = tuple(fields[i][2].strip(_WS_BYTES) for i in index.get("via", ()))
    if not vias:
        return None

    def first(key: str) -> bytes | None:
        positions = index.get(key)
        return fields[positions[0]][2].strip(_WS_BYTES) if positions else None

    return StatelessReplyInfo(method, vias, first("from"), first("to"), first("call-id"), first("cseq"))


def _finish_request(
    start: bytes,
    fields: list[Field],
    index: dict[str, list[int]],
    data: bytes,
    body_start: int,
    stream: bool,
) -> Request:
    parts = start.split(b" ")
    method_b = parts[0]
    method = _KNOWN_METHOD_NAMES.get(method_b)
    if method is None:
        if not method_b or method_b.translate(None, TOKEN_BYTES):
            raise ParseError(f"not a SIP start line: {_decode(start[:60])!r}")
        method = method_b.decode("ascii")
    try:
        if len(parts) != 3:
            # RFC 3261 §7.1: Method SP Request-URI SP SIP-Version, single spaces, no LWS inside.
            raise ParseError("request line must be 'Method SP Request-URI SP SIP-Version'")
        uri_b, version_b = parts[1], parts[2]
        if version_b != b"SIP/2.0" and version_b.upper() != b"SIP/2.0":
            if version_b[:4].upper() == b"SIP/":
                raise ParseError(f"SIP version {_decode(version_b[:20])} not supported", 505)
            raise ParseError(f"bad SIP version {_decode(version_b[:20])!r}")
        if len(uri_b) > MAX_REQUEST_URI_LENGTH:
            raise ParseError(f"Request-URI longer than {MAX_REQUEST_URI_LENGTH} bytes", 414)
        # Checked on the text: ``b"\t" in uri_b`` costs ten times ``"\t" in uri_text`` (bytes'
        # ``in`` tries the operand as an int first), and decoding never makes or hides a TAB or '<'.
        uri_text = uri_b.decode("utf-8", "surrogateescape")
        if not uri_text or uri_text[0] == "<" or "\t" in uri_text:
            raise ParseError("Request-URI is malformed (RFC 3261 §7.1 forbids <> and LWS)")
        req = Request.__new__(Request)
        req.version = SIP_VERSION
        req._body = _body(fields, index, data, body_start, stream)
        req._fields = fields
        req._cache = {}
        req._index = index
        req.method = method
        req.uri_text = uri_text
        _validate(req, fields, index)
        cseq_method = req._cache["cseq"].method
        if cseq_method != method:
            # RFC 4475 §3.1.2.18: with an unknown method, 501 says more than 400 (both allowed).
            status = 400 if method in KNOWN_METHODS else 501
            raise ParseError(f"CSeq method {cseq_method} does not match {method}", status)
        if PLAIN_SIP_URI.fullmatch(uri_text) is None:
            # Not the everyday shape: parse it now, so a bad Request-URI is a 400 here, not later.
            req._cache["request-uri"] = parse_uri(uri_text)
        return req
    except ParseError as exc:
        exc.is_request = True
        # RFC 3261 §17.1.1.3, §17.2.1: an ACK is never answered, not even a malformed one.
        if exc.reply_info is None and method != "ACK":
            exc.reply_info = _reply_info(fields, index, method)
        raise


def _finish_response(
    start: bytes,
    fields: list[Field],
    index: dict[str, list[int]],
    data: bytes,
    body_start: int,
    stream: bool,
) -> Response:
    try:
        version_b, _, rest = start.partition(b" ")
        code_b, _, reason_b = rest.partition(b" ")
        if version_b != b"SIP/2.0" and version_b.upper() != b"SIP/2.0":
            raise ParseError(f"SIP version {_decode(version_b[:20])} not supported", 505)
        if len(code_b) != 3 or not code_b.isdigit() or not b"100" <= code_b <= b"699":
            raise ParseError(f"status code is not 100-699: {_decode(code_b[:20])!r}")
        resp = Response.__new__(Response)
        resp.version = SIP_VERSION
        resp._body = _body(fields, index, data, body_start, stream)
        resp._fields = fields
        resp._cache = {}
        resp._index = index
        resp.status = int(code_b)
        resp.reason_phrase = reason_b.decode("utf-8", "surrogateescape")
        _validate(resp, fields, index)
        return resp
    except ParseError as exc:
        exc.is_request = False
        raise
