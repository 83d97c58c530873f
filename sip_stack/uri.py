"""SIP, SIPS and tel URIs: parse, serialize and compare them, sans-IO.

:func:`parse_uri` turns the text of a Request-URI or of the URI inside From, To, Contact, Route or
Record-Route into a value:

* ``sip:`` / ``sips:`` (any case) → :class:`SipURI` (RFC 3261 §19.1.1, ABNF §25.1, IPv6 ABNF as
  corrected by RFC 5954 §4.1);
* ``tel:`` → :class:`TelURI` (RFC 3966 §3);
* any other RFC 3986 §3.1 scheme → :class:`AbsoluteURI`, kept as text. Whether such a scheme is
  acceptable (416 Unsupported URI Scheme, RFC 3261 §8.2.2.1) is the application's decision.

Anything malformed raises :class:`~sip_stack.errors.ParseError` with status 400 and a reason that
names the fault. A value an application builds by hand is checked by the same rules on construction
and raises :class:`~sip_stack.errors.LocalProtocolError` instead: then the bug is ours.

Every value keeps its pieces as received (user still %-escaped, host as written, parameters in
order), and ``str()`` of a parsed URI gives back exactly the text it was parsed from, so a leg can
forward a URI untouched. Equality is the protocol's, not the text's: ``==`` and ``hash()`` implement
RFC 3261 §19.1.4 (with RFC 5954 §4.2 for address literals) and RFC 3966 §4.

Leniency, decided here once:

* RFC 4475 §3.1.1.3-4: %-escapes are accepted in user, password, parameters and headers, ``%00``
  included; a ``%`` not followed by two hex digits is a 400 (RFC 3261 ``escaped``).
* RFC 5118 §4.10: "an implementation must tolerate both" ``[2001:db8::192.0.2.1]`` and the
  ``[2001:db8:::192.0.2.1]`` that RFC 3261's ABNF (inherited from RFC 2373, fixed by RFC 5954 §4.1)
  derives. The tolerance is narrow: one ``:::`` reads as ``::`` only right before an embedded IPv4
  address that ends the reference; the host text is kept as received and compares equal to the
  two-colon form. Any other ``:::`` is a 400.
* RFC 5118 §4.2: an IPv6 address without brackets in the host is a 400.
* Characters outside the RFC 3261 sets are refused, unescaped ``#`` in a user part included
  (§19.1.2: what ``telephone-subscriber`` allows but ``user`` does not "MUST be escaped").
* A parameter name used twice in a SIP URI is accepted; the first one counts for lookups and
  comparison. In a tel URI it is a 400 (RFC 3966 §3: it "MUST NOT appear more than once").
* tel URI parameters are accepted in any order, although RFC 3966 §3 asks senders for isub/ext
  first, then phone-context, then the rest sorted.
* The message parser, not this module, enforces RFC 3261 §19.1.1 Table 1 (no headers or method
  parameter in a Request-URI, RFC 4475 §3.1.2.11): as a URI, ``sip:u@h.example?Route=x`` is valid.
* :class:`AbsoluteURI` also accepts ``[`` ``]`` (RFC 2732) and a ``#fragment``, which RFC 2396's
  ``absoluteURI`` leaves out but ``http:`` URIs in Call-Info or Alert-Info carry.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

from sip_stack.errors import LocalProtocolError, ParseError
from sip_stack.limits import MAX_REQUEST_URI_LENGTH

__all__ = [
    "MAX_URI_LENGTH",
    "AbsoluteURI",
    "HostType",
    "SipURI",
    "TelURI",
    "is_e164",
    "parse_uri",
]

#: Longest URI text :func:`parse_uri` reads. A Request-URI never reaches us longer than this,
#: because the request line that carries it is capped at the same value and answered 414 (RFC 3261
#: §21.4.12). URIs in header fields are far shorter in practice: RFC 4475's longreq, written to
#: torture parsers, peaks at 591 characters, and a GRUU Contact with an instance id is ~200. One
#: bound for every URI means a URI that could be a Request-URI is never refused here, and a header
#: URI cannot cost us more than a Request-URI.
MAX_URI_LENGTH: Final = MAX_REQUEST_URI_LENGTH

#: How much of a faulty piece a reason phrase quotes. The phrase names the fault; it does not echo
#: an 8 KB attack back onto the wire.
_QUOTE_LIMIT: Final = 64

HostType = Literal["ipv4", "ipv6", "name"]

# Character sets of RFC 3261 §25.1, written as regex classes. Each ``_*_BAD`` pattern finds the
# first character outside its set: one linear scan with no backtracking, and the hit is the
# character the reason phrase names. '%' is in every set; escapes are checked separately by
# _BAD_ESCAPE.
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# user = 1*( unreserved / escaped / user-unreserved ), user-unreserved = & = + $ , ; ? /
# plus '#': RFC 3261 §19.1.2 wants it escaped, but carriers and PBXs send feature codes like
# "sip:*98#@host" unescaped, and refusing a caller over it helps no one (robustness principle).
_USER_BAD: Final = re.compile(rf"[^{_UNRESERVED}&=+$,;?/%#]")
# password = *( unreserved / escaped / & = + $ , )
_PASSWORD_BAD: Final = re.compile(rf"[^{_UNRESERVED}&=+$,%]")
# paramchar = param-unreserved / unreserved / escaped, param-unreserved = [ ] / : & + $
_PARAMCHAR_BAD: Final = re.compile(rf"[^{_UNRESERVED}\[\]/:&+$%]")
# The whole ";name=value;name" section: paramchars plus the two delimiters.
_PARAMS_BAD: Final = re.compile(rf"[^{_UNRESERVED}\[\]/:&+$%;=]")
# hname / hvalue chars = hnv-unreserved / unreserved / escaped, hnv-unreserved = [ ] / ? : + $
_HNVCHAR_BAD: Final = re.compile(rf"[^{_UNRESERVED}\[\]/?:+$%]")
_HEADERS_BAD: Final = re.compile(rf"[^{_UNRESERVED}\[\]/?:+$%&=]")
# RFC 2396 uric = reserved / unreserved / escaped, plus RFC 2732's [ ] and a fragment's '#'.
_URIC_BAD: Final = re.compile(rf"[^{_UNRESERVED};/?:@&=+$,%\[\]#]")
# RFC 3966 isdn-subaddress = ";isub=" 1*uric; ';' cannot appear because it ends the parameter.
_ISUB_BAD: Final = re.compile(rf"[^{_UNRESERVED}/?:@&=+$,%]")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_HOSTNAME_CHARS: Final = re.compile(r"[A-Za-z0-9.\-]+")
_IPV4_CHARS: Final = re.compile(r"[0-9.]+")
# Only what an RFC 4291 address can hold: ipaddress would also take a "%zone", RFC 3261 would not.
_IPV6_CHARS: Final = re.compile(r"[0-9A-Fa-f:.]+")
# RFC 3966: pname = 1*( alphanum / "-" ); phonedigit(-hex) with visual-separator = - . ( )
_TEL_PNAME: Final = re.compile(r"[A-Za-z0-9\-]+")
_GLOBAL_DIGITS_BAD: Final = re.compile(r"[^0-9\-.()]")
_LOCAL_DIGITS_BAD: Final = re.compile(r"[^0-9A-Fa-f*#\-.()]")
_VISUAL_SEPARATORS: Final = "-.()"
_DROP_VISUAL_SEPARATORS: Final = str.maketrans("", "", _VISUAL_SEPARATORS)

# RFC 3261 §19.1.4: "Characters other than those in the 'reserved' set (see RFC 2396) are equivalent
# to their '%' HEX HEX encoding." An escaped reserved character stays escaped when compared, and so
# does '%' itself, or "%2541" and "%41" would both compare as "%41".
_KEEP_ESCAPED: Final = frozenset(";/?:@&=+$,%")

# RFC 3261 §19.1.4: these uri-parameters must match when either URI has them (user, ttl and method
# "never match" when in one only; an maddr in one only does not match; transport has a default
# value, and "a URI omitting any component with a default value will not match a URI explicitly
# containing it").
_MUST_MATCH_PARAMS: Final = ("user", "ttl", "method", "maddr", "transport")


def _quote(piece: str) -> str:
    """Quote peer input for a reason phrase: ASCII only, so no CR/LF can reach the wire."""
    if len(piece) > _QUOTE_LIMIT:
        return ascii(piece[:_QUOTE_LIMIT]) + "..."
    return ascii(piece)


def _check_chars(text: str, bad: re.Pattern[str], what: str) -> None:
    """Raise unless ``text`` has only characters ``bad`` does not find, and well-formed escapes."""
    hit = bad.search(text)
    if hit is not None:
        raise ParseError(f"{what} has an invalid character: {_quote(hit.group())}")
    if "%" in text and _BAD_ESCAPE.search(text) is not None:
        raise ParseError(f"{what} has a '%' not followed by two hex digits")


def _canonical(text: str) -> str:
    """The form RFC 3261 §19.1.4 compares: escapes decoded except those of reserved characters.

    Escapes that stay escaped get upper-case hex, since ``%3a`` and ``%3A`` are the same octet.
    Octets above 0x7F stay escaped too, so that lower-casing a case-insensitive component cannot
    merge two different octets (chr(0xC3).lower() is chr(0xE3)).
    """
    pct = text.find("%")
    if pct < 0:
        return text
    out: list[str] = []
    start = 0
    while pct >= 0:
        out.append(text[start:pct])
        hex_digits = text[pct + 1 : pct + 3]
        char = chr(int(hex_digits, 16))
        if char in _KEEP_ESCAPED or char > "\x7f":
            out.append("%" + hex_digits.upper())
        else:
            out.append(char)
        start = pct + 3
        pct = text.find("%", start)
    out.append(text[start:])
    return "".join(out)


def _folded(text: str) -> str:
    """Canonical form of a case-insensitive component."""
    return _canonical(text).lower()


def _unescape(text: str) -> str:
    """Decode every %HH escape; octets are read as UTF-8, and any that are not UTF-8 survive as lone
    surrogates (``surrogateescape``) so that nothing received is lost."""
    pct = text.find("%")
    if pct < 0:
        return text
    octets = bytearray()
    start = 0
    while pct >= 0:
        octets += text[start:pct].encode("ascii")
        octets.append(int(text[pct + 1 : pct + 3], 16))
        start = pct + 3
        pct = text.find("%", start)
    octets += text[start:].encode("ascii")
    return octets.decode("utf-8", "surrogateescape")


def _is_hostname(text: str) -> bool:
    """RFC 3261 §25.1 ``hostname = *( domainlabel "." ) toplabel [ "." ]``, RFC 3966 ``domainname``.

    A label is alphanumerics and '-', neither first nor last; the top label starts with a letter,
    which is what tells ``example.com`` from a malformed IPv4 address.
    """
    if _HOSTNAME_CHARS.fullmatch(text) is None:
        return False
    labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            return False
    return labels[-1][0].isalpha()


def _ipv6_address(text: str) -> ipaddress.IPv6Address | None:
    """Read an RFC 4291 §2.2 address, or the one RFC 3261 ABNF form RFC 5118 §4.10 says to tolerate.

    RFC 3261's ``hexpart`` may end in "::" and is then followed by ``":" IPv4address``, which derives
    ``2001:db8:::192.0.2.1``. Only that position is forgiven: the last ":::" becomes "::" when an
    IPv4 address (dots, no colons) follows it to the end, and the result must still pass RFC 4291,
    so ``2001:db8:::10`` or ``1::2:::192.0.2.1`` (two "::") stay invalid.
    """
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        pass
    head, triple, tail = text.rpartition(":::")
    if not triple or "." not in tail or ":" in tail:
        return None
    try:
        return ipaddress.IPv6Address(f"{head}::{tail}")
    except ValueError:
        return None


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
#: RFC 3261 §25.1 ``IPv4address`` as regex source: what :func:`check_host` calls "ipv4".
IPV4_ADDRESS_PATTERN: Final = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_IPV4_ADDRESS: Final = re.compile(IPV4_ADDRESS_PATTERN)


def check_host(host: str, what: str = "SIP URI host") -> HostType:
    """Validate a host (RFC 3261 §25.1 ``host``, RFC 5954 §4.1 ``IPv6reference``) and say its kind.

    Used for URI hosts and for Via sent-by and received; ``what`` names the field in the reason.
    """
    if _IPV4_ADDRESS.fullmatch(host) is not None:
        return "ipv4"  # the common case, in one C-level match
    if not host:
        raise ParseError(f"{what} is empty")
    if host[0] == "[":
        inner = host[1:-1]
        if host[-1] != "]" or _IPV6_CHARS.fullmatch(inner) is None:
            raise ParseError(f"{what} is not a valid IPv6 reference: {_quote(host)}")
        if _ipv6_address(inner) is None:
            raise ParseError(f"{what} is not a valid IPv6 reference: {_quote(host)}")
        return "ipv6"
    if host.count(":") > 1:
        raise ParseError(f"{what} is an IPv6 address without brackets: {_quote(host)}")
    if host[0].isdigit() and _IPV4_CHARS.fullmatch(host) is not None:
        # Digits and dots only: a host name's top label starts with a letter, so this must be IPv4.
        raise ParseError(f"{what} is not a valid IPv4 address: {_quote(host)}")
    if not _is_hostname(host):
        raise ParseError(f"{what} is not a valid host name: {_quote(host)}")
    return "name"


def _parse_port(text: str) -> int:
    """RFC 3261 §25.1 ``port = 1*DIGIT``, within the 16 bits of a TCP/UDP port."""
    if not text:
        raise ParseError("SIP URI port is empty")
    # isdigit() alone would take '²' or Arabic-Indic digits, and int() would take '_' and spaces.
    if not (text.isascii() and text.isdigit()):
        raise ParseError(f"SIP URI port is not a number: {_quote(text)}")
    significant = text.lstrip("0") or "0"
    if len(significant) > 5 or int(significant) > 65535:
        raise ParseError(f"SIP URI port is out of range: {_quote(text)}")
    return int(significant)


def _host_key(host: str, host_type: HostType) -> str | bytes:
    """The host as RFC 3261 §19.1.4 compares it: names without case; addresses by value.

    RFC 5954 §4.2: host components holding IP addresses match "if the different textual
    representations yield the same binary IP address": ``[::ffff:c000:280]`` is
    ``[::ffff:192.0.2.128]``.
    """
    if host_type == "ipv6":
        address = _ipv6_address(host[1:-1])
        if address is None:  # unreachable: every SipURI's host was checked on construction
            raise LocalProtocolError(f"SIP URI host is not a valid IPv6 reference: {host!r}")
        return address.packed
    if host_type == "ipv4":
        return bytes(int(part) for part in host.split("."))
    return host.lower()


def _param_name(name: str) -> str:
    """A uri-parameter name as compared and looked up: unescaped (``%6C%72`` is ``lr``), no case."""
    return _folded(name) if "%" in name else name.lower()


class _SipKey(NamedTuple):
    """What RFC 3261 §19.1.4 compares. ``strict`` must be equal in every case and is what we hash;
    ``others`` holds the remaining parameters, compared only when both URIs carry them."""

    strict: tuple[object, ...]
    others: dict[str, str | None]


@dataclass(frozen=True, slots=True, eq=False)
class SipURI:
    """A SIP or SIPS URI (RFC 3261 §19.1.1).

    Fields keep the text as received: ``user`` and ``password`` still %-escaped, ``host`` as
    written (an IPv6 reference with its brackets), ``params`` and ``headers`` in order. A flag
    parameter such as ``lr`` has the value ``None``. ``==`` and ``hash()`` follow RFC 3261 §19.1.4,
    so URIs that differ in text can be equal, and equality is not transitive (§19.1.4's own
    ``security=on`` example): the hash covers only what must match in every comparison.
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    _host_type: HostType = field(default="name", init=False, repr=False, compare=False)
    # The text this URI serializes to: the received text when parsed, else built on first use.
    _raw: str | None = field(default=None, init=False, repr=False, compare=False)
    _key_cache: _SipKey | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Tuples, so that a list passed by an application cannot change under a hash.
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "headers", tuple(self.headers))
        try:
            host_type = _check_sip_fields(self)
        except ParseError as exc:
            raise LocalProtocolError(exc.reason) from None
        object.__setattr__(self, "_host_type", host_type)

    @classmethod
    def _from_wire(
        cls,
        raw: str,
        scheme: str,
        user: str | None,
        password: str | None,
        host: str,
        host_type: HostType,
        port: int | None,
        params: tuple[tuple[str, str | None], ...],
        headers: tuple[tuple[str, str], ...],
    ) -> SipURI:
        """Build from pieces :func:`parse_uri` has already checked, without checking them twice."""
        self = object.__new__(cls)
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "password", password)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "_host_type", host_type)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_key_cache", None)
        return self

    # -- parameters (RFC 3261 §19.1.1) -------------------------------------------------------------

    def param(self, name: str) -> str | None:
        """The value of the first parameter called ``name`` (no case; escapes in the received
        name decoded), as received; ``None`` when absent or a flag (:meth:`has_param` tells)."""
        wanted = name.lower()
        for pname, value in self.params:
            if _param_name(pname) == wanted:
                return value
        return None

    def has_param(self, name: str) -> bool:
        """True when a parameter called ``name`` is present, with or without a value."""
        wanted = name.lower()
        return any(_param_name(pname) == wanted for pname, _ in self.params)

    def _unescaped_param(self, name: str) -> str | None:
        value = self.param(name)
        return None if value is None else _unescape(value)

    @property
    def transport(self) -> str | None:
        """The transport parameter, lower-cased: transport names have no case (§19.1.4), and SIPp
        writes ``transport=UDP``."""
        value = self._unescaped_param("transport")
        return None if value is None else value.lower()

    @property
    def user_param(self) -> str | None:
        """The ``user`` parameter (``phone``, ``ip``, ``dialstring`` ...), lower-cased."""
        value = self._unescaped_param("user")
        return None if value is None else value.lower()

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter: the address to send to instead of the host (§19.1.1)."""
        return self._unescaped_param("maddr")

    @property
    def method(self) -> str | None:
        """The ``method`` parameter, unescaped; methods are case-sensitive (§7.1)."""
        return self._unescaped_param("method")

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter (``1*3DIGIT``, 0-255), or ``None`` when absent or not such a
        number: ``ttl=x`` still parses, as an ``other-param``."""
        value = self._unescaped_param("ttl")
        if value is None or not (value.isascii() and value.isdigit()) or len(value) > 3:
            return None
        number = int(value)
        return number if number <= 255 else None

    @property
    def lr(self) -> bool:
        """True when the URI carries ``lr``: the hop is a loose router (RFC 3261 §16.12.1.1)."""
        return self.has_param("lr")

    # -- other components ------------------------------------------------------------------------

    @property
    def host_type(self) -> HostType:
        """Whether the host is an IPv4 address, an IPv6 reference or a host name."""
        return self._host_type

    @property
    def unescaped_user(self) -> str | None:
        """The user part with every escape decoded (RFC 3261 §19.1.2). It may hold ';', '@' or NUL
        (RFC 4475 §3.1.1.3-4): do not paste it back into a URI."""
        return None if self.user is None else _unescape(self.user)

    @property
    def host_port(self) -> str:
        """``host`` or ``host:port``, as in a Via sent-by or a socket address text."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    # -- building modified URIs ------------------------------------------------------------------

    def replace(self, **changes: Any) -> SipURI:
        """A copy with the given fields changed, checked like any new value."""
        return dataclasses.replace(self, **changes)

    def with_param(self, name: str, value: str | None = None) -> SipURI:
        """A copy where parameter ``name`` is set to ``value`` (``None`` for a flag such as ``lr``):
        replaced where it stood, other copies of it dropped, or else appended."""
        wanted = name.lower()
        params: list[tuple[str, str | None]] = []
        placed = False
        for pname, pvalue in self.params:
            if _param_name(pname) != wanted:
                params.append((pname, pvalue))
            elif not placed:
                params.append((name, value))
                placed = True
        if not placed:
            params.append((name, value))
        return dataclasses.replace(self, params=tuple(params))

    def with_params(self, **params: str | None) -> SipURI:
        """:meth:`with_param` for each keyword: ``uri.with_params(transport="tcp", lr=None)``."""
        uri = self
        for name, value in params.items():
            uri = uri.with_param(name, value)
        return uri

    def without_params(self, *names: str) -> SipURI:
        """A copy without the named parameters (no case), e.g. ``method`` before using a URI as a
        Request-URI (RFC 3261 §19.1.1 Table 1)."""
        unwanted = {name.lower() for name in names}
        params = tuple(p for p in self.params if _param_name(p[0]) not in unwanted)
        return dataclasses.replace(self, params=params)

    # -- text and comparison ---------------------------------------------------------------------

    def __str__(self) -> str:
        raw = self._raw
        if raw is None:
            raw = self._serialize()
            object.__setattr__(self, "_raw", raw)
        return raw

    def _serialize(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += (":", self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += (":", str(self.port))
        for name, value in self.params:
            parts += (";", name)
            if value is not None:
                parts += ("=", value)
        if self.headers:
            parts.append("?")
            parts.append("&".join(f"{name}={value}" for name, value in self.headers))
        return "".join(parts)

    def _key(self) -> _SipKey:
        key = self._key_cache
        if key is not None:
            return key
        must_match: dict[str, str | None] = {}
        others: dict[str, str | None] = {}
        for pname, value in self.params:
            name = _param_name(pname)
            # Parameter values have no case either: §19.1.4 makes every component but userinfo
            # case-insensitive "unless explicitly defined otherwise".
            folded = None if value is None else _folded(value)
            target = must_match if name in _MUST_MATCH_PARAMS else others
            target.setdefault(name, folded)
        # Headers: names have no case (§7.3.1); values keep theirs, since §19.1.4 hands them to the
        # rules of §20, and a Call-ID or a URI's user part is case-sensitive. The relative order of
        # fields with the same name is significant (§7.3.1), the order across names is not.
        by_name: dict[str, list[str]] = {}
        for hname, hvalue in self.headers:
            by_name.setdefault(_folded(hname), []).append(_canonical(hvalue))
        strict = (
            self.scheme,
            # Userinfo is compared with its case (§19.1.4); None (absent) never equals "".
            None if self.user is None else _canonical(self.user),
            None if self.password is None else _canonical(self.password),
            _host_key(self.host, self._host_type),
            self.port,
            tuple((name in must_match, must_match.get(name)) for name in _MUST_MATCH_PARAMS),
            tuple(sorted((name, tuple(values)) for name, values in by_name.items())),
        )
        key = _SipKey(strict, others)
        object.__setattr__(self, "_key_cache", key)
        return key

    def __eq__(self, other: object) -> bool:
        """RFC 3261 §19.1.4 equivalence."""
        if not isinstance(other, SipURI):
            return NotImplemented
        mine, theirs = self._key(), other._key()
        if mine.strict != theirs.strict:
            return False
        # "All other uri-parameters appearing in only one URI are ignored when comparing the URIs."
        for name, value in mine.others.items():
            if name in theirs.others and theirs.others[name] != value:
                return False
        return True

    def __hash__(self) -> int:
        return hash(self._key().strict)


def _check_sip_fields(uri: SipURI) -> HostType:
    """Check the fields of a hand-built :class:`SipURI` by the rules the parser applies."""
    if uri.scheme not in ("sip", "sips"):
        raise ParseError(f"SIP URI scheme must be 'sip' or 'sips': {_quote(uri.scheme)}")
    if uri.user is not None:
        if not uri.user:
            raise ParseError("SIP URI user part is empty")
        _check_chars(uri.user, _USER_BAD, "SIP URI user part")
    if uri.password is not None:
        if uri.user is None:
            raise ParseError("SIP URI has a password but no user")
        _check_chars(uri.password, _PASSWORD_BAD, "SIP URI password")
    host_type = check_host(uri.host)
    port = uri.port
    if port is not None and (isinstance(port, bool) or not 0 <= port <= 65535):
        raise ParseError(f"SIP URI port is out of range: {port!r}")
    for name, value in uri.params:
        if not name:
            raise ParseError("SIP URI parameter has no name")
        _check_chars(name, _PARAMCHAR_BAD, "SIP URI parameter name")
        if value is not None:
            if not value:
                raise ParseError(f"SIP URI parameter {_quote(name)} has an empty value")
            _check_chars(value, _PARAMCHAR_BAD, f"SIP URI parameter {_quote(name)}")
    for name, value in uri.headers:
        if not name:
            raise ParseError("SIP URI header has no name")
        _check_chars(name, _HNVCHAR_BAD, "SIP URI header name")
        _check_chars(value, _HNVCHAR_BAD, f"SIP URI header {_quote(name)}")
    return host_type


def _parse_sip(text: str, scheme: str, start: int) -> SipURI:
    """RFC 3261 §25.1 ``SIP-URI`` / ``SIPS-URI`` from ``text[start:]`` (what follows the scheme).

    No character of hostport, params or headers may be '@', so the first '@' ends the userinfo,
    and the user part may hold ';' and '?' (RFC 4475 §3.1.1.9). Neither params nor hostport may
    hold '?', so the first '?' starts the headers; the first ';' before it starts the params.
    """
    rest = text[start:]
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        user, colon, pw = rest[:at].partition(":")
        if not user:
            raise ParseError("SIP URI user part is empty")
        _check_chars(user, _USER_BAD, "SIP URI user part")
        if colon:
            _check_chars(pw, _PASSWORD_BAD, "SIP URI password")
            password = pw
        rest = rest[at + 1 :]
    rest, question, headers_text = rest.partition("?")
    hostport, semicolon, params_text = rest.partition(";")
    host, port = _split_hostport(hostport)
    host_type = check_host(host)
    params = _parse_params(params_text) if semicolon else ()
    headers = _parse_headers(headers_text) if question else ()
    return SipURI._from_wire(text, scheme, user, password, host, host_type, port, params, headers)


def _split_hostport(hostport: str) -> tuple[str, int | None]:
    """Split ``hostport``; an IPv6 reference keeps its colons in brackets (RFC 5118 §4.3-4.4)."""
    if not hostport:
        raise ParseError("SIP URI host is empty")
    if hostport[0] == "[":
        close = hostport.find("]")
        if close < 0:
            raise ParseError("SIP URI IPv6 reference has no closing ']'")
        host, tail = hostport[: close + 1], hostport[close + 1 :]
        if not tail:
            return host, None
        if tail[0] != ":":
            raise ParseError(f"SIP URI has text after the IPv6 reference: {_quote(tail)}")
        return host, _parse_port(tail[1:])
    if hostport.count(":") > 1:
        # RFC 5118 §4.2: "sip:2001:db8::10" cannot be told from a host "2001" with a port.
        raise ParseError(f"SIP URI host is an IPv6 address without brackets: {_quote(hostport)}")
    host, colon, port_text = hostport.partition(":")
    if not host:
        raise ParseError("SIP URI host is empty")
    return host, (_parse_port(port_text) if colon else None)


def _parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """RFC 3261 §25.1 ``uri-parameters``: ``*( ";" pname [ "=" pvalue ] )``, both 1*paramchar."""
    _check_chars(text, _PARAMS_BAD, "SIP URI parameter list")
    params: list[tuple[str, str | None]] = []
    for piece in text.split(";"):
        name, equals, value = piece.partition("=")
        if not name:
            raise ParseError(
                "SIP URI has an empty parameter" if not piece else "SIP URI parameter has no name"
            )
        if not equals:
            params.append((name, None))
            continue
        if not value:
            raise ParseError(f"SIP URI parameter {_quote(name)} has an empty value")
        if "=" in value:
            raise ParseError(f"SIP URI parameter {_quote(name)} has more than one '='")
        params.append((name, value))
    return tuple(params)


def _parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    """RFC 3261 §25.1 ``headers = "?" header *( "&" header )``, ``header = hname "=" hvalue``."""
    _check_chars(text, _HEADERS_BAD, "SIP URI header list")
    headers: list[tuple[str, str]] = []
    for piece in text.split("&"):
        name, equals, value = piece.partition("=")
        if not name:
            raise ParseError("SIP URI has an empty header" if not piece else "SIP URI header has no name")
        if not equals:
            raise ParseError(f"SIP URI header {_quote(name)} has no '='")
        if "=" in value:
            raise ParseError(f"SIP URI header {_quote(name)} has more than one '='")
        headers.append((name, value))
    return tuple(headers)


# -- tel URI (RFC 3966) --------------------------------------------------------------------------


class _TelKey(NamedTuple):
    is_global: bool
    digits: str
    params: frozenset[tuple[str, str | None]]


@dataclass(frozen=True, slots=True, eq=False)
class TelURI:
    """A tel URI (RFC 3966 §3): a global number (``+`` and digits) or a local one with its
    ``phone-context``, and parameters such as ``ext`` and ``isub``.

    ``number`` is as received, visual separators (``- . ( )``) and the ``+`` of a global number
    included; :attr:`digits` drops the separators. ``==`` and ``hash()`` follow RFC 3966 §4.
    """

    number: str
    is_global: bool
    params: tuple[tuple[str, str | None], ...] = ()
    _raw: str | None = field(default=None, init=False, repr=False, compare=False)
    _key_cache: _TelKey | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        try:
            is_global = _check_tel_number(self.number)
            if is_global != self.is_global:
                raise ParseError("tel URI is_global does not match the number's leading '+'")
            _check_tel_params(is_global, self.params)
        except ParseError as exc:
            raise LocalProtocolError(exc.reason) from None

    @classmethod
    def _from_wire(
        cls, raw: str, number: str, is_global: bool, params: tuple[tuple[str, str | None], ...]
    ) -> TelURI:
        """Build from pieces :func:`parse_uri` has already checked."""
        self = object.__new__(cls)
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "is_global", is_global)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_key_cache", None)
        return self

    @property
    def scheme(self) -> str:
        """Always ``"tel"``: every URI type answers ``.scheme`` (the UAS core checks it for 416)."""
        return "tel"

    @property
    def digits(self) -> str:
        """The number without visual separators: ``+1-201-555-0123`` → ``+12015550123``."""
        return self.number.translate(_DROP_VISUAL_SEPARATORS)

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (no case), as received; ``None`` if absent or a flag."""
        wanted = name.lower()
        for pname, value in self.params:
            if pname.lower() == wanted:
                return value
        return None

    def has_param(self, name: str) -> bool:
        """True when a parameter called ``name`` is present."""
        wanted = name.lower()
        return any(pname.lower() == wanted for pname, _ in self.params)

    @property
    def phone_context(self) -> str | None:
        """The ``phone-context`` a local number is valid in (RFC 3966 §5.1.5)."""
        return self.param("phone-context")

    @property
    def ext(self) -> str | None:
        """The extension (RFC 3966 §5.2)."""
        return self.param("ext")

    @property
    def isub(self) -> str | None:
        """The ISDN subaddress (RFC 3966 §5.3), as received."""
        return self.param("isub")

    def replace(self, **changes: Any) -> TelURI:
        """A copy with the given fields changed, checked like any new value."""
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        raw = self._raw
        if raw is None:
            parts = ["tel:", self.number]
            for name, value in self.params:
                parts += (";", name)
                if value is not None:
                    parts += ("=", value)
            raw = "".join(parts)
            object.__setattr__(self, "_raw", raw)
        return raw

    def _key(self) -> _TelKey:
        key = self._key_cache
        if key is None:
            params = frozenset(
                (name.lower(), None if value is None else _tel_param_key(name.lower(), value))
                for name, value in self.params
            )
            # RFC 3966 §4: "URI comparisons are case-insensitive" (local numbers may hold A-F).
            key = _TelKey(self.is_global, self.digits.lower(), params)
            object.__setattr__(self, "_key_cache", key)
        return key

    def __eq__(self, other: object) -> bool:
        """RFC 3966 §4: same kind of number, same digits without separators, and the same
        parameters, in any order."""
        if not isinstance(other, TelURI):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _tel_param_key(name: str, value: str) -> str:
    """A tel parameter value as RFC 3966 §4 compares it."""
    if name == "phone-context":
        # "compared as a host name if it is a 'domainname' or digit by digit if it is
        # 'global-number-digits'. The latter is compared after removing all visual separators."
        return value.translate(_DROP_VISUAL_SEPARATORS) if value[0] == "+" else value.lower()
    if name == "ext":
        return value.translate(_DROP_VISUAL_SEPARATORS)
    return _folded(value)


def _check_tel_number(number: str) -> bool:
    """RFC 3966 ``global-number-digits`` / ``local-number-digits``; True for a global number."""
    if not number:
        raise ParseError("tel URI number is empty")
    if number[0] == "+":
        body = number[1:]
        hit = _GLOBAL_DIGITS_BAD.search(body)
        if hit is not None:
            raise ParseError(f"tel URI global number has an invalid character: {_quote(hit.group())}")
        if not body.strip(_VISUAL_SEPARATORS):
            raise ParseError(f"tel URI global number has no digits: {_quote(number)}")
        return True
    hit = _LOCAL_DIGITS_BAD.search(number)
    if hit is not None:
        raise ParseError(f"tel URI local number has an invalid character: {_quote(hit.group())}")
    if not number.strip(_VISUAL_SEPARATORS):
        raise ParseError(f"tel URI local number has no digits: {_quote(number)}")
    return False


def _check_tel_params(is_global: bool, params: tuple[tuple[str, str | None], ...]) -> None:
    """RFC 3966 §3 ``par`` / ``context``, and §5.1.5: a local number needs its phone-context."""
    seen: set[str] = set()
    for name, value in params:
        if _TEL_PNAME.fullmatch(name) is None:
            raise ParseError(f"tel URI parameter name is not valid: {_quote(name)}")
        lowered = name.lower()
        if lowered in seen:
            raise ParseError(f"tel URI parameter {_quote(name)} appears more than once")
        seen.add(lowered)
        if value is None:
            if lowered in ("ext", "isub", "phone-context"):
                raise ParseError(f"tel URI parameter {_quote(name)} has no value")
            continue
        if not value:
            raise ParseError(f"tel URI parameter {_quote(name)} has an empty value")
        if lowered == "ext":
            # extension = ";ext=" 1*phonedigit
            if _GLOBAL_DIGITS_BAD.search(value) is not None or not value.strip(_VISUAL_SEPARATORS):
                raise ParseError(f"tel URI extension is not a number: {_quote(value)}")
        elif lowered == "phone-context":
            # descriptor = domainname / global-number-digits
            if value[0] == "+":
                body = value[1:]
                if _GLOBAL_DIGITS_BAD.search(body) is not None or not body.strip(_VISUAL_SEPARATORS):
                    raise ParseError(f"tel URI phone-context is not a global number: {_quote(value)}")
            elif not _is_hostname(value):
                raise ParseError(f"tel URI phone-context is not a domain name: {_quote(value)}")
        elif lowered == "isub":
            _check_chars(value, _ISUB_BAD, "tel URI isub")
        else:
            _check_chars(value, _PARAMCHAR_BAD, f"tel URI parameter {_quote(name)}")
    if not is_global and "phone-context" not in seen:
        raise ParseError("tel URI local number has no phone-context")


def _parse_tel(text: str, start: int) -> TelURI:
    """RFC 3966 §3 ``telephone-subscriber`` from ``text[start:]``."""
    number, semicolon, params_text = text[start:].partition(";")
    is_global = _check_tel_number(number)
    params: list[tuple[str, str | None]] = []
    if semicolon:
        for piece in params_text.split(";"):
            if not piece:
                raise ParseError("tel URI has an empty parameter")
            name, equals, value = piece.partition("=")
            params.append((name, value if equals else None))
    frozen_params = tuple(params)
    _check_tel_params(is_global, frozen_params)
    return TelURI._from_wire(text, number, is_global, frozen_params)


# -- other schemes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class AbsoluteURI:
    """A URI of a scheme this stack does not interpret (RFC 3261 §25.1 ``absoluteURI``): ``http:``,
    ``im:``, ``mailto:``, RFC 4475 §3.3.3's ``soap.beep:`` ...

    ``scheme`` is lower-cased (RFC 3986 §3.1: schemes have no case) and ``raw`` is the whole text as
    received. Two are equal when their schemes match and the text after the scheme is identical, the
    only comparison that holds for every scheme.
    """

    scheme: str
    raw: str

    def __post_init__(self) -> None:
        try:
            scheme, start = _split_scheme(self.raw)
            if scheme.lower() != self.scheme:
                raise ParseError(f"URI scheme field does not match the text: {_quote(self.scheme)}")
            if self.scheme in ("sip", "sips", "tel"):
                raise ParseError(f"a {self.scheme} URI is a SipURI or a TelURI, not an AbsoluteURI")
            _check_opaque(self.raw, start)
        except ParseError as exc:
            raise LocalProtocolError(exc.reason) from None

    @classmethod
    def _from_wire(cls, scheme: str, raw: str) -> AbsoluteURI:
        self = object.__new__(cls)
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "raw", raw)
        return self

    def __str__(self) -> str:
        return self.raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteURI):
            return NotImplemented
        return self.scheme == other.scheme and self.raw[len(self.scheme) :] == other.raw[len(other.scheme) :]

    def __hash__(self) -> int:
        return hash((self.scheme, self.raw[len(self.scheme) :]))


def _check_opaque(text: str, start: int) -> None:
    """What follows an unknown scheme: ``1*uric`` (RFC 2396 ``hier-part`` / ``opaque-part``)."""
    if start == len(text):
        raise ParseError(f"URI has nothing after the scheme: {_quote(text)}")
    _check_chars(text[start:], _URIC_BAD, "URI")


# -- entry points --------------------------------------------------------------------------------


def _split_scheme(text: str) -> tuple[str, int]:
    """The scheme as written, and the index just past its ':' (RFC 3986 §3.1)."""
    colon = text.find(":")
    if colon < 0:
        raise ParseError(f"URI has no scheme: {_quote(text)}" if text else "URI is empty")
    scheme = text[:colon]
    if not scheme:
        raise ParseError("URI scheme is empty")
    if _SCHEME.fullmatch(scheme) is None:
        raise ParseError(f"URI scheme is not valid: {_quote(scheme)}")
    return scheme, colon + 1


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_TOPLABEL = r"[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_PARAM = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+"

#: The everyday SIP URI: ``sip:user@host[:port][;param[=value]]...`` with no escapes, password,
#: IPv6 reference or headers. Everything it matches, :func:`parse_uri` accepts (a property test holds
#: this), so the message parser can vouch for a Request-URI with one C-level match and leave building
#: the :class:`SipURI` to whoever reads it. Labels end at '.', so the match cannot backtrack far.
PLAIN_SIP_URI: Final = re.compile(
    rf"[sS][iI][pP][sS]?:(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]+@)?"
    rf"(?:{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}|(?:{_LABEL}\.)*{_TOPLABEL}\.?)"
    rf"(?::(?:[0-9]{{1,4}}|[1-5][0-9]{{4}}|6[0-4][0-9]{{3}}|65[0-4][0-9]{{2}}|655[0-2][0-9]|6553[0-5]))?"
    rf"(?:;{_PLAIN_PARAM}(?:={_PLAIN_PARAM})?)*"
)


def parse_uri(text: str) -> SipURI | TelURI | AbsoluteURI:
    """Parse a URI: SIP/SIPS (RFC 3261 §19.1), tel (RFC 3966) or any other scheme, kept whole.

    ``text`` is the URI alone, as the message parser cut it out (no ``<>``, no surrounding LWS).
    Raises :class:`~sip_stack.errors.ParseError` (status 400) with a reason naming the fault.
    Runs in time linear in ``len(text)``, which is at most :data:`MAX_URI_LENGTH`.
    """
    if len(text) > MAX_URI_LENGTH:
        raise ParseError(f"URI is longer than {MAX_URI_LENGTH} characters")
    scheme, start = _split_scheme(text)
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        return _parse_sip(text, lowered, start)
    if lowered == "tel":
        return _parse_tel(text, start)
    _check_opaque(text, start)
    return AbsoluteURI._from_wire(lowered, text)


def is_e164(text: str) -> bool:
    """True for an E.164 number written ``+`` and 1-15 digits (ITU-T E.164 §6: at most 15 digits),
    e.g. ``+15550100``; no visual separators (compare :attr:`TelURI.digits`)."""
    digits = text[1:]
    return text.startswith("+") and 1 <= len(digits) <= 15 and digits.isascii() and digits.isdigit()
