"""RTCP compound packets (RFC 3550 §6): SR, RR, SDES and BYE parsed; every other type kept as bytes.

``parse_rtcp`` splits a compound packet (RFC 3550 §6.1) into its individual packets and
``serialize_rtcp`` writes them back; every packet serializes to the bytes it was parsed from when those
bytes follow the RFC's layout (null-padded SDES chunks and BYE reasons). Feedback (RFC 4585), APP, XR
(RFC 3611) and unknown types are an :class:`RtcpOpaquePacket` whose body is kept byte for byte.

The helpers at the end turn a receiver's counters into report-block fields (RFC 3550 §6.4.1, §A.3), so the
relay can build its SR/RR with the plain constructors.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final, TypeAlias

from .packet import Buffer

logger = logging.getLogger(__name__)

#: RFC 3550 §6.4.1: version 2 is the only one defined.
RTCP_VERSION: Final = 2
#: V/P/count, packet type, length (RFC 3550 §6.4.1).
RTCP_HEADER_LENGTH: Final = 4
#: The RC/SC/FMT field is 5 bits (RFC 3550 §6.4.1).
MAX_RTCP_COUNT: Final = 31
#: The length field counts 32-bit words minus one in 16 bits (RFC 3550 §6.4.1).
MAX_RTCP_PACKET_LENGTH: Final = (0xFFFF + 1) * 4
#: RFC 5761 §4 reserves second-octet values 192-223 for RTCP, which is how a muxed port tells RTCP from
#: RTP; a "packet type" outside it means the bytes are not RTCP (often RTP sent to the RTCP port).
MIN_RTCP_PACKET_TYPE: Final = 192
MAX_RTCP_PACKET_TYPE: Final = 223
#: A report block is six 32-bit words (RFC 3550 §6.4.1).
REPORT_BLOCK_LENGTH: Final = 24
#: Sender info: NTP timestamp (2 words), RTP timestamp, packet count, octet count (RFC 3550 §6.4.1).
SENDER_INFO_LENGTH: Final = 20
#: The SDES item length is one octet (RFC 3550 §6.5).
MAX_SDES_VALUE_LENGTH: Final = 255
#: The BYE reason length is one octet (RFC 3550 §6.6).
MAX_BYE_REASON_LENGTH: Final = 255
#: "cumulative number of packets lost" is a signed 24-bit field (RFC 3550 §6.4.1).
MIN_PACKETS_LOST: Final = -0x800000
MAX_PACKETS_LOST: Final = 0x7FFFFF
#: Seconds from the NTP epoch (1900) to the Unix epoch (1970), for the SR's wallclock (RFC 3550 §4).
NTP_UNIX_OFFSET: Final = 2_208_988_800

_MAX_U32: Final = 0xFFFFFFFF
_HEADER: Final = struct.Struct("!BBH")
_U32: Final = struct.Struct("!I")
_REPORT_BLOCK: Final = struct.Struct("!IB3sIIII")
_SENDER_INFO: Final = struct.Struct("!QIII")


class RtcpError(ValueError):
    """Bytes or values that are not valid RTCP (RFC 3550 §6); from a parser, the sender's fault."""


class RtcpPacketType(IntEnum):
    """RTCP packet types this module knows by name (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611 §2)."""

    SR = 200
    RR = 201
    SDES = 202
    BYE = 203
    APP = 204
    RTPFB = 205
    PSFB = 206
    XR = 207


class SdesItemType(IntEnum):
    """SDES item types (RFC 3550 §6.5); other values are kept as plain ints."""

    CNAME = 1
    NAME = 2
    EMAIL = 3
    PHONE = 4
    LOC = 5
    TOOL = 6
    NOTE = 7
    PRIV = 8


#: Smallest body (after the 4-byte header) of the opaque types: APP has SSRC + name (RFC 3550 §6.7),
#: feedback has sender SSRC + media SSRC (RFC 4585 §6.1), XR has the sender SSRC (RFC 3611 §2).
_MIN_OPAQUE_BODY: Final[dict[int, int]] = {
    RtcpPacketType.APP: 8,
    RtcpPacketType.RTPFB: 8,
    RtcpPacketType.PSFB: 8,
    RtcpPacketType.XR: 4,
}


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value <= _MAX_U32:
        raise RtcpError(f"RTCP {what} {value} is outside 0..4294967295")


def _check_count(count: int, what: str) -> None:
    if count > MAX_RTCP_COUNT:
        raise RtcpError(f"RTCP {what} count {count} is more than 31")


def _check_padding(padding: bytes) -> None:
    """RFC 3550 §6.4.1: the last octet counts the padding octets, itself included, a multiple of four."""
    if not padding:
        return
    if len(padding) % 4:
        raise RtcpError(f"RTCP padding is {len(padding)} bytes, not a multiple of 4")
    if len(padding) > MAX_RTCP_PACKET_LENGTH - RTCP_HEADER_LENGTH or padding[-1] != len(padding):
        raise RtcpError(f"RTCP padding is {len(padding)} bytes but its last octet counts {padding[-1]}")


def _check_length(total: int) -> None:
    if total > MAX_RTCP_PACKET_LENGTH:
        raise RtcpError(f"RTCP packet would be {total} bytes, more than the length field allows")


def _pack(count: int, packet_type: int, body: bytes, padding: bytes) -> bytes:
    first = (RTCP_VERSION << 6) | count | (0x20 if padding else 0)
    words = (RTCP_HEADER_LENGTH + len(body) + len(padding)) // 4 - 1
    return _HEADER.pack(first, packet_type, words) + body + padding


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1).

    ``highest_sequence`` is the extended highest sequence number received; ``jitter`` is in RTP timestamp
    units; ``lsr`` is the middle 32 bits of the last SR's NTP timestamp and ``dlsr`` the delay since it in
    units of 1/65536 s (both 0 when no SR was received yet).
    """

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int

    def __post_init__(self) -> None:
        _check_u32(self.ssrc, "report block SSRC")
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError(f"RTCP fraction lost {self.fraction_lost} is outside 0..255")
        if not MIN_PACKETS_LOST <= self.packets_lost <= MAX_PACKETS_LOST:
            raise RtcpError(f"RTCP packets lost {self.packets_lost} is outside -8388608..8388607")
        _check_u32(self.highest_sequence, "highest sequence")
        _check_u32(self.jitter, "jitter")
        _check_u32(self.lsr, "LSR")
        _check_u32(self.dlsr, "DLSR")

    def serialize(self) -> bytes:
        lost = (self.packets_lost & 0xFFFFFF).to_bytes(3, "big")
        return _REPORT_BLOCK.pack(
            self.ssrc, self.fraction_lost, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr
        )


def _parse_report_blocks(body: bytes, pos: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for _ in range(count):
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(body, pos)
        pos += REPORT_BLOCK_LENGTH
        blocks.append(
            ReportBlock(
                ssrc=ssrc,
                fraction_lost=fraction,
                packets_lost=int.from_bytes(lost, "big", signed=True),
                highest_sequence=highest,
                jitter=jitter,
                lsr=lsr,
                dlsr=dlsr,
            )
        )
    return tuple(blocks)


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """The sender information of an SR (RFC 3550 §6.4.1).

    ``ntp_timestamp`` is the 64-bit NTP wallclock (see :func:`ntp_timestamp`); ``rtp_timestamp`` the same
    instant on the RTP clock; the counts are packets and payload octets sent since the SSRC started.
    """

    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int

    def __post_init__(self) -> None:
        if not 0 <= self.ntp_timestamp <= 0xFFFFFFFFFFFFFFFF:
            raise RtcpError(f"RTCP NTP timestamp {self.ntp_timestamp} is outside 64 bits")
        _check_u32(self.rtp_timestamp, "RTP timestamp")
        _check_u32(self.packet_count, "packet count")
        _check_u32(self.octet_count, "octet count")


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """SR: sender info and up to 31 report blocks (RFC 3550 §6.4.1).

    ``extension`` is the profile-specific extension after the report blocks, kept as bytes.
    ``padding`` holds the padding octets (count octet last), empty when the P bit is clear.
    """

    packet_type: ClassVar[int] = RtcpPacketType.SR

    ssrc: int
    sender_info: SenderInfo
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bytes = b""

    def __post_init__(self) -> None:
        _check_u32(self.ssrc, "SR SSRC")
        _check_count(len(self.reports), "SR report")
        if len(self.extension) % 4:
            raise RtcpError(f"RTCP SR extension is {len(self.extension)} bytes, not a multiple of 4")
        _check_padding(self.padding)
        _check_length(
            RTCP_HEADER_LENGTH
            + 4
            + SENDER_INFO_LENGTH
            + REPORT_BLOCK_LENGTH * len(self.reports)
            + len(self.extension)
            + len(self.padding)
        )

    def serialize(self) -> bytes:
        info = self.sender_info
        body = b"".join(
            [
                _U32.pack(self.ssrc),
                _SENDER_INFO.pack(
                    info.ntp_timestamp, info.rtp_timestamp, info.packet_count, info.octet_count
                ),
                *(block.serialize() for block in self.reports),
                self.extension,
            ]
        )
        return _pack(len(self.reports), self.packet_type, body, self.padding)


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport:
    """RR: the reporter's SSRC and up to 31 report blocks (RFC 3550 §6.4.2); fields as in the SR."""

    packet_type: ClassVar[int] = RtcpPacketType.RR

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    padding: bytes = b""

    def __post_init__(self) -> None:
        _check_u32(self.ssrc, "RR SSRC")
        _check_count(len(self.reports), "RR report")
        if len(self.extension) % 4:
            raise RtcpError(f"RTCP RR extension is {len(self.extension)} bytes, not a multiple of 4")
        _check_padding(self.padding)
        _check_length(
            RTCP_HEADER_LENGTH
            + 4
            + REPORT_BLOCK_LENGTH * len(self.reports)
            + len(self.extension)
            + len(self.padding)
        )

    def serialize(self) -> bytes:
        body = b"".join(
            [_U32.pack(self.ssrc), *(block.serialize() for block in self.reports), self.extension]
        )
        return _pack(len(self.reports), self.packet_type, body, self.padding)


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item (RFC 3550 §6.5): type 1-255 (see :class:`SdesItemType`) and up to 255 octets.

    The value is kept as bytes: RFC 3550 says UTF-8, but a peer's bad text must not stop the parse.
    """

    type: int
    value: bytes

    def __post_init__(self) -> None:
        # Type 0 is END, the chunk terminator, not an item.
        if not 1 <= self.type <= 255:
            raise RtcpError(f"RTCP SDES item type {self.type} is outside 1..255")
        if len(self.value) > MAX_SDES_VALUE_LENGTH:
            raise RtcpError(f"RTCP SDES item value is {len(self.value)} bytes, more than 255")


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC/CSRC and its items (RFC 3550 §6.5)."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def __post_init__(self) -> None:
        _check_u32(self.ssrc, "SDES SSRC")

    def serialize(self) -> bytes:
        """SSRC, items, then one to four null octets up to the next 32-bit boundary (RFC 3550 §6.5)."""
        parts = [_U32.pack(self.ssrc)]
        size = 4
        for item in self.items:
            parts.append(bytes((item.type, len(item.value))))
            parts.append(item.value)
            size += 2 + len(item.value)
        parts.append(bytes(4 - size % 4))
        return b"".join(parts)


@dataclass(frozen=True, slots=True)
class RtcpSourceDescription:
    """SDES: up to 31 chunks (RFC 3550 §6.5)."""

    packet_type: ClassVar[int] = RtcpPacketType.SDES

    chunks: tuple[SdesChunk, ...] = ()
    padding: bytes = b""

    def __post_init__(self) -> None:
        _check_count(len(self.chunks), "SDES chunk")
        _check_padding(self.padding)
        size = sum(4 + sum(2 + len(item.value) for item in chunk.items) for chunk in self.chunks)
        _check_length(RTCP_HEADER_LENGTH + size + 4 * len(self.chunks) + len(self.padding))

    def serialize(self) -> bytes:
        body = b"".join(chunk.serialize() for chunk in self.chunks)
        return _pack(len(self.chunks), self.packet_type, body, self.padding)


@dataclass(frozen=True, slots=True)
class RtcpBye:
    """BYE: up to 31 sources leaving, and an optional reason (RFC 3550 §6.6).

    ``reason`` is None when the packet carries none; b"" is a present, empty reason.
    """

    packet_type: ClassVar[int] = RtcpPacketType.BYE

    sources: tuple[int, ...] = ()
    reason: bytes | None = None
    padding: bytes = b""

    def __post_init__(self) -> None:
        _check_count(len(self.sources), "BYE source")
        for ssrc in self.sources:
            _check_u32(ssrc, "BYE SSRC")
        if self.reason is not None and len(self.reason) > MAX_BYE_REASON_LENGTH:
            raise RtcpError(f"RTCP BYE reason is {len(self.reason)} bytes, more than 255")
        _check_padding(self.padding)

    def serialize(self) -> bytes:
        parts = [_U32.pack(ssrc) for ssrc in self.sources]
        if self.reason is not None:
            size = 1 + len(self.reason)
            parts.append(bytes((len(self.reason),)) + self.reason + bytes(-size % 4))
        return _pack(len(self.sources), self.packet_type, b"".join(parts), self.padding)


@dataclass(frozen=True, slots=True)
class RtcpOpaquePacket:
    """Any other RTCP packet (APP, RTPFB, PSFB, XR, unknown), kept as bytes so it forwards unchanged.

    ``count`` is the 5-bit field after P (FMT for feedback, subtype for APP); ``body`` is everything after
    the 4-byte header except the padding.
    """

    packet_type: int
    count: int
    body: bytes
    padding: bytes = b""

    def __post_init__(self) -> None:
        if not MIN_RTCP_PACKET_TYPE <= self.packet_type <= MAX_RTCP_PACKET_TYPE:
            raise RtcpError(f"RTCP packet type {self.packet_type} is outside 192..223")
        if self.packet_type in _PARSED_TYPES:
            raise RtcpError(f"RTCP packet type {self.packet_type} has its own class, not an opaque packet")
        if not 0 <= self.count <= MAX_RTCP_COUNT:
            raise RtcpError(f"RTCP count {self.count} is outside 0..31")
        if len(self.body) % 4:
            raise RtcpError(f"RTCP packet body is {len(self.body)} bytes, not a multiple of 4")
        minimum = _MIN_OPAQUE_BODY.get(self.packet_type, 0)
        if len(self.body) < minimum:
            name = RtcpPacketType(self.packet_type).name
            raise RtcpError(f"RTCP {name} body is {len(self.body)} bytes, shorter than {minimum}")
        _check_padding(self.padding)
        _check_length(RTCP_HEADER_LENGTH + len(self.body) + len(self.padding))

    def serialize(self) -> bytes:
        return _pack(self.count, self.packet_type, self.body, self.padding)


RtcpPacket: TypeAlias = (
    RtcpSenderReport | RtcpReceiverReport | RtcpSourceDescription | RtcpBye | RtcpOpaquePacket
)

_PARSED_TYPES: Final = frozenset(
    {RtcpPacketType.SR, RtcpPacketType.RR, RtcpPacketType.SDES, RtcpPacketType.BYE}
)


def _parse_sr(count: int, body: bytes, padding: bytes) -> RtcpSenderReport:
    need = 4 + SENDER_INFO_LENGTH + REPORT_BLOCK_LENGTH * count
    if len(body) < need:
        raise RtcpError(
            f"RTCP SR body is {len(body)} bytes but its SSRC, sender info and {count} report block(s) "
            f"need {need}"
        )
    (ssrc,) = _U32.unpack_from(body, 0)
    ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body, 4)
    return RtcpSenderReport(
        ssrc=ssrc,
        sender_info=SenderInfo(ntp, rtp_ts, packets, octets),
        reports=_parse_report_blocks(body, 4 + SENDER_INFO_LENGTH, count),
        extension=body[need:],
        padding=padding,
    )


def _parse_rr(count: int, body: bytes, padding: bytes) -> RtcpReceiverReport:
    need = 4 + REPORT_BLOCK_LENGTH * count
    if len(body) < need:
        raise RtcpError(
            f"RTCP RR body is {len(body)} bytes but its SSRC and {count} report block(s) need {need}"
        )
    (ssrc,) = _U32.unpack_from(body, 0)
    return RtcpReceiverReport(
        ssrc=ssrc, reports=_parse_report_blocks(body, 4, count), extension=body[need:], padding=padding
    )


def _parse_sdes(count: int, body: bytes, padding: bytes) -> RtcpSourceDescription:
    chunks = []
    pos = 0
    for index in range(1, count + 1):
        if len(body) < pos + 4:
            raise RtcpError(f"RTCP SDES chunk {index} of {count} is truncated before its SSRC")
        (ssrc,) = _U32.unpack_from(body, pos)
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise RtcpError(f"RTCP SDES chunk {index} of {count} has no END item")
            item_type = body[pos]
            if item_type == 0:
                # END, then null octets to the next 32-bit boundary (RFC 3550 §6.5). Non-null octets
                # there are tolerated and written back as nulls.
                pos += 4 - pos % 4
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpError(f"RTCP SDES item of type {item_type} in chunk {index} is truncated")
            length = body[pos + 1]
            items.append(SdesItem(item_type, body[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    if pos != len(body):
        raise RtcpError(f"RTCP SDES has {len(body) - pos} bytes after its {count} chunks")
    return RtcpSourceDescription(tuple(chunks), padding)


def _parse_bye(count: int, body: bytes, padding: bytes) -> RtcpBye:
    need = 4 * count
    if len(body) < need:
        raise RtcpError(f"RTCP BYE body is {len(body)} bytes but its {count} source(s) need {need}")
    sources = struct.unpack_from(f"!{count}I", body, 0)
    reason = None
    if len(body) > need:
        length = body[need]
        end = need + 1 + length
        if end > len(body):
            raise RtcpError(f"RTCP BYE reason is {length} bytes but {len(body) - need - 1} remain")
        reason = body[need + 1 : end]
        # The reason is null-padded to the next 32-bit boundary (RFC 3550 §6.6); more than that is junk.
        if len(body) - end >= 4:
            raise RtcpError(f"RTCP BYE has {len(body) - end} bytes after its reason")
    return RtcpBye(sources, reason, padding)


def parse_rtcp(data: Buffer) -> list[RtcpPacket]:
    """Split and parse an RTCP compound packet (RFC 3550 §6.1); raises :class:`RtcpError`.

    Each individual packet may carry padding (P bit, RFC 3550 §6.4.1), which is stripped from its body
    and kept on the value. Compound packets need not start with SR/RR: reduced-size RTCP (RFC 5506)
    and a lone BYE are accepted.
    """
    data = bytes(data)
    if not data:
        raise RtcpError("RTCP compound packet is empty")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < len(data):
        remaining = len(data) - pos
        if remaining < RTCP_HEADER_LENGTH:
            raise RtcpError(
                f"RTCP packet at offset {pos} is {remaining} bytes, shorter than the 4-byte header"
            )
        first, packet_type, words = _HEADER.unpack_from(data, pos)
        version = first >> 6
        if version != RTCP_VERSION:
            raise RtcpError(f"RTCP packet at offset {pos} has version {version}, expected 2")
        if not MIN_RTCP_PACKET_TYPE <= packet_type <= MAX_RTCP_PACKET_TYPE:
            raise RtcpError(f"RTCP packet at offset {pos} has type {packet_type}, outside 192..223")
        length = (words + 1) * 4
        if length > remaining:
            raise RtcpError(f"RTCP packet at offset {pos} declares {length} bytes but {remaining} remain")
        body = data[pos + RTCP_HEADER_LENGTH : pos + length]
        padding = b""
        if first & 0x20:
            pad = body[-1] if body else 0
            if pad == 0:
                raise RtcpError(f"RTCP packet at offset {pos} has padding length 0")
            if pad % 4 or pad > len(body):
                raise RtcpError(
                    f"RTCP packet at offset {pos} has padding length {pad}, not a multiple of 4 "
                    f"within its {len(body)}-byte body"
                )
            padding = body[-pad:]
            body = body[:-pad]
        count = first & 0x1F
        if packet_type == RtcpPacketType.SR:
            packets.append(_parse_sr(count, body, padding))
        elif packet_type == RtcpPacketType.RR:
            packets.append(_parse_rr(count, body, padding))
        elif packet_type == RtcpPacketType.SDES:
            packets.append(_parse_sdes(count, body, padding))
        elif packet_type == RtcpPacketType.BYE:
            packets.append(_parse_bye(count, body, padding))
        else:
            # The constructor checks the minimum body of the types it knows (APP, feedback, XR).
            packets.append(RtcpOpaquePacket(packet_type, count, body, padding))
        pos += length
    return packets


def serialize_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """One compound packet: the packets' bytes back to back (RFC 3550 §6.1)."""
    return b"".join(packet.serialize() for packet in packets)


# ------------------------------------------------------------------------- report-building helpers


def ntp_from_unix(unix_time: float) -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4: seconds since 1900, 32.32 fixed point) of a Unix time."""
    # Whole seconds and fraction apart: their product with 2**32 as one float would lose ~0.5 µs.
    seconds = math.floor(unix_time)
    fraction = min(round((unix_time - seconds) * (1 << 32)), _MAX_U32)
    return (((seconds + NTP_UNIX_OFFSET) & _MAX_U32) << 32) | fraction


def ntp_middle_32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: an SR's identity in a report block's LSR (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & _MAX_U32


def dlsr_units(delay: float) -> int:
    """A delay in seconds as a DLSR value, units of 1/65536 s (RFC 3550 §6.4.1), clamped to 32 bits."""
    return min(max(round(delay * 65536), 0), _MAX_U32)


def fraction_lost(expected_interval: int, received_interval: int) -> int:
    """Loss since the last report as a fixed-point fraction of 256 (RFC 3550 §6.4.1, §A.3).

    Duplicates can make ``received_interval`` exceed ``expected_interval``: that is no loss (0). Losing
    everything would be 256, which does not fit the octet: it is reported as 255.
    """
    lost = expected_interval - received_interval
    if expected_interval <= 0 or lost <= 0:
        return 0
    return min((lost << 8) // expected_interval, 255)


def cumulative_lost(expected: int, received: int) -> int:
    """Packets lost since the start (RFC 3550 §A.3), clamped to the signed 24-bit field (§6.4.1).

    Negative when duplicates arrived.
    """
    return min(max(expected - received, MIN_PACKETS_LOST), MAX_PACKETS_LOST)


def build_report_block(
    *,
    ssrc: int,
    extended_highest_sequence: int,
    expected: int,
    received: int,
    expected_prior: int,
    received_prior: int,
    jitter: int,
    last_sr_ntp: int | None,
    last_sr_arrival: float | None,
    now: float,
) -> ReportBlock:
    """A report block from a receiver's counters (RFC 3550 §6.4.1, computed as in §A.3).

    ``expected``/``received`` count from the start of the stream; the ``*_prior`` values are the same
    counters when the previous report was built. ``jitter`` is the §A.8 estimate in timestamp units.
    ``last_sr_ntp`` is the NTP timestamp of the last SR received from ``ssrc`` and ``last_sr_arrival``
    when it arrived on the caller's clock (the same clock as ``now``); both None when no SR came yet,
    which makes LSR and DLSR zero.
    """
    lsr = dlsr = 0
    if last_sr_ntp is not None and last_sr_arrival is not None:
        lsr = ntp_middle_32(last_sr_ntp)
        dlsr = dlsr_units(now - last_sr_arrival)
    return ReportBlock(
        ssrc=ssrc,
        fraction_lost=fraction_lost(expected - expected_prior, received - received_prior),
        packets_lost=cumulative_lost(expected, received),
        highest_sequence=extended_highest_sequence & _MAX_U32,
        jitter=min(max(jitter, 0), _MAX_U32),
        lsr=lsr,
        dlsr=dlsr,
    )
