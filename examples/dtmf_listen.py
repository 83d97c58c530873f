"""See what a trunk really sends when a caller presses keys: one line per key detected.

    python examples/dtmf_listen.py --listen 127.0.0.1:40000 [--event-pt 101] [--inband auto|on|off]

Point a call's media at the port (put it in the SDP you answer with, or mirror the trunk's RTP to
it) and press keys. For every RTP stream (by source address and SSRC) it prints a line when the
stream starts, and one line per key, whatever carried it:

    stream from=192.0.2.7:31000 ssrc=0x1a2b3c4d pt=0 (PCMU)
    digit=5 source=rfc4733 duration_ms=120 from=192.0.2.7:31000 ssrc=0x1a2b3c4d pt=101

RFC 4733 telephone-events are recognised on any dynamic payload type (96-127) whose packets have
the event payload's shape, unless ``--event-pt`` names the one to use. PCMU (0) and PCMA (8) audio is
decoded and searched for in-band tones (Goertzel) when the stream carries no telephone-events
(``--inband auto``), always (``on``) or never (``off``). Packets that are not RTP are counted and
reported at exit. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from rtp.dtmf import Rfc4733Detector
from rtp.g711 import decode
from rtp.inband import InbandDetector
from rtp.packet import RtpError, is_rtcp, parse_rtp

CODEC_NAMES = {0: "PCMU", 8: "PCMA"}


@dataclass
class Stream:
    source: tuple[str, int]
    ssrc: int
    rfc4733: Rfc4733Detector = field(default_factory=Rfc4733Detector)
    inband: InbandDetector = field(default_factory=InbandDetector)
    event_pt: int | None = None
    audio_pt: int | None = None


class Listener:
    def __init__(self, event_pt: int | None, inband: str) -> None:
        self.event_pt = event_pt
        self.inband_mode = inband
        self.streams: dict[tuple[str, int, int], Stream] = {}
        self.not_rtp = 0
        self.rtcp = 0

    def datagram(self, data: bytes, source: tuple[str, int], now: float) -> None:
        if is_rtcp(data):
            self.rtcp += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpError:
            self.not_rtp += 1
            return
        key = (source[0], source[1], packet.ssrc)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = Stream(source, packet.ssrc)
            name = CODEC_NAMES.get(packet.payload_type, "dynamic" if packet.payload_type >= 96 else "other")
            print(f"stream from={_where(source)} ssrc={packet.ssrc:#010x} pt={packet.payload_type} ({name})")
        pt = packet.payload_type
        if self._is_event(pt, packet.payload):
            stream.event_pt = pt
            for digit in stream.rfc4733.receive(
                packet.sequence_number, packet.timestamp, packet.marker, packet.payload, now
            ):
                self._print(stream, digit.key, "rfc4733", digit.duration_ms, pt)
        elif pt in CODEC_NAMES:
            stream.audio_pt = pt
            if self.inband_mode == "on" or (self.inband_mode == "auto" and stream.event_pt is None):
                audio = decode(pt, packet.payload)
                for found in stream.inband.feed_rtp(packet.ssrc, packet.timestamp, audio, now):
                    self._print(stream, found.key, "inband", found.duration_ms, pt)

    def _is_event(self, pt: int, payload: bytes) -> bool:
        if self.event_pt is not None:
            return pt == self.event_pt
        # RFC 4733 §2.3: four bytes per event; an audio codec's 20 ms frame is never that short.
        return 96 <= pt <= 127 and 0 < len(payload) <= 16 and len(payload) % 4 == 0

    def on_timer(self, now: float) -> None:
        for stream in self.streams.values():
            deadline = stream.rfc4733.deadline
            if deadline is not None and deadline <= now:
                for digit in stream.rfc4733.on_timer(now):
                    self._print(stream, digit.key, "rfc4733", digit.duration_ms, stream.event_pt)

    @staticmethod
    def _print(stream: Stream, key: str, source: str, duration_ms: int, pt: int | None) -> None:
        print(
            f"digit={key} source={source} duration_ms={duration_ms} from={_where(stream.source)} "
            f"ssrc={stream.ssrc:#010x} pt={pt}",
            flush=True,
        )


def _where(source: tuple[str, int]) -> str:
    host, port = source[0], source[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


async def run(args: argparse.Namespace) -> None:
    host, port = args.listen
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.setblocking(False)
    listener = Listener(args.event_pt, args.inband)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        now = time.monotonic()
        for _ in range(256):
            try:
                data, source = sock.recvfrom(4096)
            except BlockingIOError:
                return
            except OSError:
                continue
            listener.datagram(data, source, now)

    loop.add_reader(sock.fileno(), readable)
    print(f"listening on {_where((host, sock.getsockname()[1]))}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
        listener.on_timer(time.monotonic())
    loop.remove_reader(sock.fileno())
    sock.close()
    print(f"streams={len(listener.streams)} not_rtp={listener.not_rtp} rtcp={listener.rtcp}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=parse_listen, required=True, help="HOST:PORT to receive RTP on")
    parser.add_argument(
        "--event-pt", type=int, help="the telephone-event payload type (default: any dynamic)"
    )
    parser.add_argument(
        "--inband", choices=("auto", "on", "off"), default="auto", help="in-band tone detection"
    )
    args = parser.parse_args(argv)
    if args.event_pt is not None and not 96 <= args.event_pt <= 127:
        parser.error("--event-pt must be a dynamic payload type, 96-127")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
