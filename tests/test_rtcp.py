"""RTCP compound packets (RFC 3550 §6) over the aiortc fixtures, crafted errors and Hypothesis.

Header oracle values come from tests/vectors/aiortc-rtp/EXPECTED.txt (an independent decoder); body
field values were read off the fixtures' bytes by hand (offsets in the comments).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtp.rtcp import (
    ReportBlock,
    RtcpBye,
    RtcpError,
    RtcpOpaquePacket,
    RtcpPacket,
    RtcpPacketType,
    RtcpReceiverReport,
    RtcpSenderReport,
    RtcpSourceDescription,
    SdesChunk,
    SdesItem,
    SdesItemType,
    SenderInfo,
    build_report_block,
    cumulative_lost,
    dlsr_units,
    fraction_lost,
    ntp_from_unix,
    ntp_middle_32,
    parse_rtcp,
    serialize_rtcp,
)

VECTORS = Path(__file__).parent / "vectors" / "aiortc-rtp"


def fixture(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def _manifest() -> dict[str, tuple[int, list[dict[str, int]]]]:
    """EXPECTED.txt's RTCP lines as {file: (total length, [header fields of each packet])}."""
    rows = {}
    for line in (VECTORS / "EXPECTED.txt").read_text().splitlines():
        if not line.startswith("rtcp"):
            continue
        name, _, rest = line.partition(": ")
        total = int(re.search(r"total=(\d+)", rest).group(1))  # type: ignore[union-attr]
        headers = [
            {
                key.replace("RC/FMT", "count"): int(value)
                for key, value in re.findall(r"([\w/]+)=(\d+)", group)
            }
            for group in re.findall(r"\[([^\]]*)\]", rest)
        ]
        rows[name] = (total, headers)
    return rows


MANIFEST = _manifest()
INVALID = {
    "rtcp_bye_invalid.bin": "RTCP BYE body is 4 bytes but its 17 source(s) need 68",
    "rtcp_psfb_invalid.bin": "RTCP PSFB body is 4 bytes, shorter than 8",
    "rtcp_rr_invalid.bin": "RTCP RR body is 4 bytes but its SSRC and 1 report block(s) need 28",
    "rtcp_rtpfb_invalid.bin": "RTCP RTPFB body is 4 bytes, shorter than 8",
    "rtcp_sdes_item_truncated.bin": "RTCP SDES item of type 71 in chunk 1 is truncated",
    "rtcp_sdes_source_truncated.bin": "RTCP SDES chunk 1 of 1 is truncated before its SSRC",
    "rtcp_sr_invalid.bin": "RTCP SR body is 4 bytes but its SSRC, sender info and 1 report block(s) need 48",
}
VALID = sorted(set(MANIFEST) - set(INVALID))


def test_manifest_covers_all_fifteen_rtcp_fixtures() -> None:
    assert len(MANIFEST) == 15
    assert len(VALID) == 8
    assert set(INVALID) <= set(MANIFEST)


@pytest.mark.parametrize("name", VALID)
def test_valid_fixtures_match_headers_and_round_trip(name: str) -> None:
    data = fixture(name)
    total, headers = MANIFEST[name]
    packets = parse_rtcp(data)
    assert len(data) == total
    assert len(packets) == len(headers)
    for packet, want in zip(packets, headers, strict=True):
        assert want["V"] == 2
        assert packet.packet_type == want["PT"]
        assert len(packet.serialize()) == 4 * (want["len_words"] + 1)
        assert bool(packet.padding) == (want["P"] == 1)
        if isinstance(packet, RtcpSenderReport | RtcpReceiverReport):
            assert len(packet.reports) == want["count"]
        elif isinstance(packet, RtcpSourceDescription):
            assert len(packet.chunks) == want["count"]
        elif isinstance(packet, RtcpBye):
            assert len(packet.sources) == want["count"]
        else:
            assert packet.count == want["count"]
    assert serialize_rtcp(packets) == data


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_fixtures_raise_exact_messages(name: str) -> None:
    with pytest.raises(RtcpError) as info:
        parse_rtcp(fixture(name))
    assert str(info.value) == INVALID[name]


def test_sr_fields() -> None:
    (sr,) = parse_rtcp(fixture("rtcp_sr.bin"))
    assert sr == RtcpSenderReport(
        ssrc=0x6D2453EA,  # bytes 4-7
        sender_info=SenderInfo(
            ntp_timestamp=0xDE46475B151A005C,  # bytes 8-15
            rtp_timestamp=0x66A8DD3E,
            packet_count=269,
            octet_count=13557,
        ),
        reports=(
            ReportBlock(
                ssrc=0x8EF891ED,  # bytes 28-31
                fraction_lost=0,
                packets_lost=0,
                highest_sequence=246,
                jitter=127,
                lsr=0,
                dlsr=0,
            ),
        ),
    )


def test_rr_fields() -> None:
    (rr,) = parse_rtcp(fixture("rtcp_rr.bin"))
    assert rr == RtcpReceiverReport(
        ssrc=0x30B68407,
        reports=(
            ReportBlock(
                ssrc=0x479437AF,
                fraction_lost=0,
                packets_lost=0,
                highest_sequence=630,
                jitter=1906,
                lsr=0,
                dlsr=0,
            ),
        ),
    )


def test_sdes_fields() -> None:
    (sdes,) = parse_rtcp(fixture("rtcp_sdes.bin"))
    assert sdes == RtcpSourceDescription(
        chunks=(
            SdesChunk(0x6D2453EA, (SdesItem(SdesItemType.CNAME, b"{63f459ea-41fe-4474-9d33-9707c9ee79d1}"),)),
        )
    )


def test_bye_fields() -> None:
    assert parse_rtcp(fixture("rtcp_bye.bin")) == [RtcpBye(sources=(0xAE528B43,))]
    assert parse_rtcp(fixture("rtcp_bye_no_sources.bin")) == [RtcpBye()]


def test_bye_padding_is_stripped_per_rfc3550() -> None:
    # P=1, length 1 word: the body's last octet (4) says all four body octets are padding (RFC 3550
    # §6.4.1), which leaves a BYE without sources or reason.
    data = fixture("rtcp_bye_padding.bin")
    (bye,) = parse_rtcp(data)
    assert bye == RtcpBye(sources=(), reason=None, padding=b"\x04\x04\x04\x04")
    assert bye.serialize() == data


def test_feedback_packets_are_kept_opaque() -> None:
    (pli,) = parse_rtcp(fixture("rtcp_psfb_pli.bin"))
    assert pli == RtcpOpaquePacket(
        packet_type=RtcpPacketType.PSFB, count=1, body=bytes.fromhex("5450626523013fb9")
    )
    (nack,) = parse_rtcp(fixture("rtcp_rtpfb.bin"))
    assert isinstance(nack, RtcpOpaquePacket)
    assert (nack.packet_type, nack.count, len(nack.body)) == (205, 1, 48)
    assert nack.body[:8] == bytes.fromhex("8b4477bbf71deee4")  # sender SSRC, media SSRC


def test_compound_of_all_fixture_packets_round_trips() -> None:
    data = b"".join(fixture(name) for name in VALID)
    packets = parse_rtcp(data)
    assert len(packets) == len(VALID)
    assert serialize_rtcp(packets) == data
    assert serialize_rtcp(tuple(packets)) == data


# ------------------------------------------------------------------------------- crafted errors


def head(first: int, packet_type: int, words: int) -> bytes:
    return struct.pack("!BBH", first, packet_type, words)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTCP compound packet is empty"),
        (b"\x80\xc8\x00", "RTCP packet at offset 0 is 3 bytes, shorter than the 4-byte header"),
        (
            fixture("rtcp_bye.bin") + b"\x81",
            "RTCP packet at offset 8 is 1 bytes, shorter than the 4-byte header",
        ),
        (head(0x40, 200, 0), "RTCP packet at offset 0 has version 1, expected 2"),
        (fixture("rtcp_bye.bin") + head(0xC0, 203, 0), "RTCP packet at offset 8 has version 3, expected 2"),
        (head(0x80, 191, 0), "RTCP packet at offset 0 has type 191, outside 192..223"),
        (head(0x80, 224, 0), "RTCP packet at offset 0 has type 224, outside 192..223"),
        (head(0x80, 203, 1), "RTCP packet at offset 0 declares 8 bytes but 4 remain"),
        (head(0x80, 203, 2) + bytes(7), "RTCP packet at offset 0 declares 12 bytes but 11 remain"),
        (head(0xA0, 203, 0), "RTCP packet at offset 0 has padding length 0"),
        (head(0xA0, 203, 1) + b"\x00\x00\x00\x00", "RTCP packet at offset 0 has padding length 0"),
        (
            head(0xA0, 203, 1) + b"\x00\x00\x00\x03",
            "RTCP packet at offset 0 has padding length 3, not a multiple of 4 within its 4-byte body",
        ),
        (
            head(0xA0, 203, 1) + b"\x00\x00\x00\x08",
            "RTCP packet at offset 0 has padding length 8, not a multiple of 4 within its 4-byte body",
        ),
        (
            head(0xA1, 203, 2) + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x08",
            "RTCP BYE body is 0 bytes but its 1 source(s) need 4",
        ),
        (head(0x81, 202, 1) + b"\x00\x00\x00\x01", "RTCP SDES chunk 1 of 1 has no END item"),
        (
            head(0x81, 202, 2) + b"\x00\x00\x00\x01" + b"\x01",
            "RTCP packet at offset 0 declares 12 bytes but 9 remain",
        ),
        (
            head(0x81, 202, 2) + b"\x00\x00\x00\x01" + b"\x01\x03abc",
            "RTCP SDES item of type 1 in chunk 1 is truncated",
        ),
        (
            head(0x81, 202, 2) + b"\x00\x00\x00\x01" + b"\x01\x02ab",
            "RTCP SDES chunk 1 of 1 has no END item",
        ),
        (
            head(0x81, 202, 3) + b"\x00\x00\x00\x01" + bytes(4) + b"\x00\x00\x00\x02",
            "RTCP SDES has 4 bytes after its 1 chunks",
        ),
        (
            head(0x82, 202, 2) + b"\x00\x00\x00\x01" + bytes(4),
            "RTCP SDES chunk 2 of 2 is truncated before its SSRC",
        ),
        (head(0x80, 203, 1) + b"\x05ab\x00", "RTCP BYE reason is 5 bytes but 3 remain"),
        (head(0x80, 203, 2) + b"\x01a\x00\x00" + bytes(4), "RTCP BYE has 6 bytes after its reason"),
        (head(0x80, 204, 1) + b"\x00\x00\x00\x01", "RTCP APP body is 4 bytes, shorter than 8"),
        (head(0x80, 207, 0), "RTCP XR body is 0 bytes, shorter than 4"),
    ],
)
def test_crafted_errors_have_exact_messages(data: bytes, message: str) -> None:
    with pytest.raises(RtcpError) as info:
        parse_rtcp(data)
    assert str(info.value) == message


def test_rtcp_error_is_a_value_error() -> None:
    assert issubclass(RtcpError, ValueError)


def test_bye_reason_is_kept_and_null_padded() -> None:
    bye = RtcpBye(sources=(1, 2), reason=b"done")
    data = bye.serialize()
    assert data == head(0x82, 203, 4) + b"\x00\x00\x00\x01\x00\x00\x00\x02\x04done\x00\x00\x00"
    assert parse_rtcp(data) == [bye]
    empty = RtcpBye(reason=b"")
    assert empty.serialize() == head(0x80, 203, 1) + b"\x00\x00\x00\x00"
    assert parse_rtcp(empty.serialize()) == [empty]


def test_unknown_and_app_packets_are_opaque() -> None:
    app = head(0x85, 204, 3) + b"\x00\x00\x00\x09" + b"NAME" + b"data"
    ij = head(0x80, 195, 1) + b"\x00\x00\x01\x00"  # RFC 5450 IJ: a type this module has no class for
    packets = parse_rtcp(app + ij)
    assert packets == [
        RtcpOpaquePacket(204, 5, b"\x00\x00\x00\x09NAMEdata"),
        RtcpOpaquePacket(195, 0, b"\x00\x00\x01\x00"),
    ]
    assert serialize_rtcp(packets) == app + ij


def test_sdes_layout_of_items_and_null_termination() -> None:
    chunk_a = SdesChunk(1, (SdesItem(SdesItemType.CNAME, b"ab"), SdesItem(SdesItemType.TOOL, b"")))
    chunk_b = SdesChunk(2, ())
    sdes = RtcpSourceDescription((chunk_a, chunk_b))
    data = sdes.serialize()
    # Chunk a: SSRC, CNAME "ab", TOOL "", END + pad to 12 bytes; chunk b: SSRC + four nulls.
    assert data == (
        head(0x82, 202, 5)
        + b"\x00\x00\x00\x01"
        + b"\x01\x02ab\x06\x00\x00\x00"
        + b"\x00\x00\x00\x02"
        + bytes(4)
    )
    assert parse_rtcp(data) == [sdes]


def test_sdes_non_null_alignment_octets_are_tolerated() -> None:
    data = head(0x81, 202, 2) + b"\x00\x00\x00\x01" + b"\x00\xff\xff\xff"
    assert parse_rtcp(data) == [RtcpSourceDescription((SdesChunk(1, ()),))]


def test_sr_and_rr_keep_profile_extensions_and_padding() -> None:
    block = ReportBlock(7, 25, -3, 70000, 12, 0x12345678, 65536)
    rr = RtcpReceiverReport(9, (block,), extension=b"EXT!", padding=b"\x00\x00\x00\x00\x00\x00\x00\x08")
    data = rr.serialize()
    assert data[:4] == head(0xA1, 201, 10)
    assert data[4 + 4 + 24 : 4 + 4 + 24 + 4] == b"EXT!"
    assert parse_rtcp(data) == [rr]
    # packets_lost is 24-bit two's complement on the wire.
    assert block.serialize()[4:8] == b"\x19\xff\xff\xfd"


# ------------------------------------------------------------------------ construction checks


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: ReportBlock(2**32, 0, 0, 0, 0, 0, 0),
            "RTCP report block SSRC 4294967296 is outside 0..4294967295",
        ),
        (lambda: ReportBlock(0, 256, 0, 0, 0, 0, 0), "RTCP fraction lost 256 is outside 0..255"),
        (
            lambda: ReportBlock(0, 0, 0x800000, 0, 0, 0, 0),
            "RTCP packets lost 8388608 is outside -8388608..8388607",
        ),
        (
            lambda: ReportBlock(0, 0, -0x800001, 0, 0, 0, 0),
            "RTCP packets lost -8388609 is outside -8388608..8388607",
        ),
        (lambda: ReportBlock(0, 0, 0, 0, -1, 0, 0), "RTCP jitter -1 is outside 0..4294967295"),
        (lambda: SenderInfo(2**64, 0, 0, 0), f"RTCP NTP timestamp {2**64} is outside 64 bits"),
        (lambda: SenderInfo(0, 0, 2**32, 0), "RTCP packet count 4294967296 is outside 0..4294967295"),
        (
            lambda: RtcpReceiverReport(0, (ReportBlock(0, 0, 0, 0, 0, 0, 0),) * 32),
            "RTCP RR report count 32 is more than 31",
        ),
        (
            lambda: RtcpReceiverReport(0, extension=b"abc"),
            "RTCP RR extension is 3 bytes, not a multiple of 4",
        ),
        (
            lambda: RtcpSenderReport(0, SenderInfo(0, 0, 0, 0), extension=b"a"),
            "RTCP SR extension is 1 bytes, not a multiple of 4",
        ),
        (lambda: RtcpBye(tuple(range(32))), "RTCP BYE source count 32 is more than 31"),
        (lambda: RtcpBye(reason=bytes(256)), "RTCP BYE reason is 256 bytes, more than 255"),
        (lambda: RtcpBye(padding=b"\x00\x00\x04"), "RTCP padding is 3 bytes, not a multiple of 4"),
        (lambda: RtcpBye(padding=b"\x00\x00\x00\x08"), "RTCP padding is 4 bytes but its last octet counts 8"),
        (lambda: SdesItem(0, b""), "RTCP SDES item type 0 is outside 1..255"),
        (lambda: SdesItem(1, bytes(256)), "RTCP SDES item value is 256 bytes, more than 255"),
        (lambda: RtcpSourceDescription((SdesChunk(0),) * 32), "RTCP SDES chunk count 32 is more than 31"),
        (
            lambda: RtcpOpaquePacket(200, 0, b""),
            "RTCP packet type 200 has its own class, not an opaque packet",
        ),
        (lambda: RtcpOpaquePacket(100, 0, b""), "RTCP packet type 100 is outside 192..223"),
        (lambda: RtcpOpaquePacket(205, 32, bytes(8)), "RTCP count 32 is outside 0..31"),
        (lambda: RtcpOpaquePacket(205, 1, bytes(9)), "RTCP packet body is 9 bytes, not a multiple of 4"),
        (
            lambda: RtcpOpaquePacket(195, 0, bytes(0x10000 * 4)),
            "RTCP packet would be 262148 bytes, more than the length field allows",
        ),
    ],
)
def test_values_validate_on_construction(build: object, message: str) -> None:
    with pytest.raises(RtcpError) as info:
        build()  # type: ignore[operator]
    assert str(info.value) == message


def test_largest_packet_the_length_field_allows() -> None:
    body = bytes(0xFFFF * 4)
    packet = RtcpOpaquePacket(195, 0, body)
    data = packet.serialize()
    assert data[2:4] == b"\xff\xff"
    assert parse_rtcp(data) == [packet]


# ---------------------------------------------------------------------- report-building helpers


def test_ntp_from_unix() -> None:
    assert ntp_from_unix(0.0) == 2_208_988_800 << 32
    assert ntp_from_unix(1.5) == ((2_208_988_801) << 32) | (1 << 31)
    # 2036-02-07 06:28:16 UTC is where the NTP era rolls over: the seconds wrap to 0.
    assert ntp_from_unix(2**32 - 2_208_988_800 + 0.25) == 1 << 30
    # 2**-22 s is 1024 NTP units: exact here, lost if the whole NTP value were one float product.
    ntp = ntp_from_unix(1_700_000_000 + 2**-22)
    assert ntp == ((1_700_000_000 + 2_208_988_800) << 32) | 1024


def test_lsr_and_dlsr() -> None:
    assert ntp_middle_32(0xDE46475B151A005C) == 0x475B151A
    assert dlsr_units(1.0) == 65536
    assert dlsr_units(0.5) == 32768
    assert dlsr_units(-1.0) == 0
    assert dlsr_units(1e9) == 2**32 - 1


@pytest.mark.parametrize(
    ("expected", "received", "fraction"),
    [(100, 100, 0), (100, 75, 64), (100, 0, 255), (0, 0, 0), (10, 12, 0), (4, 3, 64), (3, 1, 170)],
)
def test_fraction_lost(expected: int, received: int, fraction: int) -> None:
    assert fraction_lost(expected, received) == fraction


def test_cumulative_lost_is_clamped_to_24_bits() -> None:
    assert cumulative_lost(100, 90) == 10
    assert cumulative_lost(100, 103) == -3
    assert cumulative_lost(2**30, 0) == 0x7FFFFF
    assert cumulative_lost(0, 2**30) == -0x800000


def test_build_report_block_and_an_rr_from_it() -> None:
    block = build_report_block(
        ssrc=0xCAFE,
        extended_highest_sequence=65536 + 10,
        expected=1000,
        received=990,
        expected_prior=900,
        received_prior=895,
        jitter=37,
        last_sr_ntp=0xDE46475B151A005C,
        last_sr_arrival=10.0,
        now=10.25,
    )
    assert block == ReportBlock(
        ssrc=0xCAFE,
        fraction_lost=(5 << 8) // 100,
        packets_lost=10,
        highest_sequence=65546,
        jitter=37,
        lsr=0x475B151A,
        dlsr=16384,
    )
    no_sr = build_report_block(
        ssrc=1,
        extended_highest_sequence=5,
        expected=5,
        received=5,
        expected_prior=0,
        received_prior=0,
        jitter=0,
        last_sr_ntp=None,
        last_sr_arrival=None,
        now=3.0,
    )
    assert (no_sr.lsr, no_sr.dlsr, no_sr.fraction_lost, no_sr.packets_lost) == (0, 0, 0, 0)
    rr = RtcpReceiverReport(ssrc=0xBEEF, reports=(block, no_sr))
    sr = RtcpSenderReport(
        ssrc=0xBEEF,
        sender_info=SenderInfo(ntp_from_unix(1_700_000_000.0), 160_000, 1000, 160_000),
        reports=(block,),
    )
    sdes = RtcpSourceDescription((SdesChunk(0xBEEF, (SdesItem(SdesItemType.CNAME, b"enx-voice@relay"),)),))
    compound = serialize_rtcp([sr, sdes, rr, RtcpBye((0xBEEF,), b"hangup")])
    assert parse_rtcp(compound) == [sr, sdes, rr, RtcpBye((0xBEEF,), b"hangup")]


# ---------------------------------------------------------------------------------------- Hypothesis

u32 = st.integers(0, 2**32 - 1)


@st.composite
def paddings(draw: st.DrawFn) -> bytes:
    words = draw(st.integers(0, 3))
    if not words:
        return b""
    return draw(st.binary(min_size=4 * words - 1, max_size=4 * words - 1)) + bytes((4 * words,))


report_blocks = st.builds(
    ReportBlock, u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), u32, u32, u32, u32
)
words = st.integers(0, 4).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
sender_reports = st.builds(
    RtcpSenderReport,
    u32,
    st.builds(SenderInfo, st.integers(0, 2**64 - 1), u32, u32, u32),
    st.lists(report_blocks, max_size=4).map(tuple),
    words,
    paddings(),
)
receiver_reports = st.builds(
    RtcpReceiverReport, u32, st.lists(report_blocks, max_size=4).map(tuple), words, paddings()
)
sdes_items = st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=40))
sdes_packets = st.builds(
    RtcpSourceDescription,
    st.lists(st.builds(SdesChunk, u32, st.lists(sdes_items, max_size=4).map(tuple)), max_size=4).map(tuple),
    paddings(),
)
byes = st.builds(
    RtcpBye, st.lists(u32, max_size=5).map(tuple), st.none() | st.binary(max_size=40), paddings()
)
opaque = st.builds(
    RtcpOpaquePacket,
    st.sampled_from([195, 204, 205, 206, 207, 210, 223]),
    st.integers(0, 31),
    st.integers(2, 6).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    paddings(),
)
rtcp_packets = st.one_of(sender_reports, receiver_reports, sdes_packets, byes, opaque)


@given(st.lists(rtcp_packets, min_size=1, max_size=5))
def test_generated_compound_packets_round_trip(packets: list[RtcpPacket]) -> None:
    data = serialize_rtcp(packets)
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == packets
    assert serialize_rtcp(parse_rtcp(data)) == data


def assert_stable(packets: list[RtcpPacket]) -> None:
    """Whatever parsed writes back to bytes that parse to the same values.

    (Not always the same bytes: SDES alignment octets and BYE reason padding are written as nulls.)
    """
    assert packets
    assert parse_rtcp(serialize_rtcp(packets)) == packets


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_rtcp_error(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except RtcpError:
        return
    assert_stable(packets)


@given(st.lists(rtcp_packets, min_size=1, max_size=3), st.data())
def test_corrupted_packets_raise_only_rtcp_error(packets: list[RtcpPacket], data: st.DataObject) -> None:
    wire = bytearray(serialize_rtcp(packets))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    try:
        packets = parse_rtcp(bytes(wire[:cut]))
    except RtcpError:
        return
    assert_stable(packets)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_every_truncation_of_a_fixture_raises_only_rtcp_error(name: str) -> None:
    data = fixture(name)
    for end in range(len(data)):
        try:
            packets = parse_rtcp(data[:end])
        except RtcpError:
            continue
        assert serialize_rtcp(packets) == data[:end]
