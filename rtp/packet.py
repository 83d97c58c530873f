"""RTP packets (RFC 3550 §5.1), RTP/RTCP demultiplexing (RFC 5761 §4) and the RFC 4733 telephone-event
payload (RFC 4733 §2.3).

Full parsing builds an :class:`RtpPacket`; it is for DTMF packets, tests and tools. The relay's hot path uses
the ``peek_*`` helpers instead, which read one field straight from the datagram without building anything.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

logger = logging.getLogger(__name__)

#: What the parsers and peek helpers read: a received datagram, or a view into a receive buffer.
Buffer: TypeAlias = bytes | bytearray | memoryview

#: RFC 3550 §5.1: "The version defined by this specification is two (2)."
RTP_VERSION: Final = 2
#: The fixed header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC (RFC 3550 §5.1).
RTP_HEADER_LENGTH: Final = 12
#: The CC field is 4 bits (RFC 3550 §5.1).
MAX_CSRC_COUNT: Final = 15
#: The PT field is 7 bits (RFC 3550 §5.1).
MAX_PAYLOAD_TYPE: Final = 127
#: The padding count is one octet and counts itself (RFC 3550 §5.1).
MAX_PADDING_LENGTH: Final = 255
#: The header extension's length field counts 32-bit words in 16 bits (RFC 3550 §5.3.1).
MAX_EXTENSION_DATA_LENGTH: Final = 0xFFFF * 4

_MAX_U16: Final = 0xFFFF
_MAX_U32: Final = 0xFFFFFFFF

_FIXED_HEADER: Final = struct.Struct("!BBHII")
_U32: Final = struct.Struct("!I")
_EXTENSION_HEADER: Final = struct.Struct("!HH")
_TELEPHONE_EVENT: Final = struct.Struct("!BBH")


class RtpError(ValueError):
    """Bytes or values that are not a valid RTP packet (RFC 3550 §5.1) or RFC 4733 payload.

    Always the remote end's fault when raised by a parser: the packet is dropped and counted.
    """


def make_padding(length: int) -> bytes:
    """Padding octets for RFC 3550 §5.1: zeros, then a last octet counting all of them (1 … 255)."""
    if not 1 <= length <= MAX_PADDING_LENGTH:
        raise RtpError(f"RTP padding length {length} is outside 1..255")
    return bytes(length - 1) + bytes((length,))


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value <= _MAX_U32:
        raise RtpError(f"RTP {what} {value} is outside 0..4294967295")


@dataclass(frozen=True, slots=True)
class RtpHeaderExtension:
    """The header extension (RFC 3550 §5.3.1), kept as bytes.

    ``profile`` is the 16-bit "defined by profile" value (0xBEDE for RFC 8285 §4.2 one-byte elements,
    0x100x for §4.3 two-byte elements); ``data`` is the extension's words, whatever their format.
    """

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= _MAX_U16:
            raise RtpError(f"RTP header extension profile {self.profile} is outside 0..65535")
        if len(self.data) % 4:
            raise RtpError(f"RTP header extension data is {len(self.data)} bytes, not a multiple of 4")
        if len(self.data) > MAX_EXTENSION_DATA_LENGTH:
            raise RtpError(f"RTP header extension data is {len(self.data)} bytes, more than 262140")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1).

    ``padding`` holds the padding octets themselves, count octet included, so that a parsed packet
    serializes back to the same bytes; it is empty when the P bit is clear. Build it with
    :func:`make_padding`.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpHeaderExtension | None = None
    padding: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= MAX_PAYLOAD_TYPE:
            raise RtpError(f"RTP payload type {self.payload_type} is outside 0..127")
        if not 0 <= self.sequence_number <= _MAX_U16:
            raise RtpError(f"RTP sequence number {self.sequence_number} is outside 0..65535")
        _check_u32(self.timestamp, "timestamp")
        _check_u32(self.ssrc, "SSRC")
        if len(self.csrc) > MAX_CSRC_COUNT:
            raise RtpError(f"RTP packet has {len(self.csrc)} CSRC identifiers, more than 15")
        for csrc in self.csrc:
            _check_u32(csrc, "CSRC")
        if self.padding:
            if len(self.padding) > MAX_PADDING_LENGTH:
                raise RtpError(f"RTP padding is {len(self.padding)} bytes, more than 255")
            if self.padding[-1] != len(self.padding):
                raise RtpError(
                    f"RTP padding is {len(self.padding)} bytes but its last octet counts {self.padding[-1]}"
                )

    @property
    def version(self) -> int:
        """Always 2: the only version RFC 3550 defines, and the only one the parser accepts."""
        return RTP_VERSION

    @property
    def padding_length(self) -> int:
        """Number of padding octets, count octet included (0 when the P bit is clear)."""
        return len(self.padding)

    def serialize(self) -> bytes:
        """The packet's bytes (RFC 3550 §5.1)."""
        first = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [_FIXED_HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            data = self.extension.data
            parts.append(_EXTENSION_HEADER.pack(self.extension.profile, len(data) // 4))
            parts.append(data)
        parts.append(self.payload)
        parts.append(self.padding)
        return b"".join(parts)


def parse_rtp(data: Buffer) -> RtpPacket:
    """Parse one RTP packet (RFC 3550 §5.1); raises :class:`RtpError` on anything malformed."""
    size = len(data)
    if size < RTP_HEADER_LENGTH:
        raise RtpError(f"RTP packet is {size} bytes, shorter than the 12-byte header")
    first, second, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data, 0)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpError(f"RTP version is {version}, expected 2")
    pos = RTP_HEADER_LENGTH
    csrc_count = first & 0x0F
    csrc: tuple[int, ...] = ()
    if csrc_count:
        if size < pos + 4 * csrc_count:
            raise RtpError(f"RTP packet is {size} bytes, too short for {csrc_count} CSRC identifiers")
        csrc = struct.unpack_from(f"!{csrc_count}I", data, pos)
        pos += 4 * csrc_count
    extension = None
    if first & 0x10:
        if size < pos + 4:
            raise RtpError(f"RTP packet is {size} bytes, too short for its header extension header")
        profile, words = _EXTENSION_HEADER.unpack_from(data, pos)
        pos += 4
        if size < pos + 4 * words:
            raise RtpError(f"RTP header extension declares {4 * words} bytes of data but {size - pos} remain")
        extension = RtpHeaderExtension(profile, bytes(data[pos : pos + 4 * words]))
        pos += 4 * words
    end = size
    padding = b""
    if first & 0x20:
        count = data[size - 1]
        if count == 0:
            raise RtpError("RTP padding length is 0")
        if count > size - pos:
            raise RtpError(f"RTP padding length {count} exceeds the {size - pos} bytes after the header")
        end = size - count
        padding = bytes(data[end:])
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence_number=sequence_number,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[pos:end]),
        marker=bool(second & 0x80),
        csrc=csrc,
        extension=extension,
        padding=padding,
    )


# ------------------------------------------------------------------------------------------ hot path


def is_rtcp(data: Buffer) -> bool:
    """RFC 5761 §4: on a muxed port a packet whose second octet is 192 … 223 is RTCP, anything else RTP.

    (That octet is RTP's marker + payload type, or RTCP's packet type; RTCP types live in 192 … 223.)
    A datagram shorter than two octets is not RTCP.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


def _check_peek(data: Buffer) -> None:
    if len(data) < RTP_HEADER_LENGTH:
        raise RtpError(f"RTP packet is {len(data)} bytes, shorter than the 12-byte header")


# The peek helpers only check that the fixed header is there (RtpError otherwise): they do not look at
# the version, padding or CSRC count. They are for packets the relay forwards unchanged.


def peek_payload_type(data: Buffer) -> int:
    """The payload type of an RTP datagram (RFC 3550 §5.1), read in place; validates only the length."""
    _check_peek(data)
    return data[1] & 0x7F


def peek_marker(data: Buffer) -> bool:
    """The marker bit of an RTP datagram, read in place; validates only the length."""
    _check_peek(data)
    return data[1] >= 0x80


def peek_sequence_number(data: Buffer) -> int:
    """The sequence number of an RTP datagram, read in place; validates only the length."""
    _check_peek(data)
    return (data[2] << 8) | data[3]


def peek_timestamp(data: Buffer) -> int:
    """The timestamp of an RTP datagram, read in place; validates only the length."""
    _check_peek(data)
    value: int = _U32.unpack_from(data, 4)[0]
    return value


def peek_ssrc(data: Buffer) -> int:
    """The SSRC of an RTP datagram, read in place; validates only the length."""
    _check_peek(data)
    value: int = _U32.unpack_from(data, 8)[0]
    return value


# --------------------------------------------------------------------------- RFC 4733 telephone-event

#: RFC 4733 §3.2: events 0-15 are the DTMF keys, in this order.
DTMF_KEYS: Final = "0123456789*#ABCD"
#: RFC 4733 §2.3: one event report is four octets (event, E/R/volume, duration).
TELEPHONE_EVENT_LENGTH: Final = 4
#: RFC 4733 §2.3.4: the volume is 6 bits, 0 to -63 dBm0.
MAX_TELEPHONE_EVENT_VOLUME: Final = 63
#: RFC 4733 §2.3.5: the duration is 16 bits of RTP timestamp units.
MAX_TELEPHONE_EVENT_DURATION: Final = 0xFFFF


def key_for_event(event: int) -> str | None:
    """The DTMF key of an RFC 4733 §3.2 event code, or None for the non-DTMF events (16 and up)."""
    return DTMF_KEYS[event] if 0 <= event < len(DTMF_KEYS) else None


def event_for_key(key: str) -> int:
    """The RFC 4733 §3.2 event code of a DTMF key ("0"-"9", "*", "#", "A"-"D")."""
    if len(key) != 1 or key not in DTMF_KEYS:
        raise RtpError(f"{key!r} is not a DTMF key (one of {DTMF_KEYS})")
    return DTMF_KEYS.index(key)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 event report: event code, E (end) bit, volume, duration.

    ``duration`` is in RTP timestamp units since the event's timestamp (RFC 4733 §2.3.5). ``reserved``
    is the R bit: senders set it to 0 and receivers ignore it (RFC 4733 §2.3.3); it is kept so that a
    parsed payload serializes back to the same bytes.
    """

    event: int
    end: bool
    volume: int
    duration: int
    reserved: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise RtpError(f"telephone-event code {self.event} is outside 0..255")
        if not 0 <= self.volume <= MAX_TELEPHONE_EVENT_VOLUME:
            raise RtpError(f"telephone-event volume {self.volume} is outside 0..63")
        if not 0 <= self.duration <= MAX_TELEPHONE_EVENT_DURATION:
            raise RtpError(f"telephone-event duration {self.duration} is outside 0..65535")

    @property
    def key(self) -> str | None:
        """The DTMF key this event is (RFC 4733 §3.2), or None for a non-DTMF event."""
        return key_for_event(self.event)

    def serialize(self) -> bytes:
        """The four payload octets (RFC 4733 §2.3)."""
        flags = self.volume | (0x80 if self.end else 0) | (0x40 if self.reserved else 0)
        return _TELEPHONE_EVENT.pack(self.event, flags, self.duration)


def parse_telephone_event(data: Buffer) -> TelephoneEvent:
    """Parse a single-event RFC 4733 §2.3 payload (exactly four octets)."""
    if len(data) != TELEPHONE_EVENT_LENGTH:
        raise RtpError(f"telephone-event payload is {len(data)} bytes, expected 4")
    event, flags, duration = _TELEPHONE_EVENT.unpack_from(data, 0)
    return TelephoneEvent(
        event=event,
        end=bool(flags & 0x80),
        volume=flags & 0x3F,
        duration=duration,
        reserved=bool(flags & 0x40),
    )
