"""The RTP relay: per call, two endpoints (phone side and gateway side) and the packets between them.

Each endpoint is an even UDP port (RTCP on the next one, or multiplexed on it, RFC 5761) facing one
peer. A packet from the phone arrives on the phone endpoint and leaves from the gateway endpoint to
the gateway, and back: each peer only ever talks to the port we gave it in SDP, which is what
symmetric RTP (RFC 4961) and NATs need.

The hot path, :meth:`Endpoint._on_readable`, is called when a socket is readable: all media sockets
sit in one epoll of ours, and each wake-up of the loop is a round that serves every ready socket,
one packet each unless a backlog shows. It builds no object per packet beyond the ones the socket
call returns: it receives into the endpoint's buffer, checks the source, updates the RFC 3550
statistics, peeks at the payload type for DTMF, rewrites the header in place for the outgoing
stream (:mod:`rtp.stream`) and sends the same buffer on. Once an endpoint's source is final, its
socket is connected to it, so the kernel does the source check and the calls carry no address.

Security of the source (RFC 7362 §4.1, "latching"): a caller behind NAT sends from an address
that is not the one in its SDP, so by default the relay latches to the source of the first packet
that arrives within ``latch_window`` seconds of the peer's SDP (or to the signalled address, if
that sends within the window after all); from then on only that source is accepted, and packets
from anywhere else are dropped (by the kernel, once the socket is connected; those read before are
counted as ``foreign``), so nobody can take a call's media by spraying packets at its port.
``LatchMode.SIGNALLED`` accepts only the SDP's address.

Everything the call controller does goes through :class:`MediaControl`, a narrow interface of
plain values (session ids, sides, prompt names), so that the relay can move into worker processes
later without the controller changing.
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import errno
import ipaddress
import logging
import secrets
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from rtp.dtmf import Digit, DigitSource, Rfc4733Detector, Rfc4733Generator
from rtp.g711 import PCMA_PAYLOAD_TYPE, PCMU_PAYLOAD_TYPE, decode, encode
from rtp.inband import InbandDetector
from rtp.player import Clip, Finish, MediaClock, PromptPlayer
from rtp.ports import BoundPorts, PortAllocator, PortRange, PortsExhausted
from rtp.prompts import PromptSet
from rtp.stats import MAX_DROPOUT, ReceiveStats, StreamSummary
from rtp.stream import OutgoingStream

logger = logging.getLogger(__name__)

Side = Literal["phone", "gateway"]

#: Larger than any RTP packet a voice call carries (a 1500-byte Ethernet MTU, less headers) with
#: room for jumbo frames on loopback; a longer datagram is truncated by the kernel and dropped here.
MAX_PACKET: Final = 2048
#: Packets read per readiness callback before other sockets get their turn: fairness between
#: calls when one of them is flooded.
MAX_BATCH: Final = 64
#: Ready sockets taken from our epoll per round (one wake-up of the loop for media).
MAX_EVENTS: Final = 1024
#: RFC 3550 §6.1: RTCP packet types 200-204 (and feedback 205-206, XR 207) sit in the second byte.
_RTCP_TYPES: Final = range(192, 224)  # RFC 5761 §4: what is not RTP on a muxed port
_SEQ_TS_SSRC: Final = struct.Struct(">HII")
_U32: Final = struct.Struct(">I")


class LatchMode(enum.Enum):
    """Which sources an endpoint accepts (module docstring)."""

    #: The first source within the window after the peer's SDP, then only it (symmetric RTP).
    FIRST_PACKET = "first-packet"
    #: Only the address and port in the peer's SDP.
    SIGNALLED = "signalled"


class Direction(enum.Enum):
    """The peer's SDP direction attribute (RFC 3264 §5.1), seen from the peer."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"  # the peer puts us on hold: it sends, we must not
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Tunables of the relay; PRODUCT.md's [media] section maps onto these."""

    host: str = "127.0.0.1"
    #: The address put in our SDP, when it differs from ``host`` (a public address in front of NAT).
    advertised_host: str | None = None
    ports: PortRange = field(default_factory=lambda: PortRange(20000, 20999))
    latch_mode: LatchMode = LatchMode.FIRST_PACKET
    #: Seconds after the peer's SDP during which the first packet's source is latched.
    latch_window: float = 3.0
    #: No RTP from a peer for this long raises :class:`MediaTimeout` (PRODUCT.md: 30 s → hang up).
    media_timeout: float = 30.0
    #: Telephone events from the phone are consumed as keypad commands, not passed to the gateway.
    forward_telephone_events: bool = False
    #: Listen for DTMF tones in the phone's G.711 audio when its SDP offered no telephone-event.
    #: It costs ~40-70 µs of CPU per packet while someone speaks, so only those calls pay it.
    inband_dtmf: bool = True

    def __post_init__(self) -> None:
        if self.latch_window < 0:
            raise ValueError(f"latch_window must be >= 0, not {self.latch_window}")
        if self.media_timeout <= 0:
            raise ValueError(f"media_timeout must be positive, not {self.media_timeout}")


@dataclass(frozen=True, slots=True)
class RemoteMedia:
    """What the peer's SDP says about its end of one audio stream."""

    host: str
    port: int
    payload_type: int = 0
    clock_rate: int = 8000
    #: The dynamic payload type of telephone-event (RFC 4733) the peer uses, if it offered one.
    telephone_event: int | None = None
    #: RTCP port from ``a=rtcp`` (RFC 3605), else port + 1; ignored with ``rtcp_mux``.
    rtcp_port: int | None = None
    rtcp_mux: bool = False
    direction: Direction = Direction.SENDRECV

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"RTP port out of range: {self.port}")
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type out of range: {self.payload_type}")
        if self.rtcp_port is not None and not 1 <= self.rtcp_port <= 65535:
            raise ValueError(f"RTCP port out of range: {self.rtcp_port}")
        if not 1000 <= self.clock_rate <= 192000:
            raise ValueError(f"clock rate out of range: {self.clock_rate}")
        if self.telephone_event is not None and not 96 <= self.telephone_event <= 127:
            raise ValueError(f"telephone-event needs a dynamic payload type (96-127): {self.telephone_event}")


# ------------------------------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class MediaTimeout:
    session: str
    side: Side
    idle: float


@dataclass(frozen=True, slots=True)
class SourceLatched:
    session: str
    side: Side
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """A key the ``side`` peer pressed, detected in its media (RFC 4733 events, or in-band tones)."""

    session: str
    side: Side
    digit: Digit


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    session: str
    side: Side
    reason: Finish


MediaEvent = MediaTimeout | SourceLatched | DigitReceived | PlaybackFinished


@dataclass(frozen=True, slots=True)
class SessionPorts:
    """Our two endpoints' ports, to put in the SDP we send each peer."""

    host: str
    phone: int
    gateway: int


@dataclass(frozen=True, slots=True)
class EndpointCounters:
    """Everything an endpoint counted that is not in the RFC 3550 statistics."""

    malformed: int
    #: packets refused for their source; once the socket is connected to the latched source the
    #: kernel drops the others unseen, so this counts those that came before (module docstring)
    foreign: int
    rtcp_in: int
    rtcp_out: int
    sent: int
    sent_bytes: int
    send_errors: int


@dataclass(frozen=True, slots=True)
class SessionStats:
    """What the call record keeps of the media: per side, what arrived and what was done."""

    received: dict[str, StreamSummary]
    counters: dict[str, EndpointCounters]


class MediaControl(Protocol):
    """The call controller's whole view of the media plane (module docstring). Every argument and
    result is a plain value, and events come back through one callback, so a process boundary can
    be put behind it ([6/6]: relays in worker processes)."""

    def open_session(self, session: str, *, rtcp_mux: bool = False) -> SessionPorts: ...

    def set_remote(self, session: str, side: Side, remote: RemoteMedia) -> None: ...

    def bridge(self, session: str) -> None: ...

    def unbridge(self, session: str) -> None: ...

    def play_prompts(
        self,
        session: str,
        side: Side,
        names: Sequence[str],
        *,
        language: str | None = None,
        loop: bool = False,
        barge_in: bool = True,
    ) -> None: ...

    def stop_playback(self, session: str, side: Side) -> None: ...

    def send_digits(
        self, session: str, side: Side, keys: str, *, duration_ms: int = 100, gap_ms: int = 60
    ) -> None: ...

    def close_session(self, session: str) -> SessionStats: ...


# --------------------------------------------------------------------------------------- endpoint


class Endpoint:
    """One side of a call: our port facing one peer (module docstring)."""

    __slots__ = (
        "_buf",
        "_connectable",
        "_connecting",
        "_draining",
        "_round",
        "_view",
        "connected",
        "counters_foreign",
        "counters_malformed",
        "counters_rtcp_in",
        "counters_rtcp_out",
        "counters_send_errors",
        "detector",
        "forward",
        "inband",
        "last_rx",
        "latch_until",
        "out",
        "paused",
        "player",
        "ports",
        "receiving",
        "relay",
        "remote",
        "remote_rtcp",
        "remote_spec",
        "rtcp_latched",
        "rtcp_mux",
        "sending",
        "session",
        "side",
        "signalled",
        "source",
        "stats",
        "telephone_event",
    )

    def __init__(self, relay: Relay, session: str, side: Side, ports: BoundPorts, rtcp_mux: bool) -> None:
        self.relay = relay
        self.session = session
        self.side = side
        self.ports = ports
        self.rtcp_mux = rtcp_mux
        self._buf = bytearray(MAX_PACKET)
        self._view = memoryview(self._buf)
        self._draining = False
        self._round = -1  # the relay's round in which this socket was last served
        # where we send RTP and RTCP (latched or signalled), as the socket reports sources
        self.remote: tuple[Any, ...] | None = None
        self.remote_rtcp: tuple[Any, ...] | None = None
        self.rtcp_latched = False
        self.remote_spec: RemoteMedia | None = None
        # The one source accepted: latched (or, LatchMode.SIGNALLED, the signalled address); None
        # until then. The hot path compares with it alone.
        self.source: tuple[Any, ...] | None = None
        self.signalled: tuple[Any, ...] | None = None  # the SDP's address, as remote is before a latch
        # The RTP socket is connected to the source (_connect): the kernel drops every other
        # source, and the hot path receives and sends without addresses. _connecting: connected,
        # but packets from elsewhere may still wait in the queue from before; they are read with
        # their addresses and checked until the queue is first found empty.
        self.connected = False
        self._connecting = False
        self._connectable = _connectable(ports.rtp)
        self.latch_until = 0.0
        self.receiving = True  # the peer may send to us
        self.sending = True  # we may send to the peer
        self.telephone_event = -1  # payload type, -1: none negotiated
        self.stats = ReceiveStats()
        self.out = OutgoingStream()  # our stream toward this endpoint's peer
        self.forward: Endpoint | None = None  # where packets from this peer go when bridged
        self.player: PromptPlayer | None = None  # made on first use
        self.paused = False  # a prompt or our digits go to the peer: the bridged audio waits
        self.detector: Rfc4733Detector | None = None  # made on the first telephone-event
        self.inband: InbandDetector | None = None  # when the peer sends G.711 and no telephone-event
        self.last_rx = time.monotonic()
        self.counters_malformed = 0
        self.counters_foreign = 0
        self.counters_rtcp_in = 0
        self.counters_rtcp_out = 0
        self.counters_send_errors = 0

    @property
    def port(self) -> int:
        return self.ports.port

    def set_remote(self, remote: RemoteMedia, now: float) -> None:
        """The peer's SDP arrived (or changed, in a re-INVITE): where to send, what to expect."""
        changed = self.remote_spec is None or (remote.host, remote.port) != (
            self.remote_spec.host,
            self.remote_spec.port,
        )
        self.remote_spec = remote
        direction = remote.direction
        # RFC 3264 §8.4: c=0.0.0.0 is the old way to put a call on hold: nothing goes there (on
        # Linux it would reach our own ports), and nothing is expected from it.
        held = remote.port == 0 or _unspecified(remote.host)
        self.sending = direction in (Direction.SENDRECV, Direction.RECVONLY) and not held
        self.receiving = direction in (Direction.SENDRECV, Direction.SENDONLY) and remote.port != 0
        self.telephone_event = -1 if remote.telephone_event is None else remote.telephone_event
        wants_inband = (
            self.side == "phone"
            and self.relay.config.inband_dtmf
            and remote.telephone_event is None
            and remote.payload_type in (PCMU_PAYLOAD_TYPE, PCMA_PAYLOAD_TYPE)
        )
        if not wants_inband:
            self.inband = None
        elif self.inband is None:
            self.inband = InbandDetector()
        if self.stats.clock_rate != remote.clock_rate:
            self.stats.clock_rate = remote.clock_rate
        self.out.clock_rate = remote.clock_rate
        if changed:
            # A new address in SDP (a re-INVITE after a NAT rebinding, a transfer): latch anew.
            # The same SDP again (a session refresh) keeps the latch and does not reopen the window.
            self.signalled = None if held else self._address(remote.host, remote.port)
            self.remote = self.signalled
            self.remote_rtcp = None if held else self._signalled_rtcp()
            self.rtcp_latched = False
            self.source = self.remote if self.relay.config.latch_mode is LatchMode.SIGNALLED else None
            self.latch_until = now + self.relay.config.latch_window
            self._connect()

    def _signalled_rtcp(self) -> tuple[Any, ...] | None:
        """Where the SDP says RTCP goes: the RTP address when muxed, else ``a=rtcp`` or port + 1."""
        spec = self.remote_spec
        assert spec is not None
        if spec.rtcp_mux or self.rtcp_mux:
            return self.signalled
        port = spec.rtcp_port if spec.rtcp_port is not None else spec.port + 1
        return self._address(spec.host, port) if port <= 65535 else None

    def _address(self, host: str, port: int) -> tuple[str, int] | tuple[str, int, int, int]:
        """``host``:``port`` in the form our socket's recvfrom() reports a source, so that the hot
        path compares tuples as they are: IPv6 sockets give (host, port, flowinfo, scope_id)."""
        if self.ports.rtp.family == socket.AF_INET6:
            return (str(ipaddress.ip_address(host.strip("[]"))), port, 0, 0)
        return (host, port)

    def _accept(self, addr: tuple[Any, ...], now: float) -> bool:
        """A well-formed RTP packet from ``addr`` before the endpoint latched, or from a source other
        than the latched one: latch to it, or refuse it.

        Latching is per SDP: to the first source within the window, after the window only the
        signalled address. Within the window the signalled address also takes over from another
        source latched before it: a peer sending from where its SDP says is behind no NAT, so
        that other source was not it (the previous peer still sending after a re-INVITE moved
        the call, or someone racing the peer's first packet). With ``LatchMode.SIGNALLED`` only
        the signalled address, from the start. The latch is final, and the socket connected to
        it, once it is the signalled address or the window has closed (:meth:`Relay._sweep`)."""
        if self.remote_spec is None or self.relay.config.latch_mode is LatchMode.SIGNALLED:
            self.counters_foreign += 1
            return False
        in_window = now <= self.latch_until
        if self.source is not None:
            refused = addr != self.signalled or not in_window  # only the signalled address takes over
        else:
            refused = addr != self.signalled and not in_window
        if refused:
            self.counters_foreign += 1
            return False
        self.remote = addr
        self.rtcp_latched = False  # (a take-over: the displaced source's RTCP latch goes with it)
        if self.rtcp_mux or self.remote_spec.rtcp_mux:
            self.remote_rtcp = addr
        elif addr == self.signalled:
            self.remote_rtcp = self._signalled_rtcp()
        elif self.remote_rtcp is None or self.remote_rtcp[0] != addr[0]:
            # Behind a NAT: guess the RTCP port next to the RTP one, until RTCP arrives and latches.
            self.remote_rtcp = (addr[0], addr[1] + 1, *addr[2:]) if addr[1] < 65535 else None
        self.source = addr
        if addr == self.signalled or not in_window:
            self._connect()
        self.relay._emit(SourceLatched(self.session, self.side, addr[0], addr[1]))
        return True

    def _connect(self) -> None:
        """Connect the RTP socket to the accepted source once it is final (:meth:`_accept`), or
        undo it when there is none (a new SDP to latch anew, hold). A connected UDP socket costs
        the kernel no route lookup per send and Python no address object per receive, and other
        sources are dropped by the kernel (not counted in ``foreign``). Only where it can be
        undone cleanly (:func:`_connectable`); otherwise, or when the kernel refuses, the endpoint
        goes on unconnected: same behaviour, slower."""
        sock = self.ports.rtp
        was_connected = self.connected or self._connecting
        self.connected = False
        self._connecting = False
        if self.source is None or not self._connectable:
            if was_connected:
                _disconnect(sock)
            return
        try:
            sock.connect(self.source)
        except OSError as exc:  # no route to it, say: sendto() will report it per packet
            logger.debug("%s %s: connect %s: %s", self.session, self.side, self.source, exc)
            _disconnect(sock)
            return
        self._connecting = True
        self._draining = True  # read on to the empty queue, after which only the source is in it

    def _on_readable(self) -> None:
        """Drain the RTP socket (module docstring).

        Written flat, with the common case of :meth:`ReceiveStats.on_packet` and
        :meth:`OutgoingStream.rewrite` inlined (same source, next sequence number): this runs for
        every packet, and a Python call costs as much as the rest of the work. The uncommon cases
        go through those methods, which stay the reference.
        """
        sock = self.ports.rtp
        buf = self._buf
        view = self._view
        now = time.monotonic()
        unpack = _SEQ_TS_SSRC.unpack_from
        pack = _SEQ_TS_SSRC.pack_into
        stats = self.stats
        rate = stats.clock_rate
        # One packet per round unless a backlog was seen: most sockets carry 50 packets/s and
        # hold one packet when served, and finding out that there is no second one costs a
        # raised BlockingIOError, as much as relaying a packet. The poll is level-triggered, so a
        # packet left behind makes the socket ready again in the very next round: ready in two
        # rounds running means a backlog, and then we drain until the socket would block. So do
        # all sockets in a round that follows one with more ready sockets than it could take
        # (MAX_EVENTS), because those left for this round may have waited long (overload).
        # Without our epoll (not Linux) the round stays 0 and every call drains.
        relay = self.relay
        relay_round = relay._round
        batch = MAX_BATCH if self._draining or relay._drain or self._round + 1 >= relay_round else 1
        self._round = relay_round
        received = 0
        for _ in range(batch):
            if self.connected:
                try:
                    size = sock.recv_into(buf)
                except BlockingIOError:
                    break
                except OSError as exc:  # an ICMP error reported on the socket: not fatal
                    logger.debug("%s %s: %s", self.session, self.side, exc)
                    continue
                addr = None
            else:
                try:
                    size, addr = sock.recvfrom_into(buf)
                except BlockingIOError:
                    if self._connecting:
                        self.connected = True  # the queue is empty: what comes now is the source's
                        self._connecting = False
                    break
                except OSError as exc:
                    logger.debug("%s %s: %s", self.session, self.side, exc)
                    continue
            received += 1
            if size < 12 or size >= MAX_PACKET or (buf[0] & 0xC0) != 0x80:
                # too short for a header, not version 2, or cut to our buffer (no call sends that)
                self.counters_malformed += 1
                continue
            if addr is not None and addr != self.source and not self._accept(addr, now):
                continue
            second = buf[1]
            if second in _RTCP_TYPES:
                self._rtcp(bytes(view[:size]), now)
                continue
            if not self.receiving:
                continue  # the peer said it would not send (RFC 3264 §5.1); ignore what it does
            seq, ts, ssrc = unpack(buf, 2)
            if (second & 0x7F) == self.telephone_event:
                stats.on_packet(ssrc, seq, ts, size, now, False)
                self.last_rx = now
                self._telephone_event(seq, ts, second > 0x7F, buf, size, now)
                if self.side == "phone" and not self.relay.config.forward_telephone_events:
                    target = self.forward
                    if target is not None and target.out.source == ssrc:
                        # The gateway must not see a hole in the sequence where the keypress was.
                        target.out.seq_delta = (target.out.seq_delta - 1) & 0xFFFF
                    continue
            elif ssrc == stats.ssrc and 0 < seq - stats._max_seq < MAX_DROPOUT:
                # ReceiveStats.on_packet, in-order packet of the current source
                stats.packets += 1
                stats.bytes += size
                stats.received += 1
                stats._max_seq = seq
                transit = int(now * rate) - ts
                previous = stats._transit
                stats._transit = transit
                if previous is not None:
                    d = transit - previous
                    if d < 0:
                        d = -d
                    if d > 0x7FFFFFFF:
                        d = 0x100000000 - d
                    j = stats.jitter + (d - stats.jitter) / 16.0
                    stats.jitter = j
                    if j > stats.max_jitter:
                        stats.max_jitter = j
            else:
                stats.on_packet(ssrc, seq, ts, size, now, True)
            self.last_rx = now
            if self.inband is not None:
                self._inband(second & 0x7F, ssrc, ts, view[12:size], now)
            target = self.forward
            if target is None or not target.sending or target.paused:
                continue  # no bridge, the peer put us on hold, or a prompt or digits go to it
            remote = target.remote
            if remote is None:
                continue
            out = target.out
            if ssrc == out.source:
                # OutgoingStream.rewrite, same source as the last packet
                out_seq = (seq + out.seq_delta) & 0xFFFF
                out_ts = (ts + out.ts_delta) & 0xFFFFFFFF
                pack(buf, 2, out_seq, out_ts, out.ssrc)
                out.seq = out_seq
                out.ts = out_ts
                out.last_at = now
                out.packets += 1
                out.bytes += size
            else:
                out.rewrite(buf, size, ssrc, seq, ts, now)
            try:
                if target.connected:
                    target.ports.rtp.send(view[:size])  # to its source, which is ``remote``
                else:
                    target.ports.rtp.sendto(view[:size], remote)
            except ConnectionRefusedError:
                target._resend(view[:size])
            except OSError as exc:
                target.counters_send_errors += 1
                if exc.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.ECONNREFUSED):
                    logger.debug("%s %s: send: %s", self.session, target.side, exc)
        self._draining = received > 1 or self._connecting

    def _telephone_event(
        self, seq: int, ts: int, marker: bool, buf: bytearray, size: int, now: float
    ) -> None:
        """An RFC 4733 packet: its payload (after any CSRCs and header extension, without padding,
        RFC 3550 §5.1, §5.3.1) goes to this side's detector. Nothing a peer sends may raise here."""
        try:
            start = 12 + 4 * (buf[0] & 0x0F)
            if buf[0] & 0x10 and start + 4 <= size:
                start += 4 + 4 * int.from_bytes(buf[start + 2 : start + 4], "big")
            end = size - buf[size - 1] if buf[0] & 0x20 else size
            payload = bytes(buf[start:end]) if start <= end else b""
            detector = self.detector
            if detector is None:
                detector = self.detector = Rfc4733Detector(clock_rate=self.stats.clock_rate)
            self._digits(detector.receive(seq, ts, marker, payload, now))
            if detector.deadline is not None:
                self.relay._dtmf_pending(self, detector.deadline)
        except Exception:
            self.counters_malformed += 1
            logger.exception("%s %s: telephone-event not handled", self.session, self.side)

    def _inband(self, payload_type: int, ssrc: int, ts: int, payload: memoryview, now: float) -> None:
        inband = self.inband
        if inband is None or payload_type not in (PCMU_PAYLOAD_TYPE, PCMA_PAYLOAD_TYPE):
            return
        try:
            found = inband.feed_rtp(ssrc, ts, decode(payload_type, payload), now)
            if found:
                # The packets of one read share one ``now``, and the detector dates a tone by its
                # samples: its end can come out after ``now``.
                self._digits(
                    [
                        Digit(
                            d.key,
                            DigitSource.INBAND,
                            d.duration_ms,
                            started_at=d.started,
                            ended_at=max(now, d.started + d.duration_ms / 1000),
                        )
                        for d in found
                    ]
                )
        except Exception:
            logger.exception("%s %s: in-band detection failed; off for this call", self.session, self.side)
            self.inband = None

    def _digits(self, digits: list[Digit]) -> None:
        for digit in digits:
            if self.player is not None:
                self.player.digit()  # barge-in, when the prompt allows it
            self.relay._emit(DigitReceived(self.session, self.side, digit))

    def _on_rtcp_readable(self) -> None:
        sock = self.ports.rtcp
        assert sock is not None
        now = time.monotonic()
        for _ in range(MAX_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_PACKET)
            except BlockingIOError:
                break
            except OSError:
                continue
            remote = self.remote_rtcp
            if remote is None or (
                addr != remote and (self.rtcp_latched or addr[0] != remote[0] or now > self.latch_until)
            ):
                self.counters_foreign += 1  # not the peer's RTCP address (latched once, like RTP)
                continue
            if addr != remote:
                # Its NAT mapped the RTCP port elsewhere: latch to it, once, within the RTP window.
                self.remote_rtcp = addr
            self.rtcp_latched = True
            self._rtcp(data, now)

    def _rtcp(self, data: bytes, now: float) -> None:
        """An RTCP compound packet from our peer: relay it to the other side, in terms of the
        streams as the other side sees them (our SSRCs, not the ones behind us)."""
        self.counters_rtcp_in += 1
        target = self.forward
        if target is None or target.remote_rtcp is None:
            return  # (RTCP goes on during hold, RFC 3264 §5.1: it tells the peer we are alive)
        rewritten = rewrite_rtcp(
            data,
            sender=target.out.ssrc,
            reported={self.out.ssrc: target.stats.ssrc},
            ts_delta=target.out.ts_delta,
            seq_delta=self.out.seq_delta,
        )
        if rewritten is None:
            self.counters_malformed += 1
            return
        sock = target.ports.rtp if target.ports.rtcp is None else target.ports.rtcp
        try:
            sock.sendto(rewritten, target.remote_rtcp)
            target.counters_rtcp_out += 1
        except (OSError, OverflowError):
            target.counters_send_errors += 1

    def send_frame(self, source: object, seq: int, ts: int, payload: bytes, now: float, marker: bool) -> None:
        """A frame of the prompt player (:class:`rtp.player.Sink`): into our stream to the peer."""
        spec = self.remote_spec
        payload_type = spec.payload_type if spec is not None else 0
        self.send_generated(self.out.packet(source, seq, ts, payload_type, payload, now, marker))

    def send_generated(self, data: bytes) -> None:
        """Send a packet a generator built with ``self.out.packet(...)`` to this endpoint's peer."""
        if not self.sending or self.remote is None:
            return
        try:
            self.ports.rtp.sendto(data, self.remote)
        except ConnectionRefusedError:
            self._resend(data)
        except OSError:
            self.counters_send_errors += 1

    def _resend(self, data: bytes | memoryview) -> None:
        """A send failed with ECONNREFUSED: a connected socket reports an ICMP port-unreachable
        the peer's host sent back for an earlier packet, on the next send, which it then does not
        make (a peer that closed its port for a moment, in a re-INVITE). The report is cleared:
        send once more."""
        remote = self.remote
        if remote is None:
            return
        try:
            self.ports.rtp.sendto(data, remote)
        except OSError:
            self.counters_send_errors += 1

    def counters(self) -> EndpointCounters:
        return EndpointCounters(
            malformed=self.counters_malformed,
            foreign=self.counters_foreign,
            rtcp_in=self.counters_rtcp_in,
            rtcp_out=self.counters_rtcp_out,
            sent=self.out.packets,
            sent_bytes=self.out.bytes,
            send_errors=self.counters_send_errors,
        )


#: connect(2) to an address of family AF_UNSPEC dissolves a UDP socket's association (Linux, BSD);
#: Python's socket.connect() cannot express that address, so it goes through libc. Where there is
#: no C library to load, sockets are never connected (Endpoint._connect).
def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):
        return None


_LIBC: Final = _load_libc()
_AF_UNSPEC_ADDRESS: Final = (ctypes.c_ubyte * 16)()  # sa_family 0, the rest unused


def _connectable(sock: socket.socket) -> bool:
    """Whether connecting ``sock`` to its peer can be undone without leaving anything behind:
    on Linux, where sendto() with an address still works on a connected socket (BSDs say
    EISCONN), for IPv4 (Linux's connect(AF_UNSPEC) leaves an IPv6 socket tied to the old peer's
    address), and bound to a specific address (connect() would pin a wildcard-bound socket to
    the route's source address, and packets sent to any other address of ours would be lost)."""
    return (
        _LIBC is not None
        and sys.platform.startswith("linux")
        and sock.family == socket.AF_INET
        and sock.getsockname()[0] != "0.0.0.0"
    )


def _disconnect(sock: socket.socket) -> None:
    if _LIBC is None:
        return
    if _LIBC.connect(sock.fileno(), _AF_UNSPEC_ADDRESS, ctypes.sizeof(_AF_UNSPEC_ADDRESS)) != 0:
        logger.debug("disconnect fd %d: errno %d", sock.fileno(), ctypes.get_errno())


def _unspecified(host: str) -> bool:
    """0.0.0.0 or ::, the RFC 3264 §8.4 hold address (and never a peer)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def rewrite_rtcp(
    data: bytes,
    *,
    sender: int,
    reported: dict[int, int | None],
    ts_delta: int = 0,
    seq_delta: int = 0,
) -> bytes | None:
    """``data`` (a compound RTCP packet from one peer) as the other peer must see it, the relay
    being an RTP translator that renumbers streams (RFC 3550 §7.2): every sender SSRC becomes
    ``sender``; an SR's RTP timestamp moves by ``ts_delta`` (the offset of our stream that carries
    the sender's media); every SSRC a report block or feedback names is mapped through ``reported``,
    and a report block's extended highest sequence number moves back by ``seq_delta`` (the offset
    of our stream the reporter receives) into the numbering of the stream's source. None when the
    lengths do not add up (RFC 3550 §6.1: each packet's length field counts 32-bit words less one).
    """
    out = bytearray(data)
    offset = 0
    total = len(out)
    while offset < total:
        if total - offset < 4 or (out[offset] & 0xC0) != 0x80:
            return None
        count = out[offset] & 0x1F
        packet_type = out[offset + 1]
        length = (int.from_bytes(out[offset + 2 : offset + 4], "big") + 1) * 4
        end = offset + length
        if end > total:
            return None
        if length >= 8:  # a BYE or SDES with no source is the 4-byte header alone
            _U32.pack_into(out, offset + 4, sender)
        if packet_type in (200, 201):  # SR, RR: report blocks after the sender info (SR) or header
            if packet_type == 200:
                if length < 28:
                    return None
                rtp_ts = _U32.unpack_from(out, offset + 16)[0]
                _U32.pack_into(out, offset + 16, (rtp_ts + ts_delta) & 0xFFFFFFFF)
            blocks = offset + (28 if packet_type == 200 else 8)
            for n in range(count):
                at = blocks + 24 * n
                if at + 24 > end:
                    return None
                mapped = reported.get(_U32.unpack_from(out, at)[0])
                if mapped is not None:
                    _U32.pack_into(out, at, mapped)
                highest = _U32.unpack_from(out, at + 8)[0]
                source_seq = ((highest & 0xFFFF) - seq_delta) & 0xFFFF
                _U32.pack_into(out, at + 8, (highest & 0xFFFF0000) | source_seq)
        elif packet_type in (205, 206) and length >= 12:  # RTPFB, PSFB (RFC 4585 §6.1): media SSRC
            mapped = reported.get(_U32.unpack_from(out, offset + 8)[0])
            if mapped is not None:
                _U32.pack_into(out, offset + 8, mapped)
        offset = end
    return bytes(out)


# ---------------------------------------------------------------------------------------- session


class Session:
    """The two endpoints of one call."""

    __slots__ = ("endpoints", "id")

    def __init__(self, session_id: str, phone: Endpoint, gateway: Endpoint) -> None:
        self.id = session_id
        self.endpoints: dict[Side, Endpoint] = {"phone": phone, "gateway": gateway}


# ------------------------------------------------------------------------------------------ relay


class Relay:
    """All sessions of this process, on one event loop. Implements :class:`MediaControl`."""

    def __init__(
        self,
        config: RelayConfig | None = None,
        *,
        on_event: Callable[[MediaEvent], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config or RelayConfig()
        self.allocator = PortAllocator(self.config.ports, self.config.host)
        self.on_event = on_event
        self._loop = loop
        self._sessions: dict[str, Session] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.clock = MediaClock(loop)
        self.events_dropped = 0
        self.prompts: PromptSet | None = None
        # Every media socket sits in one epoll of our own, itself watched by the event loop: one
        # wake-up of the loop hands us every ready socket at once, instead of one callback through
        # the loop per socket and packet (the loop's own share of the cost at a thousand calls).
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._ready: dict[int, Callable[[], None]] = {}
        self._epoll_watched = False
        self._round = 0  # rounds of serving ready sockets so far (Endpoint._on_readable)
        self._drain = False  # this round or the last had more ready sockets than MAX_EVENTS
        self._full = False
        self._clips: dict[tuple[str, str | None, int], Clip] = {}
        # RFC 4733 detectors waiting for an end that may never come (all end packets lost)
        self._dtmf_waiting: dict[int, Endpoint] = {}
        self._dtmf_timer: asyncio.TimerHandle | None = None
        self._dtmf_timer_at = 0.0
        # digits we are sending, per endpoint: the timers of their packets
        self._sending_digits: dict[int, list[asyncio.TimerHandle]] = {}

    # -- MediaControl ----------------------------------------------------------------------------

    def open_session(self, session: str, *, rtcp_mux: bool = False) -> SessionPorts:
        """Bind both endpoints of a call. Raises :class:`PortsExhausted` (answer 503) with nothing
        left bound, and ValueError for a session id already open."""
        if session in self._sessions:
            raise ValueError(f"media session {session!r} is already open")
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        phone_ports = self.allocator.allocate(rtcp=not rtcp_mux)
        try:
            gateway_ports = self.allocator.allocate(rtcp=not rtcp_mux)
        except BaseException:  # exhausted, or out of file descriptors: nothing stays bound
            self.allocator.release(phone_ports)
            raise
        phone = Endpoint(self, session, "phone", phone_ports, rtcp_mux)
        gateway = Endpoint(self, session, "gateway", gateway_ports, rtcp_mux)
        for endpoint in (phone, gateway):
            self._watch(endpoint.ports.rtp.fileno(), endpoint._on_readable)
            if endpoint.ports.rtcp is not None:
                self._watch(endpoint.ports.rtcp.fileno(), endpoint._on_rtcp_readable)
        self._sessions[session] = Session(session, phone, gateway)
        self._arm_sweeper()
        return SessionPorts(self.config.advertised_host or self.config.host, phone.port, gateway.port)

    def set_remote(self, session: str, side: Side, remote: RemoteMedia) -> None:
        self._session(session).endpoints[side].set_remote(remote, time.monotonic())

    def bridge(self, session: str) -> None:
        """Pass media between the two peers (each direction rewritten into our outgoing stream)."""
        s = self._session(session)
        phone, gateway = s.endpoints["phone"], s.endpoints["gateway"]
        phone.forward, gateway.forward = gateway, phone

    def unbridge(self, session: str) -> None:
        s = self._session(session)
        for endpoint in s.endpoints.values():
            endpoint.forward = None

    def close_session(self, session: str) -> SessionStats:
        """Unbind both endpoints and return what the call record keeps. Unknown ids: KeyError."""
        s = self._sessions.pop(session)
        for endpoint in s.endpoints.values():
            for handle in self._sending_digits.pop(id(endpoint), []):
                handle.cancel()
            self._dtmf_waiting.pop(id(endpoint), None)
            if endpoint.player is not None:
                endpoint.player.stop()
            self._unwatch(endpoint.ports.rtp.fileno())
            if endpoint.ports.rtcp is not None:
                self._unwatch(endpoint.ports.rtcp.fileno())
            endpoint.forward = None
            self.allocator.release(endpoint.ports)
        return SessionStats(
            received={side: e.stats.summary() for side, e in s.endpoints.items()},
            counters={side: e.counters() for side, e in s.endpoints.items()},
        )

    def play(
        self, session: str, side: Side, clips: Sequence[Clip], *, loop: bool = False, barge_in: bool = True
    ) -> None:
        """Play ``clips`` to the ``side`` peer, replacing what plays; the bridged audio toward it
        pauses meanwhile. :class:`PlaybackFinished` says how it ended."""
        endpoint = self._session(session).endpoints[side]
        if endpoint.player is None:
            endpoint.player = PromptPlayer(endpoint, self.clock, self._playback_finished(session, side))
        endpoint.player.play(clips, loop=loop, barge_in=barge_in)
        self._set_paused(endpoint)

    def play_prompts(
        self,
        session: str,
        side: Side,
        names: Sequence[str],
        *,
        language: str | None = None,
        loop: bool = False,
        barge_in: bool = True,
    ) -> None:
        """:meth:`play` the prompts ``names`` of :attr:`prompts` (a PromptSet) in ``language``, in
        the codec that side negotiated. Each prompt is encoded once per codec and kept."""
        if self.prompts is None:
            raise ValueError("no prompt set loaded (Relay.prompts)")
        endpoint = self._session(session).endpoints[side]
        spec = endpoint.remote_spec
        payload_type = spec.payload_type if spec is not None else PCMU_PAYLOAD_TYPE
        if payload_type not in (PCMU_PAYLOAD_TYPE, PCMA_PAYLOAD_TYPE):
            raise ValueError(f"prompts are G.711; the {side} side negotiated payload type {payload_type}")
        self.play(
            session,
            side,
            [self._clip(n, language, payload_type) for n in names],
            loop=loop,
            barge_in=barge_in,
        )

    def _clip(self, name: str, language: str | None, payload_type: int) -> Clip:
        key = (name, language, payload_type)
        clip = self._clips.get(key)
        if clip is None:
            assert self.prompts is not None
            prompt = self.prompts.prompt(name, language)
            silence = 0xFF if payload_type == PCMU_PAYLOAD_TYPE else 0xD5
            clip = Clip.from_payload(name, encode(payload_type, prompt.as_array()), silence)
            self._clips[key] = clip
        return clip

    def stop_playback(self, session: str, side: Side) -> None:
        player = self._session(session).endpoints[side].player
        if player is not None:
            player.stop()

    def send_digits(
        self, session: str, side: Side, keys: str, *, duration_ms: int = 100, gap_ms: int = 60
    ) -> None:
        """Send ``keys`` to the ``side`` peer as RFC 4733 events in our stream to it (to pass a
        caller's digits on to a gateway or a trunk); the bridged audio toward it waits meanwhile.
        Raises ValueError when that peer negotiated no telephone-event."""
        endpoint = self._session(session).endpoints[side]
        spec = endpoint.remote_spec
        if spec is None or spec.telephone_event is None:
            raise ValueError(f"{side} side of {session!r} negotiated no telephone-event")
        loop = self._loop
        assert loop is not None
        generator = Rfc4733Generator(spec.telephone_event, clock_rate=spec.clock_rate)
        # Every key's packets first: a bad key or duration raises before anything is scheduled.
        presses = [generator.packets(key, duration_ms, 0) for key in keys]
        token = object()  # the source of these packets in the outgoing stream
        handles = self._sending_digits.setdefault(id(endpoint), [])
        # Digits asked for while others are still going out follow them.
        busy_until = max((h.when() for h in handles if not h.cancelled()), default=loop.time())
        start = max(0.0, busy_until - loop.time()) + (gap_ms / 1000 if handles else 0.0)
        done = start
        seq = 0
        ts = 0
        for packets in presses:
            for packet in packets:
                seq += 1
                handles.append(
                    loop.call_later(
                        start + packet.send_offset,
                        self._send_event,
                        endpoint,
                        token,
                        seq,
                        (ts + packet.timestamp) & 0xFFFFFFFF,
                        packet.marker,
                        packet.payload,
                        round(packet.send_offset * spec.clock_rate),
                    )
                )
            # the next event starts after this one and the gap, on the same media clock
            last = packets[-1].send_offset if packets else 0.0
            done = start + last
            start += last + gap_ms / 1000
            ts += round((last + gap_ms / 1000) * spec.clock_rate)
        handles.append(loop.call_later(done, self._digits_sent, endpoint))
        self._set_paused(endpoint)

    def _send_event(
        self,
        endpoint: Endpoint,
        token: object,
        seq: int,
        ts: int,
        marker: bool,
        payload: bytes,
        elapsed: int,
    ) -> None:
        spec = endpoint.remote_spec
        if spec is None or spec.telephone_event is None:
            return
        now = time.monotonic()
        packet = endpoint.out.packet(
            token, seq, ts, spec.telephone_event, payload, now, marker, media_offset=elapsed
        )
        endpoint.send_generated(packet)

    def _digits_sent(self, endpoint: Endpoint) -> None:
        handles = self._sending_digits.get(id(endpoint), [])
        loop = self._loop
        if loop is not None and any(h.when() > loop.time() and not h.cancelled() for h in handles):
            return  # more digits were asked for meanwhile: their own end comes later
        self._sending_digits.pop(id(endpoint), None)
        self._set_paused(endpoint)

    # -- for the players and generators in this process -------------------------------------------

    def endpoint(self, session: str, side: Side) -> Endpoint:
        return self._session(session).endpoints[side]

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def close(self) -> None:
        for session in list(self._sessions):
            self.close_session(session)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
            self._dtmf_timer = None
        if self._epoll is not None:
            if self._epoll_watched and self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._epoll.fileno())
            self._epoll_watched = False
            self._epoll.close()
            self._epoll = None

    # -- internals -------------------------------------------------------------------------------

    def _session(self, session: str) -> Session:
        try:
            return self._sessions[session]
        except KeyError:
            raise KeyError(f"no media session {session!r}") from None

    def _watch(self, fd: int, callback: Callable[[], None]) -> None:
        loop = self._loop
        assert loop is not None
        if self._epoll is None:
            loop.add_reader(fd, callback)
            return
        self._ready[fd] = callback
        self._epoll.register(fd, select.EPOLLIN)
        if not self._epoll_watched:
            loop.add_reader(self._epoll.fileno(), self._on_ready)
            self._epoll_watched = True

    def _unwatch(self, fd: int) -> None:
        if self._epoll is None:
            if self._loop is not None:
                self._loop.remove_reader(fd)
            return
        if self._ready.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    @property
    def rounds(self) -> int:
        """Rounds of serving ready sockets so far (wake-ups of the loop for media)."""
        return self._round

    def _on_ready(self) -> None:
        """The loop says our epoll has ready sockets. One round: serve each ready socket once
        (level-triggered: a socket with more packets stays ready and comes back in the next
        round, which is how Endpoint._on_readable sees a backlog)."""
        assert self._epoll is not None
        self._round += 1
        events = self._epoll.poll(0, MAX_EVENTS)
        full = len(events) == MAX_EVENTS
        self._drain = full or self._full
        self._full = full
        ready = self._ready
        for fd, _ in events:
            callback = ready.get(fd)
            if callback is not None:
                callback()

    def _set_paused(self, endpoint: Endpoint) -> None:
        """The bridged audio toward a peer waits while a prompt or our digits go to it (kept as one
        flag because the hot path reads it for every packet)."""
        player = endpoint.player
        endpoint.paused = (player is not None and player.playing) or id(endpoint) in self._sending_digits

    def _playback_finished(self, session: str, side: Side) -> Callable[[PromptPlayer, Finish], None]:
        def finished(_: PromptPlayer, reason: Finish) -> None:
            s = self._sessions.get(session)
            if s is not None:
                endpoint = s.endpoints[side]
                self._set_paused(endpoint)
                self._emit(PlaybackFinished(session, side, reason))

        return finished

    def _dtmf_pending(self, endpoint: Endpoint, deadline: float) -> None:
        """A detector needs :meth:`Rfc4733Detector.on_timer` at ``deadline`` (one timer for all)."""
        self._dtmf_waiting[id(endpoint)] = endpoint
        if self._dtmf_timer is None or deadline < self._dtmf_timer_at:
            if self._dtmf_timer is not None:
                self._dtmf_timer.cancel()
            loop = self._loop
            assert loop is not None
            self._dtmf_timer_at = deadline
            self._dtmf_timer = loop.call_at(
                loop.time() + max(0.0, deadline - time.monotonic()), self._dtmf_due
            )

    def _dtmf_due(self) -> None:
        self._dtmf_timer = None
        now = time.monotonic()
        waiting = list(self._dtmf_waiting.values())
        self._dtmf_waiting.clear()
        for endpoint in waiting:
            detector = endpoint.detector
            if detector is None or endpoint.session not in self._sessions:
                continue
            if detector.deadline is not None and detector.deadline <= now:
                endpoint._digits(detector.on_timer(now))
            if detector.deadline is not None:
                self._dtmf_pending(endpoint, detector.deadline)

    def _emit(self, event: MediaEvent) -> None:
        if self.on_event is None:
            self.events_dropped += 1
            return
        try:
            self.on_event(event)
        except Exception:
            # The controller's bug must not stop the packets of every other call.
            logger.exception("media event handler failed on %s", type(event).__name__)

    def _arm_sweeper(self) -> None:
        if self._sweeper is None and self._loop is not None:
            # Once a second, or often enough that a short timeout is not overshot by much.
            self._sweeper = self._loop.call_later(min(1.0, self.config.media_timeout / 3), self._sweep)

    def _sweep(self) -> None:
        """Periodically, for all calls at once (one timer, not one per call): media timeouts, and
        connecting the sockets whose latch became final when its window closed."""
        self._sweeper = None
        now = time.monotonic()
        limit = self.config.media_timeout
        for s in list(self._sessions.values()):
            for endpoint in s.endpoints.values():
                if s.id not in self._sessions:
                    break  # a handler hung the call up on the other side's timeout
                if (
                    endpoint._connectable
                    and endpoint.source is not None
                    and not endpoint.connected
                    and not endpoint._connecting
                    and now > endpoint.latch_until
                ):
                    endpoint._connect()  # latched behind a NAT, and the window has closed: final
                if endpoint.remote_spec is None or not endpoint.receiving:
                    endpoint.last_rx = now  # nothing is expected from this peer: no timeout
                    continue
                idle = now - endpoint.last_rx
                if idle >= limit:
                    endpoint.last_rx = now  # one event per timeout period, not one per second
                    self._emit(MediaTimeout(s.id, endpoint.side, idle))
        if self._sessions:
            self._arm_sweeper()


def random_session_id() -> str:
    return secrets.token_hex(8)


__all__ = [
    "DigitReceived",
    "Direction",
    "Endpoint",
    "EndpointCounters",
    "LatchMode",
    "MediaControl",
    "MediaEvent",
    "MediaTimeout",
    "PlaybackFinished",
    "PortsExhausted",
    "Relay",
    "RelayConfig",
    "RemoteMedia",
    "SessionPorts",
    "SessionStats",
    "Side",
    "SourceLatched",
    "rewrite_rtcp",
]


def _implements(relay: Relay) -> MediaControl:
    return relay  # mypy checks here that Relay keeps to the interface
