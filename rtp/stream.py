"""The one continuous RTP stream we send to a peer, whatever feeds it.

A phone hears a prompt, then the gateway, then (after a move) another gateway, then a prompt again.
Each source has its own SSRC, sequence numbers and timestamps; the phone must see one stream that
never jumps backwards (RFC 3550 §5.1: sequence numbers increase by one, timestamps by the sampling
clock). So every packet we send to a peer is rewritten to our SSRC, with the source's sequence and
timestamp shifted by offsets that are recomputed when the source changes: the first packet of the
new source follows the last one sent, its timestamp advanced by the time that passed, and it carries
the marker bit (RFC 3551 §4.1: the first packet after a silence or a talkspurt change).

Sans-IO: the relay rewrites the header bytes in place with :meth:`OutgoingStream.rewrite`; the
prompt player and the DTMF generator are sources like any other and get their packets from
:meth:`OutgoingStream.packet`.
"""

from __future__ import annotations

import secrets
import struct
from typing import Final

from rtp.seqnum import seq_add, seq_sub, ts_add, ts_sub

_HEADER: Final = struct.Struct(">BBHII")
_SEQ_TS_SSRC: Final = struct.Struct(">HII")
#: A 20 ms G.711 frame at 8 kHz: the smallest step a new source's first timestamp moves forward.
DEFAULT_FRAME_SAMPLES: Final = 160


class OutgoingStream:
    """Our SSRC, sequence and timestamp toward one peer, and the offsets of the current source."""

    __slots__ = (
        "bytes",
        "clock_rate",
        "frame_samples",
        "last_at",
        "media_offset",
        "packets",
        "seq",
        "seq_delta",
        "source",
        "ssrc",
        "switches",
        "ts",
        "ts_delta",
    )

    def __init__(
        self,
        clock_rate: int = 8000,
        *,
        ssrc: int | None = None,
        first_seq: int | None = None,
        first_ts: int | None = None,
        frame_samples: int = DEFAULT_FRAME_SAMPLES,
    ) -> None:
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        # RFC 3550 §5.1: the initial SSRC, sequence number and timestamp SHOULD be random.
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self.seq = seq_add(secrets.randbits(16) if first_seq is None else first_seq, -1)
        self.ts = secrets.randbits(32) if first_ts is None else first_ts
        self.last_at: float | None = None  # when the last packet went out
        self.media_offset = 0  # samples from the last timestamp sent to the media clock then
        self.source: object = None  # what feeds the stream now: an SSRC, or a generator's token
        self.seq_delta = 0
        self.ts_delta = 0
        self.packets = 0
        self.bytes = 0
        self.switches = 0

    def anchor(self, source: object, seq: int, ts: int, now: float) -> None:
        """Make ``source``'s packet (``seq``, ``ts``) the next one of the stream.

        Its timestamp moves on from the last one sent by the time that passed, at least one frame,
        so the receiver's playout neither overlaps the old source nor stalls.
        """
        next_seq = seq_add(self.seq, 1)
        if self.last_at is None:
            step = 0
        else:
            step = max(self.frame_samples, round((now - self.last_at) * self.clock_rate))
        # After RFC 4733 events the last timestamp sent is the event's start, not the media time
        # of the last packet: ``media_offset`` is how far that packet was into the event.
        next_ts = ts_add(self.ts, self.media_offset + step)
        self.media_offset = 0
        self.seq_delta = seq_sub(next_seq, seq)
        self.ts_delta = ts_sub(next_ts, ts)
        if self.source is not None:
            self.switches += 1
        self.source = source

    def rewrite(self, buf: bytearray, size: int, source: int, seq: int, ts: int, now: float) -> None:
        """Rewrite the header of the RTP packet in ``buf[:size]`` (from ``source``, an SSRC) in
        place: our SSRC, shifted sequence and timestamp, the marker bit on a source change."""
        if source != self.source:
            self.anchor(source, seq, ts, now)
            buf[1] |= 0x80
        out_seq = seq_add(seq, self.seq_delta)
        out_ts = ts_add(ts, self.ts_delta)
        _SEQ_TS_SSRC.pack_into(buf, 2, out_seq, out_ts, self.ssrc)
        self.seq = out_seq
        self.ts = out_ts
        self.last_at = now
        self.packets += 1
        self.bytes += size

    def packet(
        self,
        source: object,
        seq: int,
        ts: int,
        payload_type: int,
        payload: bytes,
        now: float,
        marker: bool,
        media_offset: int = 0,
    ) -> bytes:
        """A whole packet from a generating ``source`` (the prompt player, the DTMF generator), which
        numbers its own packets with ``seq`` and ``ts`` as if it were a peer. ``media_offset``: how
        many samples past ``ts`` the media clock is at this packet (the packets of an RFC 4733
        event all carry its start timestamp)."""
        if source is not self.source:
            self.anchor(source, seq, ts, now)
            marker = True
        out_seq = seq_add(seq, self.seq_delta)
        out_ts = ts_add(ts, self.ts_delta)
        self.seq = out_seq
        self.ts = out_ts
        self.media_offset = media_offset
        self.last_at = now
        second = (0x80 if marker else 0) | payload_type
        data = _HEADER.pack(0x80, second, out_seq, out_ts, self.ssrc) + payload
        self.packets += 1
        self.bytes += len(data)
        return data
