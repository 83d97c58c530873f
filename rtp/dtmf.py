"""DTMF digits: RFC 4733 telephone-event detection and generation (sans-IO), and SIP INFO digit bodies.

The detector turns the redundant RFC 4733 packet stream of a key press (start, updates, three end
packets, maybe lost or reordered) into exactly one :class:`Digit`. The generator does the reverse for
digits we send. Neither reads a clock or touches a socket: time comes in as ``now`` and out as
``deadline`` / ``send_offset``; the relay owns SSRC and sequence numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from .packet import (
    DTMF_KEYS,
    MAX_PAYLOAD_TYPE,
    MAX_TELEPHONE_EVENT_DURATION,
    MAX_TELEPHONE_EVENT_VOLUME,
    RtpError,
    TelephoneEvent,
    event_for_key,
    key_for_event,
    parse_telephone_event,
)
from .seqnum import ts_add, ts_sub

logger = logging.getLogger(__name__)

#: RFC 4733 §7.1.1: telephone-event's "rate" parameter defaults to 8000 Hz.
DEFAULT_CLOCK_RATE: Final = 8000
#: No packet of a press for this long ends it when all its end packets were lost. RFC 4733 §2.5.1.2 has
#: updates every 50 ms (SIPp and most phones send one per 20 ms packet), so 250 ms tolerates four lost
#: updates in a row plus jitter; it is still short beside the IVR's 5 s inter-digit timeout.
DEFAULT_END_TIMEOUT: Final = 0.25
#: See Rfc4733Detector: after this long without a packet of a finished press, a packet of the same
#: event and timestamp whose duration went backwards is a new press. Late (reordered) packets arrive
#: within a few tens of ms, so 100 ms of quiet rules them out; and a repeated press cannot come sooner
#: anyway (ITU-T Q.24 puts the shortest recognised tone and pause around 40 ms each).
DEFAULT_REPEAT_GAP: Final = 0.1
#: Finished presses are remembered so their retransmitted end packets are not new digits. The three end
#: packets come within a few packet times (RFC 4733 §2.5.1.4); 2 s covers that with a wide margin.
RECENT_PRESS_MEMORY: Final = 2.0
#: At most this many finished presses are remembered: a flood of telephone-events with random
#: timestamps must not grow memory without bound. 32 is far more than the presses of 2 s of keying.
MAX_RECENT_PRESSES: Final = 32
#: RFC 4733 §2.5.1.2 suggests an update every 50 ms; set the stream's ptime to interleave with audio.
DEFAULT_UPDATE_INTERVAL: Final = 0.05
#: RFC 4733 §2.5.1.4: the final packet of an event (and of each segment) is sent three times.
END_PACKET_REPEATS: Final = 3
#: A digit we generate lasts at most a minute: longer is a caller bug, and it bounds the packet list.
MAX_DIGIT_DURATION_MS: Final = 60_000
#: A SIP INFO digit without a Duration lasts this long (a common default for DTMF tone length; ITU-T
#: Q.24 receivers need at least 40 ms).
DEFAULT_INFO_DURATION_MS: Final = 100
#: SIP INFO bodies are a couple of short lines; anything bigger is not a DTMF body.
MAX_INFO_BODY_LENGTH: Final = 1024


class DtmfError(ValueError):
    """A digit value, generator request or SIP INFO DTMF body that is not valid.

    From :func:`parse_dtmf_info` it is the sender's fault: answer the INFO with 400 Bad Request.
    """


class DigitSource(StrEnum):
    """Where a digit came from."""

    RFC4733 = "rfc4733"
    SIP_INFO = "sip-info"
    INBAND = "inband"


_SOURCES: Final = frozenset(source.value for source in DigitSource)


@dataclass(frozen=True, slots=True)
class Digit:
    """One key press, whatever carried it.

    ``duration_ms`` is the press length as the sender reported it (RFC 4733 duration field, SIP INFO
    Duration). ``started_at``/``ended_at`` are on the caller's clock (the ``now`` given to the detector):
    the first packet's arrival minus the duration it reported, and the last packet's arrival. A SIP INFO
    digit has no times: the parser does not know when the request arrived.
    """

    key: str
    source: str
    duration_ms: int
    started_at: float | None = None
    ended_at: float | None = None

    def __post_init__(self) -> None:
        if len(self.key) != 1 or self.key not in DTMF_KEYS:
            raise DtmfError(f"digit key {self.key!r} is not one of {DTMF_KEYS}")
        if self.source not in _SOURCES:
            raise DtmfError(f"digit source {self.source!r} is not one of rfc4733, sip-info, inband")
        if self.duration_ms < 0:
            raise DtmfError(f"digit duration {self.duration_ms} ms is negative")
        if self.started_at is not None and self.ended_at is not None and self.ended_at < self.started_at:
            raise DtmfError(f"digit ends at {self.ended_at} before it starts at {self.started_at}")


# ------------------------------------------------------------------------------------------ detector


@dataclass(slots=True)
class _Press:
    """The detector's record of one key press (possibly several RFC 4733 §2.5.1.3 segments)."""

    event: int
    timestamp: int  # RTP timestamp of the current segment
    completed: int  # timestamp units of the segments before the current one
    duration: int  # largest duration reported in the current segment
    started_at: float
    last_seen: float
    ended: bool = False


class Rfc4733Detector:
    """Turns one stream's RFC 4733 telephone-event packets into one :class:`Digit` per key press.

    Feed every telephone-event packet of the stream to :meth:`receive`; call :meth:`on_timer` when
    :attr:`deadline` passes. A digit is reported when its press ends: on its first end packet, when a
    packet of another event arrives (a new event ends the one before), or when no packet of the press
    arrived for ``end_timeout`` (all end packets lost).

    A press is identified by its event code and RTP timestamp, not by arrival order: the timestamp of a
    new event may jump backwards (SIPp replays pcaps in a loop, repeating timestamps and sequence
    numbers). A packet with no timestamp seen before starts a press even without the marker bit, so a lost
    start packet delays nothing. RFC 4733 §2.5.1.3 / §2.5.2.3 long events: a packet of the same event whose
    timestamp is the current segment's plus 0xFFFF (or plus the duration that segment reached) continues
    the press; the segment durations add up.

    Repeated presses of one key usually have different timestamps. A looped pcap, however, sends
    identical packets (same timestamp, same sequence numbers) for each press, so a packet of an already
    reported press is taken as a NEW press only when its duration is below the largest one reported for
    that press (the count restarted) and either it carries the marker bit (RFC 4733 §2.5.1.2: only an
    event's first packet does) or no packet of that press came for ``repeat_gap``. Retransmitted end
    packets repeat the final duration, and reordered updates arrive within the gap without a marker, so
    neither is ever a second digit. The sequence number takes no part in these decisions because looped
    pcaps repeat it.

    ``receive`` never raises on packet content: malformed payloads are counted in :attr:`malformed`,
    non-DTMF events (16 and up: flash, tones) in :attr:`unsupported`, ignored repeats in :attr:`duplicates`.
    Payloads packing several events (RFC 4733 §2.5.1.5) count as malformed.
    """

    def __init__(
        self,
        clock_rate: int = DEFAULT_CLOCK_RATE,
        end_timeout: float = DEFAULT_END_TIMEOUT,
        repeat_gap: float = DEFAULT_REPEAT_GAP,
    ) -> None:
        if clock_rate <= 0:
            raise DtmfError(f"clock rate {clock_rate} is not positive")
        if end_timeout <= 0 or repeat_gap <= 0:
            raise DtmfError("end_timeout and repeat_gap must be positive")
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self.repeat_gap = repeat_gap
        self._active: _Press | None = None
        # (event, segment timestamp) -> press; insertion ordered, oldest first.
        self._presses: dict[tuple[int, int], _Press] = {}
        self._malformed = 0
        self._unsupported = 0
        self._duplicates = 0

    @property
    def malformed(self) -> int:
        """Packets whose payload was not a four-octet RFC 4733 §2.3 event, or whose header was bad."""
        return self._malformed

    @property
    def unsupported(self) -> int:
        """Well-formed packets of non-DTMF events (RFC 4733 §3.2 codes 16 and up)."""
        return self._unsupported

    @property
    def duplicates(self) -> int:
        """Packets of an already reported press: retransmitted ends, late updates."""
        return self._duplicates

    @property
    def deadline(self) -> float | None:
        """When :meth:`on_timer` must run to end a press whose end packets were lost; None if idle."""
        if self._active is None:
            return None
        return self._active.last_seen + self.end_timeout

    def on_timer(self, now: float) -> list[Digit]:
        """End the press in progress if its end packets never came; returns its digit, if any."""
        return self._expire(now)

    def receive(self, sequence: int, timestamp: int, marker: bool, payload: bytes, now: float) -> list[Digit]:
        """One telephone-event packet's header fields and payload; returns the digits it completes."""
        digits = self._expire(now)
        if not 0 <= timestamp <= 0xFFFFFFFF:
            self._malformed += 1
            return digits
        try:
            report = parse_telephone_event(payload)
        except RtpError as exc:
            self._malformed += 1
            logger.debug("telephone-event seq %s ignored: %s", sequence, exc)
            return digits
        if report.key is None:
            self._unsupported += 1
            return digits
        press = self._presses.get((report.event, timestamp))
        if press is not None:
            if press.timestamp != timestamp:
                # A late packet of an earlier segment of a long press.
                self._duplicates += 1
            elif report.duration < press.duration and (marker or now - press.last_seen > self.repeat_gap):
                logger.debug("telephone-event %s at %s restarted: a new press", report.event, timestamp)
                if not press.ended:
                    digits.append(self._finish(press))
                del self._presses[(report.event, timestamp)]
                self._start(report, timestamp, now, digits)
            else:
                self._update(press, report, now, digits)
            return digits
        active = self._active
        if active is not None and active.event == report.event and self._continues(active, timestamp):
            active.completed += ts_sub(timestamp, active.timestamp)
            active.timestamp = timestamp
            active.duration = 0
            self._remember(report.event, timestamp, active)
            self._update(active, report, now, digits)
            return digits
        if active is not None:
            digits.append(self._finish(active))
        self._start(report, timestamp, now, digits)
        return digits

    @staticmethod
    def _continues(press: _Press, timestamp: int) -> bool:
        """Whether ``timestamp`` starts the next segment of ``press`` (RFC 4733 §2.5.1.3)."""
        step = ts_sub(timestamp, press.timestamp)
        return step == MAX_TELEPHONE_EVENT_DURATION or (press.duration > 0 and step == press.duration)

    def _start(self, report: TelephoneEvent, timestamp: int, now: float, digits: list[Digit]) -> None:
        press = _Press(
            event=report.event,
            timestamp=timestamp,
            completed=0,
            duration=report.duration,
            # The first packet we got may not be the first one sent: its duration says how long ago
            # the press began.
            started_at=now - report.duration / self.clock_rate,
            last_seen=now,
        )
        self._remember(report.event, timestamp, press)
        self._active = press
        if report.end:
            digits.append(self._finish(press))

    def _update(self, press: _Press, report: TelephoneEvent, now: float, digits: list[Digit]) -> None:
        if press.ended:
            self._duplicates += 1
            if report.end:
                # A retransmitted end still belongs to the press: the quiet gap counts from it.
                press.last_seen = now
            return
        press.duration = max(press.duration, report.duration)
        press.last_seen = now
        if report.end:
            digits.append(self._finish(press))

    def _finish(self, press: _Press) -> Digit:
        press.ended = True
        if self._active is press:
            self._active = None
        key = key_for_event(press.event)
        assert key is not None  # only DTMF events make presses
        units = press.completed + press.duration
        return Digit(
            key=key,
            source=DigitSource.RFC4733,
            duration_ms=round(units * 1000 / self.clock_rate),
            started_at=press.started_at,
            ended_at=press.last_seen,
        )

    def _remember(self, event: int, timestamp: int, press: _Press) -> None:
        self._presses[(event, timestamp)] = press
        while len(self._presses) > MAX_RECENT_PRESSES:
            oldest = next(iter(self._presses))
            if self._presses[oldest] is self._active:
                # Keep the press in progress: move it to the young end.
                self._presses[oldest] = self._presses.pop(oldest)
                oldest = next(iter(self._presses))
            del self._presses[oldest]

    def _expire(self, now: float) -> list[Digit]:
        digits = []
        active = self._active
        # Same expression as deadline, so on_timer(deadline) always ends the press.
        if active is not None and now >= active.last_seen + self.end_timeout:
            digits.append(self._finish(active))
        stale = [
            key
            for key, press in self._presses.items()
            if press.ended and now - press.last_seen > RECENT_PRESS_MEMORY
        ]
        for key in stale:
            del self._presses[key]
        return digits


# ----------------------------------------------------------------------------------------- generator


class Rfc4733Packet(NamedTuple):
    """One telephone-event packet to send: header fields the relay needs, the payload, and when.

    ``send_offset`` is seconds after the first packet of the digit.
    """

    marker: bool
    timestamp: int
    payload: bytes
    send_offset: float


class Rfc4733Generator:
    """Builds the RFC 4733 packet sequence of a digit (RFC 4733 §2.5.1).

    The first packet has the marker bit and duration 0; an update follows every ``update_interval``
    with the duration so far; the final packet (E bit, final duration) is sent three times, one
    ``update_interval`` apart (§2.5.1.4). All packets of an event carry its start timestamp. An event
    longer than 0xFFFF timestamp units is sent as segments (§2.5.1.3): a segment's final packet reports
    0xFFFF without the E bit and is also sent three times, and the next segment starts at the timestamp
    plus 0xFFFF, without the marker bit.
    """

    def __init__(
        self,
        payload_type: int,
        clock_rate: int = DEFAULT_CLOCK_RATE,
        update_interval: float = DEFAULT_UPDATE_INTERVAL,
        volume: int = 10,
    ) -> None:
        if not 0 <= payload_type <= MAX_PAYLOAD_TYPE:
            raise DtmfError(f"payload type {payload_type} is outside 0..127")
        if clock_rate <= 0:
            raise DtmfError(f"clock rate {clock_rate} is not positive")
        if update_interval <= 0:
            raise DtmfError(f"update interval {update_interval} is not positive")
        if not 0 <= volume <= MAX_TELEPHONE_EVENT_VOLUME:
            raise DtmfError(f"volume {volume} is outside 0..63")
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.update_interval = update_interval
        self.volume = volume

    def packets(self, key: str, duration_ms: int, timestamp: int) -> list[Rfc4733Packet]:
        """The packets of one press of ``key`` lasting ``duration_ms``, starting at RTP ``timestamp``.

        In sending order; ``send_offset`` says when each is due after the first.
        """
        try:
            event = event_for_key(key)
        except RtpError as exc:
            raise DtmfError(str(exc)) from None
        if not 1 <= duration_ms <= MAX_DIGIT_DURATION_MS:
            raise DtmfError(f"digit duration {duration_ms} ms is outside 1..{MAX_DIGIT_DURATION_MS}")
        if not 0 <= timestamp <= 0xFFFFFFFF:
            raise DtmfError(f"RTP timestamp {timestamp} is outside 0..4294967295")
        total = max(1, round(duration_ms * self.clock_rate / 1000))
        step = max(1, round(self.update_interval * self.clock_rate))
        segment = MAX_TELEPHONE_EVENT_DURATION
        # (send time, order at that time, segment start, duration, end bit), all in timestamp units. At
        # one instant a segment's final packet goes before the next segment's update.
        plan: list[tuple[int, int, int, int, bool]] = []
        boundaries = range(segment, total, segment)
        for at in sorted({*range(0, total, step), *boundaries}):
            segment_start = (at // segment) * segment
            plan.append((at, 1, segment_start, at - segment_start, False))
        for boundary in boundaries:
            for repeat in range(END_PACKET_REPEATS):
                plan.append((boundary + repeat * step, 0, boundary - segment, segment, False))
        last_segment_start = ((total - 1) // segment) * segment
        for repeat in range(END_PACKET_REPEATS):
            plan.append((total + repeat * step, 2, last_segment_start, total - last_segment_start, True))
        plan.sort()
        return [
            Rfc4733Packet(
                marker=index == 0,
                timestamp=ts_add(timestamp, segment_start),
                payload=TelephoneEvent(event, end, self.volume, duration).serialize(),
                send_offset=at / self.clock_rate,
            )
            for index, (at, _, segment_start, duration, end) in enumerate(plan)
        ]


# ----------------------------------------------------------------------------------------- SIP INFO

_INFO_TYPES: Final = ("application/dtmf-relay", "application/dtmf")


def _info_key(value: str, where: str, *, codes: bool) -> str:
    """A key as SIP INFO bodies spell it: the character itself (any case), or with ``codes`` an RFC 4733
    event code.

    dtmf-relay Signal takes event codes because some gateways send ``Signal=10`` for "*" and
    ``Signal=11`` for "#"; 10-15 map by the RFC 4733 §3.2 table and 16 and up (flash …) are not digits.
    An application/dtmf body is the key itself: "11" there would be two presses, not "#".
    """
    text = value.strip()
    upper = text.upper()
    if len(upper) == 1 and upper in DTMF_KEYS:
        return upper
    if codes and text.isascii() and text.isdigit() and len(text) <= 2:
        key = key_for_event(int(text))
        if key is not None:
            return key
    raise DtmfError(f"{where} {text[:20]!r} is not a DTMF key")


def parse_dtmf_info(content_type: str, body: bytes) -> Digit | None:
    """The digit of a SIP INFO request carrying DTMF, or None when the body is not a DTMF type.

    ``application/dtmf-relay`` (the de facto format): ``Signal=5`` and optional ``Duration=160`` (ms)
    lines; names are case-insensitive, whitespace around names and values and bare LF line ends are
    accepted, other lines of the form ``name=value`` are ignored. ``application/dtmf``: the body is the
    key. Content-type parameters are ignored.

    None means "not DTMF" (the caller may try another handler, or answer 415); a DTMF content type whose
    body is not a single valid digit raises :class:`DtmfError` (answer 400).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _INFO_TYPES:
        return None
    if len(body) > MAX_INFO_BODY_LENGTH:
        raise DtmfError(f"{media_type} body is {len(body)} bytes, more than {MAX_INFO_BODY_LENGTH}")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise DtmfError(f"{media_type} body is not ASCII") from None
    if media_type == "application/dtmf":
        if not text.strip():
            raise DtmfError("application/dtmf body is empty")
        return Digit(
            _info_key(text, "application/dtmf body", codes=False),
            DigitSource.SIP_INFO,
            DEFAULT_INFO_DURATION_MS,
        )
    signal: str | None = None
    duration = DEFAULT_INFO_DURATION_MS
    seen_duration = False
    for line in text.splitlines():
        if not line.strip():
            continue
        name, equals, value = line.partition("=")
        if not equals:
            raise DtmfError(f"dtmf-relay line without '=': {line.strip()[:40]!r}")
        name = name.strip().lower()
        if name == "signal":
            if signal is not None:
                raise DtmfError("dtmf-relay body has more than one Signal")
            signal = _info_key(value, "dtmf-relay Signal", codes=True)
        elif name == "duration":
            if seen_duration:
                raise DtmfError("dtmf-relay body has more than one Duration")
            seen_duration = True
            number = value.strip()
            if not (number.isascii() and number.isdigit()) or len(number) > 6:
                raise DtmfError(f"dtmf-relay Duration {number[:20]!r} is not a number of milliseconds")
            duration = int(number)
            if duration > MAX_DIGIT_DURATION_MS:
                raise DtmfError(f"dtmf-relay Duration {duration} is more than {MAX_DIGIT_DURATION_MS} ms")
    if signal is None:
        raise DtmfError("dtmf-relay body has no Signal")
    return Digit(signal, DigitSource.SIP_INFO, duration)
