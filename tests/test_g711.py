"""Tests of rtp.g711: the standard's reference values, every code and every 16-bit sample, properties."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtp.g711 import (
    PCMA_PAYLOAD_TYPE,
    PCMU_PAYLOAD_TYPE,
    G711Error,
    decode,
    decode_pcma,
    decode_pcmu,
    encode,
    encode_pcma,
    encode_pcmu,
)

ALL_CODES = bytes(range(256))
ALL_SAMPLES = array("h", range(-32768, 32768))

# G.711 Table 2 (µ-law) decoder output values, on the standard's 14-bit scale (the largest is 8031),
# with the wire code (all bits inverted) that carries each. 16-bit output is the value times 4.
ULAW_DECODER_OUTPUTS = [
    (0xFF, 0),  # +0
    (0x7F, 0),  # -0: the second code for zero
    (0xFE, 2),  # first step of the first segment
    (0xF0, 30),  # last value of the first segment (steps of 2)
    (0xEF, 33),  # first value of the second segment (steps of 4)
    (0xE0, 93),
    (0xDF, 99),  # third segment (steps of 8)
    (0xD0, 219),
    (0xCF, 231),  # fourth segment (steps of 16)
    (0x90, 3999),  # last value of the seventh segment (steps of 128)
    (0x8F, 4191),  # eighth segment (steps of 256)
    (0x80, 8031),  # largest positive value
    (0x7E, -2),
    (0x00, -8031),  # largest negative value: the all-zero character
]

# G.711 Table 1 (A-law) decoder output values on the 13-bit scale (the largest is 4032), with the
# wire code (even bits inverted, XOR 0x55). 16-bit output is the value times 8.
ALAW_DECODER_OUTPUTS = [
    (0xD5, 1),  # smallest positive value
    (0x55, -1),  # smallest negative value
    (0xDA, 31),  # end of the first segment (steps of 2)
    (0xC5, 33),  # second segment: same step, A-law's linear part
    (0xCA, 63),
    (0xF5, 66),  # third segment (steps of 4)
    (0xA5, 2112),  # eighth segment (steps of 128)
    (0xAA, 4032),  # largest positive value
    (0x2A, -4032),  # largest negative value
]

# Encoder decision values. G.711 lists each interval's ends but not which side a value on a decision
# value belongs to; the G.191 reference encoder puts it in the interval above and mirrors negative
# inputs by one's complement, so that -31..-2 code like +30..+1. Inputs on the standard's scale.
ULAW_DECISIONS = [
    (8158, 0x80),  # +8158..+4063: 16 intervals of 256, 0x80 + interval
    (4063, 0x8F),
    (4062, 0x90),  # +4062..+2015: 16 intervals of 128, 0x90 + interval
    (2015, 0x9F),
    (2014, 0xA0),
    (94, 0xE0),  # +94..+31: 16 intervals of 4
    (31, 0xEF),
    (30, 0xF0),  # +30..+1: 15 intervals of 2
    (1, 0xFE),
    (0, 0xFF),
    (-1, 0x7F),
    (-2, 0x7E),
    (-31, 0x70),
    (-32, 0x6F),
    (-8159, 0x00),
    (8191, 0x80),  # beyond the overload point: the largest code
    (-8192, 0x00),
]
ALAW_DECISIONS = [
    (4095, 0xAA),  # 2048..4095: 16 intervals of 128
    (2048, 0xA5),
    (2047, 0xBA),  # 1024..2047: 16 intervals of 64
    (63, 0xCA),  # 32..63: 16 intervals of 2
    (32, 0xC5),
    (31, 0xDA),  # 0..31: 16 intervals of 2
    (2, 0xD4),
    (1, 0xD5),
    (0, 0xD5),
    (-1, 0x55),
    (-2, 0x55),
    (-3, 0x54),
    (-4096, 0x2A),
]


def ulaw_half_step(magnitude: int) -> int:
    """Half the µ-law quantization step, in 16-bit units, for a 16-bit magnitude (G.711 Table 2)."""
    for last, step in ((30, 2), (94, 4), (222, 8), (478, 16), (990, 32), (2014, 64), (4062, 128)):
        if magnitude // 4 <= last:
            return step * 4 // 2
    return 256 * 4 // 2


def alaw_half_step(magnitude: int) -> int:
    """Half the A-law quantization step, in 16-bit units, for a 16-bit magnitude (G.711 Table 1)."""
    for last, step in ((63, 2), (127, 4), (255, 8), (511, 16), (1023, 32), (2047, 64)):
        if magnitude // 8 <= last:
            return step * 8 // 2
    return 128 * 8 // 2


@pytest.mark.parametrize(("code", "value"), ULAW_DECODER_OUTPUTS)
def test_ulaw_decoder_output_values(code: int, value: int) -> None:
    assert decode_pcmu(bytes([code])).tolist() == [4 * value]


@pytest.mark.parametrize(("code", "value"), ALAW_DECODER_OUTPUTS)
def test_alaw_decoder_output_values(code: int, value: int) -> None:
    assert decode_pcma(bytes([code])).tolist() == [8 * value]


@pytest.mark.parametrize(("value", "code"), ULAW_DECISIONS)
def test_ulaw_decision_values(value: int, code: int) -> None:
    # Every 16-bit sample whose top 14 bits are the value codes alike.
    samples = array("h", (max(-32768, min(32767, 4 * value + low)) for low in range(4)))
    assert encode_pcmu(samples) == bytes([code]) * 4


@pytest.mark.parametrize(("value", "code"), ALAW_DECISIONS)
def test_alaw_decision_values(value: int, code: int) -> None:
    samples = array("h", (8 * value + low for low in range(8)))
    assert encode_pcma(samples) == bytes([code]) * 8


def test_ulaw_every_code_round_trips_but_negative_zero() -> None:
    expected = bytes(0xFF if code == 0x7F else code for code in ALL_CODES)
    assert encode_pcmu(decode_pcmu(ALL_CODES)) == expected


def test_alaw_every_code_round_trips() -> None:
    assert encode_pcma(decode_pcma(ALL_CODES)) == ALL_CODES


def test_decoders_are_odd_symmetric() -> None:
    # µ-law's sign is bit 7 of the inverted code; A-law's the top bit after XOR 0x55: flipping it
    # negates the value, and no two codes of one sign share a value except µ-law's two zeros.
    ulaw, alaw = decode_pcmu(ALL_CODES), decode_pcma(ALL_CODES)
    for code in range(128):
        assert ulaw[code] == -ulaw[code | 0x80]
        assert alaw[code] == -alaw[code | 0x80]
    assert len(set(ulaw)) == 255
    assert len(set(alaw)) == 256


def test_ulaw_every_sample_within_half_a_step() -> None:
    decoded = decode_pcmu(encode_pcmu(ALL_SAMPLES))
    for x, y in zip(ALL_SAMPLES, decoded, strict=True):
        if -32636 <= x <= 32635:
            assert abs(y - x) <= ulaw_half_step(abs(x)), x
        else:  # beyond the overload point (8159 x 4): the largest magnitude
            assert y == (32124 if x > 0 else -32124), x


def test_alaw_every_sample_within_half_a_step() -> None:
    decoded = decode_pcma(encode_pcma(ALL_SAMPLES))
    for x, y in zip(ALL_SAMPLES, decoded, strict=True):
        assert abs(y - x) <= alaw_half_step(abs(x)), x


@pytest.mark.parametrize(("enc", "dec"), [(encode_pcmu, decode_pcmu), (encode_pcma, decode_pcma)])
def test_quantizer_is_monotonic(enc: object, dec: object) -> None:
    assert callable(enc) and callable(dec)
    decoded = dec(enc(ALL_SAMPLES)).tolist()
    assert decoded == sorted(decoded)


def test_decode_returns_native_int16_array_from_any_buffer() -> None:
    for payload in (b"\xff\x80", bytearray(b"\xff\x80"), memoryview(b"\x00\xff\x80")[1:]):
        samples = decode_pcmu(payload)
        assert samples.typecode == "h"
        assert samples.tolist() == [0, 32124]
    assert decode_pcma(b"").tolist() == []


def test_encode_takes_arrays_lists_and_iterables() -> None:
    values = [0, 1000, -1000, 32767, -32768]
    expected = encode_pcma(array("h", values))
    assert encode_pcma(values) == expected
    assert encode_pcma(iter(values)) == expected
    assert encode_pcma(array("i", values)) == expected
    assert encode_pcmu(array("h")) == b""


def test_encode_rejects_bytes_with_a_hint() -> None:
    with pytest.raises(G711Error) as caught:
        encode_pcmu(b"\x00\x01")
    assert str(caught.value) == "samples must be integers, not bytes (wrap raw PCM in array('h'))"


@pytest.mark.parametrize("bad", [[1.5], ["a"], [None], "ab"])
def test_encode_rejects_non_integers(bad: object) -> None:
    with pytest.raises(G711Error) as caught:
        encode_pcma(bad)  # type: ignore[arg-type]
    assert str(caught.value) == "samples must be integers"


@given(st.integers().filter(lambda v: not -32768 <= v <= 32767))
def test_encode_rejects_samples_beyond_16_bits(value: int) -> None:
    for enc in (encode_pcmu, encode_pcma):
        with pytest.raises(G711Error) as caught:
            enc([0, value])
        assert str(caught.value) == "sample outside the 16-bit range -32768..32767"


def test_dispatch_by_payload_type() -> None:
    assert PCMU_PAYLOAD_TYPE == 0
    assert PCMA_PAYLOAD_TYPE == 8
    assert decode(0, b"\x80").tolist() == [32124]
    assert decode(8, b"\xaa").tolist() == [32256]
    assert encode(0, [32767]) == b"\x80"
    assert encode(8, [32767]) == b"\xaa"
    for bad in (9, 18, 101):
        with pytest.raises(G711Error) as caught:
            decode(bad, b"\x00")
        assert str(caught.value) == f"payload type {bad} is not G.711 (PCMU is 0, PCMA is 8)"
        with pytest.raises(G711Error) as caught:
            encode(bad, [0])
        assert str(caught.value) == f"payload type {bad} is not G.711 (PCMU is 0, PCMA is 8)"


@settings(max_examples=200)
@given(st.binary(max_size=480))
def test_decode_is_a_per_byte_table_on_any_bytes(payload: bytes) -> None:
    ulaw, alaw = decode_pcmu(ALL_CODES), decode_pcma(ALL_CODES)
    assert decode_pcmu(payload).tolist() == [ulaw[b] for b in payload]
    assert decode_pcma(payload).tolist() == [alaw[b] for b in payload]


@settings(max_examples=200)
@given(st.lists(st.integers(-32768, 32767), max_size=480))
def test_encode_decode_within_half_a_step(samples: list[int]) -> None:
    ulaw = decode_pcmu(encode_pcmu(samples))
    alaw = decode_pcma(encode_pcma(samples))
    assert len(ulaw) == len(alaw) == len(samples)
    for x, u, a in zip(samples, ulaw, alaw, strict=True):
        assert abs(u - x) <= max(ulaw_half_step(abs(x)), abs(x) - 32124)
        assert abs(a - x) <= alaw_half_step(abs(x))
