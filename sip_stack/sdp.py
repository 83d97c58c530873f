"""SDP session descriptions (RFC 8866): parse, serialize, and typed accessors.

``parse_sdp(bytes) -> SessionDescription`` and ``SessionDescription.serialize() -> bytes``. The
value keeps every line it was given: attributes stay in order as ``(name, value)`` pairs (``value``
is None for a property attribute such as ``a=rtcp-mux``), lines of unknown type stay as
``(type, value)`` pairs, and the order the lines arrived in is remembered, so that a well-formed
description serializes back to the same bytes with CRLF line ends (RFC 8866 §5). Typed accessors
(``rtpmap``, ``fmtp``, ``direction``, ``rtcp`` ...) read the attributes only when asked, as sippy
reads unknown headers.

Leniency, chosen for what carriers and WebRTC stacks really send:

- ``v=0`` must be the first line (RFC 8866 §5.1); without it the body is not SDP at all.
- ``o=`` is required (RFC 8866 §5.2): offer/answer needs its session id and version (RFC 3264 §8).
- ``s=`` and ``t=`` may be missing. RTSP cameras and some T.38 gateways omit ``t=``; nothing in a
  B2BUA needs either, so a missing one is not worth failing a call over. They stay missing on
  output.
- Session-level lines may come in any order after ``v=`` (RFC 8866 §5 fixes an order, but a ``c=``
  before ``s=`` is common); the order is kept for serialization.
- LF, CRLF and mixed line ends are accepted; blank lines are skipped; invalid UTF-8 is kept byte for
  byte (``surrogateescape``), because RFC 8866 §5 lets ``a=charset`` choose another character set.
- Lines of a type letter we do not know (``f=``) are kept and passed through. RFC 8866 §5 says a
  parser "MUST completely ignore or reject" such a description; we keep it usable because carriers
  send odd lines, and expose :attr:`SessionDescription.has_unknown_lines` for a caller that prefers
  to reject.
- Attribute values are never checked at parse time (RFC 8866 §5.13: attributes not understood are
  ignored). A typed accessor that meets a value it cannot read treats the attribute as absent: for
  example a malformed ``a=rtcp:1 IN IP7 X`` makes :attr:`MediaDescription.rtcp` return None, which
  means "use the RTP port + 1" (RFC 3605 §2.1).
- Structural lines (``o=``, ``c=``, ``m=``, ``b=``, ``t=``) are split on any run of whitespace and
  written back with single spaces; a malformed one is an :class:`SdpError` naming the line.
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TypeAlias

from sip_stack.errors import LocalProtocolError, ParseError

__all__ = [
    "MAX_MEDIA_SECTIONS",
    "MAX_SDP_LINES",
    "MAX_SDP_LINE_LENGTH",
    "MAX_SDP_SIZE",
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
    "parse_sdp",
]

#: Largest SDP body we parse. A carrier offer is under 2 KB and a WebRTC offer with simulcast and
#: many SSRCs about 10 KB; 64 KiB leaves room for those and bounds the split and decode work before
#: any per-line limit applies.
MAX_SDP_SIZE = 65_536

#: Most lines in one SDP. The largest vector we hold (ssrc.sdp) has about 100; a WebRTC offer with
#: dozens of candidates reaches a few hundred. 1024 stops a flood of one-character lines.
MAX_SDP_LINES = 1024

#: Most m= sections. A carrier offers 1-3 (audio, video, image/T.38); the answer must repeat every
#: one (RFC 3264 §6), so this bounds the work an offer can make us do. Large WebRTC bundles stay
#: below it.
MAX_MEDIA_SECTIONS = 64

#: Longest line. Long lines are H.264 fmtp with sprop-parameter-sets and fingerprints, well under
#: 1 KB; 4096 leaves margin while keeping a single line from dominating the size limit.
MAX_SDP_LINE_LENGTH = 4096

#: Attribute as received: ``(name, value)``; ``value`` is None for a property attribute
#: (RFC 8866 §5.13).
Attribute: TypeAlias = tuple[str, str | None]

#: A line of a type letter SDP does not define, as ``(type, value)``.
UnknownLine: TypeAlias = tuple[str, str]

_LETTERS = frozenset(string.ascii_letters)
#: Line types RFC 8866 §5 defines; any other letter is an unknown type.
_DEFINED = frozenset("vosiuepcbtrzkam")
#: Line types that RFC 8866 §5 allows only at session level.
_SESSION_ONLY = frozenset("vosuepzrt")
#: Serialization order of RFC 8866 §5 (``r=`` rides with its ``t=``); unknown types go last.
_SESSION_ORDER = "vosiuepcbtzka"
_MEDIA_ORDER = "micbka"
#: Longest excerpt of a bad line quoted in an error: enough to recognise it, short enough for a
#: reason phrase.
_EXCERPT = 60


class SdpError(ParseError):
    """A session description we cannot use: the peer's fault.

    ``status`` is 400 for a description we cannot parse, and 488 Not Acceptable Here (RFC 3261
    §21.4.26) for one we parsed but cannot accept, such as an offer with no codec in common. The
    ``reason`` names the offending line as ``SDP line <n>: ...``.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason, status)


def _excerpt(line: str) -> str:
    return repr(line if len(line) <= _EXCERPT else line[: _EXCERPT - 3] + "...")


def _line_error(number: int, line: str, what: str) -> SdpError:
    return SdpError(f"SDP line {number}: {what}: {_excerpt(line)}")


# One token: no character str.split() would split at (re's \s for str is the same set).
_TOKEN = re.compile(r"\S+")


def _check_token(value: str, what: str) -> None:
    """Refuse a value that would not survive being written as one space-separated token."""
    if _TOKEN.fullmatch(value) is None:
        raise LocalProtocolError(f"SDP {what} must be one token without spaces: {value!r}")


def _line(kind: str, value: str) -> str:
    # A CR or LF inside a value would inject lines into the description we send.
    if "\n" in value or "\r" in value or "\x00" in value:
        raise LocalProtocolError(f"SDP {kind}= value holds CR, LF or NUL: {value!r}")
    return f"{kind}={value}"


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


class Direction(enum.StrEnum):
    """Media direction attribute (RFC 8866 §6.7, RFC 3264 §5.1), seen from the description's
    author."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        """True when the author of the description sends media."""
        return self is Direction.SENDRECV or self is Direction.SENDONLY

    @property
    def receives(self) -> bool:
        """True when the author of the description wants to receive media."""
        return self is Direction.SENDRECV or self is Direction.RECVONLY

    @classmethod
    def from_flags(cls, *, send: bool, receive: bool) -> Direction:
        """The direction with the given send and receive halves."""
        if send:
            return cls.SENDRECV if receive else cls.SENDONLY
        return cls.RECVONLY if receive else cls.INACTIVE


_DIRECTIONS: Mapping[str, Direction] = MappingProxyType({d.value: d for d in Direction})


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line (RFC 8866 §5.2): who made the description, and which version of it.

    ``session_id`` is kept as text (it is only ever compared); ``session_version`` is a number
    because RFC 3264 §8 asks for it to grow by one with each new offer or answer in a session.
    """

    username: str
    session_id: str
    session_version: int
    nettype: str
    addrtype: str
    address: str

    def __post_init__(self) -> None:
        _check_token(self.username, "o= username")
        _check_token(self.session_id, "o= sess-id")
        _check_token(self.nettype, "o= nettype")
        _check_token(self.addrtype, "o= addrtype")
        _check_token(self.address, "o= address")
        if self.session_version < 0:
            raise LocalProtocolError(f"SDP o= sess-version is negative: {self.session_version}")

    @classmethod
    def for_address(cls, address: str, session_id: int, *, username: str = "-") -> Origin:
        """A fresh origin; the version starts equal to the id (RFC 8866 §5.2 suggests NTP time
        for both)."""
        return cls(username, str(session_id), session_id, "IN", _addrtype_of(address), address)

    def next_version(self) -> Origin:
        """The origin of our next offer or answer in this session (RFC 3264 §8: version + 1)."""
        return replace(self, session_version=self.session_version + 1)

    @property
    def value(self) -> str:
        """The text after ``o=``."""
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


def _addrtype_of(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line (RFC 8866 §5.7).

    For IP4, ``address/ttl[/count]``; for IP6, ``address/count`` (RFC 8866 §5.7: IPv6 has no TTL
    here). For another address type the whole connection-address stays in ``address``. The address
    is not checked against its type: a carrier's ``IN IP4`` with an IPv6 address still parses.
    """

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        _check_token(self.nettype, "c= nettype")
        _check_token(self.addrtype, "c= addrtype")
        _check_token(self.address, "c= address")
        if self.ttl is not None and (self.addrtype != "IP4" or not 0 <= self.ttl <= 255):
            raise LocalProtocolError(f"SDP c= TTL needs IP4 and 0-255 (RFC 8866 §5.7): {self.ttl}")
        if self.count is not None:
            if self.count < 1:
                raise LocalProtocolError(f"SDP c= address count must be positive: {self.count}")
            if self.addrtype == "IP4" and self.ttl is None:
                raise LocalProtocolError("SDP c= IP4 address count needs a TTL (RFC 8866 §5.7)")

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4`` or ``IN IP6`` for a unicast address."""
        return cls("IN", _addrtype_of(address), address)

    @property
    def value(self) -> str:
        """The text after ``c=``."""
        address = self.address
        if self.ttl is not None:
            address = f"{address}/{self.ttl}"
        if self.count is not None:
            address = f"{address}/{self.count}"
        return f"{self.nettype} {self.addrtype} {address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """A ``b=<bwtype>:<bandwidth>`` line (RFC 8866 §5.8); kilobits per second for AS and CT."""

    bwtype: str
    bandwidth: int

    def __post_init__(self) -> None:
        _check_token(self.bwtype, "b= bwtype")
        if ":" in self.bwtype or self.bandwidth < 0:
            raise LocalProtocolError(f"SDP b= needs <bwtype>:<bandwidth>: {self.value!r}")

    @property
    def value(self) -> str:
        """The text after ``b=``."""
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """A ``t=`` line and the ``r=`` lines after it (RFC 8866 §5.9, §5.10), ``r=`` values as text."""

    start: int
    stop: int
    repeats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.start < 0 or self.stop < 0:
            raise LocalProtocolError(f"SDP t= times must not be negative: {self.start} {self.stop}")


@dataclass(frozen=True, slots=True)
class RtpMap:
    """An ``a=rtpmap`` value (RFC 8866 §6.6) or a static payload type of RFC 3551 §6.

    ``channels`` is the encoding parameter, None when not given (one channel for audio).
    Encoding names compare without regard to case (RFC 4855 §3).
    """

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def matches(self, encoding: str, clock_rate: int) -> bool:
        """True for the same encoding name (any case) and clock rate."""
        return self.clock_rate == clock_rate and self.encoding.lower() == encoding.lower()

    @property
    def value(self) -> str:
        """The text after ``a=rtpmap:``."""
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


#: Payload types with a static meaning (RFC 3551 §6, tables 4 and 5); an m= line may list them with
#: no a=rtpmap. Channels are None where RFC 3551 gives one channel, to equal a parsed "PCMU/8000".
STATIC_PAYLOAD_TYPES: Mapping[int, RtpMap] = MappingProxyType(
    {
        pt: RtpMap(pt, encoding, rate, channels)
        for pt, encoding, rate, channels in (
            (0, "PCMU", 8000, None),
            (3, "GSM", 8000, None),
            (4, "G723", 8000, None),
            (5, "DVI4", 8000, None),
            (6, "DVI4", 16000, None),
            (7, "LPC", 8000, None),
            (8, "PCMA", 8000, None),
            # RFC 3551 §4.5.2: G.722 samples at 16 kHz but is signalled as 8000, by an old mistake.
            (9, "G722", 8000, None),
            (10, "L16", 44100, 2),
            (11, "L16", 44100, None),
            (12, "QCELP", 8000, None),
            (13, "CN", 8000, None),
            (14, "MPA", 90000, None),
            (15, "G728", 8000, None),
            (16, "DVI4", 11025, None),
            (17, "DVI4", 22050, None),
            (18, "G729", 8000, None),
            (25, "CelB", 90000, None),
            (26, "JPEG", 90000, None),
            (28, "nv", 90000, None),
            (31, "H261", 90000, None),
            (32, "MPV", 90000, None),
            (33, "MP2T", 90000, None),
            (34, "H263", 90000, None),
        )
    }
)


@dataclass(frozen=True, slots=True)
class Rtcp:
    """An ``a=rtcp`` value (RFC 3605 §2.1): the RTCP port, and an address if it differs from c=."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None


def _parse_rtpmap(value: str) -> RtpMap | None:
    pt_text, _, rest = value.partition(" ")
    parts = rest.strip().split("/")
    if not _is_digits(pt_text) or len(parts) not in (2, 3) or not parts[0]:
        return None
    pt = int(pt_text)
    if pt > 127 or not _is_digits(parts[1]):
        return None
    channels: int | None = None
    if len(parts) == 3:
        if not _is_digits(parts[2]):
            return None
        channels = int(parts[2])
    return RtpMap(pt, parts[0], int(parts[1]), channels)


def _parse_rtcp(value: str) -> Rtcp | None:
    parts = value.split()
    if not parts or not _is_digits(parts[0]) or int(parts[0]) > 65535:
        return None
    port = int(parts[0])
    if len(parts) == 1:
        return Rtcp(port)
    # Only an address we could send to is useful; anything else is treated as no address given.
    if len(parts) != 4 or parts[1] != "IN" or parts[2] not in ("IP4", "IP6"):
        return None
    return Rtcp(port, parts[1], parts[2], parts[3])


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    # float() accepts "nan" and "inf", which are not times.
    return number if 0 <= number < 1e9 else None


class _AttributeAccess:
    """Lookups shared by session and media level, over ``self.attributes`` in order."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]

    def has_attribute(self, name: str) -> bool:
        """True when an ``a=<name>`` or ``a=<name>:<value>`` line is present (names are exact)."""
        return any(attr_name == name for attr_name, _ in self.attributes)

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=<name>:<value>``; None when absent or a property attribute."""
        for attr_name, value in self.attributes:
            if attr_name == name:
                return value
        return None

    def attribute_values(self, name: str) -> tuple[str | None, ...]:
        """Every value of ``a=<name>`` in order (None for each property form)."""
        return tuple(value for attr_name, value in self.attributes if attr_name == name)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute at this level only (RFC 8866 §6.7), None when absent."""
        for attr_name, value in self.attributes:
            if value is None:
                direction = _DIRECTIONS.get(attr_name)
                if direction is not None:
                    return direction
        return None


@dataclass(frozen=True, slots=True)
class MediaDescription(_AttributeAccess):
    """One media description: an ``m=`` line and the lines under it (RFC 8866 §5.14).

    ``formats`` are strings because only RTP profiles use payload type numbers (``m=application 9
    UDP/DTLS/SCTP webrtc-datachannel``, ``m=image 9 TCP t38``). Port 0 means a rejected or disabled
    stream (RFC 3264 §6). ``line_order`` remembers the order the lines were parsed in; it does not
    take part in equality.
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    encryption_key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    unknown_lines: tuple[UnknownLine, ...] = ()
    line_order: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_token(self.media, "m= media")
        _check_token(self.proto, "m= proto")
        for fmt in self.formats:
            _check_token(fmt, "m= fmt")
        if not 0 <= self.port <= 65535:
            raise LocalProtocolError(f"SDP m= port out of range: {self.port}")
        if self.port_count is not None and self.port_count < 1:
            raise LocalProtocolError(f"SDP m= port count must be positive: {self.port_count}")

    @property
    def payload_types(self) -> tuple[int, ...]:
        """Formats as RTP payload type numbers, in m= order (RFC 8866 §5.14); empty if not RTP."""
        if "RTP/" not in self.proto:
            return ()
        return tuple(int(f) for f in self.formats if _is_digits(f) and int(f) <= 127)

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """Every readable ``a=rtpmap`` by payload type (the first one wins on duplicates)."""
        maps: dict[int, RtpMap] = {}
        for name, value in self.attributes:
            if name == "rtpmap" and value is not None:
                rtpmap = _parse_rtpmap(value)
                if rtpmap is not None and rtpmap.payload_type not in maps:
                    maps[rtpmap.payload_type] = rtpmap
        return maps

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The mapping of a payload type: its a=rtpmap, else the RFC 3551 static one, else None."""
        rtpmap = self.rtpmaps.get(payload_type)
        return rtpmap if rtpmap is not None else STATIC_PAYLOAD_TYPES.get(payload_type)

    @property
    def codecs(self) -> tuple[RtpMap, ...]:
        """The known mappings of the payload types in m= order, skipping ones we cannot name."""
        maps = self.rtpmaps
        found = []
        for pt in self.payload_types:
            rtpmap = maps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if rtpmap is not None:
                found.append(rtpmap)
        return tuple(found)

    def fmtp(self, payload_type: int | str) -> str | None:
        """The format parameters of ``a=fmtp:<payload_type> <params>`` (RFC 8866 §6.15), as text."""
        wanted = str(payload_type)
        for name, value in self.attributes:
            if name == "fmtp" and value is not None:
                fmt, _, params = value.partition(" ")
                if fmt == wanted:
                    return params.strip()
        return None

    @property
    def ptime(self) -> float | None:
        """``a=ptime`` in milliseconds (RFC 8866 §6.4); a float because "0.125" occurs."""
        return _parse_float(self.attribute("ptime"))

    @property
    def maxptime(self) -> float | None:
        """``a=maxptime`` in milliseconds (RFC 8866 §6.5)."""
        return _parse_float(self.attribute("maxptime"))

    @property
    def rtcp(self) -> Rtcp | None:
        """The ``a=rtcp`` port and address (RFC 3605 §2.1).

        None when absent or unreadable (a bad port, or an address other than ``IN IP4``/``IN IP6``
        such as ``IN IP7 X``): RFC 8866 §5.13 has attributes not understood ignored, and RFC 3605
        §2.1 then means RTCP on the RTP port + 1.
        """
        value = self.attribute("rtcp")
        return None if value is None else _parse_rtcp(value)

    @property
    def rtcp_mux(self) -> bool:
        """True when ``a=rtcp-mux`` asks for RTP and RTCP on one port (RFC 5761 §5.1.1)."""
        return self.has_attribute("rtcp-mux")

    @property
    def crypto(self) -> tuple[str, ...]:
        """Each ``a=crypto`` value intact, such as ``1 AES_CM_128_HMAC_SHA1_80 inline:...``
        (RFC 4568 §9.1)."""
        return tuple(value for name, value in self.attributes if name == "crypto" and value)

    @property
    def telephone_event_payload_types(self) -> tuple[int, ...]:
        """Payload types mapped to ``telephone-event`` at any clock rate, in m= order
        (RFC 4733 §2.4)."""
        maps = self.rtpmaps
        return tuple(
            pt for pt in self.payload_types if pt in maps and maps[pt].encoding.lower() == "telephone-event"
        )

    def telephone_events(self, payload_type: int) -> str | None:
        """The events a telephone-event payload type carries, e.g. ``"0-16"`` (RFC 4733 §2.4).

        None when there is no fmtp, which RFC 4733 §2.4 reads as events 0-15.
        """
        return self.fmtp(payload_type)

    @property
    def value(self) -> str:
        """The text after ``m=``."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join((self.media, port, self.proto, *self.formats))

    def _lines(self, out: list[str]) -> None:
        groups: dict[str, list[str]] = {
            "m": [_line("m", self.value)],
            "i": [] if self.information is None else [_line("i", self.information)],
            "c": [_line("c", c.value) for c in self.connections],
            "b": [_line("b", b.value) for b in self.bandwidths],
            "k": [] if self.encryption_key is None else [_line("k", self.encryption_key)],
            "a": [_attribute_line(a) for a in self.attributes],
        }
        _add_unknown(groups, self.unknown_lines)
        out.extend(_ordered(groups, self.line_order, _MEDIA_ORDER))


@dataclass(frozen=True, slots=True)
class SessionDescription(_AttributeAccess):
    """A whole SDP session description (RFC 8866 §5); ``v=`` is always 0 and not stored.

    ``session_name`` and ``timing`` are None / empty only when a peer left ``s=`` / ``t=`` out (see
    the module notes on leniency); values we build have ``s=-`` and ``t=0 0``.
    """

    origin: Origin
    session_name: str | None = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timing: tuple[Timing, ...] = (Timing(0, 0),)
    time_zones: str | None = None
    encryption_key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[MediaDescription, ...] = ()
    unknown_lines: tuple[UnknownLine, ...] = ()
    line_order: str = field(default="", compare=False, repr=False)

    def direction_of(self, media: MediaDescription) -> Direction:
        """The direction in force for a media description: its own attribute, else the session's,
        else sendrecv (RFC 8866 §6.7, RFC 3264 §5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def connection_of(self, media: MediaDescription) -> Connection | None:
        """The connection in force for a media description: its first c=, else the session's
        (RFC 8866 §5.7)."""
        return media.connections[0] if media.connections else self.connection

    @property
    def has_unknown_lines(self) -> bool:
        """True when some line has a type letter RFC 8866 §5 does not define.

        RFC 8866 §5 allows rejecting such a description; the parser keeps it, and a caller that
        wants the strict reading rejects when this is True.
        """
        return bool(self.unknown_lines) or any(m.unknown_lines for m in self.media)

    def next_version(self) -> SessionDescription:
        """This description as our next one in the session: origin version + 1 (RFC 3264 §8)."""
        return replace(self, origin=self.origin.next_version())

    def serialize(self) -> bytes:
        """The description as sent: CRLF after every line, UTF-8 (RFC 8866 §5)."""
        return self.serialize_text().encode("utf-8", "surrogateescape")

    def serialize_text(self) -> str:
        """As :meth:`serialize`, before encoding."""
        timing = []
        for t in self.timing:
            timing.append(
                "\r\n".join([_line("t", f"{t.start} {t.stop}"), *(_line("r", r) for r in t.repeats)])
            )
        groups: dict[str, list[str]] = {
            "v": ["v=0"],
            "o": [_line("o", self.origin.value)],
            "s": [] if self.session_name is None else [_line("s", self.session_name)],
            "i": [] if self.information is None else [_line("i", self.information)],
            "u": [] if self.uri is None else [_line("u", self.uri)],
            "e": [_line("e", e) for e in self.emails],
            "p": [_line("p", p) for p in self.phones],
            "c": [] if self.connection is None else [_line("c", self.connection.value)],
            "b": [_line("b", b.value) for b in self.bandwidths],
            "t": timing,
            "z": [] if self.time_zones is None else [_line("z", self.time_zones)],
            "k": [] if self.encryption_key is None else [_line("k", self.encryption_key)],
            "a": [_attribute_line(a) for a in self.attributes],
        }
        _add_unknown(groups, self.unknown_lines)
        out = _ordered(groups, self.line_order, _SESSION_ORDER)
        for media in self.media:
            media._lines(out)
        out.append("")
        return "\r\n".join(out)


def _attribute_line(attribute: Attribute) -> str:
    name, value = attribute
    return _line("a", name if value is None else f"{name}:{value}")


def _add_unknown(groups: dict[str, list[str]], unknown: tuple[UnknownLine, ...]) -> None:
    for kind, value in unknown:
        if len(kind) != 1 or kind not in _LETTERS or kind in _DEFINED:
            raise LocalProtocolError(f"SDP unknown line type must be an undefined letter: {kind!r}")
        groups.setdefault(kind, []).append(_line(kind, value))


def _ordered(groups: dict[str, list[str]], hint: str, canonical: str) -> list[str]:
    """Lines in the parsed order while ``hint`` still fits the groups, else in RFC 8866 order."""
    if (
        hint
        and len(hint) == sum(map(len, groups.values()))
        and all(hint.count(kind) == len(lines) for kind, lines in groups.items())
    ):
        iterators = {kind: iter(lines) for kind, lines in groups.items()}
        return [next(iterators[kind]) for kind in hint]
    out: list[str] = []
    for kind in canonical:
        out.extend(groups[kind])
    for kind, lines in groups.items():
        if kind not in canonical:
            out.extend(lines)
    return out


class _MediaBuilder:
    """The lines of one m= section while it is being read."""

    __slots__ = (
        "attributes",
        "bandwidths",
        "connections",
        "encryption_key",
        "formats",
        "information",
        "kinds",
        "media",
        "port",
        "port_count",
        "proto",
        "unknown",
    )

    def __init__(
        self, media: str, port: int, port_count: int | None, proto: str, formats: tuple[str, ...]
    ) -> None:
        self.media = media
        self.port = port
        self.port_count = port_count
        self.proto = proto
        self.formats = formats
        self.information: str | None = None
        self.connections: list[Connection] = []
        self.bandwidths: list[Bandwidth] = []
        self.encryption_key: str | None = None
        self.attributes: list[Attribute] = []
        self.unknown: list[UnknownLine] = []
        self.kinds: list[str] = ["m"]

    def build(self) -> MediaDescription:
        return MediaDescription(
            media=self.media,
            port=self.port,
            proto=self.proto,
            formats=self.formats,
            port_count=self.port_count,
            information=self.information,
            connections=tuple(self.connections),
            bandwidths=tuple(self.bandwidths),
            encryption_key=self.encryption_key,
            attributes=tuple(self.attributes),
            unknown_lines=tuple(self.unknown),
            line_order="".join(self.kinds),
        )


_ORIGIN_SYNTAX = "o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>"
_CONNECTION_SYNTAX = "c= needs <nettype> <addrtype> <connection-address>"
_MEDIA_SYNTAX = "m= needs <media> <port>[/<count>] <proto> <fmt> ..."
_BANDWIDTH_SYNTAX = "b= needs <bwtype>:<bandwidth>"
_TIMING_SYNTAX = "t= needs <start-time> <stop-time>"


def _parse_origin(number: int, line: str, value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6 or not _is_digits(parts[2]):
        raise _line_error(number, line, _ORIGIN_SYNTAX)
    return Origin(parts[0], parts[1], int(parts[2]), parts[3], parts[4], parts[5])


def _parse_connection(number: int, line: str, value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise _line_error(number, line, _CONNECTION_SYNTAX)
    nettype, addrtype, address = parts
    ttl: int | None = None
    count: int | None = None
    if addrtype in ("IP4", "IP6") and "/" in address:
        address, *suffix = address.split("/")
        ok = bool(address) and all(_is_digits(s) for s in suffix)
        if ok and addrtype == "IP4" and len(suffix) <= 2:
            ttl = int(suffix[0])
            count = int(suffix[1]) if len(suffix) == 2 else None
            ok = ttl <= 255 and (count is None or count >= 1)
        elif ok and addrtype == "IP6" and len(suffix) == 1:
            count = int(suffix[0])
            ok = count >= 1
        else:
            ok = False
        if not ok:
            raise _line_error(number, line, _CONNECTION_SYNTAX)
    return Connection(nettype, addrtype, address, ttl, count)


def _parse_media(number: int, line: str, value: str) -> _MediaBuilder:
    # Formats may be empty: some stacks reject a stream with "m=video 0 RTP/AVP" and nothing after.
    parts = value.split()
    if len(parts) < 3:
        raise _line_error(number, line, _MEDIA_SYNTAX)
    port_text, slash, count_text = parts[1].partition("/")
    if not _is_digits(port_text) or int(port_text) > 65535:
        raise _line_error(number, line, _MEDIA_SYNTAX)
    port_count: int | None = None
    if slash:
        if not _is_digits(count_text) or int(count_text) < 1:
            raise _line_error(number, line, _MEDIA_SYNTAX)
        port_count = int(count_text)
    return _MediaBuilder(parts[0], int(port_text), port_count, parts[2], tuple(parts[3:]))


def _parse_bandwidth(number: int, line: str, value: str) -> Bandwidth:
    bwtype, colon, amount = value.partition(":")
    bwtype, amount = bwtype.strip(), amount.strip()
    if not colon or not bwtype or " " in bwtype or not _is_digits(amount):
        raise _line_error(number, line, _BANDWIDTH_SYNTAX)
    return Bandwidth(bwtype, int(amount))


def _parse_timing(number: int, line: str, value: str) -> Timing:
    parts = value.split()
    if len(parts) != 2 or not (_is_digits(parts[0]) and _is_digits(parts[1])):
        raise _line_error(number, line, _TIMING_SYNTAX)
    return Timing(int(parts[0]), int(parts[1]))


def _parse_attribute(value: str) -> Attribute:
    name, colon, attr_value = value.partition(":")
    return (name, attr_value if colon else None)


def parse_sdp(data: bytes | bytearray | str) -> SessionDescription:
    """Parse an SDP body (RFC 8866 §5) into a :class:`SessionDescription`.

    Raises :class:`SdpError` (status 400) naming the first line it cannot accept. What is accepted
    beyond the letter of RFC 8866 is listed in the module docstring.
    """
    if len(data) > MAX_SDP_SIZE:
        raise SdpError(f"SDP is over the {MAX_SDP_SIZE} byte limit")
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"SDP has over {MAX_SDP_LINES} lines")

    seen_version = False
    origin: Origin | None = None
    session_name: str | None = None
    information: str | None = None
    uri: str | None = None
    emails: list[str] = []
    phones: list[str] = []
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = []
    timing: list[Timing] = []
    time_zones: str | None = None
    encryption_key: str | None = None
    attributes: list[Attribute] = []
    unknown: list[UnknownLine] = []
    kinds: list[str] = []
    media: list[MediaDescription] = []
    current: _MediaBuilder | None = None

    for number, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line.strip():
            continue
        if len(line) > MAX_SDP_LINE_LENGTH:
            raise SdpError(
                f"SDP line {number} is {len(line)} characters, over the {MAX_SDP_LINE_LENGTH} limit"
            )
        if len(line) < 2 or line[1] != "=" or line[0] not in _LETTERS:
            raise _line_error(number, line, "not a <type>=<value> line")
        if "\r" in line or "\x00" in line:
            raise _line_error(number, line, "CR or NUL inside a line")
        kind = line[0]
        value = line[2:]

        if not seen_version:
            if kind != "v":
                raise _line_error(number, line, "v=0 must come first")
            if value.strip() != "0":
                raise _line_error(number, line, "unsupported SDP version, only v=0 exists")
            seen_version = True
            kinds.append("v")
            continue

        if kind == "m":
            if current is not None:
                media.append(current.build())
            if len(media) >= MAX_MEDIA_SECTIONS:
                raise _line_error(number, line, f"more than {MAX_MEDIA_SECTIONS} m= sections")
            current = _parse_media(number, line, value)
            continue

        if current is not None:
            if kind == "a":
                current.attributes.append(_parse_attribute(value))
            elif kind == "c":
                current.connections.append(_parse_connection(number, line, value))
            elif kind == "b":
                current.bandwidths.append(_parse_bandwidth(number, line, value))
            elif kind == "i":
                if current.information is not None:
                    raise _line_error(number, line, "second i= in one media description")
                current.information = value
            elif kind == "k":
                if current.encryption_key is not None:
                    raise _line_error(number, line, "second k= in one media description")
                current.encryption_key = value
            elif kind in _SESSION_ONLY:
                raise _line_error(number, line, f"{kind}= is not allowed in a media description")
            else:
                current.unknown.append((kind, value))
            current.kinds.append(kind)
            continue

        if kind == "a":
            attributes.append(_parse_attribute(value))
        elif kind == "t":
            timing.append(_parse_timing(number, line, value))
        elif kind == "r":
            if not timing:
                raise _line_error(number, line, "r= without a t= before it")
            last = timing[-1]
            timing[-1] = replace(last, repeats=(*last.repeats, value))
            # r= is written back with its t=, so it takes no place of its own in the order.
            continue
        elif kind == "o":
            if origin is not None:
                raise _line_error(number, line, "second o= line")
            origin = _parse_origin(number, line, value)
        elif kind == "s":
            if session_name is not None:
                raise _line_error(number, line, "second s= line")
            session_name = value
        elif kind == "c":
            if connection is not None:
                raise _line_error(number, line, "second session-level c= line")
            connection = _parse_connection(number, line, value)
        elif kind == "b":
            bandwidths.append(_parse_bandwidth(number, line, value))
        elif kind == "i":
            if information is not None:
                raise _line_error(number, line, "second session-level i= line")
            information = value
        elif kind == "u":
            if uri is not None:
                raise _line_error(number, line, "second u= line")
            uri = value
        elif kind == "e":
            emails.append(value)
        elif kind == "p":
            phones.append(value)
        elif kind == "z":
            if time_zones is not None:
                raise _line_error(number, line, "second z= line")
            time_zones = value
        elif kind == "k":
            if encryption_key is not None:
                raise _line_error(number, line, "second session-level k= line")
            encryption_key = value
        elif kind == "v":
            raise _line_error(number, line, "v= is allowed only as the first line")
        else:
            unknown.append((kind, value))
        kinds.append(kind)

    if not seen_version:
        raise SdpError("SDP is empty")
    if origin is None:
        raise SdpError("SDP has no o= line")
    if current is not None:
        media.append(current.build())
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        information=information,
        uri=uri,
        emails=tuple(emails),
        phones=tuple(phones),
        connection=connection,
        bandwidths=tuple(bandwidths),
        timing=tuple(timing),
        time_zones=time_zones,
        encryption_key=encryption_key,
        attributes=tuple(attributes),
        media=tuple(media),
        unknown_lines=tuple(unknown),
        line_order="".join(kinds),
    )
