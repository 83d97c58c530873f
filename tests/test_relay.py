"""The RTP relay on real loopback sockets: ports, forwarding and header rewriting, source changes,
latching, hold, RTCP, statistics, bad packets, media timeout."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

import rtp.relay as relay_module
from rtp.dtmf import DtmfError, Rfc4733Detector
from rtp.player import Clip
from rtp.ports import PortAllocator, PortRange, PortRangeError, PortsExhausted, free_port_range
from rtp.relay import (
    DigitReceived,
    Direction,
    LatchMode,
    MediaEvent,
    MediaTimeout,
    PlaybackFinished,
    Relay,
    RelayConfig,
    RemoteMedia,
    SourceLatched,
    rewrite_rtcp,
)
from rtp.stats import ReceiveStats
from rtp.stream import OutgoingStream

HOST = "127.0.0.1"


def rtp(
    seq: int, ts: int, ssrc: int, payload: bytes = b"\xff" * 160, pt: int = 0, marker: bool = False
) -> bytes:
    return (
        struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
        + payload
    )


def header(data: bytes) -> tuple[bool, int, int, int, int]:
    """marker, payload type, sequence, timestamp, SSRC"""
    b0, b1, seq, ts, ssrc = struct.unpack_from(">BBHII", data)
    assert b0 == 0x80
    return bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc


def free_range(pairs: int) -> PortRange:
    return free_port_range(pairs, HOST)


class Peer:
    """A phone or gateway: one UDP socket on loopback."""

    def __init__(self, host: str = HOST) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.address: tuple[str, int] = self.sock.getsockname()

    def send(self, data: bytes, port: int) -> None:
        self.sock.sendto(data, (HOST, port))

    async def recv(self, timeout: float = 1.0) -> bytes:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout)

    async def nothing(self, wait: float = 0.15) -> bool:
        with contextlib.suppress(TimeoutError):
            await self.recv(wait)
            return False
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for p in made:
        p.close()


class Events(list[MediaEvent]):
    def of(self, kind: type) -> list[MediaEvent]:
        return [e for e in self if isinstance(e, kind)]


@pytest.fixture
async def relay_factory() -> AsyncIterator[object]:
    relays: list[Relay] = []

    def make(**kwargs: object) -> tuple[Relay, Events]:
        events = Events()
        config = RelayConfig(ports=free_range(kwargs.pop("pairs", 4)), **kwargs)  # type: ignore[arg-type]
        relay = Relay(config, on_event=events.append)
        relays.append(relay)
        return relay, events

    yield make
    for relay in relays:
        relay.close()


async def bridged(relay: Relay, phone: Peer, gateway: Peer, **phone_media: object) -> tuple[int, int]:
    ports = relay.open_session("call")
    relay.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1], **phone_media))  # type: ignore[arg-type]
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1]))
    relay.bridge("call")
    return ports.phone, ports.gateway


async def relayed(sender: Peer, port: int, receiver: Peer, seqs: Sequence[int], ssrc: int = 0x1) -> None:
    """``sender`` sends a packet per sequence number to our ``port``; each must reach ``receiver``.
    Two packets connect a latched endpoint's socket (the second finds the queue otherwise empty)."""
    for seq in seqs:
        sender.send(rtp(seq, 160 * seq, ssrc), port)
        assert len(await receiver.recv()) == 172


# ------------------------------------------------------------------------------------------ ports


def test_port_range_checks_its_bounds() -> None:
    with pytest.raises(PortRangeError, match="low-high in 1024-65535"):
        PortRange(2000, 1999)
    with pytest.raises(PortRangeError, match="holds no even port"):
        PortRange(20001, 20001)
    assert PortRange(20001, 20010).pairs == 4  # 20002/3 … 20008/9; 20010 has no odd neighbour
    assert list(PortRange(20000, 20007).even_ports()) == [20000, 20002, 20004, 20006]


def test_allocator_gives_even_rtp_and_odd_rtcp_then_exhausts_and_recovers() -> None:
    ports = free_range(2)
    allocator = PortAllocator(ports, HOST)
    a = allocator.allocate()
    b = allocator.allocate(rtcp=False)
    assert a.port % 2 == 0 and a.rtp.getsockname()[1] == a.port
    assert a.rtcp is not None and a.rtcp.getsockname()[1] == a.port + 1
    assert b.rtcp is None
    with pytest.raises(PortsExhausted, match=f"no free media port pair in {ports.first}-{ports.last}"):
        allocator.allocate()
    allocator.release(a)
    assert a.rtp.fileno() == -1  # closed
    c = allocator.allocate()
    assert c.port == a.port
    allocator.release(b)
    allocator.release(c)
    assert allocator.in_use == 0 and allocator.available == 2


def test_allocator_skips_a_port_another_program_holds() -> None:
    ports = free_range(2)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((HOST, ports.first + 1))  # the RTCP port of the first pair
    try:
        allocator = PortAllocator(ports, HOST)
        got = allocator.allocate()
        assert got.port == ports.first + 2
        with pytest.raises(PortsExhausted):
            allocator.allocate()
        allocator.release(got)
    finally:
        squatter.close()


async def test_exhausted_relay_refuses_a_call_and_leaks_nothing(relay_factory) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory(pairs=3)  # one call takes two pairs
    relay.open_session("first")
    with pytest.raises(PortsExhausted):
        relay.open_session("second")
    assert relay.allocator.in_use == 2 and relay.sessions == 1
    relay.close_session("first")
    assert relay.allocator.in_use == 0
    relay.open_session("third")  # the ports came back


# -------------------------------------------------------------------------------------- forwarding


async def test_bridged_media_flows_both_ways_as_our_own_stream(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, gateway_port = await bridged(relay, phone, gateway)
    sent_to_gateway = []
    for n in range(5):
        payload = bytes([n]) * 160
        phone.send(rtp(1000 + n, 5000 + 160 * n, 0xAAAA, payload), phone_port)
        got = await gateway.recv()
        sent_to_gateway.append(header(got))
        assert got[12:] == payload
    ssrcs = {h[4] for h in sent_to_gateway}
    assert len(ssrcs) == 1 and 0xAAAA not in ssrcs  # our SSRC, one of it
    seqs = [h[2] for h in sent_to_gateway]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == [0, 1, 2, 3, 4]
    tss = [h[3] for h in sent_to_gateway]
    assert [(t - tss[0]) & 0xFFFFFFFF for t in tss] == [0, 160, 320, 480, 640]
    gateway.send(rtp(7, 99, 0xBBBB, b"\x01" * 160), gateway_port)
    back = await phone.recv()
    assert back[12:] == b"\x01" * 160 and header(back)[4] not in (0xBBBB, *ssrcs)
    stats = relay.close_session("call")
    assert stats.received["phone"].packets == 5 and stats.received["phone"].lost == 0
    assert stats.counters["gateway"].sent == 5 and stats.counters["phone"].sent == 1


async def test_a_new_source_continues_the_stream_with_the_marker_bit(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    """Gateway A, then gateway B (a move between rooms): the phone sees one stream."""
    relay, _ = relay_factory()
    phone, gateway_a, gateway_b = Peer(), Peer(), Peer()
    peers += [phone, gateway_a, gateway_b]
    _, gateway_port = await bridged(relay, phone, gateway_a)
    seen = []
    for n in range(3):
        gateway_a.send(rtp(100 + n, 1_000_000 + 160 * n, 0xA), gateway_port)
        seen.append(header(await phone.recv()))
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway_b.address[1]))
    await asyncio.sleep(0.06)
    for n in range(3):
        gateway_b.send(rtp(60000 + n, 7 + 160 * n, 0xB), gateway_port)  # unrelated numbering
        seen.append(header(await phone.recv()))
    seqs = [h[2] for h in seen]
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == [0, 1, 2, 3, 4, 5]
    assert len({h[4] for h in seen}) == 1
    markers = [h[0] for h in seen]
    assert markers == [True, False, False, True, False, False]  # the first packet of each source
    ts = [h[3] for h in seen]
    gap = (ts[3] - ts[2]) & 0xFFFFFFFF
    assert 160 <= gap <= 160 + 8 * 200  # moved on by the time that passed (~60 ms), at least a frame
    assert [(ts[i + 1] - ts[i]) & 0xFFFFFFFF for i in (3, 4)] == [160, 160]


# ---------------------------------------------------------------------------------------- latching


async def test_latches_to_a_natted_source_and_ignores_later_impostors(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, events = relay_factory()
    phone_nat, gateway, attacker = Peer(), Peer(), Peer()
    peers += [phone_nat, gateway, attacker]
    ports = relay.open_session("call")
    # The SDP names a private address nobody can reach; the packets come from the NAT's port.
    relay.set_remote("call", "phone", RemoteMedia("127.0.0.9", 4000))
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1]))
    relay.bridge("call")
    phone_nat.send(rtp(1, 160, 0x1), ports.phone)
    await gateway.recv()
    assert events.of(SourceLatched) == [SourceLatched("call", "phone", HOST, phone_nat.address[1])]
    gateway.send(rtp(1, 160, 0x2), ports.gateway)
    assert len(await phone_nat.recv()) == 172  # answers go to the latched source
    attacker.send(rtp(2, 320, 0x1), ports.phone)
    attacker.send(rtp(3, 480, 0x1), ports.phone)
    assert await gateway.nothing()
    gateway.send(rtp(2, 320, 0x2), ports.gateway)
    assert len(await phone_nat.recv()) == 172  # still the latched source, not the attacker
    assert await attacker.nothing(0.05)
    endpoint = relay.endpoint("call", "phone")
    # Within the window the signalled address could still take over, so the socket is not yet
    # connected to the NAT's port: we see the impostor's packets, and refuse them.
    assert endpoint.counters().foreign == 2 and not endpoint.connected


async def test_a_natted_latch_is_connected_when_the_window_closes(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory(latch_window=0.05, media_timeout=0.3)  # the sweeper runs every 0.1 s
    phone_nat, gateway, attacker = Peer(), Peer(), Peer()
    peers += [phone_nat, gateway, attacker]
    ports = relay.open_session("call")
    relay.set_remote("call", "phone", RemoteMedia("127.0.0.9", 4000))
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1]))
    relay.bridge("call")
    phone_nat.send(rtp(1, 160, 0x1), ports.phone)
    assert len(await gateway.recv()) == 172
    endpoint = relay.endpoint("call", "phone")
    assert not endpoint.connected
    await asyncio.sleep(0.25)
    phone_nat.send(rtp(2, 320, 0x1), ports.phone)  # finds the queue otherwise empty
    assert len(await gateway.recv()) == 172
    assert endpoint.connected
    attacker.send(rtp(3, 480, 0x1), ports.phone)
    assert await gateway.nothing()
    assert endpoint.counters().foreign == 0  # dropped by the kernel, unseen


async def test_the_signalled_address_takes_over_from_an_earlier_source(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    """A move to gateway B while gateway A still sends: A's late packet arrives first and
    latches, then B, the address in the SDP, takes the call's media back within the window."""
    relay, events = relay_factory()
    phone, gateway_a, gateway_b = Peer(), Peer(), Peer()
    peers += [phone, gateway_a, gateway_b]
    phone_port, gateway_port = await bridged(relay, phone, gateway_a)
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway_b.address[1]))
    gateway_a.send(rtp(1, 160, 0xA), gateway_port)  # still in flight when the re-INVITE was done
    assert len(await phone.recv()) == 172
    gateway_b.send(rtp(1, 160, 0xB), gateway_port)
    assert len(await phone.recv()) == 172
    phone.send(rtp(1, 160, 0x1), phone_port)
    assert len(await gateway_b.recv()) == 172 and await gateway_a.nothing(0.05)
    gateway_a.send(rtp(2, 320, 0xA), gateway_port)
    assert await phone.nothing()
    latched = [(e.port) for e in events.of(SourceLatched) if e.side == "gateway"]  # type: ignore[attr-defined]
    assert latched == [gateway_a.address[1], gateway_b.address[1]]
    gateway_b.send(rtp(2, 320, 0xB), gateway_port)
    assert len(await phone.recv()) == 172
    assert relay.endpoint("call", "gateway").connected  # the signalled address: final at once


async def test_packets_queued_from_elsewhere_before_the_latch_are_still_refused(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    """Connecting the socket at the latch does not purge what already waits in its queue: those
    packets are read with their addresses and checked until the queue is found empty."""
    relay, _ = relay_factory()
    phone, gateway, attacker = Peer(), Peer(), Peer()
    peers += [phone, gateway, attacker]
    phone_port, _ = await bridged(relay, phone, gateway)
    phone.send(rtp(1, 160, 0x1, b"\x01" * 160), phone_port)  # the signalled address: final latch
    attacker.send(rtp(2, 320, 0x7, b"\x07" * 160), phone_port)  # queued behind it
    phone.send(rtp(2, 320, 0x1, b"\x02" * 160), phone_port)
    assert [(await gateway.recv())[12] for _ in range(2)] == [1, 2]
    assert await gateway.nothing()
    endpoint = relay.endpoint("call", "phone")
    assert endpoint.counters().foreign == 1 and endpoint.connected


async def test_a_new_address_in_sdp_latches_anew(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    """A re-INVITE moves the peer (a transfer, another gateway): the connected socket lets go of
    the old source and the new one is latched and answered."""
    relay, events = relay_factory()
    phone, old_gateway, new_gateway = Peer(), Peer(), Peer()
    peers += [phone, old_gateway, new_gateway]
    phone_port, gateway_port = await bridged(relay, phone, old_gateway)
    await relayed(old_gateway, gateway_port, phone, (1, 2), 0x2)
    assert relay.endpoint("call", "gateway").connected
    relay.set_remote("call", "gateway", RemoteMedia(HOST, new_gateway.address[1]))
    assert not relay.endpoint("call", "gateway").connected
    new_gateway.send(rtp(1, 160, 0x3), gateway_port)
    assert len(await phone.recv()) == 172
    phone.send(rtp(1, 160, 0x1), phone_port)
    assert len(await new_gateway.recv()) == 172 and await old_gateway.nothing(0.05)
    old_gateway.send(rtp(3, 480, 0x2), gateway_port)
    assert await phone.nothing()
    latched = [e for e in events.of(SourceLatched) if e.side == "gateway"]  # type: ignore[attr-defined]
    assert [e.port for e in latched] == [old_gateway.address[1], new_gateway.address[1]]  # type: ignore[attr-defined]


async def test_a_backlog_left_by_a_full_round_is_drained_in_the_next(
    relay_factory, peers, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """More ready sockets than one round takes means overload: the round after drains every
    socket, instead of one packet each, so the backlog cannot outgrow the relay (at a thousand
    calls it did, and packets were lost)."""
    monkeypatch.setattr(relay_module, "MAX_EVENTS", 2)
    relay, _ = relay_factory(pairs=6)
    sender, gateway = Peer(), Peer()
    peers += [sender, gateway]
    ports = []
    for n in range(3):
        p = relay.open_session(f"c{n}")
        relay.set_remote(f"c{n}", "phone", RemoteMedia(HOST, sender.address[1]))
        relay.set_remote(f"c{n}", "gateway", RemoteMedia(HOST, gateway.address[1]))
        relay.bridge(f"c{n}")
        ports.append(p.phone)
    start = relay.rounds
    for seq in range(5):  # all queued before the loop runs: 5 packets waiting on each of 3 sockets
        for n, port in enumerate(ports):
            sender.send(rtp(seq, 160 * seq, n), port)
    got = [header(await gateway.recv())[4] for _ in range(15)]
    streams = [relay.endpoint(f"c{n}", "gateway").out.ssrc for n in range(3)]
    assert sorted(got) == sorted(streams * 5)
    # Round 1 takes two sockets (full); they and the third drain: two rounds. One packet per
    # socket per round, as before the fix, needed four.
    assert relay.rounds - start <= 2


async def test_signalled_mode_accepts_only_the_sdp_address(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, events = relay_factory(latch_mode=LatchMode.SIGNALLED)
    phone, other, gateway = Peer(), Peer(), Peer()
    peers += [phone, other, gateway]
    phone_port, _ = await bridged(relay, phone, gateway)
    other.send(rtp(1, 160, 0x1), phone_port)
    assert await gateway.nothing()
    phone.send(rtp(2, 320, 0x1), phone_port)
    assert len(await gateway.recv()) == 172
    assert not events.of(SourceLatched)


async def test_latch_window_closes(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory(latch_window=0.05)
    phone_nat, gateway = Peer(), Peer()
    peers += [phone_nat, gateway]
    ports = relay.open_session("call")
    relay.set_remote("call", "phone", RemoteMedia("127.0.0.9", 4000))
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1]))
    relay.bridge("call")
    await asyncio.sleep(0.1)
    phone_nat.send(rtp(1, 160, 0x1), ports.phone)
    assert await gateway.nothing()


# -------------------------------------------------------------------------------- hold, bad input


async def test_hold_sendonly_and_inactive_are_respected(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, gateway_port = await bridged(relay, phone, gateway, direction=Direction.SENDONLY)
    gateway.send(rtp(1, 160, 0x2), gateway_port)
    assert await phone.nothing()  # the phone put us on hold: nothing is sent to it
    phone.send(rtp(1, 160, 0x1), phone_port)
    assert len(await gateway.recv()) == 172  # music on hold from the phone still flows
    relay.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1], direction=Direction.INACTIVE))
    phone.send(rtp(2, 320, 0x1), phone_port)
    assert await gateway.nothing()
    relay.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1]))
    gateway.send(rtp(2, 320, 0x2), gateway_port)
    assert len(await phone.recv()) == 172


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"\x80",
        b"\x80\x00" + b"\x00" * 9,
        b"\x40" + b"\x00" * 171,
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x00" * 2000,
        rtp(9, 1440, 0x1, b"\x00" * 4000),  # oversized: cut to the buffer, dropped
    ],
)
async def test_malformed_datagrams_are_counted_and_dropped(relay_factory, peers, junk: bytes) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory(latch_mode=LatchMode.SIGNALLED)
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway)
    phone.send(junk, phone_port)
    phone.send(rtp(1, 160, 0x1), phone_port)  # and the call goes on
    assert len(await gateway.recv()) == 172
    assert await gateway.nothing(0.05)
    assert relay.endpoint("call", "phone").counters().malformed == 1


def event_packets(key_event: int, seq: int, ts: int, *, ends: int = 3) -> list[bytes]:
    """A 100 ms RFC 4733 press as a phone sends it: start (marker), updates, ``ends`` end packets."""
    out = []
    for n, duration in enumerate((160, 400, 640)):
        out.append(
            rtp(
                seq + n,
                ts,
                0x1,
                bytes([key_event, 0x0A]) + duration.to_bytes(2, "big"),
                pt=101,
                marker=n == 0,
            )
        )
    for n in range(ends):
        out.append(rtp(seq + 3 + n, ts, 0x1, bytes([key_event, 0x8A]) + (800).to_bytes(2, "big"), pt=101))
    return out


async def test_a_keypress_becomes_one_digit_and_stays_off_the_gateway(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, events = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway, telephone_event=101)
    for packet in event_packets(5, 10, 8000):
        phone.send(packet, phone_port)
    assert await gateway.nothing()  # keypad commands are ours, not the meeting's
    digits = [e for e in events.of(DigitReceived)]
    assert [(e.side, e.digit.key, e.digit.source, e.digit.duration_ms) for e in digits] == [  # type: ignore[union-attr]
        ("phone", "5", "rfc4733", 100)
    ]


async def test_a_keypress_whose_end_packets_are_lost_ends_by_timeout(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, events = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway, telephone_event=101)
    for packet in event_packets(11, 10, 8000, ends=0):
        phone.send(packet, phone_port)
    await asyncio.sleep(0.1)
    assert not events.of(DigitReceived)
    await asyncio.sleep(0.4)
    assert [e.digit.key for e in events.of(DigitReceived)] == ["#"]  # type: ignore[union-attr]


async def test_a_digit_stops_a_prompt_that_allows_barge_in(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, events = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway, telephone_event=101)
    relay.play("call", "phone", [Clip("menu", tuple(b"\xff" * 160 for _ in range(100)))])
    await phone.recv()
    for packet in event_packets(1, 10, 8000):
        phone.send(packet, phone_port)
    await asyncio.sleep(0.05)
    assert events.of(PlaybackFinished) == [PlaybackFinished("call", "phone", "barge-in")]


async def test_digits_we_send_arrive_as_rfc4733_events_in_our_stream(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    ports = relay.open_session("call")
    relay.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1]))
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1], telephone_event=96))
    relay.bridge("call")
    phone.send(rtp(1, 160, 0xA), ports.phone)
    before = header(await gateway.recv())
    relay.send_digits("call", "gateway", "12#", duration_ms=80, gap_ms=50)
    detector = Rfc4733Detector()
    loop = asyncio.get_running_loop()
    keys: list[str] = []
    heads = []
    while len(keys) < 3:
        data = await gateway.recv(2.0)
        h = header(data)
        heads.append(h)
        assert h[1] == 96 and h[4] == before[4]  # telephone-event, in the stream the gateway knows
        keys += [d.key for d in detector.receive(h[2], h[3], h[0], data[12:], loop.time())]
        phone.send(rtp(2 + len(heads), 160 * (2 + len(heads)), 0xA), ports.phone)  # paused meanwhile
    assert keys == ["1", "2", "#"]
    assert [(h[2] - before[2]) & 0xFFFF for h in heads] == list(range(1, len(heads) + 1))
    starts = sorted({h[3] for h in heads}, key=lambda t: (t - before[3]) & 0xFFFFFFFF)
    assert len(starts) == 3  # one timestamp per event, moving forward
    await asyncio.sleep(0.2)  # the last end packets follow the first one by 100 ms
    phone.send(rtp(100, 16000, 0xA), ports.phone)
    resumed = header(await gateway.recv())
    while resumed[1] == 96:  # the last end packets may still be on their way
        resumed = header(await gateway.recv())
    assert resumed[0] is True and (resumed[2] - heads[-1][2]) & 0xFFFF >= 1


async def test_media_timeout_is_reported_once_per_period(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, events = relay_factory(media_timeout=0.3)
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway)
    for n in range(8):  # the phone keeps talking; the gateway is silent
        phone.send(rtp(n, 160 * n, 0x1), phone_port)
        await asyncio.sleep(0.1)
    timeouts = events.of(MediaTimeout)
    assert {e.side for e in timeouts} == {"gateway"}  # type: ignore[union-attr]
    assert 1 <= len(timeouts) <= 3


# -------------------------------------------------------------------------------------------- RTCP


def rtcp_rr(sender: int, reported: int) -> bytes:
    block = struct.pack(">IIIIII", reported, 0, 100, 0, 0, 0)
    return struct.pack(">BBHI", 0x81, 201, 7, sender) + block


def test_rewrite_rtcp_maps_sender_and_reported_ssrcs() -> None:
    sdes = struct.pack(">BBHI", 0x81, 202, 2, 0x1234) + b"\x01\x02ab"
    out = rewrite_rtcp(rtcp_rr(0x1234, 0x5555) + sdes, sender=0x9999, reported={0x5555: 0x7777})
    assert out is not None
    assert struct.unpack_from(">I", out, 4)[0] == 0x9999
    assert struct.unpack_from(">I", out, 8)[0] == 0x7777
    assert struct.unpack_from(">I", out, 36)[0] == 0x9999  # the SDES chunk
    assert rewrite_rtcp(rtcp_rr(1, 2)[:20], sender=1, reported={}) is None  # length says 32 bytes


async def test_rtcp_is_relayed_in_terms_of_our_streams(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone, gateway, phone_rtcp, gateway_rtcp = Peer(), Peer(), Peer(), Peer()
    peers += [phone, gateway, phone_rtcp, gateway_rtcp]
    ports = relay.open_session("call")
    relay.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1], rtcp_port=phone_rtcp.address[1]))
    relay.set_remote(
        "call", "gateway", RemoteMedia(HOST, gateway.address[1], rtcp_port=gateway_rtcp.address[1])
    )
    relay.bridge("call")
    gateway.send(rtp(1, 160, 0xBBBB), ports.gateway)
    to_phone = header(await phone.recv())
    phone.send(rtp(1, 160, 0xAAAA), ports.phone)
    to_gateway = header(await gateway.recv())
    # The phone reports on the stream it receives (our SSRC); the gateway must read it as a
    # report on its own stream, sent by the stream it receives.
    phone_rtcp.send(rtcp_rr(0xAAAA, to_phone[4]), ports.phone + 1)
    report = await gateway_rtcp.recv()
    assert struct.unpack_from(">BBHII", report) == (0x81, 201, 7, to_gateway[4], 0xBBBB)
    assert relay.endpoint("call", "gateway").counters().rtcp_out == 1


# -------------------------------------------------------------------------------------- statistics


def test_receive_stats_count_loss_duplicates_reordering_and_wrap() -> None:
    stats = ReceiveStats()
    seqs = [65530, 65531, 65533, 65532, 65532, 65534, 65535, 0, 1, 4, 5]  # 2, 3 lost; one dup; wrap
    for n, seq in enumerate(seqs):
        stats.on_packet(0x1, seq, 160 * n, 172, n * 0.02, True)
    summary = stats.summary()
    assert summary.packets == len(seqs)
    assert summary.expected == 12  # 65530 … 5
    assert summary.lost == 1  # 2 lost, but the duplicate counts as received (RFC 3550 §A.3)
    assert summary.jitter_ms < 1.0


def test_receive_stats_jitter_follows_rfc3550() -> None:
    stats = ReceiveStats()
    # every other packet arrives 10 ms late: |D| = 80 samples each step after the first
    for n in range(200):
        stats.on_packet(0x1, n, 160 * n, 172, n * 0.02 + (0.01 if n % 2 else 0.0), True)
    assert stats.summary().jitter_ms == pytest.approx(10.0, rel=0.02)  # J converges to |D|


def test_receive_stats_new_ssrc_keeps_the_old_counts() -> None:
    stats = ReceiveStats()
    for n in (0, 1, 3):
        stats.on_packet(0x1, n, 160 * n, 172, n * 0.02, True)
    for n in (500, 501):
        stats.on_packet(0x2, n, 160 * n, 172, n * 0.02, True)
    summary = stats.summary()
    assert (summary.expected, summary.lost, summary.ssrc_changes) == (6, 1, 1)


def test_outgoing_stream_packets_from_a_generator_and_a_peer_interleave_without_jumps() -> None:
    out = OutgoingStream(ssrc=0x42, first_seq=10, first_ts=1000)
    token = object()
    first = out.packet(token, 0, 0, 0, b"\x00" * 160, now=0.0, marker=False)
    second = out.packet(token, 1, 160, 0, b"\x00" * 160, now=0.02, marker=False)
    buf = bytearray(rtp(5000, 90000, 0x77))
    out.rewrite(buf, len(buf), 0x77, 5000, 90000, now=0.04)
    assert [header(p)[:4] for p in (first, second, bytes(buf))] == [
        (True, 0, 10, 1000),
        (False, 0, 11, 1160),
        (True, 0, 12, 1320),
    ]
    assert out.switches == 1


async def test_loss_duplication_and_reordering_pass_through_and_are_counted(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    """200 packets from the phone with 10% loss, 5% duplicates and local reordering on the way in:
    every packet that arrives is relayed once per copy with its payload intact and its sequence
    number still in order relative to its neighbours, and the statistics see the loss."""
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway)
    rng = random.Random(7)
    packets = [rtp(100 + n, 160 * n, 0xA, struct.pack(">I", n) + b"\x00" * 156) for n in range(200)]
    wire: list[int] = []
    for n in range(200):
        if rng.random() < 0.10:
            continue
        wire.append(n)
        if rng.random() < 0.05:
            wire.append(n)
    for i in range(0, len(wire) - 1, 7):  # swap neighbours now and then
        wire[i], wire[i + 1] = wire[i + 1], wire[i]
    for n in wire:
        phone.send(packets[n], phone_port)
        if n % 20 == 0:
            await asyncio.sleep(0.002)
    got = []
    for _ in wire:
        data = await gateway.recv()
        got.append((struct.unpack_from(">I", data, 12)[0], header(data)[2]))
    assert [n for n, _ in got] == wire
    first_n, first_seq = got[0]
    assert all((seq - first_seq) & 0xFFFF == (n - first_n) & 0xFFFF for n, seq in got)
    summary = relay.endpoint("call", "phone").stats.summary()
    distinct = len(set(wire))
    assert summary.packets == len(wire)
    # RFC 3550 §A.1: the first packet to arrive starts the count (a packet older than it is
    # received but was never expected), and duplicates offset loss (§A.3).
    assert summary.expected == max(wire) - wire[0] + 1
    assert summary.lost == summary.expected - len(wire)
    assert summary.lost > 0 and distinct < 200


async def test_a_telephone_event_flood_gives_one_digit_per_event(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    """One press's packets sent 100 times over in shuffled order (a looping or hostile sender):
    one digit. Then 500 random event packets: nothing raises and the call goes on."""
    relay, events = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway, telephone_event=101)
    rng = random.Random(3)
    press = event_packets(7, 10, 8000)
    flood = press[:1] + [rng.choice(press[1:]) for _ in range(100 * len(press))]
    for n, packet in enumerate(flood):
        phone.send(packet, phone_port)
        if n % 50 == 0:
            await asyncio.sleep(0.002)
    await asyncio.sleep(0.4)
    assert [e.digit.key for e in events.of(DigitReceived)] == ["7"]  # type: ignore[union-attr]
    for n in range(500):
        payload = bytes([rng.randrange(256), rng.randrange(256)]) + rng.randrange(1 << 16).to_bytes(2, "big")
        ts = rng.randrange(1 << 32)
        phone.send(
            rtp(100 + n, ts, 0x1, payload[: rng.randrange(5)], pt=101, marker=rng.random() < 0.5), phone_port
        )
    phone.send(rtp(700, 96000, 0x1), phone_port)
    assert len(await gateway.recv()) == 172


# ------------------------------------------------------------------ review findings, pinned down


async def test_a_phone_sending_from_its_sdp_address_latches_there(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    """Packets from the signalled address latch the endpoint too: a later packet from elsewhere,
    even inside the window, is refused (it used to take the call's media)."""
    relay, _ = relay_factory()
    phone, gateway, attacker = Peer(), Peer(), Peer()
    peers += [phone, gateway, attacker]
    phone_port, gateway_port = await bridged(relay, phone, gateway)
    phone.send(rtp(1, 160, 0x1), phone_port)
    await gateway.recv()
    attacker.send(rtp(2, 320, 0x1), phone_port)
    assert await gateway.nothing()
    gateway.send(rtp(1, 160, 0x2), gateway_port)
    assert len(await phone.recv()) == 172 and await attacker.nothing(0.05)


async def test_junk_does_not_latch(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone_nat, gateway, junk = Peer(), Peer(), Peer()
    peers += [phone_nat, gateway, junk]
    ports = relay.open_session("call")
    relay.set_remote("call", "phone", RemoteMedia("127.0.0.9", 4000))
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1]))
    relay.bridge("call")
    junk.send(b"\x00", ports.phone)
    phone_nat.send(rtp(1, 160, 0x1), ports.phone)
    assert len(await gateway.recv()) == 172  # the first well-formed packet latched


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_ipv6_media_flows_and_latches(peers) -> None:  # type: ignore[no-untyped-def]
    events: list[MediaEvent] = []
    relay = Relay(RelayConfig(host="::1", ports=free_range(2)), on_event=events.append)
    phone = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    gateway = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        for s in (phone, gateway):
            s.bind(("::1", 0))
            s.setblocking(False)
        ports = relay.open_session("call")
        relay.set_remote("call", "phone", RemoteMedia("::1", phone.getsockname()[1]))
        relay.set_remote("call", "gateway", RemoteMedia("::1", gateway.getsockname()[1]))
        relay.bridge("call")
        loop = asyncio.get_running_loop()
        for n in range(5):
            phone.sendto(rtp(n, 160 * n, 0x1), ("::1", ports.phone))
            assert len(await asyncio.wait_for(loop.sock_recv(gateway, 2048), 1.0)) == 172
        assert relay.endpoint("call", "phone").counters().foreign == 0
        # never connected: Linux's connect(AF_UNSPEC) would leave the socket tied to the old
        # peer's IPv6 address, and a peer moving to another address would be dropped unseen
        assert not relay.endpoint("call", "phone").connected
    finally:
        relay.close()
        phone.close()
        gateway.close()


async def test_old_style_hold_sends_nothing_to_0_0_0_0(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    _, gateway_port = await bridged(relay, phone, gateway)
    relay.set_remote("call", "phone", RemoteMedia("0.0.0.0", phone.address[1]))  # RFC 3264 §8.4
    gateway.send(rtp(1, 160, 0x2), gateway_port)
    assert await phone.nothing()
    endpoint = relay.endpoint("call", "phone")
    assert not endpoint.sending and endpoint.remote is None


def test_rtcp_reports_are_translated_into_the_streams_the_peer_knows() -> None:
    sr = struct.pack(">BBHIQIII", 0x80, 200, 6, 0xAAAA, 1, 8000, 10, 1600)
    out = rewrite_rtcp(sr, sender=0x9, reported={}, ts_delta=1000)
    assert out is not None and struct.unpack_from(">I", out, 16)[0] == 9000
    rr = struct.pack(">BBHI", 0x81, 201, 7, 0xAAAA) + struct.pack(">IIIIII", 0x5, 0, 0x0001_0010, 0, 0, 0)
    out = rewrite_rtcp(rr, sender=0x9, reported={0x5: 0x7}, seq_delta=0x20)
    assert out is not None
    assert (
        struct.unpack_from(">II", out, 8) == (0x7, 0) and struct.unpack_from(">I", out, 16)[0] == 0x0001_FFF0
    )
    bye = struct.pack(">BBH", 0x80, 203, 0)  # a BYE without sources: the 4-byte header alone
    out = rewrite_rtcp(rr + bye, sender=0x9, reported={})
    assert out is not None and out[-4:] == bye


async def test_a_bad_key_sends_nothing_and_pauses_nothing(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway)
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1], telephone_event=101))
    with pytest.raises(DtmfError):
        relay.send_digits("call", "gateway", "12X")
    assert await gateway.nothing()
    phone.send(rtp(1, 160, 0x1), phone_port)
    assert len(await gateway.recv()) == 172  # not paused


async def test_audio_after_our_digits_continues_the_media_clock(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    ports = relay.open_session("call")
    relay.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1]))
    relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1], telephone_event=101))
    relay.bridge("call")
    phone.send(rtp(1, 160, 0xA), ports.phone)
    first = header(await gateway.recv())
    relay.send_digits("call", "gateway", "5", duration_ms=400)
    events = []
    ends = 0
    while ends < 3:  # the event's packets, up to its three end packets
        data = await gateway.recv(2.0)
        events.append(header(data))
        ends += bool(data[13] & 0x80)
    await asyncio.sleep(0.05)
    phone.send(rtp(2, 320, 0xA), ports.phone)
    resumed = header(await gateway.recv())
    assert resumed[1] == 0
    event_start = (events[0][3] - first[3]) & 0xFFFFFFFF
    assert (resumed[3] - first[3]) & 0xFFFFFFFF >= event_start + 400 * 8  # after the event, not inside it


async def test_telephone_events_with_csrc_and_padding_still_give_their_digit(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, events = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway, telephone_event=101)
    for packet in event_packets(9, 10, 8000):
        b0 = packet[0] | 0x20 | 0x01  # padding, one CSRC
        phone.send(
            bytes([b0]) + packet[1:12] + b"\x00\x00\x00\x07" + packet[12:] + b"\x00\x00\x00\x04", phone_port
        )
    await asyncio.sleep(0.1)
    assert [e.digit.key for e in events.of(DigitReceived)] == ["9"]  # type: ignore[union-attr]


def test_a_stale_release_does_not_free_a_port_another_call_holds() -> None:
    allocator = PortAllocator(free_range(1), HOST)
    first = allocator.allocate()
    allocator.release(first)
    second = allocator.allocate()  # the same port, now another call's
    allocator.release(first)  # a stale handle
    assert allocator.in_use == 1 and allocator.available == 0
    allocator.release(second)
    assert allocator.in_use == 0 and allocator.available == 1


async def test_a_wildcard_bound_relay_does_not_pin_its_address(peers) -> None:  # type: ignore[no-untyped-def]
    """Bound to 0.0.0.0, a connected socket would take the route's source address as its own
    and lose what the peer sends to any other of our addresses (here 127.0.0.2)."""
    relay = Relay(RelayConfig(host="0.0.0.0", ports=free_range(2)))
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    try:
        ports = relay.open_session("call")
        relay.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1]))
        relay.set_remote("call", "gateway", RemoteMedia(HOST, gateway.address[1]))
        relay.bridge("call")
        for n in range(4):
            phone.sock.sendto(rtp(n, 160 * n, 0x1), ("127.0.0.2", ports.phone))
            assert len(await gateway.recv()) == 172, n
        assert not relay.endpoint("call", "phone").connected
    finally:
        relay.close()


async def test_a_port_unreachable_from_the_peer_costs_no_packet(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    """A connected socket reports the ICMP port-unreachable for one packet on the next send,
    which it then does not make: the peer closed its port for a moment and is back."""
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    _, gateway_port = await bridged(relay, phone, gateway)
    await relayed(gateway, gateway_port, phone, (1, 2), 0x2)
    endpoint = relay.endpoint("call", "gateway")
    assert endpoint.connected
    port = gateway.address[1]
    gateway.sock.close()
    endpoint.send_generated(rtp(3, 480, 0x9))  # to a closed port: ICMP comes back at once
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.bind((HOST, port))
    back.setblocking(False)
    try:
        endpoint.send_generated(rtp(4, 640, 0x9, b"\x04" * 160))
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(back, 2048), 1.0)
        assert data[12] == 4
    finally:
        back.close()


async def test_a_call_resumed_from_old_style_hold_is_connected_again(relay_factory, peers) -> None:  # type: ignore[no-untyped-def]
    relay, _ = relay_factory()
    phone, gateway = Peer(), Peer()
    peers += [phone, gateway]
    phone_port, _ = await bridged(relay, phone, gateway)
    await relayed(phone, phone_port, gateway, (1, 2))
    endpoint = relay.endpoint("call", "phone")
    assert endpoint.connected
    relay.set_remote("call", "phone", RemoteMedia("0.0.0.0", phone.address[1]))
    assert not endpoint.connected
    with pytest.raises(OSError):
        endpoint.ports.rtp.getpeername()  # undone in the kernel too
    relay.set_remote("call", "phone", RemoteMedia(HOST, phone.address[1]))
    await relayed(phone, phone_port, gateway, (3, 4))
    assert endpoint.connected and endpoint.ports.rtp.getpeername() == phone.address
