"""RTP packets (RFC 3550 §5.1), RFC 5761 demux, peek helpers, RFC 4733 payloads and rtp.seqnum.

Oracle values come from tests/vectors/aiortc-rtp/EXPECTED.txt (an independent decoder's reading of the
aiortc fixtures, see its LICENSE-NOTE.md): every fixture parses to those fields and serializes back to the
same bytes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtp.packet import (
    DTMF_KEYS,
    RtpError,
    RtpHeaderExtension,
    RtpPacket,
    TelephoneEvent,
    event_for_key,
    is_rtcp,
    key_for_event,
    make_padding,
    parse_rtp,
    parse_telephone_event,
    peek_marker,
    peek_payload_type,
    peek_sequence_number,
    peek_ssrc,
    peek_timestamp,
)
from rtp.seqnum import seq_add, seq_diff, seq_gt, seq_sub, ts_add, ts_diff, ts_gt, ts_sub

VECTORS = Path(__file__).parent / "vectors" / "aiortc-rtp"


def _manifest() -> dict[str, dict[str, str]]:
    """EXPECTED.txt's RTP lines as {file: {field: value}}."""
    rows: dict[str, dict[str, str]] = {}
    for line in (VECTORS / "EXPECTED.txt").read_text().splitlines():
        if not line.startswith("rtp"):
            continue
        name, _, rest = line.partition(": ")
        fields = dict(re.findall(r"(\w+)=(\[[^\]]*\]|\([^)]*\)|\S+)", rest))
        rfc4733 = re.search(r"rfc4733\(([^)]*)\)", rest)
        if rfc4733:
            fields.update({f"te_{k}": v for k, v in re.findall(r"(\w+)=(\w+)", rfc4733.group(1))})
        rows[name] = fields
    return rows


MANIFEST = _manifest()
RTP_FIXTURES = sorted(MANIFEST)


def fixture(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def test_manifest_lists_the_six_rtp_fixtures() -> None:
    assert RTP_FIXTURES == [
        "rtp.bin",
        "rtp_dtmf.bin",
        "rtp_only_padding.bin",
        "rtp_only_padding_with_header_extensions.bin",
        "rtp_with_csrc.bin",
        "rtp_with_sdes_mid.bin",
    ]


def test_vectors_match_their_checksums() -> None:
    sums = (VECTORS / "SHA256SUMS").read_text().split("\n")
    checked = 0
    for line in filter(None, sums):
        digest, name = line.split()
        assert hashlib.sha256(fixture(name)).hexdigest() == digest, name
        checked += 1
    assert checked == 21


@pytest.mark.parametrize("name", RTP_FIXTURES)
def test_fixture_fields_match_the_independent_decoder(name: str) -> None:
    data = fixture(name)
    want = MANIFEST[name]
    packet = parse_rtp(data)
    assert len(data) == int(want["len"])
    assert packet.version == int(want["V"])
    assert (packet.padding_length > 0) == (want["P"] == "1")
    assert (packet.extension is not None) == (want["X"] == "1")
    assert len(packet.csrc) == int(want["CC"])
    assert packet.marker == (want["M"] == "1")
    assert packet.payload_type == int(want["PT"])
    assert packet.sequence_number == int(want["seq"])
    assert packet.timestamp == int(want["ts"])
    assert packet.ssrc == int(want["ssrc"], 16)
    assert list(packet.csrc) == [int(x) for x in want["csrc"].strip("[]").split(",") if x.strip()]
    assert packet.padding_length == int(want["padding"])
    assert len(packet.payload) == int(want["payload_len"])
    if packet.extension is not None:
        assert packet.extension.profile == int(want["ext_profile"], 16)
        assert len(packet.extension.data) == 4 * int(want["ext_len_words"])
    else:
        assert "ext_profile" not in want
    assert packet.serialize() == data


def test_rtp_bin_payload_and_header() -> None:
    packet = parse_rtp(fixture("rtp.bin"))
    assert packet == RtpPacket(
        payload_type=0, sequence_number=15743, timestamp=3937035252, ssrc=0xF01B40E9, payload=b"\xff" * 160
    )


def test_padding_bytes_are_kept_as_sent() -> None:
    # rtp_only_padding.bin pads with non-zero octets; they come back unchanged.
    data = fixture("rtp_only_padding.bin")
    packet = parse_rtp(data)
    assert packet.payload == b""
    assert packet.padding == data[12:]
    assert packet.padding[-1] == 224
    with_ext = parse_rtp(fixture("rtp_only_padding_with_header_extensions.bin"))
    assert with_ext.extension == RtpHeaderExtension(0xBEDE, bytes.fromhex("22f1cc8c"))
    assert with_ext.padding == make_padding(224)


def test_csrc_and_sdes_mid_extension() -> None:
    packet = parse_rtp(fixture("rtp_with_csrc.bin"))
    assert packet.csrc == (0xABCDEF01, 0xDEADBEEF)
    mid = parse_rtp(fixture("rtp_with_sdes_mid.bin"))
    # RFC 8285 §4.2 one-byte element: ID 9, length 1 (L=0 means one byte), value "0"; then zero padding.
    assert mid.extension == RtpHeaderExtension(0xBEDE, b"\x90\x30\x00\x00")


def test_rtp_dtmf_payload_is_the_documented_event() -> None:
    want = MANIFEST["rtp_dtmf.bin"]
    packet = parse_rtp(fixture("rtp_dtmf.bin"))
    event = parse_telephone_event(packet.payload)
    assert event == TelephoneEvent(
        event=int(want["te_event"]),
        end=want["te_E"] == "1",
        volume=int(want["te_volume"]),
        duration=int(want["te_duration"]),
        reserved=want["te_R"] == "1",
    )
    assert event.key == "1"
    assert event.serialize() == packet.payload


# ------------------------------------------------------------------------------------------ errors


def header(first: int = 0x80, second: int = 0, rest: bytes = bytes(10)) -> bytes:
    return bytes((first, second)) + rest


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet is 0 bytes, shorter than the 12-byte header"),
        (bytes(11), "RTP packet is 11 bytes, shorter than the 12-byte header"),
        (header(first=0x40), "RTP version is 1, expected 2"),
        (header(first=0x00), "RTP version is 0, expected 2"),
        (header(first=0xC0), "RTP version is 3, expected 2"),
        (header(first=0x82) + bytes(7), "RTP packet is 19 bytes, too short for 2 CSRC identifiers"),
        (header(first=0x90) + bytes(3), "RTP packet is 15 bytes, too short for its header extension header"),
        (
            header(first=0x90) + b"\xbe\xde\x00\x02" + bytes(7),
            "RTP header extension declares 8 bytes of data but 7 remain",
        ),
        (header(first=0xA0) + b"\x01\x00", "RTP padding length is 0"),
        (header(first=0xA0), "RTP padding length is 0"),
        (header(first=0xA0) + b"\x00\x03", "RTP padding length 3 exceeds the 2 bytes after the header"),
        (
            header(first=0xB1) + bytes(4) + b"\xbe\xde\x00\x00" + b"\x05",
            "RTP padding length 5 exceeds the 1 bytes after the header",
        ),
    ],
)
def test_parse_errors_have_exact_messages(data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as info:
        parse_rtp(data)
    assert str(info.value) == message


def test_padding_may_fill_everything_after_the_header() -> None:
    packet = parse_rtp(header(first=0xA0) + b"\x00\x02")
    assert packet.payload == b"" and packet.padding == b"\x00\x02"


def test_rtp_error_is_a_value_error() -> None:
    assert issubclass(RtpError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"payload_type": 128}, "RTP payload type 128 is outside 0..127"),
        ({"payload_type": -1}, "RTP payload type -1 is outside 0..127"),
        ({"sequence_number": 65536}, "RTP sequence number 65536 is outside 0..65535"),
        ({"timestamp": 2**32}, "RTP timestamp 4294967296 is outside 0..4294967295"),
        ({"ssrc": -1}, "RTP SSRC -1 is outside 0..4294967295"),
        ({"csrc": tuple(range(16))}, "RTP packet has 16 CSRC identifiers, more than 15"),
        ({"csrc": (2**32,)}, "RTP CSRC 4294967296 is outside 0..4294967295"),
        ({"padding": b"\x00\x03"}, "RTP padding is 2 bytes but its last octet counts 3"),
        ({"padding": b"\x00"}, "RTP padding is 1 bytes but its last octet counts 0"),
        ({"padding": bytes(255) + b"\x00"}, "RTP padding is 256 bytes, more than 255"),
    ],
)
def test_packet_values_validate_on_construction(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"payload_type": 0, "sequence_number": 0, "timestamp": 0, "ssrc": 0}
    fields.update(kwargs)
    with pytest.raises(RtpError) as info:
        RtpPacket(**fields)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("profile", "data", "message"),
    [
        (0x10000, b"", "RTP header extension profile 65536 is outside 0..65535"),
        (0xBEDE, b"\x01", "RTP header extension data is 1 bytes, not a multiple of 4"),
        (0xBEDE, bytes(0x10000 * 4), "RTP header extension data is 262144 bytes, more than 262140"),
    ],
)
def test_extension_values_validate(profile: int, data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as info:
        RtpHeaderExtension(profile, data)
    assert str(info.value) == message


def test_make_padding() -> None:
    assert make_padding(1) == b"\x01"
    assert make_padding(4) == b"\x00\x00\x00\x04"
    for bad in (0, 256):
        with pytest.raises(RtpError) as info:
            make_padding(bad)
        assert str(info.value) == f"RTP padding length {bad} is outside 1..255"


def test_serialize_builds_every_header_bit() -> None:
    packet = RtpPacket(
        payload_type=96,
        sequence_number=0xFFFF,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        payload=b"abc",
        marker=True,
        csrc=(7,),
        extension=RtpHeaderExtension(0x1000, b"wxyz"),
        padding=make_padding(3),
    )
    data = packet.serialize()
    assert data == (
        b"\xb1\xe0\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01\x00\x00\x00\x07\x10\x00\x00\x01wxyzabc\x00\x00\x03"
    )
    assert parse_rtp(data) == packet


# --------------------------------------------------------------------------------- demux and peeks


@pytest.mark.parametrize("name", sorted(p.name for p in VECTORS.glob("*.bin")))
def test_is_rtcp_on_fixtures(name: str) -> None:
    assert is_rtcp(fixture(name)) == name.startswith("rtcp")


@pytest.mark.parametrize(
    ("second", "expected"),
    [(191, False), (192, True), (200, True), (223, True), (224, False), (0, False), (0xE5, False)],
)
def test_is_rtcp_range_of_rfc5761(second: int, expected: bool) -> None:
    assert is_rtcp(bytes((0x80, second, 0, 1))) is expected


def test_is_rtcp_on_too_short_data() -> None:
    assert is_rtcp(b"") is False
    assert is_rtcp(b"\x80") is False


@pytest.mark.parametrize("name", RTP_FIXTURES)
def test_peeks_agree_with_the_parser(name: str) -> None:
    data = fixture(name)
    packet = parse_rtp(data)
    for buffer in (data, bytearray(data), memoryview(data)):
        assert peek_payload_type(buffer) == packet.payload_type
        assert peek_marker(buffer) == packet.marker
        assert peek_sequence_number(buffer) == packet.sequence_number
        assert peek_timestamp(buffer) == packet.timestamp
        assert peek_ssrc(buffer) == packet.ssrc


def test_peeks_check_only_the_length() -> None:
    version_0 = bytes((0x00, 0x85, 0x12, 0x34, 0, 0, 0, 9, 0xDE, 0xAD, 0xBE, 0xEF))
    assert peek_payload_type(version_0) == 5
    assert peek_marker(version_0) is True
    assert peek_sequence_number(version_0) == 0x1234
    assert peek_timestamp(version_0) == 9
    assert peek_ssrc(version_0) == 0xDEADBEEF
    for peek in (peek_payload_type, peek_marker, peek_sequence_number, peek_timestamp, peek_ssrc):
        with pytest.raises(RtpError) as info:
            peek(version_0[:11])
        assert str(info.value) == "RTP packet is 11 bytes, shorter than the 12-byte header"


# ------------------------------------------------------------------------------ telephone-event


def test_dtmf_keys_map_to_rfc4733_event_codes() -> None:
    assert [key_for_event(code) for code in range(16)] == list("0123456789*#ABCD")
    assert key_for_event(16) is None
    assert key_for_event(255) is None
    assert [event_for_key(key) for key in DTMF_KEYS] == list(range(16))
    for bad in ("a", "E", "", "12", " "):
        with pytest.raises(RtpError) as info:
            event_for_key(bad)
        assert str(info.value) == f"{bad!r} is not a DTMF key (one of 0123456789*#ABCD)"


def test_telephone_event_bits() -> None:
    event = parse_telephone_event(b"\x0b\xff\xff\xff")
    assert event == TelephoneEvent(event=11, end=True, volume=63, duration=65535, reserved=True)
    assert event.key == "#"
    assert event.serialize() == b"\x0b\xff\xff\xff"
    assert TelephoneEvent(16, False, 0, 0).key is None
    assert TelephoneEvent(5, False, 10, 160).serialize() == b"\x05\x0a\x00\xa0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((256, False, 0, 0), "telephone-event code 256 is outside 0..255"),
        ((-1, False, 0, 0), "telephone-event code -1 is outside 0..255"),
        ((1, False, 64, 0), "telephone-event volume 64 is outside 0..63"),
        ((1, False, -1, 0), "telephone-event volume -1 is outside 0..63"),
        ((1, False, 0, 65536), "telephone-event duration 65536 is outside 0..65535"),
        ((1, False, 0, -1), "telephone-event duration -1 is outside 0..65535"),
    ],
)
def test_telephone_event_validates(args: tuple[int, bool, int, int], message: str) -> None:
    with pytest.raises(RtpError) as info:
        TelephoneEvent(*args)
    assert str(info.value) == message


@pytest.mark.parametrize("size", [0, 3, 5, 8])
def test_telephone_event_payload_must_be_four_bytes(size: int) -> None:
    with pytest.raises(RtpError) as info:
        parse_telephone_event(bytes(size))
    assert str(info.value) == f"telephone-event payload is {size} bytes, expected 4"


# ---------------------------------------------------------------------------------------- Hypothesis

u32 = st.integers(0, 2**32 - 1)


@st.composite
def rtp_packets(draw: st.DrawFn) -> RtpPacket:
    extension = draw(
        st.none()
        | st.builds(
            RtpHeaderExtension,
            st.integers(0, 0xFFFF),
            st.integers(0, 8).flatmap(lambda words: st.binary(min_size=4 * words, max_size=4 * words)),
        )
    )
    padding_length = draw(st.integers(0, 255))
    padding = b""
    if padding_length:
        padding = draw(st.binary(min_size=padding_length - 1, max_size=padding_length - 1)) + bytes(
            (padding_length,)
        )
    return RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(u32),
        ssrc=draw(u32),
        payload=draw(st.binary(max_size=200)),
        marker=draw(st.booleans()),
        csrc=tuple(draw(st.lists(u32, max_size=15))),
        extension=extension,
        padding=padding,
    )


@given(rtp_packets())
def test_generated_packets_round_trip(packet: RtpPacket) -> None:
    data = packet.serialize()
    assert parse_rtp(data) == packet
    assert parse_rtp(memoryview(data)) == packet
    assert peek_sequence_number(data) == packet.sequence_number
    assert peek_ssrc(data) == packet.ssrc
    assert peek_timestamp(data) == packet.timestamp
    assert peek_marker(data) == packet.marker
    assert peek_payload_type(data) == packet.payload_type


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_rtp_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert packet.serialize() == data


@given(st.binary(min_size=2, max_size=300))
def test_version_2_bytes_raise_only_rtp_error(tail: bytes) -> None:
    # Random bytes with the version bits set reach the CSRC, extension and padding checks.
    data = bytes((0x80 | (tail[0] & 0x3F),)) + tail[1:]
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert packet.serialize() == data


@pytest.mark.parametrize("name", RTP_FIXTURES)
def test_every_truncation_of_a_fixture_raises_rtp_error_or_round_trips(name: str) -> None:
    data = fixture(name)
    for end in range(len(data)):
        try:
            packet = parse_rtp(data[:end])
        except RtpError:
            continue
        assert packet.serialize() == data[:end]


@given(
    st.builds(
        TelephoneEvent,
        st.integers(0, 255),
        st.booleans(),
        st.integers(0, 63),
        st.integers(0, 0xFFFF),
        st.booleans(),
    )
)
def test_telephone_events_round_trip(event: TelephoneEvent) -> None:
    assert parse_telephone_event(event.serialize()) == event


@given(st.binary(max_size=12))
def test_arbitrary_telephone_event_payloads_raise_only_rtp_error(data: bytes) -> None:
    try:
        event = parse_telephone_event(data)
    except RtpError:
        return
    assert event.serialize() == data


# ---------------------------------------------------------------------------------------- seqnum


def test_seq_add_and_sub_wrap() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert seq_add(65000, 1000) == 464
    assert seq_add(5, 0) == 5
    assert seq_sub(0, 65535) == 1
    assert seq_sub(65535, 0) == 65535
    assert seq_sub(10, 10) == 0


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [
        (0, 65535, 1),
        (65535, 0, -1),
        (10, 5, 5),
        (5, 10, -5),
        (100, 100, 0),
        (32767, 0, 32767),
        (32768, 0, -32768),
        (0, 32768, -32768),
        (32769, 0, -32767),
        (1000, 65000, 1536),
    ],
)
def test_seq_diff_is_the_signed_shortest_distance(a: int, b: int, diff: int) -> None:
    assert seq_diff(a, b) == diff
    assert seq_gt(a, b) is (diff > 0)


def test_seq_gt_half_space_apart_is_neither_way() -> None:
    # RFC 1982 §3.2: undefined; here neither is greater.
    assert not seq_gt(0, 32768)
    assert not seq_gt(32768, 0)
    assert seq_gt(0, 32769)
    assert not seq_gt(32769, 0)
    assert seq_gt(0, 65535)
    assert not seq_gt(65535, 0)
    assert not seq_gt(7, 7)


def test_ts_helpers_wrap() -> None:
    top = 2**32 - 1
    assert ts_add(top, 1) == 0
    assert ts_add(0, -160) == 2**32 - 160
    assert ts_sub(80, top - 79) == 160
    assert ts_diff(80, top - 79) == 160
    assert ts_diff(top - 79, 80) == -160
    assert ts_diff(2**31, 0) == -(2**31)
    assert ts_diff(2**31 - 1, 0) == 2**31 - 1
    assert ts_gt(80, top - 79)
    assert not ts_gt(top - 79, 80)
    assert not ts_gt(2**31, 0) and not ts_gt(0, 2**31)
    assert not ts_gt(3, 3)


@given(st.integers(0, 0xFFFF), st.integers(-32768, 32767))
def test_seq_diff_inverts_seq_add(seq: int, delta: int) -> None:
    other = seq_add(seq, delta)
    assert 0 <= other <= 0xFFFF
    assert seq_diff(other, seq) == delta
    assert seq_gt(other, seq) is (delta > 0)
    assert seq_sub(other, seq) == delta % 65536


@given(u32, st.integers(-(2**31), 2**31 - 1))
def test_ts_diff_inverts_ts_add(ts: int, delta: int) -> None:
    other = ts_add(ts, delta)
    assert 0 <= other < 2**32
    assert ts_diff(other, ts) == delta
    assert ts_gt(other, ts) is (delta > 0)
    assert ts_sub(other, ts) == delta % 2**32
