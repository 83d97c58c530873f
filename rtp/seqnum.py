"""Wrap-aware arithmetic on RTP sequence numbers and timestamps.

RTP sequence numbers are 16-bit and timestamps 32-bit counters that wrap (RFC 3550 §5.1); comparing them
with ``<`` breaks at the wrap. These helpers use serial number arithmetic (RFC 1982 §3), the way RFC 3550
§A.1 treats sequence numbers, and are the only place in the package that compares or subtracts them.

Arguments are expected to be in range already (they come out of a parsed header); results are always in
range. When two values are exactly half the space apart RFC 1982 §3.2 leaves the order undefined: here
neither is greater than the other and the signed difference is the negative half.
"""

from __future__ import annotations

import logging
from typing import Final

logger = logging.getLogger(__name__)

#: RTP sequence numbers are 16 bits (RFC 3550 §5.1).
SEQ_MODULO: Final = 1 << 16
_SEQ_MASK: Final = SEQ_MODULO - 1
_SEQ_HALF: Final = SEQ_MODULO >> 1

#: RTP timestamps are 32 bits (RFC 3550 §5.1).
TS_MODULO: Final = 1 << 32
_TS_MASK: Final = TS_MODULO - 1
_TS_HALF: Final = TS_MODULO >> 1


def seq_add(seq: int, delta: int) -> int:
    """``seq + delta`` modulo 2**16; ``delta`` may be negative (RFC 1982 §3.1)."""
    return (seq + delta) & _SEQ_MASK


def seq_sub(a: int, b: int) -> int:
    """How far ``a`` is ahead of ``b`` going forwards, 0 … 65535."""
    return (a - b) & _SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed shortest distance from ``b`` to ``a``, -32768 … 32767 (positive: ``a`` is newer)."""
    return ((a - b + _SEQ_HALF) & _SEQ_MASK) - _SEQ_HALF


def seq_gt(a: int, b: int) -> bool:
    """True when ``a`` comes after ``b`` (RFC 1982 §3.2); False for equal or half-space-apart values."""
    return seq_diff(a, b) > 0


def ts_add(ts: int, delta: int) -> int:
    """``ts + delta`` modulo 2**32; ``delta`` may be negative (RFC 1982 §3.1)."""
    return (ts + delta) & _TS_MASK


def ts_sub(a: int, b: int) -> int:
    """How far ``a`` is ahead of ``b`` going forwards, 0 … 2**32 - 1."""
    return (a - b) & _TS_MASK


def ts_diff(a: int, b: int) -> int:
    """Signed shortest distance from ``b`` to ``a``, -2**31 … 2**31 - 1 (positive: ``a`` is later)."""
    return ((a - b + _TS_HALF) & _TS_MASK) - _TS_HALF


def ts_gt(a: int, b: int) -> bool:
    """True when ``a`` is later than ``b`` (RFC 1982 §3.2); False for equal or half-space-apart values."""
    return ts_diff(a, b) > 0
