"""RFC 4733 DTMF: the sans-IO detector on a fake clock, the generator, SIP INFO bodies, and SIPp's pcaps.

The SIPp pcaps (tests/vectors/sipp-dtmf, see its LICENSE-NOTE.md) are read by the small libpcap reader
below and replayed into the detector with their capture times, alone and back to back as SIPp replays
them (identical timestamps and sequence numbers for a repeated key).
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtp.dtmf import (
    DEFAULT_END_TIMEOUT,
    DEFAULT_INFO_DURATION_MS,
    MAX_RECENT_PRESSES,
    Digit,
    DigitSource,
    DtmfError,
    Rfc4733Detector,
    Rfc4733Generator,
    Rfc4733Packet,
    parse_dtmf_info,
)
from rtp.packet import TelephoneEvent, event_for_key, parse_rtp, parse_telephone_event
from rtp.seqnum import ts_add

PCAPS = Path(__file__).parent / "vectors" / "sipp-dtmf"
PCAP_KEYS = {**{str(d): str(d) for d in range(10)}, "pound": "#", "star": "*"}


class Phone:
    """Feeds one stream's telephone-events to a detector on a fake clock.

    ``advance`` moves the clock and runs ``on_timer`` at each deadline passed, the way the asyncio adapter
    re-arms its one timer.
    """

    def __init__(self, detector: Rfc4733Detector | None = None, now: float = 100.0) -> None:
        self.detector = detector or Rfc4733Detector()
        self.now = now
        self.digits: list[Digit] = []
        self.seq = 5000

    def send(
        self,
        key: str,
        timestamp: int,
        duration: int,
        *,
        end: bool = False,
        marker: bool = False,
        seq: int | None = None,
    ) -> list[Digit]:
        payload = TelephoneEvent(event_for_key(key), end, 10, duration).serialize()
        return self.raw(payload, timestamp, marker=marker, seq=seq)

    def raw(
        self, payload: bytes, timestamp: int, *, marker: bool = False, seq: int | None = None
    ) -> list[Digit]:
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF
            seq = self.seq
        new = self.detector.receive(seq, timestamp, marker, payload, self.now)
        self.digits += new
        return new

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        deadline = self.detector.deadline
        while deadline is not None and deadline <= target:
            self.now = deadline
            self.digits += self.detector.on_timer(deadline)
            deadline = self.detector.deadline
        self.now = target

    def press(
        self,
        key: str,
        timestamp: int,
        updates: int = 5,
        step: int = 160,
        *,
        interval: float = 0.02,
        ends: int = 3,
        first_lost: bool = False,
    ) -> None:
        """A press: a marked start, ``updates`` updates ``interval`` apart, then ``ends`` end packets."""
        for index in range(updates + 1):
            if index or not first_lost:
                self.send(key, timestamp, index * step, marker=index == 0)
            self.advance(interval)
        for _ in range(ends):
            self.send(key, timestamp, (updates + 1) * step, end=True)
        self.advance(interval)

    @property
    def keys(self) -> str:
        return "".join(digit.key for digit in self.digits)


# ------------------------------------------------------------------------------------------ basics


def test_one_press_is_one_digit_whatever_the_three_end_packets() -> None:
    phone = Phone()
    for index in range(6):
        assert phone.send("5", 8000, index * 160, marker=index == 0) == []
        phone.advance(0.02)
    first_end = phone.now
    (digit,) = phone.send("5", 8000, 960, end=True)
    assert digit == Digit("5", DigitSource.RFC4733, 120, started_at=100.0, ended_at=first_end)
    assert phone.send("5", 8000, 960, end=True) == []
    assert phone.send("5", 8000, 960, end=True) == []
    phone.advance(5.0)
    assert phone.keys == "5"
    assert phone.detector.duplicates == 2
    assert phone.detector.deadline is None


def test_repeated_identical_updates_are_one_digit() -> None:
    phone = Phone()
    for index in range(4):
        for _ in range(3):
            phone.send("7", 400, index * 160, marker=index == 0, seq=10 + index)
        phone.advance(0.02)
    phone.send("7", 400, 640, end=True)
    phone.advance(1.0)
    assert phone.keys == "7"
    assert phone.digits[0].duration_ms == 80


def test_lost_start_packet_is_inferred_from_a_later_update() -> None:
    phone = Phone()
    phone.press("9", 123456, first_lost=True)
    (digit,) = phone.digits
    assert digit.key == "9"
    assert digit.duration_ms == 120
    # The first packet that arrived (at 100.02) reported 160 units = 20 ms of press already.
    assert digit.started_at == pytest.approx(100.0)


def test_all_end_packets_lost_ends_the_digit_by_timeout() -> None:
    detector = Rfc4733Detector()
    assert detector.deadline is None
    now = 10.0
    for index in range(5):
        assert (
            detector.receive(
                index, 16000, index == 0, TelephoneEvent(3, False, 10, index * 160).serialize(), now
            )
            == []
        )
        last = now
        now += 0.02
    assert detector.deadline == last + DEFAULT_END_TIMEOUT
    assert detector.on_timer(last + 0.2) == []
    (digit,) = detector.on_timer(last + DEFAULT_END_TIMEOUT)
    assert digit == Digit("3", DigitSource.RFC4733, 80, started_at=10.0, ended_at=last)
    assert detector.deadline is None
    assert detector.on_timer(last + 0.26) == []
    # The end packets arriving after all are retransmissions of a reported press.
    assert detector.receive(9, 16000, False, TelephoneEvent(3, True, 10, 800).serialize(), last + 0.3) == []


def test_timeout_is_also_noticed_by_receive() -> None:
    detector = Rfc4733Detector(end_timeout=0.5)
    detector.receive(1, 0, True, TelephoneEvent(1, False, 10, 0).serialize(), 1.0)
    (digit,) = detector.receive(2, 0, False, b"\xff", 2.0)
    assert digit.key == "1"
    assert detector.malformed == 1


def test_only_end_packets_arrive() -> None:
    phone = Phone()
    phone.advance(0.1)
    for _ in range(3):
        phone.send("#", 999, 800, end=True)
    phone.advance(1.0)
    (digit,) = phone.digits
    assert (digit.key, digit.duration_ms) == ("#", 100)
    assert digit.started_at == pytest.approx(100.0)
    assert digit.ended_at == pytest.approx(100.1)


def test_duration_field_need_not_match_elapsed_time() -> None:
    # The sender reports 1000 ms of press in 100 ms of packets (SIPp's pcaps run at twice the clock).
    phone = Phone()
    phone.press("2", 50000, updates=4, step=1600)
    (digit,) = phone.digits
    assert digit.duration_ms == 1000
    assert digit.ended_at is not None and digit.started_at is not None
    assert digit.ended_at - digit.started_at == pytest.approx(0.1)


# ------------------------------------------------------------------------------- several presses


def test_timestamps_and_sequence_numbers_jumping_backwards() -> None:
    phone = Phone()
    phone.seq = 30000
    phone.press("1", 90000)
    phone.seq = 100
    phone.press("2", 10000)
    phone.seq = 65530  # the sequence wraps inside this press
    phone.press("3", 4294967000)
    phone.seq = 7
    phone.press("4", 5)
    assert phone.keys == "1234"


def test_same_key_twice_with_different_timestamps_is_two_digits() -> None:
    phone = Phone()
    phone.press("8", 1000)
    phone.advance(0.1)
    phone.press("8", 1000 + 8000)
    assert phone.keys == "88"


def test_a_new_event_ends_a_press_whose_ends_were_lost() -> None:
    phone = Phone()
    phone.press("6", 1000, ends=0)
    assert phone.digits == []  # still inside the end timeout
    (digit,) = phone.send("6", 3000, 0, marker=True)
    assert digit.key == "6" and digit.duration_ms == 100
    assert digit.ended_at == pytest.approx(100.1)
    phone.advance(1.0)
    assert phone.keys == "66"


def test_new_event_of_another_key_ends_the_press_before_it_in_order() -> None:
    phone = Phone()
    phone.send("1", 0, 0, marker=True)
    phone.advance(0.02)
    phone.send("1", 0, 160)
    phone.advance(0.02)
    new = phone.send("2", 480, 0, marker=True)
    assert [d.key for d in new] == ["1"]
    phone.advance(1.0)
    assert phone.keys == "12"


def test_identical_replay_with_marker_is_a_second_press() -> None:
    # SIPp replaying one pcap twice: same timestamp, same sequence numbers, same payloads.
    phone = Phone()
    for _ in range(2):
        phone.seq = 7983
        phone.press("1", 13280)
    assert phone.keys == "11"


def test_short_identical_replay_is_told_apart_by_its_marker_alone() -> None:
    # Start, one update, end: the whole replay fits inside the repeat gap, so only the marker says "new".
    phone = Phone()
    for _ in range(2):
        phone.seq = 40
        phone.press("*", 700, updates=1, interval=0.02)
    phone.advance(1.0)
    assert phone.keys == "**"
    assert [d.duration_ms for d in phone.digits] == [40, 40]


def test_identical_replay_without_its_marker_packet_after_a_quiet_gap() -> None:
    phone = Phone()
    phone.seq = 7983
    phone.press("1", 13280)
    phone.advance(0.2)
    phone.seq = 7983
    phone.press("1", 13280, first_lost=True)
    assert phone.keys == "11"


def test_late_reordered_update_after_the_end_is_not_a_new_press() -> None:
    phone = Phone()
    phone.press("4", 2000, ends=1)
    phone.advance(0.01)
    phone.send("4", 2000, 320, seq=phone.seq - 3)  # an update overtaken by the end packet
    phone.advance(0.05)
    phone.send("4", 2000, 960, end=True)  # late retransmitted end
    phone.advance(0.5)
    phone.send("4", 2000, 960, end=True)  # very late retransmitted end: same duration, still the same press
    phone.advance(1.0)
    assert phone.keys == "4"
    assert phone.detector.duplicates == 3


def test_replay_while_the_first_press_still_runs() -> None:
    # The first copy's end packets were lost; the replay's marker packet restarts the duration.
    phone = Phone()
    phone.seq = 100
    phone.press("5", 800, ends=0)
    phone.seq = 100
    phone.press("5", 800)
    assert phone.keys == "55"
    assert phone.digits[0].ended_at is not None and phone.digits[1].started_at is not None
    assert phone.digits[0].ended_at <= phone.digits[1].started_at


# ---------------------------------------------------------------------------------- long events


def test_long_press_in_segments_is_one_digit() -> None:
    # RFC 4733 §2.5.1.3: the second segment starts at timestamp + 0xFFFF, without the marker bit.
    phone = Phone()
    base = 4294960000  # the segment boundary wraps the 32-bit timestamp
    phone.send("0", base, 0, marker=True)
    for duration in range(4000, 65535, 4000):
        phone.advance(0.05)
        phone.send("0", base, duration)
    phone.advance(0.05)
    phone.send("0", base, 0xFFFF)
    second = ts_add(base, 0xFFFF)
    phone.send("0", second, 0)
    phone.advance(0.05)
    phone.send("0", second, 400)
    phone.send("0", base, 64000)  # a late update of the first segment
    phone.advance(0.05)
    for _ in range(3):
        phone.send("0", second, 800, end=True)
    phone.advance(1.0)
    (digit,) = phone.digits
    assert digit.duration_ms == round((0xFFFF + 800) / 8)
    assert phone.detector.duplicates == 3


def test_segment_shorter_than_0xffff_continues_when_its_end_was_seen() -> None:
    phone = Phone()
    phone.send("C", 100, 0, marker=True)
    phone.advance(0.05)
    phone.send("C", 100, 40000)
    phone.advance(0.05)
    phone.send("C", 40100, 0)
    phone.advance(0.05)
    phone.send("C", 40100, 8000, end=True)
    phone.advance(1.0)
    assert [(d.key, d.duration_ms) for d in phone.digits] == [("C", 6000)]


def test_a_new_timestamp_that_is_not_a_segment_boundary_is_a_new_press() -> None:
    phone = Phone()
    phone.send("C", 100, 0, marker=True)
    phone.advance(0.05)
    phone.send("C", 100, 400)
    phone.advance(0.05)
    phone.send("C", 100 + 0xFFFE, 0)
    phone.advance(1.0)
    assert phone.keys == "CC"


# ----------------------------------------------------------------------------- garbage and floods


def test_malformed_and_non_dtmf_payloads_are_counted_and_ignored() -> None:
    phone = Phone()
    for payload in (b"", b"\x01", b"\x01\x0a\x00", b"\x01\x0a\x00\x00\x02\x0a\x00\x00", bytes(100)):
        assert phone.raw(payload, 1) == []
    assert phone.raw(TelephoneEvent(16, False, 0, 0).serialize(), 2, marker=True) == []  # flash
    assert phone.raw(TelephoneEvent(255, True, 0, 0).serialize(), 3) == []
    assert phone.detector.receive(1, 2**32, True, TelephoneEvent(1, True, 0, 0).serialize(), phone.now) == []
    assert phone.detector.receive(1, -1, True, TelephoneEvent(1, True, 0, 0).serialize(), phone.now) == []
    phone.advance(5.0)
    assert phone.digits == []
    assert phone.detector.malformed == 7
    assert phone.detector.unsupported == 2


def test_a_flood_of_timestamps_gives_at_most_one_digit_per_event() -> None:
    phone = Phone()
    sent = 0
    for index in range(600):
        # Every packet a different event (new timestamp), most of them repeated three times.
        for _ in range(1 + index % 3):
            phone.send(str(index % 10), index * 7919 % 2**32, index % 2000, end=index % 5 == 0)
        sent += 1
        phone.advance(0.001)
    phone.advance(1.0)
    assert len(phone.digits) == sent
    assert len(phone.detector._presses) <= MAX_RECENT_PRESSES


def test_old_presses_are_forgotten_after_a_while() -> None:
    phone = Phone()
    phone.press("1", 500)
    phone.advance(3.0)
    phone.send("2", 900, 0, marker=True)
    assert phone.detector._presses.keys() == {(2, 900)}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFF),
            st.sampled_from([0, 1, 2, 0xFFFF, 0x1FFFE, 2**32 - 1]) | st.integers(0, 2**32 - 1),
            st.booleans(),
            st.binary(min_size=4, max_size=4) | st.binary(max_size=9),
            st.floats(0, 0.5),
        ),
        max_size=60,
    )
)
def test_receive_never_raises_and_never_reports_more_digits_than_packets(
    packets: list[tuple[int, int, bool, bytes, float]],
) -> None:
    detector = Rfc4733Detector()
    now = 0.0
    digits: list[Digit] = []
    dtmf_packets = 0
    for seq, timestamp, marker, payload, gap in packets:
        now += gap
        digits += detector.receive(seq, timestamp, marker, payload, now)
        deadline = detector.deadline
        assert deadline is None or deadline > now
        if len(payload) == 4 and payload[0] < 16:
            dtmf_packets += 1
    digits += detector.on_timer(now + 10)
    assert len(digits) <= dtmf_packets
    assert detector.deadline is None
    for digit in digits:
        assert digit.started_at is not None and digit.ended_at is not None
        assert digit.started_at <= digit.ended_at


# -------------------------------------------------------------------------------------- generator


def test_generator_packet_sequence() -> None:
    generator = Rfc4733Generator(payload_type=101, update_interval=0.02)
    packets = generator.packets("5", 100, 1000)
    assert packets[0] == Rfc4733Packet(True, 1000, bytes.fromhex("050a0000"), 0.0)
    reports = [parse_telephone_event(p.payload) for p in packets]
    assert [p.marker for p in packets] == [True] + [False] * 7
    assert {p.timestamp for p in packets} == {1000}
    assert [r.duration for r in reports] == [0, 160, 320, 480, 640, 800, 800, 800]
    assert [r.end for r in reports] == [False] * 5 + [True] * 3
    assert {r.event for r in reports} == {5}
    assert {r.volume for r in reports} == {10}
    assert [p.send_offset for p in packets] == pytest.approx([0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14])
    assert generator.payload_type == 101


def test_generator_default_updates_every_50_ms() -> None:
    packets = Rfc4733Generator(101).packets("#", 160, 0)
    reports = [parse_telephone_event(p.payload) for p in packets]
    assert [(r.duration, r.end) for r in reports] == [
        (0, False),
        (400, False),
        (800, False),
        (1200, False),
        (1280, True),
        (1280, True),
        (1280, True),
    ]
    assert reports[0].event == 11


def test_generator_segments_long_events() -> None:
    generator = Rfc4733Generator(101, update_interval=0.05, volume=20)
    packets = generator.packets("D", 20_000, 2**32 - 100)
    segments = sorted({p.timestamp for p in packets}, key=lambda ts: ts_add(ts, 100))
    assert segments == [2**32 - 100, ts_add(2**32 - 100, 0xFFFF), ts_add(2**32 - 100, 2 * 0xFFFF)]
    assert [p.marker for p in packets].count(True) == 1 and packets[0].marker
    step = 400  # 50 ms at 8000 Hz
    for boundary in (1, 2):
        ts = ts_add(2**32 - 100, boundary * 0xFFFF)
        start = boundary * 0xFFFF
        # The old segment's final packet (0xFFFF, no E bit) three times, one update interval apart.
        closing = [p for p in packets if p.timestamp == ts_add(ts, -0xFFFF)][-3:]
        assert [parse_telephone_event(p.payload) for p in closing] == [
            TelephoneEvent(15, False, 20, 0xFFFF)
        ] * 3
        assert [p.send_offset for p in closing] == pytest.approx(
            [(start + r * step) / 8000 for r in range(3)]
        )
        opening = next(p for p in packets if p.timestamp == ts)
        assert parse_telephone_event(opening.payload).duration == 0
        assert opening.send_offset == pytest.approx(start / 8000)
        assert packets.index(opening) == packets.index(closing[0]) + 1
    final = [parse_telephone_event(p.payload) for p in packets[-3:]]
    assert {(r.end, r.duration, r.volume) for r in final} == {(True, 160_000 - 2 * 0xFFFF, 20)}
    offsets = [p.send_offset for p in packets]
    assert offsets == sorted(offsets)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"payload_type": 128}, "payload type 128 is outside 0..127"),
        ({"payload_type": 101, "clock_rate": 0}, "clock rate 0 is not positive"),
        ({"payload_type": 101, "update_interval": 0}, "update interval 0 is not positive"),
        ({"payload_type": 101, "volume": 64}, "volume 64 is outside 0..63"),
    ],
)
def test_generator_validates_its_settings(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(DtmfError) as info:
        Rfc4733Generator(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("key", "duration", "timestamp", "message"),
    [
        ("E", 100, 0, "'E' is not a DTMF key (one of 0123456789*#ABCD)"),
        ("1", 0, 0, "digit duration 0 ms is outside 1..60000"),
        ("1", 60_001, 0, "digit duration 60001 ms is outside 1..60000"),
        ("1", 100, 2**32, "RTP timestamp 4294967296 is outside 0..4294967295"),
    ],
)
def test_generator_validates_requests(key: str, duration: int, timestamp: int, message: str) -> None:
    with pytest.raises(DtmfError) as info:
        Rfc4733Generator(101).packets(key, duration, timestamp)
    assert str(info.value) == message


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from("0123456789*#ABCD"),
    st.integers(1, 12_000),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.01, 0.02, 0.03, 0.05]),
    st.sampled_from([8000, 16000, 48000]),
)
def test_generated_packets_are_detected_as_exactly_one_digit(
    key: str, duration_ms: int, timestamp: int, interval: float, clock_rate: int
) -> None:
    packets = Rfc4733Generator(101, clock_rate=clock_rate, update_interval=interval).packets(
        key, duration_ms, timestamp
    )
    detector = Rfc4733Detector(clock_rate=clock_rate)
    digits: list[Digit] = []
    for seq, packet in enumerate(packets):
        digits += detector.receive(
            seq, packet.timestamp, packet.marker, packet.payload, 50.0 + packet.send_offset
        )
    digits += detector.on_timer(1e6)
    (digit,) = digits
    assert digit.key == key
    assert digit.duration_ms == duration_ms
    assert digit.started_at == pytest.approx(50.0)
    assert digit.ended_at == pytest.approx(50.0 + duration_ms / 1000, abs=1e-6)
    segments = len({packet.timestamp for packet in packets})
    # Two repeats of the final packet, and three of each earlier segment's final packet, are duplicates:
    # the first copy of a segment's final packet updates the segment, the other two are ignored.
    assert detector.duplicates == 2 + 2 * (segments - 1)


# ------------------------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("E", "rfc4733", 1), "digit key 'E' is not one of 0123456789*#ABCD"),
        (("", "rfc4733", 1), "digit key '' is not one of 0123456789*#ABCD"),
        (("12", "rfc4733", 1), "digit key '12' is not one of 0123456789*#ABCD"),
        (("1", "carrier-pigeon", 1), "digit source 'carrier-pigeon' is not one of rfc4733, sip-info, inband"),
        (("1", "inband", -1), "digit duration -1 ms is negative"),
        (("1", "inband", 1, 5.0, 4.0), "digit ends at 4.0 before it starts at 5.0"),
    ],
)
def test_digit_validates(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(DtmfError) as info:
        Digit(*args)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_digit_sources_are_strings() -> None:
    assert Digit("1", "sip-info", 0).source == DigitSource.SIP_INFO
    assert [source.value for source in DigitSource] == ["rfc4733", "sip-info", "inband"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clock_rate": 0}, "clock rate 0 is not positive"),
        ({"end_timeout": 0}, "end_timeout and repeat_gap must be positive"),
        ({"repeat_gap": -1}, "end_timeout and repeat_gap must be positive"),
    ],
)
def test_detector_validates_its_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(DtmfError) as info:
        Rfc4733Detector(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


# ------------------------------------------------------------------------------------ SIP INFO


@pytest.mark.parametrize(
    ("content_type", "body", "key", "duration"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5", 160),
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160", "5", 160),
        ("Application/DTMF-Relay; charset=us-ascii", b"signal = *\nDURATION= 250\n", "*", 250),
        ("application/dtmf-relay", b"  Signal= #  \r\n\r\n", "#", DEFAULT_INFO_DURATION_MS),
        ("application/dtmf-relay", b"Signal=a\r\nDuration=0\r\n", "A", 0),
        ("application/dtmf-relay", b"Signal=10\r\n", "*", DEFAULT_INFO_DURATION_MS),
        ("application/dtmf-relay", b"Signal=11\r\nDuration=100\r\n", "#", 100),
        ("application/dtmf-relay", b"Signal=15\r\n", "D", DEFAULT_INFO_DURATION_MS),
        ("application/dtmf-relay", b"Duration=200\r\nSignal=0\r\nX-Vendor=whatever\r\n", "0", 200),
        ("application/dtmf", b"7", "7", DEFAULT_INFO_DURATION_MS),
        (" APPLICATION/DTMF ", b" # \r\n", "#", DEFAULT_INFO_DURATION_MS),
        ("application/dtmf", b"b", "B", DEFAULT_INFO_DURATION_MS),
    ],
)
def test_info_digits(content_type: str, body: bytes, key: str, duration: int) -> None:
    assert parse_dtmf_info(content_type, body) == Digit(key, DigitSource.SIP_INFO, duration)


@pytest.mark.parametrize(
    "content_type",
    ["application/sdp", "application/vnd.enx.room-control+json", "text/plain", "", "application/dtmf-relayx"],
)
def test_info_of_other_types_is_not_dtmf(content_type: str) -> None:
    assert parse_dtmf_info(content_type, b"Signal=5\r\n") is None


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/dtmf-relay", b"Duration=160\r\n", "dtmf-relay body has no Signal"),
        ("application/dtmf-relay", b"", "dtmf-relay body has no Signal"),
        ("application/dtmf-relay", b"Signal=1\r\nSignal=2\r\n", "dtmf-relay body has more than one Signal"),
        (
            "application/dtmf-relay",
            b"Signal=1\r\nDuration=1\r\nDuration=2",
            "dtmf-relay body has more than one Duration",
        ),
        ("application/dtmf-relay", b"Signal=16\r\n", "dtmf-relay Signal '16' is not a DTMF key"),
        ("application/dtmf-relay", b"Signal=E\r\n", "dtmf-relay Signal 'E' is not a DTMF key"),
        ("application/dtmf-relay", b"Signal=\r\n", "dtmf-relay Signal '' is not a DTMF key"),
        ("application/dtmf-relay", b"Signal=12 3\r\n", "dtmf-relay Signal '12 3' is not a DTMF key"),
        (
            "application/dtmf-relay",
            b"Signal=1\r\nDuration=abc",
            "dtmf-relay Duration 'abc' is not a number of milliseconds",
        ),
        (
            "application/dtmf-relay",
            b"Signal=1\r\nDuration=-5",
            "dtmf-relay Duration '-5' is not a number of milliseconds",
        ),
        (
            "application/dtmf-relay",
            b"Signal=1\r\nDuration=",
            "dtmf-relay Duration '' is not a number of milliseconds",
        ),
        (
            "application/dtmf-relay",
            b"Signal=1\r\nDuration=1234567",
            "dtmf-relay Duration '1234567' is not a number of milliseconds",
        ),
        (
            "application/dtmf-relay",
            b"Signal=1\r\nDuration=60001",
            "dtmf-relay Duration 60001 is more than 60000 ms",
        ),
        ("application/dtmf-relay", b"Signal 1\r\n", "dtmf-relay line without '=': 'Signal 1'"),
        ("application/dtmf-relay", "Signal=١".encode(), "application/dtmf-relay body is not ASCII"),
        (
            "application/dtmf-relay",
            b"Signal=1\r\n" + bytes(1100),
            "application/dtmf-relay body is 1110 bytes, more than 1024",
        ),
        ("application/dtmf", b"", "application/dtmf body is empty"),
        ("application/dtmf", b" \r\n", "application/dtmf body is empty"),
        ("application/dtmf", b"12", "application/dtmf body '12' is not a DTMF key"),
        ("application/dtmf", b"11", "application/dtmf body '11' is not a DTMF key"),
        ("application/dtmf", b"5\r\n6", "application/dtmf body '5\\r\\n6' is not a DTMF key"),
    ],
)
def test_info_junk_raises_a_clear_error(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(DtmfError) as info:
        parse_dtmf_info(content_type, body)
    assert str(info.value) == message


def test_dtmf_error_is_a_value_error() -> None:
    assert issubclass(DtmfError, ValueError)


# ------------------------------------------------------------------------------------ SIPp pcaps


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    """UDP payloads and capture times of a classic libpcap file (Ethernet, IPv4, UDP)."""
    data = path.read_bytes()
    magic = data[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    endian, tick = formats[magic]
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    assert linktype == 1, "Ethernet"
    records = []
    pos = 24
    while pos < len(data):
        seconds, fraction, captured, _ = struct.unpack_from(endian + "IIII", data, pos)
        frame = data[pos + 16 : pos + 16 + captured]
        pos += 16 + captured
        ethertype_at = 12
        if frame[12:14] == b"\x81\x00":  # 802.1Q tag
            ethertype_at = 16
        assert frame[ethertype_at : ethertype_at + 2] == b"\x08\x00", "IPv4"
        ip = frame[ethertype_at + 2 :]
        header_length = (ip[0] & 0x0F) * 4
        assert ip[9] == 17, "UDP"
        (total_length,) = struct.unpack_from("!H", ip, 2)
        udp = ip[header_length:total_length]
        (udp_length,) = struct.unpack_from("!H", udp, 4)
        records.append((seconds + fraction * tick, udp[8:udp_length]))
    return records


def pcap_name(key: str) -> str:
    return next(f"dtmf_2833_{name}.pcap" for name, k in PCAP_KEYS.items() if k == key)


def replay(
    keys: str, *, gap: float = 0.02, drop: set[int] | None = None
) -> tuple[list[Digit], Rfc4733Detector]:
    """Play the keys' pcaps back to back as SIPp does (each starts ``gap`` after the previous one ends).

    ``drop``: indexes (within each pcap) of packets lost on the way.
    """
    detector = Rfc4733Detector()
    digits: list[Digit] = []
    start = 1000.0
    for key in keys:
        records = read_pcap(PCAPS / pcap_name(key))
        first = records[0][0]
        for index, (captured, datagram) in enumerate(records):
            now = start + captured - first
            deadline = detector.deadline
            if deadline is not None and deadline <= now:
                digits += detector.on_timer(deadline)
            if drop and index in drop:
                continue
            packet = parse_rtp(datagram)
            assert packet.payload_type == 101
            digits += detector.receive(
                packet.sequence_number, packet.timestamp, packet.marker, packet.payload, now
            )
        start = now + gap
    digits += detector.on_timer(start + 10)
    return digits, detector


def test_pcap_copies_match_their_checksums() -> None:
    lines = [line.split() for line in (PCAPS / "SHA256SUMS").read_text().splitlines() if line]
    assert len(lines) == 12
    for digest, name in lines:
        assert hashlib.sha256((PCAPS / name).read_bytes()).hexdigest() == digest


def test_pcap_reader_sees_sipp_press_layout() -> None:
    records = read_pcap(PCAPS / "dtmf_2833_1.pcap")
    packets = [parse_rtp(datagram) for _, datagram in records]
    assert len(packets) == 10
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert {p.timestamp for p in packets} == {13280}
    assert [p.sequence_number for p in packets] == [*range(7984, 7992), 7991, 7991]
    reports = [parse_telephone_event(p.payload) for p in packets]
    assert [r.duration for r in reports] == [0, 320, 640, 960, 1280, 1600, 1920, 2240, 2240, 2240]
    assert [r.end for r in reports] == [False] * 7 + [True] * 3
    assert records[-1][0] - records[0][0] == pytest.approx(0.14, abs=0.001)


@pytest.mark.parametrize("name", sorted(PCAP_KEYS))
def test_each_sipp_pcap_is_its_digit_once(name: str) -> None:
    key = PCAP_KEYS[name]
    digits, detector = replay(key)
    assert [(d.key, d.source, d.duration_ms) for d in digits] == [(key, "rfc4733", 280)]
    assert detector.duplicates == 2
    assert detector.malformed == detector.unsupported == 0


def test_sipp_pin_1133_replayed_back_to_back() -> None:
    digits, _ = replay("1133")
    assert "".join(d.key for d in digits) == "1133"
    starts = [d.started_at or 0.0 for d in digits]
    assert starts == sorted(starts)


def test_sipp_pin_1133_with_the_replays_marker_packets_lost() -> None:
    # Without the marker, the repeated "1" and "3" are told apart by the quiet gap alone.
    digits, _ = replay("1133", drop={0})
    assert "".join(d.key for d in digits) == "1133"


def test_sipp_pin_1133_with_every_end_packet_lost() -> None:
    digits, _ = replay("1133", drop={7, 8, 9}, gap=0.5)
    assert [(d.key, d.duration_ms) for d in digits] == [("1", 240), ("1", 240), ("3", 240), ("3", 240)]


def test_sipp_loop_jumping_backwards_in_timestamp() -> None:
    # 9 (ts 67840), 0 (17632), 3 (31040), 1 (13280), # (92640), * (85760), 1 again.
    digits, _ = replay("9031#*1", gap=0.3)
    assert "".join(d.key for d in digits) == "9031#*1"
