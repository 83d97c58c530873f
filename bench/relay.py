"""Relay bench: N bridged calls of 20 ms G.711 in both directions through ``rtp.relay``, beside a bare
forwarder over the same number of socket pairs (the ceiling), in the same run.

    .venv/bin/python bench/relay.py --json bench/out/relay.json            # ~2 minutes
    .venv/bin/python bench/relay.py --calls 100,1000 --seconds 5           # a shorter run

Then M prompt players (``--players``): M calls each playing a looped clip to a listening phone
socket, and the frames' timing error: arrival less the ideal time on a drift-free 20 ms grid.

For each N the system under test runs in its own process pinned to one core (``--cpu``) and the
load generator, this script, on another (``--gen-cpu``). Each call is two generator sockets, a
phone and a gateway, each sending a 172-byte RTP packet (20 ms of PCMU) every 20 ms to its relay
port: 100 packets/s per call through the relay. Every packet carries its send time
(``time.time_ns`` just before ``sendto``) in its payload, which the relay does not touch, and the
receiving socket asks the kernel for each datagram's arrival time (``SO_TIMESTAMPNS``): latency is
the path through the system, without the generator's own delay in reading its socket.

Reported per system and N: packets sent and relayed per second, loss (sent but never received, after
a settling pause), latency through it p50/p99 (generator to generator), and the CPU the system used
as a share of its core. The ceiling (``--system ceiling``) is a uvloop reader callback per socket
that drains it and sends each datagram on, unchanged, with addresses (``recvfrom_into``/``sendto``),
the forwarder issue [3/6] names. The relay can cost less: its sockets are connected to their
sources, and it reads one packet per ready socket where the ceiling reads on to the empty queue.

Capacity: the generator cannot saturate the ceiling (both are Python on one core each), so capacity
is CPU-normalized: packets/s divided by the share of its core the system needed at that load, for
the relay and for the ceiling under the same offered load, and their ratio. The generator's own
CPU share is printed too: if it nears 100 % it, not the system, is what limits the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import common  # noqa: E402

HOST = "127.0.0.1"
PACKET_INTERVAL = 0.020
PAYLOAD = 160
TARGET_SHARE = 0.70  # of the ceiling's capacity (issue [3/6])
TARGET_LOSS = 0.001
TARGET_P99_MS = 5.0
SETTLE = 0.5
_HDR = struct.Struct(">BBHII")
_STAMP = struct.Struct(">Q")
#: Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS; Python's socket module does not name it) and the
#: struct timespec it delivers: arrival time of each datagram, CLOCK_REALTIME, in the kernel.
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")


# ------------------------------------------------------------------------------------ the servers


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def serve(system: str, calls: int) -> None:
    """Child process: bind ``calls`` sessions, print their ports as JSON, forward until stdin closes.
    Each line on stdin names the generator's ports of one call: ``phone_port gateway_port``."""
    import uvloop

    uvloop.install()
    asyncio.run(_serve(system, calls))


async def _serve(system: str, calls: int) -> None:
    loop = asyncio.get_running_loop()
    ports: list[tuple[int, int]] = []
    if system == "relay":
        from rtp.ports import free_port_range
        from rtp.relay import Relay, RelayConfig, RemoteMedia

        relay = Relay(RelayConfig(host=HOST, ports=free_port_range(calls * 2, HOST)), loop=loop)
        for n in range(calls):
            p = relay.open_session(f"c{n}", rtcp_mux=True)
            ports.append((p.phone, p.gateway))
        print(json.dumps(ports), flush=True)
        for n in range(calls):
            phone, gateway = map(int, (await loop.run_in_executor(None, sys.stdin.readline)).split())
            # a carrier call that negotiated telephone-event, so the relay does no in-band detection
            relay.set_remote(f"c{n}", "phone", RemoteMedia(HOST, phone, telephone_event=101))
            relay.set_remote(f"c{n}", "gateway", RemoteMedia(HOST, gateway))
            relay.bridge(f"c{n}")
    elif system == "players":
        from rtp.player import Clip
        from rtp.ports import free_port_range
        from rtp.relay import Relay, RelayConfig, RemoteMedia

        relay = Relay(RelayConfig(host=HOST, ports=free_port_range(calls * 2, HOST)), loop=loop)
        for n in range(calls):
            relay.open_session(f"c{n}", rtcp_mux=True)
        print(json.dumps([(0, 0)] * calls), flush=True)
        music = Clip("music", tuple(bytes([n % 256]) * 160 for n in range(250)))  # 5 s, looped
        for n in range(calls):
            phone, _ = map(int, (await loop.run_in_executor(None, sys.stdin.readline)).split())
            # a carrier call that negotiated telephone-event, so the relay does no in-band detection
            relay.set_remote(f"c{n}", "phone", RemoteMedia(HOST, phone, telephone_event=101))
            relay.play(f"c{n}", "phone", [music], loop=True)
    else:
        socks: list[tuple[socket.socket, socket.socket]] = []
        for _ in range(calls):
            a, b = _udp(), _udp()
            socks.append((a, b))
            ports.append((a.getsockname()[1], b.getsockname()[1]))
        print(json.dumps(ports), flush=True)
        for n in range(calls):
            phone, gateway = map(int, (await loop.run_in_executor(None, sys.stdin.readline)).split())
            a, b = socks[n]
            loop.add_reader(a.fileno(), _forwarder(a, b, (HOST, gateway)))
            loop.add_reader(b.fileno(), _forwarder(b, a, (HOST, phone)))
    # As a production media process would run (and examples/uas.py does): start-up objects out of
    # the collector's passes, young objects collected less often.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # until the parent closes stdin


def _forwarder(src: socket.socket, dst: socket.socket, to: tuple[str, int]) -> Any:
    buf = bytearray(2048)
    view = memoryview(buf)

    def on_readable() -> None:
        for _ in range(64):
            try:
                size, _addr = src.recvfrom_into(buf)
            except BlockingIOError:
                return
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per packet
                dst.sendto(view[:size], to)
            except OSError:
                pass

    return on_readable


def _udp(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    s.bind((HOST, port))
    s.setblocking(False)
    return s


# ------------------------------------------------------------------------------------- generator


class Generator:
    """The phones and the gateways of every call: one socket for all phones, one for all gateways
    (each relay endpoint latches to it; the SSRC tells the calls apart), so receiving drains two
    sockets in large batches and the generator stays well below its core. Sends on a 1 ms slot
    schedule, so the packets of all calls spread over each 20 ms period."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.phone = _udp()
        self.gateway = _udp()
        for sock in (self.phone, self.gateway):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        self.sent = 0
        self.received = 0
        self.send_errors = 0
        self.latencies = array("d")
        self.stamps = array("d")  # send time of each sampled packet, s (CLOCK_REALTIME)
        self.sample_every = max(1, calls // 50)

    def ports(self) -> list[tuple[int, int]]:
        return [(self.phone.getsockname()[1], self.gateway.getsockname()[1])] * self.calls

    def close(self) -> None:
        self.phone.close()
        self.gateway.close()

    async def run(self, targets: list[tuple[int, int]], seconds: float) -> None:
        loop = asyncio.get_running_loop()
        for sock in (self.phone, self.gateway):
            loop.add_reader(sock.fileno(), self._reader(sock))
        slots = 20
        per_slot = [list(range(i, self.calls, slots)) for i in range(slots)]
        payload_tail = b"\xff" * (PAYLOAD - 8)
        start = loop.time() + 0.05
        ticks = int(seconds / PACKET_INTERVAL) * slots
        seq = 0
        phone, gateway = self.phone.sendto, self.gateway.sendto
        pack = _HDR.pack
        for tick in range(ticks):
            at = start + tick * (PACKET_INTERVAL / slots)
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            slot = tick % slots
            if slot == 0:
                seq += 1
            ts = seq * PAYLOAD
            for n in per_slot[slot]:
                stamp = _STAMP.pack(time.time_ns())  # CLOCK_REALTIME, the clock of kernel timestamps
                phone_port, gateway_port = targets[n]
                body = stamp + payload_tail
                try:
                    phone(pack(0x80, 0, seq & 0xFFFF, ts, 1000 + n) + body, (HOST, phone_port))
                    gateway(pack(0x80, 0, seq & 0xFFFF, ts, 5000 + n) + body, (HOST, gateway_port))
                    self.sent += 2
                except BlockingIOError:
                    self.send_errors += 1
        await asyncio.sleep(SETTLE)
        for sock in (self.phone, self.gateway):
            loop.remove_reader(sock.fileno())

    def _reader(self, sock: socket.socket) -> Any:
        """Counts every packet; for a sample of them, the latency from the stamp taken just before
        the sender's sendto() to the kernel's arrival timestamp on this socket (SO_TIMESTAMPNS), so
        the generator's own delay in reading its socket is not counted against the system."""
        buf = bytearray(2048)
        unpack = _STAMP.unpack_from
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        every = self.sample_every

        def on_readable() -> None:
            for _ in range(512):
                if (self.received + 1) % every:
                    try:
                        sock.recv_into(buf)
                    except BlockingIOError:
                        return
                    self.received += 1
                    continue
                try:
                    size, ancillary, _, _ = sock.recvmsg_into([buf], 64)
                except BlockingIOError:
                    return
                self.received += 1
                for level, kind, data in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and size >= 20:
                        seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                        arrived = seconds * 1_000_000_000 + nanoseconds
                        sent = unpack(buf, 12)[0]
                        self.latencies.append((arrived - sent) / 1e6)
                        self.stamps.append(sent / 1e9)

        return on_readable


class Listener:
    """The phones of M calls that only listen to prompts: one socket, arrival time of every frame.
    A frame's timing error is its arrival less its ideal time on the stream's drift-free 20 ms grid
    (RTP timestamp / 8000), the grid placed at the stream's earliest frame relative to it, so every
    error is a lateness >= 0."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.sock = _udp()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.frames: dict[int, array[float]] = {}
        self.received = 0

    def ports(self) -> list[tuple[int, int]]:
        return [(self.sock.getsockname()[1], 0)] * self.calls

    def close(self) -> None:
        self.sock.close()

    def errors(self) -> array[float]:
        out = array("d")
        for offsets in self.frames.values():
            base = min(offsets)
            out.extend((o - base) * 1000 for o in offsets)
        return out

    async def run(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        buf = bytearray(2048)
        unpack = struct.Struct(">II").unpack_from
        warmup_until = time.monotonic() + 0.5
        frames = self.frames
        first_ts: dict[int, int] = {}

        def on_readable() -> None:
            now = time.monotonic()
            for _ in range(512):
                try:
                    size, _ = self.sock.recvfrom_into(buf)
                except BlockingIOError:
                    return
                if size < 12 or now < warmup_until:
                    continue
                self.received += 1
                ts, ssrc = unpack(buf, 4)
                start = first_ts.setdefault(ssrc, ts)
                # arrival less the frame's place on the grid: constant for a perfectly paced stream
                frames.setdefault(ssrc, array("d")).append(now - ((ts - start) & 0xFFFFFFFF) / 8000)

        loop.add_reader(self.sock.fileno(), on_readable)
        await asyncio.sleep(seconds + 0.5)
        loop.remove_reader(self.sock.fileno())


def run_players(players: int, seconds: float, cpu: int | None) -> dict[str, Any]:
    listener = Listener(players)
    try:
        with system_process("players", listener.ports(), cpu) as (child, _):
            cpu0 = cpu_seconds(child.pid)
            wall0 = time.monotonic()
            asyncio.run(listener.run(seconds))
            wall = time.monotonic() - wall0
            used = cpu_seconds(child.pid) - cpu0
    finally:
        listener.close()
    expected = players * seconds / PACKET_INTERVAL
    errors = listener.errors()
    return {
        "players": players,
        "seconds": seconds,
        "frames_per_s": listener.received / seconds,
        "frames_expected_per_s": expected / seconds,
        "timing_error_p50_ms": percentile(errors, 0.50),
        "timing_error_p99_ms": percentile(errors, 0.99),
        "timing_error_max_ms": max(errors) if errors else float("nan"),
        "cpu_share": used / wall,
    }


def percentile(values: array[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def system_process(
    system: str, peer_ports: list[tuple[int, int]], cpu: int | None
) -> Iterator[tuple[subprocess.Popen[str], list[tuple[int, int]]]]:
    """Start ``serve --system SYSTEM`` on core ``cpu``, give it the generator's ports of every call,
    wait until it forwards; yields it and its ports per call; stops it (stdin closed, then killed)."""
    script = str(Path(__file__).resolve())
    cmd = [sys.executable, script, "serve", "--system", system, "--calls", str(len(peer_ports))]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdin is not None and child.stdout is not None
    try:
        targets = [(int(a), int(b)) for a, b in json.loads(child.stdout.readline())]
        child.stdin.writelines(f"{phone} {gateway}\n" for phone, gateway in peer_ports)
        child.stdin.flush()
        if child.stdout.readline().strip() != "ready":
            raise SystemExit(f"{system} did not start")
        yield child, targets
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()


def run_one(system: str, calls: int, seconds: float, cpu: int | None) -> dict[str, Any]:
    gen = Generator(calls)
    try:
        with system_process(system, gen.ports(), cpu) as (child, targets):
            cpu0 = cpu_seconds(child.pid)
            gen_cpu0 = time.process_time()
            wall0 = time.monotonic()
            asyncio.run(gen.run(targets, seconds))
            wall = time.monotonic() - wall0
            used = cpu_seconds(child.pid) - cpu0
            gen_used = time.process_time() - gen_cpu0
    finally:
        gen.close()
    active = wall - SETTLE
    share = used / wall
    relayed_rate = gen.received / active
    return {
        "system": system,
        "calls": calls,
        "seconds": seconds,
        "sent": gen.sent,
        "received": gen.received,
        "sent_per_s": gen.sent / active,
        "relayed_per_s": relayed_rate,
        "loss": 1 - gen.received / gen.sent if gen.sent else 0.0,
        "latency_p50_ms": percentile(gen.latencies, 0.50),
        "latency_p99_ms": percentile(gen.latencies, 0.99),
        "cpu_share": share,
        "capacity_per_s": relayed_rate / share if share > 0 else float("nan"),
        "generator_cpu_share": gen_used / wall,
        "p99_ms_per_second": timeline(gen.stamps, gen.latencies),
    }


def timeline(stamps: array[float], latencies: array[float]) -> list[float]:
    """p99 latency in each second of the run: a backlog formed at start-up and never drained shows
    as a flat high line, a stall as one high second."""
    if not stamps:
        return []
    start = min(stamps)
    buckets: dict[int, array[float]] = {}
    for at, latency in zip(stamps, latencies, strict=True):
        buckets.setdefault(int(at - start), array("d")).append(latency)
    return [round(percentile(buckets[k], 0.99), 2) for k in sorted(buckets)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    srv = sub.add_parser("serve")
    srv.add_argument("--system", choices=("relay", "ceiling", "players"), required=True)
    srv.add_argument("--calls", type=int, required=True)
    common.add_common_args(parser)
    parser.add_argument("--calls", default="100,500,1000", help="concurrent calls per step")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--timeline", action="store_true", help="print each step's p99 per second")
    parser.add_argument("--gen-cpu", type=int, default=0, help="core of the load generator (this script)")
    parser.add_argument(
        "--players", default="100,1000", help="concurrent prompt players per step ('' for none)"
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.system, args.calls)
        return 0
    import uvloop

    uvloop.install()
    cores = sorted(os.sched_getaffinity(0))
    server_cpu = None if args.no_pin else (args.cpu if args.cpu is not None else cores[-1])
    if not args.no_pin:
        os.sched_setaffinity(0, {args.gen_cpu})
    env = common.environment(common.Pinning(not args.no_pin, server_cpu, f"system on core {server_cpu}"))
    common.print_environment(env)
    steps = [int(c) for c in args.calls.split(",") if c]
    rows = []
    print(
        f"\n{'calls':>6} {'system':>8} {'sent/s':>9} {'relayed/s':>10} {'loss':>8} {'p50 ms':>7}"
        f" {'p99 ms':>7} {'CPU':>5} {'capacity/s':>11} {'gen CPU':>8}"
    )
    for calls in steps:
        pair = {}
        for system in ("ceiling", "relay"):
            r = run_one(system, calls, args.seconds, server_cpu)
            pair[system] = r
            rows.append(r)
            print(
                f"{calls:>6} {system:>8} {r['sent_per_s']:>9,.0f} {r['relayed_per_s']:>10,.0f}"
                f" {r['loss']:>8.4%} {r['latency_p50_ms']:>7.2f} {r['latency_p99_ms']:>7.2f}"
                f" {r['cpu_share']:>5.0%}"
                f" {r['capacity_per_s']:>11,.0f} {r['generator_cpu_share']:>8.0%}",
                flush=True,
            )
            if args.timeline:
                print(f"{'':>6} p99 ms per second: {r['p99_ms_per_second']}", flush=True)
        ratio = pair["relay"]["capacity_per_s"] / pair["ceiling"]["capacity_per_s"]
        pair["relay"]["capacity_vs_ceiling"] = ratio
        print(f"{'':>6} relay capacity = {ratio:.0%} of the ceiling's (target >= {TARGET_SHARE:.0%})")
    player_rows = []
    if args.players:
        print(
            f"\n{'players':>8} {'frames/s':>9} {'of':>8} {'err p50':>8} {'err p99':>8} {'max':>7} {'CPU':>5}"
        )
        for players in [int(p) for p in args.players.split(",")]:
            r = run_players(players, args.seconds, server_cpu)
            player_rows.append(r)
            print(
                f"{players:>8} {r['frames_per_s']:>9,.0f} {r['frames_expected_per_s']:>8,.0f}"
                f" {r['timing_error_p50_ms']:>7.2f}ms {r['timing_error_p99_ms']:>6.2f}ms"
                f" {r['timing_error_max_ms']:>5.1f}ms {r['cpu_share']:>5.0%}",
                flush=True,
            )
    at_1000 = next((r for r in rows if r["system"] == "relay" and r["calls"] == 1000), None)
    verdicts = {}
    if at_1000 is not None:
        verdicts["1000_calls_loss"] = at_1000["loss"] < TARGET_LOSS
        verdicts["1000_calls_p99"] = at_1000["latency_p99_ms"] < TARGET_P99_MS
        print(
            f"\n1,000 calls: loss {at_1000['loss']:.4%} (target < {TARGET_LOSS:.1%}), "
            f"p99 {at_1000['latency_p99_ms']:.2f} ms (target < {TARGET_P99_MS:g} ms)"
        )
    if args.json:
        common.write_json(
            args.json, {"environment": env, "steps": rows, "players": player_rows, "verdicts": verdicts}
        )
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
