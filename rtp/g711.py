"""G.711 µ-law (PCMU) and A-law (PCMA): 8-bit codes to and from 16-bit linear PCM (ITU-T G.711).

The two payload formats of RFC 3551 §4.5.14 (PCMU, static payload type 0; PCMA, type 8): one byte
per sample at 8 kHz. The relay never transcodes; this module is for the edges that need samples:
the in-band DTMF detector (:mod:`rtp.inband`) decodes every 20 ms frame of a caller that offers no
telephone-event, and the prompt player encodes its prompts once, when it loads them.

Linear samples are ``array('h')``: signed 16-bit integers in the machine's byte order, the shape
Python's ``wave`` module and the detector work in. Call ``.tobytes()`` for raw PCM (and
``.byteswap()`` first on a big-endian host if little-endian bytes are wanted).

How the 16-bit scale maps onto the standard's tables:

- G.711 defines µ-law on a 14-bit uniform scale (decision values up to 8159, Table 2) and A-law on
  a 13-bit one (up to 4096, Table 1). A 16-bit sample is brought to that scale by dropping its low 2
  (µ-law) or 3 (A-law) bits, and a decoded value is scaled back up by 4 or 8, so µ-law's largest
  output 8031 is 32124 here and A-law's 4032 is 32256.
- G.711 gives each interval's two decision values but not which side a value lying exactly on one
  belongs to; as the ITU-T's own reference code (G.191 software tools) does, a decision value
  starts the interval above it.
- A negative sample is mirrored by one's complement (``~x``), again as G.191 does: -1 codes like 0,
  -2 like +1, so both halves of the scale have intervals of the same width and every code's
  quantization error is at most half its step, for either sign. µ-law thus codes -1 to -4 as the
  "negative zero" 0x7F, which decodes to 0 like 0xFF.
- Inputs beyond the µ-law overload point (|x| > 32635, 8158 on the 14-bit scale) code as the
  largest magnitude; A-law's overload point (4096 × 8) is beyond the 16-bit range.
- The all-zero µ-law character is sent as is. G.711 Table 2 note 2 lets networks that must suppress
  it send 0x02 instead; that is a property of T1 lines, not of RTP, so no encoder here does it, and
  the decoder reads 0x00 as the standard's largest negative value.
- Wire codes include the standard's bit inversions: all bits for µ-law, the even bits (XOR 0x55)
  for A-law. So µ-law 0xFF is +0 and 0x80 the largest positive value; A-law 0xD5 is the smallest
  positive value and 0xAA the largest.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Iterable
from typing import Final, TypeAlias

logger = logging.getLogger(__name__)

__all__ = [
    "PCMA_PAYLOAD_TYPE",
    "PCMU_PAYLOAD_TYPE",
    "G711Error",
    "decode",
    "decode_pcma",
    "decode_pcmu",
    "encode",
    "encode_pcma",
    "encode_pcmu",
]

#: RFC 3551 §6, Table 4: the static payload types of the two G.711 laws.
PCMU_PAYLOAD_TYPE: Final = 0
PCMA_PAYLOAD_TYPE: Final = 8

Payload: TypeAlias = bytes | bytearray | memoryview
Decoder: TypeAlias = Callable[[Payload], "array[int]"]
Encoder: TypeAlias = Callable[[Iterable[int]], bytes]

#: µ-law codes a magnitude of at most 8158 on its 14-bit scale (G.711 Table 2: the last interval is
#: 8159 - 256 .. 8159); the bias of 33 then keeps every biased magnitude below 2**13.
_ULAW_MAX_MAGNITUDE: Final = 8158
#: G.711 Table 2 builds µ-law on magnitudes offset by 33, which makes every segment start at a power
#: of two times 33 (less 33) and lets segment and step be read from the bits.
_ULAW_BIAS: Final = 33


class G711Error(ValueError):
    """The caller asked for something G.711 cannot do: a sample outside 16 bits, another codec."""


def _ulaw_code(value14: int) -> int:
    """Wire code of one sample on G.711's 14-bit µ-law scale (two's complement)."""
    if value14 < 0:
        sign, magnitude = 0x00, ~value14
    else:
        sign, magnitude = 0x80, value14
    biased = min(magnitude, _ULAW_MAX_MAGNITUDE) + _ULAW_BIAS
    segment = biased.bit_length() - 6
    step = (biased >> (segment + 1)) & 0x0F
    # G.711 §3: µ-law character signals are sent with every bit inverted; a positive value has the
    # sign bit 1 after that inversion, so only the seven magnitude bits are inverted here.
    return sign | (0x7F ^ (segment << 4 | step))


def _ulaw_value(code: int) -> int:
    """16-bit decoder output of one µ-law wire code: the standard's 14-bit value times 4."""
    inverted = code ^ 0xFF
    segment = (inverted >> 4) & 0x07
    step = inverted & 0x0F
    magnitude = ((2 * step + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return -4 * magnitude if inverted & 0x80 else 4 * magnitude


def _alaw_code(value13: int) -> int:
    """Wire code of one sample on G.711's 13-bit A-law scale (two's complement)."""
    if value13 < 0:
        sign, magnitude = 0x00, ~value13
    else:
        sign, magnitude = 0x80, value13
    if magnitude < 32:
        # The first two segments share one step size (G.711 Table 1: A-law's linear part).
        segment, step = 0, magnitude >> 1
    else:
        segment = magnitude.bit_length() - 5
        step = (magnitude >> segment) & 0x0F
    # G.711 §2: A-law character signals are sent with the even bits inverted.
    return (sign | segment << 4 | step) ^ 0x55


def _alaw_value(code: int) -> int:
    """16-bit decoder output of one A-law wire code: the standard's 13-bit value times 8."""
    plain = code ^ 0x55
    segment = (plain >> 4) & 0x07
    step = plain & 0x0F
    magnitude = 2 * step + 1 if segment == 0 else (2 * step + 33) << (segment - 1)
    return 8 * magnitude if plain & 0x80 else -8 * magnitude


def _decode_tables(values: list[int]) -> tuple[bytes, bytes]:
    """Two ``bytes.translate`` tables that map a code to the first and second byte of its int16.

    "First" is first in memory, in the machine's byte order, so the interleaved result is a native
    ``array('h')`` on any host.
    """
    raw = array("h", values).tobytes()
    return raw[0::2], raw[1::2]


def _encode_table(code: Callable[[int], int], shift: int) -> bytes:
    """Code of every 16-bit sample, indexed by the sample as unsigned (``x & 0xFFFF``).

    Only the bits above ``shift`` reach the standard's scale (module docstring), so the 2**16-entry
    table repeats each of the 2**(16 - shift) codes 2**shift times.
    """
    top = 1 << (15 - shift)
    narrow = bytes(code(i - 2 * top if i >= top else i) for i in range(2 * top))
    table = bytearray(1 << 16)
    for low_bits in range(1 << shift):
        table[low_bits :: 1 << shift] = narrow
    return bytes(table)


_ULAW_VALUES: Final = [_ulaw_value(c) for c in range(256)]
_ALAW_VALUES: Final = [_alaw_value(c) for c in range(256)]
_ULAW_FIRST, _ULAW_SECOND = _decode_tables(_ULAW_VALUES)
_ALAW_FIRST, _ALAW_SECOND = _decode_tables(_ALAW_VALUES)
_ULAW_ENCODE: Final = _encode_table(_ulaw_code, 2)
_ALAW_ENCODE: Final = _encode_table(_alaw_code, 3)


def _decode(payload: Payload, first: bytes, second: bytes) -> array[int]:
    # One C-level pass per byte of the int16 instead of a Python call per sample: the detector
    # decodes 50 frames a second per call, and this keeps a 160-byte frame near 1 µs.
    data = payload if isinstance(payload, bytes | bytearray) else bytes(payload)
    interleaved = bytearray(2 * len(data))
    interleaved[0::2] = data.translate(first)
    interleaved[1::2] = data.translate(second)
    samples = array("h")
    samples.frombytes(interleaved)
    return samples


def _as_unsigned(samples: Iterable[int]) -> memoryview:
    """The samples as unsigned 16-bit values, so that they index an encode table directly."""
    if isinstance(samples, bytes | bytearray | memoryview):
        # array('h', b"...") would read the bytes as raw int16 in machine order; make that explicit.
        raise G711Error("samples must be integers, not bytes (wrap raw PCM in array('h'))")
    if not (isinstance(samples, array) and samples.typecode == "h"):
        try:
            samples = array("h", samples)
        except OverflowError:
            raise G711Error("sample outside the 16-bit range -32768..32767") from None
        except TypeError:
            raise G711Error("samples must be integers") from None
    return memoryview(samples).cast("B").cast("H")


def decode_pcmu(payload: Payload) -> array[int]:
    """µ-law payload (PCMU, RFC 3551 §4.5.14) to 16-bit linear samples, one per byte."""
    return _decode(payload, _ULAW_FIRST, _ULAW_SECOND)


def decode_pcma(payload: Payload) -> array[int]:
    """A-law payload (PCMA, RFC 3551 §4.5.14) to 16-bit linear samples, one per byte."""
    return _decode(payload, _ALAW_FIRST, _ALAW_SECOND)


def encode_pcmu(samples: Iterable[int]) -> bytes:
    """16-bit linear samples (``array('h')`` is fastest) to a µ-law payload, one byte per sample.

    Raises :class:`G711Error` for a sample outside -32768..32767 or one that is not an integer.
    """
    return bytes(map(_ULAW_ENCODE.__getitem__, _as_unsigned(samples)))


def encode_pcma(samples: Iterable[int]) -> bytes:
    """16-bit linear samples (``array('h')`` is fastest) to an A-law payload, one byte per sample.

    Raises :class:`G711Error` for a sample outside -32768..32767 or one that is not an integer.
    """
    return bytes(map(_ALAW_ENCODE.__getitem__, _as_unsigned(samples)))


_DECODERS: Final[dict[int, Decoder]] = {PCMU_PAYLOAD_TYPE: decode_pcmu, PCMA_PAYLOAD_TYPE: decode_pcma}
_ENCODERS: Final[dict[int, Encoder]] = {PCMU_PAYLOAD_TYPE: encode_pcmu, PCMA_PAYLOAD_TYPE: encode_pcma}


def decode(payload_type: int, payload: Payload) -> array[int]:
    """Decode a payload of static payload type 0 (PCMU) or 8 (PCMA); other types raise G711Error."""
    decoder = _DECODERS.get(payload_type)
    if decoder is None:
        raise G711Error(f"payload type {payload_type} is not G.711 (PCMU is 0, PCMA is 8)")
    return decoder(payload)


def encode(payload_type: int, samples: Iterable[int]) -> bytes:
    """Encode samples as static payload type 0 (PCMU) or 8 (PCMA); other types raise G711Error."""
    encoder = _ENCODERS.get(payload_type)
    if encoder is None:
        raise G711Error(f"payload type {payload_type} is not G.711 (PCMU is 0, PCMA is 8)")
    return encoder(samples)
