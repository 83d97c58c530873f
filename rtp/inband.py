"""In-band DTMF detection (Goertzel) on decoded 8 kHz G.711 audio, for callers without telephone-event.

A caller whose SDP offers no telephone-event (RFC 4733 §7.1.1) still sends its keypad as tones in
the audio: one of four row tones plus one of four column tones (ITU-T Q.23). The relay decodes the
caller's frames (:mod:`rtp.g711`) and feeds them here; each key press comes back once, when it ends,
as an :class:`InbandDigit` with the time the tone started and how long it lasted.

Sans-IO: :meth:`InbandDetector.feed` takes samples and ``now``, the caller's clock reading for the
first of them; the detector reads no clock and keeps no timer.

How a press is recognised (acceptance figures from ITU-T Q.24 and the Bellcore receiver
requirements it lists; every threshold is a field of :class:`InbandConfig`):

- Audio is cut into blocks of :data:`BLOCK_SIZE` samples and each block is measured at the eight
  DTMF frequencies by Goertzel filters tuned to the exact frequencies, not to DFT bins.
- A block is a *hit* for a key when the strongest row tone and the strongest column tone are each at
  least ``min_tone_level_dbm0``; each is ``min_relative_peak_db`` above the other tones of its group
  (the key is not ambiguous); the column tone is at most ``max_normal_twist_db`` weaker than the row
  tone and at most ``max_reverse_twist_db`` stronger (twist: lines lose more at high frequencies, so
  the tolerance is wider that way); and the two tones carry at least ``min_tone_to_total`` of the
  block's energy. Speech and noise spread their energy over the band and fail the last check even
  when two of their components happen to sit on DTMF frequencies.
- A press starts with two consecutive hits for the same key and lasts until the key's tones have
  been absent for ``min_pause`` in total: a dropout shorter than that (Bellcore: up to 10 ms) is
  bridged, so a key held for a second is one digit, and a pause of 40 ms (the shortest interdigit
  pause Q.24 asks a receiver to honour) separates two presses of the same key. A hit for another
  key ends a press at once.
- The tone's duration is measured to a fraction of a block: in a block the tone only partly covers,
  the Goertzel amplitude at the key's frequencies falls in proportion to the covered part, so
  comparing it with the amplitude of a full block tells how much of the block the tone filled.
  A press shorter than ``min_duration`` is dropped (Q.24: tones of 40 ms must be accepted, tones of
  23 ms or less must not), and the reported ``duration_ms`` and ``started`` are accurate to about a
  millisecond.

Frequency tolerance follows from the tone-to-total check: a tone off its nominal frequency leaks
out of its filter, so tones 1.5% off (Q.24: must be accepted) pass while they are clean, with less
margin against noise than exact ones, and tones 2.5% or more off (Q.24: reject at 3.5%) fail.

Gaps (:meth:`InbandDetector.feed_rtp`): audio fed by packet shows by its RTP timestamps where
audio is missing (lost packets; silence suppressed or sent as comfort noise, RFC 3389), and the
gap is filled as a G.711 receiver would play it (ITU-T G.711 Appendix I, much simplified): the
last frame once more, then silence, at most :data:`MAX_CONCEALED` seconds. Without it the frames
around a gap are joined: losing the 40-60 ms pause between two presses of one key (two or three
packets) made them one digit. With it one lost packet inside a tone is bridged (the repeated
frame), and a lost pause stays a pause.

Not done: a second-harmonic check. Speech's harmonics land in the tone-to-total check already, and
with 102-sample blocks the second harmonic of a row tone (1394-1882 Hz) sits inside the main lobe
of a column filter, so it would mostly measure the column tone.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from operator import mul
from typing import Final, Literal, TypeAlias

logger = logging.getLogger(__name__)

__all__ = [
    "BLOCK_SIZE",
    "COLUMN_FREQUENCIES",
    "DBM0_PEAK",
    "KEYS",
    "MAX_CONCEALED",
    "ROW_FREQUENCIES",
    "SAMPLE_RATE",
    "DtmfKey",
    "InbandConfig",
    "InbandDetector",
    "InbandDigit",
    "InbandError",
]

#: G.711 is sampled at 8 kHz (RFC 3551 §4.5.14); the filter coefficients below assume it.
SAMPLE_RATE: Final = 8000
#: Goertzel block length: 12.75 ms. Two consecutive full blocks fit in a 40 ms tone however it is
#: aligned (3 × 102 - 1 = 305 ≤ 320 samples), which the two-hit rule needs; and the filters are
#: still narrow enough that a DTMF tone reaches a neighbouring tone's filter at least 14 dB down,
#: well below the 8 dB dominance test. The classic 205-sample block separates better but needs
#: 77 ms of tone for two hits; the block sizes between 102 and 107 that also fit behave alike.
BLOCK_SIZE: Final = 102
_BLOCK_SECONDS: Final = BLOCK_SIZE / SAMPLE_RATE
#: The longest gap filled in (feed_rtp), seconds: longer than any pause that ends a press, so a
#: longer gap is the same to the detector.
MAX_CONCEALED: Final = 0.2
#: A packet up to this far behind the audio fed (RFC 3550 A.1's 100 packets of 20 ms) is late or
#: repeated: skipped, its place was filled. Further behind is the sender starting over, believed
#: when the next packet follows it (as RFC 3550 A.1 does for sequence numbers).
_MAX_MISORDER: Final = 100 * 160
#: Peak of a 0 dBm0 sine in 16-bit linear PCM. G.711 puts a full-scale sine (A-law's overload
#: point, 4096 on its 13-bit scale, 32768 here) at +3.14 dBm0; µ-law's +3.17 dBm0 differs by less
#: than a tenth of a decibel, so one reference serves both laws.
DBM0_PEAK: Final = 32768 * 10 ** (-3.14 / 20)

#: Q.23 frequencies: rows (low group) and columns (high group), in Hz.
ROW_FREQUENCIES: Final = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES: Final = (1209.0, 1336.0, 1477.0, 1633.0)

DtmfKey = Literal["1", "2", "3", "A", "4", "5", "6", "B", "7", "8", "9", "C", "*", "0", "#", "D"]
#: The Q.23 keypad, by row then column.
KEYS: Final[tuple[tuple[DtmfKey, DtmfKey, DtmfKey, DtmfKey], ...]] = (
    ("1", "2", "3", "A"),
    ("4", "5", "6", "B"),
    ("7", "8", "9", "C"),
    ("*", "0", "#", "D"),
)
_ALL_KEYS: Final = frozenset(key for row in KEYS for key in row)

_COEFFICIENTS: Final = tuple(
    2.0 * math.cos(2.0 * math.pi * f / SAMPLE_RATE) for f in ROW_FREQUENCIES + COLUMN_FREQUENCIES
)


class InbandError(ValueError):
    """A caller passed the detector something it cannot use: a bad threshold, time or sample."""


@dataclass(frozen=True, slots=True)
class InbandDigit:
    """One key press heard in the audio.

    ``started`` is on the clock of the ``now`` values given to :meth:`InbandDetector.feed`: the time
    of the tone's first sample. ``duration_ms`` is how long the tone lasted, dropouts included.
    ``source`` says how the digit arrived, beside RFC 4733 events and SIP INFO.
    """

    key: DtmfKey
    started: float
    duration_ms: int
    source: Literal["inband"] = "inband"

    def __post_init__(self) -> None:
        if self.key not in _ALL_KEYS:
            raise InbandError(f"DTMF key must be one of 0-9, *, #, A-D, not {self.key!r}")
        if not math.isfinite(self.started):
            raise InbandError(f"start time must be finite, not {self.started!r}")
        if self.duration_ms < 0:
            raise InbandError(f"duration must not be negative, not {self.duration_ms} ms")
        if self.source != "inband":
            raise InbandError(f"source of an in-band digit must be 'inband', not {self.source!r}")


@dataclass(frozen=True, slots=True)
class InbandConfig:
    """Acceptance thresholds (module docstring); the defaults follow ITU-T Q.24.

    - ``min_tone_level_dbm0``: the weakest tone accepted, per frequency. Q.24's figures differ by
      administration; receivers are commonly asked to work down to about -25 dBm0 per tone, and
      -30 leaves 5 dB for a long line while keeping the level test away from G.711's noise floor.
    - ``max_normal_twist_db`` / ``max_reverse_twist_db``: how much weaker (normal) or stronger
      (reverse) the column tone may be than the row tone: 8 and 4 dB, the Q.24 / Bellcore figures.
    - ``min_relative_peak_db``: how far each of the two tones must stand above the other tones of
      its group. 8 dB is 6 dB inside the filters' worst crosstalk at :data:`BLOCK_SIZE`.
    - ``min_tone_to_total``: the share of the block's energy the two tones must carry. A clean
      dual tone scores about 1 and one with white noise 10 dB below it about 0.9; voiced speech
      spreads its energy over many harmonics. 0.8 (spandsp's figure is close) passes tones 8 dB
      above white noise; at 0.7 synthetic high-pitched vowels began to be taken for digits.
    - ``min_duration``: 35 ms, halfway between Q.24's must-accept 40 ms and a 30 ms burst, which
      we also refuse (Q.24 only requires refusing 23 ms), with room for the ~2 ms the estimate can
      be off either way.
    - ``min_pause``: absence that ends a press, 25 ms: above Bellcore's 10 ms dropouts that must be
      bridged and below Q.24's 40 ms interdigit pauses that must be honoured.
    """

    min_tone_level_dbm0: float = -30.0
    max_normal_twist_db: float = 8.0
    max_reverse_twist_db: float = 4.0
    min_relative_peak_db: float = 8.0
    min_tone_to_total: float = 0.8
    min_duration: float = 0.035
    min_pause: float = 0.025

    def __post_init__(self) -> None:
        # Bounds that keep the checks meaningful: a level above 0 dBm0 is above any real tone and
        # one below -60 is G.711's noise floor; negative decibels or durations would invert a test.
        if not -60.0 <= self.min_tone_level_dbm0 <= 0.0:
            raise InbandError(f"min_tone_level_dbm0 must be in -60..0, not {self.min_tone_level_dbm0}")
        for name in ("max_normal_twist_db", "max_reverse_twist_db", "min_relative_peak_db"):
            value = getattr(self, name)
            if not 0.0 <= value <= 40.0:
                raise InbandError(f"{name} must be in 0..40 dB, not {value}")
        if not 0.0 < self.min_tone_to_total <= 1.0:
            raise InbandError(f"min_tone_to_total must be in (0, 1], not {self.min_tone_to_total}")
        # Two hits are needed anyway, so anything below two blocks is the same as none; a second is
        # far longer than any keypad press.
        if not 0.0 <= self.min_duration <= 1.0:
            raise InbandError(f"min_duration must be in 0..1 s, not {self.min_duration}")
        if not 0.0 < self.min_pause <= 1.0:
            raise InbandError(f"min_pause must be in (0, 1] s, not {self.min_pause}")


def _goertzel(block: array[int]) -> list[float]:
    """Power at the eight DTMF frequencies over one block: |X(f)|² of the block's DFT at f.

    One pass with all eight filters unrolled: a loop per filter costs a fifth more in CPython, and
    this runs 78 times a second per call.
    """
    c0, c1, c2, c3, c4, c5, c6, c7 = _COEFFICIENTS
    a1 = a2 = b1 = b2 = d1 = d2 = e1 = e2 = f1 = f2 = g1 = g2 = h1 = h2 = i1 = i2 = 0.0
    for x in block:
        a1, a2 = x + c0 * a1 - a2, a1
        b1, b2 = x + c1 * b1 - b2, b1
        d1, d2 = x + c2 * d1 - d2, d1
        e1, e2 = x + c3 * e1 - e2, e1
        f1, f2 = x + c4 * f1 - f2, f1
        g1, g2 = x + c5 * g1 - g2, g1
        h1, h2 = x + c6 * h1 - h2, h1
        i1, i2 = x + c7 * i1 - i2, i1
    return [
        s1 * s1 + s2 * s2 - c * s1 * s2
        for c, s1, s2 in (
            (c0, a1, a2),
            (c1, b1, b2),
            (c2, d1, d2),
            (c3, e1, e2),
            (c4, f1, f2),
            (c5, g1, g2),
            (c6, h1, h2),
            (c7, i1, i2),
        )
    ]


class _Block:
    """One measured block; its filter powers are computed only if someone asks."""

    __slots__ = ("_powers", "energy", "samples", "start")

    def __init__(self, samples: array[int], start: float) -> None:
        self.samples = samples
        self.start = start
        self.energy: int = sum(map(mul, samples, samples))
        self._powers: list[float] | None = None

    @property
    def powers(self) -> list[float]:
        if self._powers is None:
            self._powers = _goertzel(self.samples)
        return self._powers


_Tones: TypeAlias = tuple[float, float]
"""A block's power at a press's row and column frequencies."""


class _Press:
    """A key press being followed, from its confirmation (two hits) to its end.

    Edge blocks are kept as their powers and measured against the reference only when the press
    ends, when the reference has been averaged over every hit in between.
    """

    __slots__ = (
        "column",
        "first",
        "first_start",
        "inner",
        "inner_hits",
        "inner_power",
        "key",
        "last",
        "lead",
        "missed",
        "row",
        "silence",
        "trail",
    )

    def __init__(
        self, key: DtmfKey, row: int, column: int, lead: _Block | None, first: _Block, second: _Block
    ) -> None:
        self.key = key
        #: Indices of the key's two tones in a block's powers: rows are 0-3, columns 4-7.
        self.row = row
        self.column = column
        #: The block before the first hit (where the tone may have begun), and the first hit.
        self.lead = None if lead is None else self.tones(lead)
        self.first = self.tones(first)
        self.first_start = first.start
        #: The latest hit: inner if another hit follows, the tone's end (maybe partial) if not.
        self.last = self.tones(second)
        #: Whole blocks between the first and the latest hit (dropouts included), and the summed
        #: powers of the hits among them: a block the tone fills, averaged.
        self.inner = 0
        self.inner_hits = 0
        self.inner_power: _Tones = (0.0, 0.0)
        #: Since the latest hit: the first block after it (the tone's trailing edge if no hit
        #: follows), how many blocks missed, and the silence they add up to (seconds).
        self.trail: _Tones | None = None
        self.missed = 0
        self.silence = 0.0

    def tones(self, block: _Block) -> _Tones:
        powers = block.powers
        return powers[self.row], powers[self.column]

    def hit(self, block: _Block) -> None:
        row, column = self.last
        self.inner_power = (self.inner_power[0] + row, self.inner_power[1] + column)
        self.inner_hits += 1
        self.inner += 1 + self.missed
        self.last = self.tones(block)
        self.trail = None
        self.missed = 0
        self.silence = 0.0

    def coverage(self, tones: _Tones | None) -> float:
        """How much of a block this press's tone filled, 0..1.

        A tone covering M of a block's N samples gives a Goertzel amplitude M/N of a full block's at
        both of its frequencies. The full block's amplitude is the mean of the inner hits, or the
        larger of the only two hits; each filter also hears a few per cent of the other tone, in a
        phase that varies from block to block, so the two ratios are averaged.
        """
        if tones is None:
            return 0.0
        if self.inner_hits:
            full_row, full_column = (power / self.inner_hits for power in self.inner_power)
        else:
            full_row, full_column = max(self.first[0], self.last[0]), max(self.first[1], self.last[1])
        ratio = 0.5 * (math.sqrt(tones[0] / full_row) + math.sqrt(tones[1] / full_column))
        return min(1.0, ratio)


def _as_samples(samples: Iterable[int]) -> array[int]:
    if isinstance(samples, array) and samples.typecode == "h":
        return samples
    try:
        return array("h", samples)
    except (OverflowError, TypeError):
        raise InbandError("samples must be integers in the 16-bit range -32768..32767") from None


class InbandDetector:
    """Sans-IO in-band DTMF detector for one direction of one call (module docstring).

    Feed it every decoded frame in order with :meth:`feed`; call :meth:`flush` when the audio stops
    so that a key still held is reported.
    """

    def __init__(self, config: InbandConfig | None = None) -> None:
        self.config = config = config or InbandConfig()
        amplitude = DBM0_PEAK * 10 ** (config.min_tone_level_dbm0 / 20)
        # A tone of amplitude A over the whole block gives |X|² = (A·N/2)².
        self._min_power = (amplitude * BLOCK_SIZE / 2) ** 2
        # |X(f)|² ≤ N·Σx² (Cauchy-Schwarz), so below this energy no filter can reach the level and
        # the block is skipped unmeasured: silence costs a sum of squares, not eight filters.
        self._quiet_energy = self._min_power / BLOCK_SIZE
        self._normal_twist = 10 ** (config.max_normal_twist_db / 10)
        self._reverse_twist = 10 ** (config.max_reverse_twist_db / 10)
        self._relative_peak = 10 ** (config.min_relative_peak_db / 10)
        # For a pure dual tone Σ|X|² over its two frequencies equals Σx²·N/2.
        self._tone_share = config.min_tone_to_total * BLOCK_SIZE / 2
        self._buffer: array[int] = array("h")
        self._buffer_start = 0.0
        self._previous: _Block | None = None
        self._before_previous: _Block | None = None
        self._previous_key: DtmfKey | None = None
        self._press: _Press | None = None
        # feed_rtp: the stream fed, the RTP timestamp the audio has reached, the last frame, and
        # where a sender that seems to have started over would go on
        self._last_ssrc: int | None = None
        self._next_timestamp = 0
        self._last_frame: array[int] = array("h")
        self._restart_at: int | None = None

    def feed_rtp(self, ssrc: int, timestamp: int, samples: Iterable[int], now: float) -> list[InbandDigit]:
        """Take one RTP packet's decoded samples, in arrival order, with its SSRC and timestamp
        (8 kHz): gaps are filled in, a late or repeated packet is skipped (module docstring). A
        new SSRC (another source) continues the audio as it comes."""
        samples = _as_samples(samples)
        timestamp &= 0xFFFFFFFF
        if ssrc != self._last_ssrc:
            self._last_ssrc = ssrc
            return self._fed(timestamp, samples, samples, now)
        gap = (timestamp - self._next_timestamp) & 0xFFFFFFFF
        if gap >= 0x80000000:  # behind the audio fed
            if 0x100000000 - gap <= _MAX_MISORDER:
                return []  # late or repeated: its place has been filled
            if timestamp != self._restart_at:
                # far behind: the sender starting over, if its next packet follows this one
                self._restart_at = (timestamp + len(samples)) & 0xFFFFFFFF
                return []
            gap = 0  # it did: go on from here
        if gap == 0:
            return self._fed(timestamp, samples, samples, now)
        filled = min(gap, round(MAX_CONCEALED * SAMPLE_RATE))
        audio = array("h", self._last_frame[:filled])
        audio.frombytes(bytes(2 * (filled - len(audio))))  # zero samples: silence
        audio.extend(samples)
        return self._fed(timestamp, samples, audio, now - filled / SAMPLE_RATE)

    def _fed(self, timestamp: int, frame: array[int], audio: array[int], now: float) -> list[InbandDigit]:
        self._next_timestamp = (timestamp + len(frame)) & 0xFFFFFFFF
        self._last_frame = array("h", frame)  # (a copy: the caller may reuse its buffer)
        self._restart_at = None
        return self.feed(audio, now)

    def feed(self, samples: Iterable[int], now: float) -> list[InbandDigit]:
        """Take decoded samples (any count; a 20 ms frame is 160) whose first was heard at ``now``.

        Returns the presses that ended within them, usually none. Samples are signed 16-bit
        (``array('h')`` from :mod:`rtp.g711` is taken as is).
        """
        if not math.isfinite(now):
            raise InbandError(f"time must be finite, not {now!r}")
        samples = _as_samples(samples)
        carried = len(self._buffer)
        if carried == 0:
            self._buffer_start = now
        buffer = self._buffer + samples
        digits: list[InbandDigit] = []
        offset = 0
        while offset + BLOCK_SIZE <= len(buffer):
            self._on_block(
                _Block(buffer[offset : offset + BLOCK_SIZE], self._time_of(offset, carried, now)), digits
            )
            offset += BLOCK_SIZE
        self._buffer_start = self._time_of(offset, carried, now)
        self._buffer = buffer[offset:]
        return digits

    def _time_of(self, index: int, carried: int, now: float) -> float:
        """Time of sample ``index`` of buffer + new samples: each keeps the clock of its own feed."""
        if index < carried:
            return self._buffer_start + index / SAMPLE_RATE
        return now + (index - carried) / SAMPLE_RATE

    def flush(self) -> list[InbandDigit]:
        """End of audio: report a press still in progress and forget everything buffered."""
        digits: list[InbandDigit] = []
        if self._press is not None:
            self._finish(digits)
        self._buffer = array("h")
        self._previous = self._before_previous = None
        self._previous_key = None
        self._last_ssrc = None
        return digits

    def _classify(self, block: _Block) -> DtmfKey | None:
        """The key this block is a hit for, or None (module docstring, in order of cost)."""
        if block.energy < self._quiet_energy:
            return None
        powers = block.powers
        rows, columns = powers[:4], powers[4:]
        row_power, column_power = max(rows), max(columns)
        if row_power < self._min_power or column_power < self._min_power:
            return None
        if row_power > column_power * self._normal_twist or column_power > row_power * self._reverse_twist:
            return None
        if row_power + column_power < self._tone_share * block.energy:
            return None
        row, column = rows.index(row_power), columns.index(column_power)
        for group, best, peak in ((rows, row, row_power), (columns, column, column_power)):
            for i, power in enumerate(group):
                if i != best and power * self._relative_peak > peak:
                    return None
        return KEYS[row][column]

    def _on_block(self, block: _Block, digits: list[InbandDigit]) -> None:
        key = self._classify(block)
        press = self._press
        if press is not None:
            if key == press.key:
                press.hit(block)
            elif key is None:
                tones = press.tones(block)
                if press.trail is None:
                    press.trail = tones
                press.missed += 1
                press.silence += (1.0 - press.coverage(tones)) * _BLOCK_SECONDS
                if press.silence >= self.config.min_pause:
                    self._finish(digits)
            else:
                self._finish(digits)
        elif key is not None and key == self._previous_key and self._previous is not None:
            # Two hits in a row: a press starts.
            row = next(i for i, keys in enumerate(KEYS) if key in keys)
            column = 4 + KEYS[row].index(key)
            self._press = _Press(key, row, column, self._before_previous, self._previous, block)
        self._before_previous, self._previous = self._previous, block
        self._previous_key = key if self._press is None else None

    def _finish(self, digits: list[InbandDigit]) -> None:
        press = self._press
        assert press is not None
        self._press = None
        lead, first = press.coverage(press.lead), press.coverage(press.first)
        blocks = lead + first + press.inner + press.coverage(press.last) + press.coverage(press.trail)
        duration = blocks * _BLOCK_SECONDS
        if duration < self.config.min_duration:
            logger.debug("in-band %s dropped: %.1f ms is too short", press.key, duration * 1000)
            return
        # The tone began either inside the first hit (then the lead block is empty) or inside the
        # lead block (then the first hit is full); one of the two terms is about zero.
        started = press.first_start + ((1.0 - first) - lead) * _BLOCK_SECONDS
        digit = InbandDigit(press.key, started, round(duration * 1000))
        logger.debug("in-band %s at %.3f for %d ms", digit.key, digit.started, digit.duration_ms)
        digits.append(digit)
