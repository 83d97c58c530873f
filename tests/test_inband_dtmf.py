"""Tests of rtp.inband: synthetic DTMF through G.711, durations, twist, noise and speech-like signals.

Every signal is made here with math.sin and a seeded random.Random, passed through rtp.g711's
encoder and decoder as it would arrive in RTP, and fed in 20 ms frames. Levels are in dBm0 per tone,
with 0 dBm0 a sine of peak 32768 x 10**(-3.14/20): G.711 puts its full-scale sine at +3.14 dBm0.
Tests that expect silence from the detector end their signal with a real key press and expect that
one digit, so that a detector which never detects fails them too.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Callable, Collection, Sequence
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtp.g711 import decode_pcma, decode_pcmu, encode_pcma, encode_pcmu
from rtp.inband import (
    BLOCK_SIZE,
    COLUMN_FREQUENCIES,
    DBM0_PEAK,
    KEYS,
    ROW_FREQUENCIES,
    SAMPLE_RATE,
    InbandConfig,
    InbandDetector,
    InbandDigit,
    InbandError,
)

ALL_KEYS = "123A456B789C*0#D"
FRAME = 160  # 20 ms, the usual G.711 packet
T0 = 1000.0  # clock reading of the first sample fed
Signal = list[float]


def amplitude(dbm0: float) -> float:
    return DBM0_PEAK * 10 ** (dbm0 / 20)


def samples(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000)


def silence(ms: float) -> Signal:
    return [0.0] * samples(ms)


def dual_tone(
    key: str,
    ms: float,
    row_dbm0: float = -10.0,
    column_dbm0: float | None = None,
    *,
    rng: random.Random,
    deviation: float = 0.0,
) -> Signal:
    """The key's two Q.23 tones, each at its level, random phases, both off by ``deviation``."""
    row = next(i for i, keys in enumerate(KEYS) if key in keys)
    column = KEYS[row].index(key)
    low = 2 * math.pi * ROW_FREQUENCIES[row] * (1 + deviation) / SAMPLE_RATE
    high = 2 * math.pi * COLUMN_FREQUENCIES[column] * (1 + deviation) / SAMPLE_RATE
    a_low = amplitude(row_dbm0)
    a_high = amplitude(row_dbm0 if column_dbm0 is None else column_dbm0)
    p_low, p_high = rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)
    return [
        a_low * math.sin(low * n + p_low) + a_high * math.sin(high * n + p_high) for n in range(samples(ms))
    ]


def white_noise(count: int, dbm0: float, rng: random.Random) -> Signal:
    """Gaussian noise with the power of a sine at ``dbm0``."""
    sigma = amplitude(dbm0) / math.sqrt(2)
    return [rng.gauss(0.0, sigma) for _ in range(count)]


def mix(*signals: Signal) -> Signal:
    return [sum(values) for values in zip(*signals, strict=True)]


def through_g711(signal: Signal, law: str = "pcmu") -> array[int]:
    """What the detector gets: the signal coded as the caller's phone would, and decoded by us."""
    pcm = array("h", (max(-32768, min(32767, round(x))) for x in signal))
    if law == "pcmu":
        return decode_pcmu(encode_pcmu(pcm))
    return decode_pcma(encode_pcma(pcm))


def detect(
    pcm: Sequence[int], detector: InbandDetector | None = None, frame: int = FRAME, flush: bool = True
) -> list[InbandDigit]:
    detector = detector or InbandDetector()
    digits: list[InbandDigit] = []
    for offset in range(0, len(pcm), frame):
        digits += detector.feed(pcm[offset : offset + frame], T0 + offset / SAMPLE_RATE)
    if flush:
        digits += detector.flush()
    return digits


def summary(digits: list[InbandDigit]) -> list[tuple[str, float, int]]:
    """Key, start in ms after the first sample, and duration: what the tests compare."""
    return [(d.key, round((d.started - T0) * 1000, 1), d.duration_ms) for d in digits]


def assert_press(
    digit: InbandDigit, key: str, start_ms: float, duration_ms: float, slack_ms: float = 3
) -> None:
    assert digit.key == key
    assert digit.source == "inband"
    assert abs((digit.started - T0) * 1000 - start_ms) <= slack_ms, summary([digit])
    assert abs(digit.duration_ms - duration_ms) <= slack_ms, summary([digit])


# -- every key, several levels, both laws -------------------------------------------------------


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
@pytest.mark.parametrize("level", [-3.0, -10.0, -20.0, -27.0])
def test_every_key_at_several_levels(law: str, level: float) -> None:
    rng = random.Random(f"{law}{level}")
    for key in ALL_KEYS:
        pcm = through_g711(silence(50) + dual_tone(key, 80, level, rng=rng) + silence(100), law)
        digits = detect(pcm)
        assert len(digits) == 1, (key, summary(digits))
        assert_press(digits[0], key, 50, 80)


@pytest.mark.parametrize("level", [-33.0, -40.0])
def test_tones_below_the_level_threshold_are_ignored(level: float) -> None:
    rng = random.Random(7)
    for key in ALL_KEYS:
        pcm = through_g711(
            dual_tone(key, 100, level, rng=rng) + silence(60) + dual_tone("5", 60, -10, rng=rng)
        )
        assert [d.key for d in detect(pcm)] == ["5"], key


def test_dbm0_reference_is_the_g711_convention() -> None:
    # A full-scale sine (peak 32768) is +3.14 dBm0, so 0 dBm0 peaks at about 22827.
    assert round(DBM0_PEAK, 2) == 22827.06
    assert 20 * math.log10(32768 / DBM0_PEAK) == pytest.approx(3.14)


# -- twist ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row_dbm0", "column_dbm0"),
    [(-10.0, -16.0), (-8.0, -15.0), (-13.0, -10.0), (-20.0, -17.0)],
    ids=["normal-6dB", "normal-7dB", "reverse-3dB", "reverse-3dB-quiet"],
)
def test_twist_inside_the_limits_is_accepted(row_dbm0: float, column_dbm0: float) -> None:
    rng = random.Random(11)
    for key in ALL_KEYS:
        digits = detect(
            through_g711(silence(20) + dual_tone(key, 80, row_dbm0, column_dbm0, rng=rng) + silence(100))
        )
        assert [d.key for d in digits] == [key]


@pytest.mark.parametrize(
    ("row_dbm0", "column_dbm0"),
    [(-6.0, -16.0), (-3.0, -15.0), (-16.0, -10.0), (-15.0, -9.0)],
    ids=["normal-10dB", "normal-12dB", "reverse-6dB", "reverse-6dB-loud"],
)
def test_twist_outside_the_limits_is_refused(row_dbm0: float, column_dbm0: float) -> None:
    rng = random.Random(12)
    for key in ALL_KEYS:
        signal = (
            dual_tone(key, 100, row_dbm0, column_dbm0, rng=rng) + silence(60) + dual_tone("0", 60, rng=rng)
        )
        assert [d.key for d in detect(through_g711(signal))] == ["0"], key


def test_twist_limits_follow_the_config() -> None:
    rng = random.Random(13)
    signal = through_g711(silence(20) + dual_tone("9", 80, -6, -16, rng=rng) + silence(100))
    assert detect(signal) == []
    assert [d.key for d in detect(signal, InbandDetector(InbandConfig(max_normal_twist_db=12)))] == ["9"]


# -- dominance ---------------------------------------------------------------------------------------


def with_extra_tone(key: str, extra_hz: float, extra_dbm0: float, rng: random.Random) -> Signal:
    """The key at -10 dBm0 per tone plus a third tone: a second row or column, so which key is meant?"""
    tone = dual_tone(key, 100, -10, rng=rng)
    step, phase, peak = (
        2 * math.pi * extra_hz / SAMPLE_RATE,
        rng.uniform(0, 2 * math.pi),
        amplitude(extra_dbm0),
    )
    return mix(tone, [peak * math.sin(step * n + phase) for n in range(len(tone))])


@pytest.mark.parametrize(("extra_hz", "group"), [(770.0, "row"), (1336.0, "column")])
def test_a_second_tone_of_one_group_makes_the_key_ambiguous(extra_hz: float, group: str) -> None:
    rng = random.Random(group)
    # 6 dB down the third tone leaves the two main tones 89 % of the energy, enough for the
    # tone-to-total check: only the 8 dB dominance check refuses it.
    ambiguous = through_g711(with_extra_tone("1", extra_hz, -16, rng) + silence(100))
    assert detect(ambiguous) == []
    assert [d.key for d in detect(ambiguous, InbandDetector(InbandConfig(min_relative_peak_db=4)))] == ["1"]
    clear = through_g711(with_extra_tone("1", extra_hz, -24, rng) + silence(100))
    assert [d.key for d in detect(clear)] == ["1"]


# -- frequency tolerance (Q.24: accept 1.5 % off, refuse 3.5 % off) ------------------------------------


@pytest.mark.parametrize("deviation", [-0.015, 0.015])
def test_tones_slightly_off_frequency_are_accepted(deviation: float) -> None:
    rng = random.Random(14)
    for key in ALL_KEYS:
        signal = silence(20) + dual_tone(key, 80, rng=rng, deviation=deviation) + silence(100)
        assert [d.key for d in detect(through_g711(signal))] == [key]


@pytest.mark.parametrize("deviation", [-0.035, 0.035])
def test_tones_far_off_frequency_are_refused(deviation: float) -> None:
    rng = random.Random(15)
    for key in ALL_KEYS:
        signal = dual_tone(key, 100, rng=rng, deviation=deviation) + silence(60) + dual_tone("#", 60, rng=rng)
        assert [d.key for d in detect(through_g711(signal))] == ["#"], key


# -- duration --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ms", [20, 30])
def test_short_bursts_are_not_digits_however_they_align(ms: int) -> None:
    rng = random.Random(ms)
    for key in ALL_KEYS:
        for offset in range(0, BLOCK_SIZE, 3):
            signal = [0.0] * offset + dual_tone(key, ms, rng=rng) + silence(60) + dual_tone("1", 60, rng=rng)
            assert [d.key for d in detect(through_g711(signal))] == ["1"], (key, offset)


def test_40ms_tones_are_digits_however_they_align() -> None:
    rng = random.Random(40)
    for key in ALL_KEYS:
        for offset in range(0, BLOCK_SIZE, 3):
            digits = detect(
                through_g711(silence(20) + [0.0] * offset + dual_tone(key, 40, rng=rng) + silence(60))
            )
            assert len(digits) == 1, (key, offset)
            assert_press(digits[0], key, 20 + offset / 8, 40, slack_ms=4)


def test_min_duration_follows_the_config() -> None:
    rng = random.Random(41)
    signal = through_g711(silence(20) + dual_tone("3", 50, rng=rng) + silence(60))
    assert [d.key for d in detect(signal)] == ["3"]
    assert detect(signal, InbandDetector(InbandConfig(min_duration=0.06))) == []


def test_a_long_press_is_one_digit_reported_when_released() -> None:
    rng = random.Random(1000)
    pcm = through_g711(silence(20) + dual_tone("0", 1000, -15, rng=rng) + silence(200))
    detector = InbandDetector()
    held = pcm[: samples(20 + 1000)]
    # Nothing while the key is down: the press is reported once, with its length, when it ends.
    assert detect(held, detector, flush=False) == []
    released = detector.feed(pcm[len(held) :], T0 + len(held) / SAMPLE_RATE)
    assert len(released) == 1
    assert_press(released[0], "0", 20, 1000)


def test_flush_reports_a_key_still_held() -> None:
    rng = random.Random(3)
    pcm = through_g711(silence(20) + dual_tone("D", 300, rng=rng))
    detector = InbandDetector()
    assert detect(pcm, detector, flush=False) == []
    digits = detector.flush()
    assert len(digits) == 1
    assert_press(digits[0], "D", 20, 300, slack_ms=13)  # the last partial block is never seen
    assert detector.flush() == []


# -- sequences, pauses and dropouts ----------------------------------------------------------------


@pytest.mark.parametrize("law", ["pcmu", "pcma"])
def test_1133_with_60ms_gaps_is_four_digits(law: str) -> None:
    rng = random.Random(1133)
    signal = silence(30)
    for key in "1133":
        signal += dual_tone(key, 60, -12, rng=rng) + silence(60)
    digits = detect(through_g711(signal, law))
    assert [d.key for d in digits] == list("1133")
    for i, digit in enumerate(digits):
        assert_press(digit, "1133"[i], 30 + 120 * i, 60)


def test_a_40ms_pause_separates_two_presses_of_one_key() -> None:
    rng = random.Random(4040)
    for offset in range(0, BLOCK_SIZE, 6):
        signal = [0.0] * offset + dual_tone("7", 60, rng=rng) + silence(40) + dual_tone("7", 60, rng=rng)
        assert [d.key for d in detect(through_g711(signal + silence(100)))] == ["7", "7"], offset


@pytest.mark.parametrize("dropout_ms", [5, 10])
def test_a_dropout_of_10ms_is_bridged(dropout_ms: int) -> None:
    rng = random.Random(dropout_ms)
    for offset in range(0, BLOCK_SIZE, 6):
        before, after = dual_tone("7", 60, rng=rng), dual_tone("7", 60, rng=rng)
        signal = silence(20) + [0.0] * offset + before + silence(dropout_ms) + after + silence(100)
        digits = detect(through_g711(signal))
        assert len(digits) == 1, offset
        # A dropout is the line's, not the caller's: the key was down all along.
        assert_press(digits[0], "7", 20 + offset / 8, 120 + dropout_ms)


def test_a_new_key_ends_the_previous_press_without_a_pause() -> None:
    rng = random.Random(12)
    signal = silence(20) + dual_tone("1", 60, rng=rng) + dual_tone("2", 60, rng=rng) + silence(100)
    digits = detect(through_g711(signal))
    assert [d.key for d in digits] == ["1", "2"]
    assert_press(digits[0], "1", 20, 60, slack_ms=7)
    assert_press(digits[1], "2", 80, 60, slack_ms=7)


def test_min_pause_follows_the_config() -> None:
    rng = random.Random(77)
    signal = through_g711(
        dual_tone("7", 60, rng=rng) + silence(40) + dual_tone("7", 60, rng=rng) + silence(100)
    )
    assert [d.key for d in detect(signal)] == ["7", "7"]
    assert [d.key for d in detect(signal, InbandDetector(InbandConfig(min_pause=0.06)))] == ["7"]


# -- noise --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "snr_db"), [(-10.0, 12.0), (-20.0, 12.0), (-3.0, 15.0)])
def test_tones_in_white_noise_are_detected(level: float, snr_db: float) -> None:
    rng = random.Random(f"noise{level}")
    for key in ALL_KEYS:
        tone = silence(50) + dual_tone(key, 80, level, rng=rng) + silence(100)
        # The noise is snr_db below the two tones together (each at `level`: 3 dB more).
        noisy = mix(tone, white_noise(len(tone), level + 3 - snr_db, rng))
        digits = detect(through_g711(noisy))
        assert len(digits) == 1, key
        assert_press(digits[0], key, 50, 80, slack_ms=5)


@pytest.mark.parametrize("level", [-30.0, -15.0, -5.0])
def test_white_noise_alone_is_not_a_digit(level: float) -> None:
    rng = random.Random(f"hiss{level}")
    signal = white_noise(samples(3000), level, rng) + silence(60) + dual_tone("4", 60, rng=rng)
    assert [d.key for d in detect(through_g711(signal))] == ["4"]


# -- speech-like signals ------------------------------------------------------------------------------


def voiced(seconds: float, rng: random.Random, level: float) -> Signal:
    """A vowel-like talker: harmonics of a 120-200 Hz voice under three moving formants, in syllables.

    The fundamental drifts ±12 % at a speaking intonation rate; F1 glides within 300-850 Hz and F2
    within 900-2300 Hz (the vowel space), F3 sits near 2.5-2.9 kHz; resonances have speech-like
    bandwidths; the glottal source falls 6 dB per octave; syllables come 3-6 times a second. Every
    harmonic up to 3.4 kHz is present, which is what DTMF lacks.
    """
    f0_base = rng.uniform(120, 200)
    intonation = rng.uniform(0.5, 2.0)
    f1_low, f1_high = rng.uniform(300, 500), rng.uniform(600, 850)
    f2_low, f2_high = rng.uniform(900, 1300), rng.uniform(1500, 2300)
    f3 = rng.uniform(2500, 2900)
    syllables = rng.uniform(3, 6)
    peak = amplitude(level)
    out: Signal = []
    phase = 0.0
    segment = 80  # 10 ms: the envelope moves slowly against that
    for start in range(0, samples(seconds * 1000), segment):
        t = start / SAMPLE_RATE
        f0 = f0_base * (1 + 0.12 * math.sin(2 * math.pi * intonation * t))
        f1 = f1_low + (f1_high - f1_low) * (0.5 + 0.5 * math.sin(2 * math.pi * 0.7 * t))
        f2 = f2_low + (f2_high - f2_low) * (0.5 + 0.5 * math.sin(2 * math.pi * 0.45 * t + 1))
        envelope = math.sqrt(max(0.0, math.sin(math.pi * syllables * t)))
        harmonics = int(3400 // f0)
        gains = []
        for k in range(1, harmonics + 1):
            f = k * f0
            resonance = sum(
                a / (1 + ((f - fc) / bw) ** 2)
                for fc, a, bw in ((f1, 1.0, 90), (f2, 0.6, 110), (f3, 0.3, 160))
            )
            gains.append(resonance / k)
        scale = peak * envelope / math.sqrt(sum(g * g for g in gains) / 2)
        step = 2 * math.pi * f0 / SAMPLE_RATE
        for _ in range(segment):
            out.append(scale * sum(g * math.sin(k * phase) for k, g in enumerate(gains, 1)))
            phase += step
    return out


def chirp(f_start: float, f_end: float, ms: float, level: float) -> Signal:
    """A sine gliding linearly from f_start to f_end: a whistle through the DTMF band."""
    count, peak, phase, out = samples(ms), amplitude(level), 0.0, []
    for n in range(count):
        phase += 2 * math.pi * (f_start + (f_end - f_start) * n / count) / SAMPLE_RATE
        out.append(peak * math.sin(phase))
    return out


def harmonic_glide(f0_start: float, f0_end: float, ms: float, level: float) -> Signal:
    """A buzz whose pitch glides, so that pairs of its harmonics cross DTMF frequency pairs."""
    count, peak, phase, out = samples(ms), amplitude(level), 0.0, []
    for n in range(count):
        f0 = f0_start + (f0_end - f0_start) * n / count
        phase += 2 * math.pi * f0 / SAMPLE_RATE
        out.append(peak * 0.6 * sum(math.sin(k * phase) / k for k in range(1, int(3400 // f0) + 1)))
    return out


def talker(seed: int, level: float) -> Signal:
    """Two seconds of one seeded talker."""
    return voiced(2.0, random.Random(seed), level)


SPEECH_LIKE: dict[str, Callable[[], Signal]] = {
    **{
        f"voiced-{seed}-{level:g}dBm0": partial(talker, seed, level)
        for seed, level in ((1, -5.0), (2, -10.0), (3, -15.0), (4, -20.0), (5, -10.0))
    },
    "chirp-up": lambda: chirp(300, 3400, 1000, -10),
    "chirp-down-slow": lambda: chirp(1800, 600, 3000, -5),
    "harmonic-glide": lambda: harmonic_glide(100, 300, 2000, -10),
}


@pytest.mark.parametrize("name", sorted(SPEECH_LIKE))
def test_speech_like_signals_are_not_digits(name: str) -> None:
    signal = SPEECH_LIKE[name]() + silence(60) + dual_tone("6", 60, rng=random.Random(name))
    for law in ("pcmu", "pcma"):
        assert [d.key for d in detect(through_g711(signal, law))] == ["6"], law


def test_a_digit_over_quiet_speech_is_detected() -> None:
    rng = random.Random(99)
    talk = voiced(0.5, random.Random(6), -30)
    tone = silence(200) + dual_tone("C", 100, -10, rng=rng) + silence(200)
    digits = detect(through_g711(mix(talk, tone)))
    assert len(digits) == 1
    assert_press(digits[0], "C", 200, 100, slack_ms=5)


# -- framing and time ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=40))
def test_results_do_not_depend_on_how_audio_is_cut(cuts: list[int]) -> None:
    rng = random.Random(5)
    pcm = through_g711(
        silence(25) + dual_tone("2", 70, rng=rng) + silence(50) + dual_tone("B", 90, rng=rng) + silence(80)
    )
    expected = detect(pcm)
    assert [d.key for d in expected] == ["2", "B"]
    detector, digits, offset, i = InbandDetector(), [], 0, 0
    while offset < len(pcm):
        size = cuts[i % len(cuts)]
        digits += detector.feed(list(pcm[offset : offset + size]), T0 + offset / SAMPLE_RATE)
        offset, i = offset + size, i + 1
    digits += detector.flush()
    assert [(d.key, d.duration_ms) for d in digits] == [(d.key, d.duration_ms) for d in expected]
    for got, want in zip(digits, expected, strict=True):
        assert got.started == pytest.approx(want.started, abs=1e-9)


def test_started_follows_the_clock_given_with_each_frame() -> None:
    rng = random.Random(8)
    pcm = through_g711(silence(40) + dual_tone("*", 80, rng=rng) + silence(100))
    detector, digits = InbandDetector(), []
    for offset in range(0, len(pcm), FRAME):
        # A clock that starts elsewhere: only its readings matter, not their origin.
        digits += detector.feed(pcm[offset : offset + FRAME], 5.0 + offset / SAMPLE_RATE)
    assert len(digits) == 1
    assert digits[0].started == pytest.approx(5.040, abs=0.003)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-32768, 32767), max_size=1000), st.floats(allow_nan=False, allow_infinity=False))
def test_any_audio_gives_only_digits(pcm: list[int], now: float) -> None:
    detector = InbandDetector()
    for digit in detector.feed(pcm, now) + detector.flush():
        assert isinstance(digit, InbandDigit)


# -- values and errors -----------------------------------------------------------------------------------


def test_digit_validates() -> None:
    assert InbandDigit("5", 1.0, 60) == InbandDigit("5", 1.0, 60, "inband")
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: InbandDigit("E", 1.0, 60), "DTMF key must be one of 0-9, *, #, A-D, not 'E'"),  # type: ignore[arg-type]
        (lambda: InbandDigit("5", math.nan, 60), "start time must be finite, not nan"),
        (lambda: InbandDigit("5", 1.0, -1), "duration must not be negative, not -1 ms"),
        (
            lambda: InbandDigit("5", 1.0, 60, "rfc4733"),  # type: ignore[arg-type]
            "source of an in-band digit must be 'inband', not 'rfc4733'",
        ),
    ]
    for make, message in cases:
        with pytest.raises(InbandError) as caught:
            make()
        assert str(caught.value) == message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_tone_level_dbm0": 3.0}, "min_tone_level_dbm0 must be in -60..0, not 3.0"),
        ({"min_tone_level_dbm0": -70.0}, "min_tone_level_dbm0 must be in -60..0, not -70.0"),
        ({"max_normal_twist_db": -1.0}, "max_normal_twist_db must be in 0..40 dB, not -1.0"),
        ({"max_reverse_twist_db": 41.0}, "max_reverse_twist_db must be in 0..40 dB, not 41.0"),
        ({"min_relative_peak_db": math.nan}, "min_relative_peak_db must be in 0..40 dB, not nan"),
        ({"min_tone_to_total": 0.0}, "min_tone_to_total must be in (0, 1], not 0.0"),
        ({"min_tone_to_total": 1.5}, "min_tone_to_total must be in (0, 1], not 1.5"),
        ({"min_duration": -0.01}, "min_duration must be in 0..1 s, not -0.01"),
        ({"min_pause": 0.0}, "min_pause must be in (0, 1] s, not 0.0"),
    ],
)
def test_config_validates(fields: dict[str, float], message: str) -> None:
    with pytest.raises(InbandError) as caught:
        InbandConfig(**fields)
    assert str(caught.value) == message


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_feed_refuses_a_time_that_is_not_finite(now: float) -> None:
    with pytest.raises(InbandError) as caught:
        InbandDetector().feed([0] * 160, now)
    assert str(caught.value) == f"time must be finite, not {now!r}"


@pytest.mark.parametrize("bad", [[40000], [-40000], [0.5], ["x"]])
def test_feed_refuses_samples_that_are_not_16_bit_integers(bad: list[object]) -> None:
    with pytest.raises(InbandError) as caught:
        InbandDetector().feed(bad, 0.0)  # type: ignore[arg-type]
    assert str(caught.value) == "samples must be integers in the 16-bit range -32768..32767"


# -- packets lost, late, repeated; silence suppressed (feed_rtp) -----------------------------------


def packets(pcm: array[int], drop: Collection[int] = (), first_ts: int = 0) -> list[tuple[int, array[int]]]:
    """The signal as 20 ms packets (RTP timestamp, samples), the ones numbered in ``drop`` not sent."""
    return [
        ((first_ts + offset) & 0xFFFFFFFF, pcm[offset : offset + FRAME])
        for n, offset in enumerate(range(0, len(pcm), FRAME))
        if n not in drop
    ]


def detect_rtp(sent: list[tuple[int, array[int]]], ssrc: int = 7) -> list[InbandDigit]:
    detector = InbandDetector()
    digits: list[InbandDigit] = []
    for ts, frame in sent:
        # arrival time: the packet's place in the stream, as if it came on time
        digits += detector.feed_rtp(ssrc, ts, frame, T0 + ((ts - sent[0][0]) & 0xFFFFFFFF) / SAMPLE_RATE)
    return digits + detector.flush()


def joined(sent: list[tuple[int, array[int]]]) -> array[int]:
    """The packets' audio played back to back, as a receiver that ignores timestamps would."""
    return array("h", b"".join(frame.tobytes() for _, frame in sent))


def test_a_lost_pause_between_two_presses_of_one_key_is_still_a_pause() -> None:
    """ "11" with a 60 ms pause: three packets. Lose them (or a phone suppresses the silence) and
    the frames on either side, joined, were one long press; filled in, they are two."""
    rng = random.Random(11)
    pcm = through_g711(
        dual_tone("1", 100, rng=rng) + silence(60) + dual_tone("1", 100, rng=rng) + silence(100)
    )
    assert [d.key for d in detect(pcm)] == ["1", "1"]
    sent = packets(pcm, {5, 6, 7})  # 100 ms of tone is packets 0-4, the pause 5-7
    assert [d.key for d in detect(joined(sent))] == ["1"]
    digits = detect_rtp(sent)
    assert [d.key for d in digits] == ["1", "1"]
    assert_press(digits[1], "1", 160, 100, slack_ms=4)  # the second press keeps its place in time


def test_a_lost_packet_inside_a_tone_is_bridged() -> None:
    rng = random.Random(3)
    pcm = through_g711(silence(40) + dual_tone("5", 200, rng=rng) + silence(100))
    for lost in (4, 6, 9):  # one packet of the tone (packets 2-11)
        digits = detect_rtp(packets(pcm, {lost}))
        assert [d.key for d in digits] == ["5"], lost
        assert_press(digits[0], "5", 40, 200, slack_ms=4)


def test_late_and_repeated_packets_are_skipped_and_timestamps_wrap() -> None:
    rng = random.Random(5)
    pcm = through_g711(
        dual_tone("9", 60, rng=rng) + silence(60) + dual_tone("9", 120, rng=rng) + silence(100)
    )
    sent = packets(pcm, first_ts=0xFFFFFFFF - 400)  # timestamps wrap inside the first press
    arrived = [*sent[:5], sent[4], *sent[5:9], sent[3], sent[4], *sent[9:]]
    # packet 4 twice in a row, then two packets of the pause late, inside the second press:
    # played where they arrived they would cut it in two
    assert [d.key for d in detect_rtp(arrived)] == ["9", "9"]
    assert [d.key for d in detect(joined(arrived))] == ["9", "9", "9"]


def test_one_stray_packet_from_far_behind_does_not_cut_a_press() -> None:
    """Taken at once for the sender starting over, it would make the next packet a gap to fill
    with silence, in the middle of a held key; a real new start is believed on its second packet."""
    rng = random.Random(8)
    pcm = through_g711(dual_tone("6", 300, rng=rng) + silence(100))
    sent = packets(pcm, first_ts=500_000)
    stray = (sent[7][0] - 100_000, sent[7][1])
    digits = detect_rtp([*sent[:7], stray, *sent[7:]])
    assert [d.key for d in digits] == ["6"]
    assert_press(digits[0], "6", 0, 300, slack_ms=4)
    restarted = [(ts - 400_000, frame) for ts, frame in sent[8:]]  # the rest, numbered anew
    digits = detect_rtp([*packets(pcm, first_ts=500_000)[:3], *restarted])
    # 60 ms, then (the new start's first packet held back until the second confirmed it) 120 ms
    # more: skipped as late, the new start's packets would have left 60 ms
    assert [d.key for d in digits] == ["6"]
    assert_press(digits[0], "6", 0, 180, slack_ms=4)


def test_a_new_ssrc_is_taken_as_it_comes() -> None:
    """Another source (a new SSRC) numbers its packets its own way: just behind the last source's
    timestamps, they would all look late and be skipped."""
    rng = random.Random(6)
    detector = InbandDetector()
    pause = through_g711(silence(60))
    for n in range(3):
        assert (
            detector.feed_rtp(1, 40_000 + n * FRAME, pause[n * FRAME : (n + 1) * FRAME], T0 + n * 0.02) == []
        )
    pcm = through_g711(dual_tone("3", 100, rng=rng) + silence(100))
    digits: list[InbandDigit] = []
    for n, (ts, frame) in enumerate(packets(pcm, first_ts=39_000)):
        digits += detector.feed_rtp(2, ts, frame, T0 + 0.06 + n * 0.02)
    digits += detector.flush()
    assert [d.key for d in digits] == ["3"]
    assert_press(digits[0], "3", 60, 100, slack_ms=4)


def test_feed_rtp_refuses_what_is_not_16_bit_audio() -> None:
    with pytest.raises(InbandError, match="16-bit range"):
        InbandDetector().feed_rtp(1, 0, [40_000] * 160, T0)
