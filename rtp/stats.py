"""Per-stream receive statistics as RFC 3550 defines them: packets, bytes, loss and interarrival jitter.

Sans-IO: the relay calls :meth:`ReceiveStats.on_packet` for every RTP packet it accepts, with the
arrival time it read once per batch of packets. The arithmetic follows RFC 3550 Appendix A.1
(sequence number validation with cycles, probation of a new source, a large jump accepted only
when the next packet confirms it) and A.8 (jitter in timestamp units, gain 1/16). It is written
out flat because it runs for every packet the relay forwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rtp.seqnum import seq_add, seq_sub

#: RFC 3550 §A.1: a jump forward of up to this many sequence numbers is loss, not a restart.
MAX_DROPOUT: Final = 3000
#: RFC 3550 §A.1: a packet up to this many sequence numbers behind is late, not a restart.
MAX_MISORDER: Final = 100
_SEQ_MOD: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """What a call record keeps of one direction of one leg."""

    packets: int
    bytes: int
    expected: int
    lost: int
    #: RFC 3550 interarrival jitter, in milliseconds.
    jitter_ms: float
    #: The largest jitter seen, in milliseconds: a call's worst moment, not its average.
    max_jitter_ms: float
    ssrc_changes: int

    @property
    def loss_fraction(self) -> float:
        return self.lost / self.expected if self.expected > 0 else 0.0


class ReceiveStats:
    """RFC 3550 receiver state for the packets arriving from one peer."""

    __slots__ = (
        "_bad_seq",
        "_base_seq",
        "_cycles",
        "_max_seq",
        "_transit",
        "bytes",
        "clock_rate",
        "expected_before",
        "jitter",
        "max_jitter",
        "packets",
        "received",
        "received_before",
        "ssrc",
        "ssrc_changes",
    )

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.packets = 0  # every packet, including ones of a source still being confirmed
        self.bytes = 0
        self.ssrc: int | None = None
        self.ssrc_changes = 0
        # RFC 3550 §A.1 state of the current source
        self._max_seq = 0
        self._cycles = 0
        self._base_seq = 0
        self._bad_seq = _SEQ_MOD + 1
        self.received = 0
        # RFC 3550 §A.8, in timestamp units
        self._transit: int | None = None
        self.jitter = 0.0
        self.max_jitter = 0.0
        # totals of earlier sources (a peer that restarts its stream gets a new SSRC)
        self.expected_before = 0
        self.received_before = 0

    def on_packet(self, ssrc: int, seq: int, timestamp: int, size: int, arrival: float, jitter: bool) -> None:
        """One RTP packet of ``size`` bytes. ``jitter`` is False for packets whose timestamp is not
        the sampling instant of their arrival (RFC 4733 events keep their start timestamp)."""
        self.packets += 1
        self.bytes += size
        if ssrc != self.ssrc:
            self._new_source(ssrc, seq)
        else:
            udelta = seq_sub(seq, self._max_seq)
            if udelta < MAX_DROPOUT:
                if seq < self._max_seq:
                    self._cycles += _SEQ_MOD  # wrapped: another 64K cycle
                self._max_seq = seq
            elif udelta <= _SEQ_MOD - MAX_MISORDER:
                # A very large jump. If the next packet follows it, the peer restarted its sequence
                # (RFC 3550 §A.1); otherwise it was a stray and is not counted.
                if seq == self._bad_seq:
                    self._restart(seq)
                else:
                    self._bad_seq = seq_add(seq, 1)
                    return
            # else: a duplicate or a late packet, counted as received (RFC 3550 §A.1)
        self.received += 1
        if jitter:
            transit = int(arrival * self.clock_rate) - timestamp
            previous = self._transit
            self._transit = transit
            if previous is not None:
                d = transit - previous
                if d < 0:
                    d = -d
                if d > 0x7FFFFFFF:  # the RTP timestamp wrapped between the two packets
                    d = 0x100000000 - d
                j = self.jitter + (d - self.jitter) / 16.0
                self.jitter = j
                if j > self.max_jitter:
                    self.max_jitter = j

    def _new_source(self, ssrc: int, seq: int) -> None:
        if self.ssrc is not None:
            self.ssrc_changes += 1
        self.ssrc = ssrc
        self._restart(seq)
        self._transit = None

    def _restart(self, seq: int) -> None:
        """RFC 3550 §A.1 init_seq(); what the previous run of sequence numbers counted is kept."""
        if self.received:
            self.expected_before += self._expected()
            self.received_before += self.received
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self.received = 0

    def _expected(self) -> int:
        return self._cycles + self._max_seq - self._base_seq + 1

    @property
    def expected(self) -> int:
        return self.expected_before + (self._expected() if self.received else 0)

    @property
    def lost(self) -> int:
        """Cumulative packets lost (RFC 3550 §A.3): expected less received; duplicates make it
        smaller, as the RFC says, and it never goes below zero here."""
        return max(0, self.expected - self.received_before - self.received)

    def summary(self) -> StreamSummary:
        per_ms = self.clock_rate / 1000.0
        return StreamSummary(
            packets=self.packets,
            bytes=self.bytes,
            expected=self.expected,
            lost=self.lost,
            jitter_ms=self.jitter / per_ms,
            max_jitter_ms=self.max_jitter / per_ms,
            ssrc_changes=self.ssrc_changes,
        )
