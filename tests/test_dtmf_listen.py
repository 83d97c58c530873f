"""examples/dtmf_listen.py as an operator runs it: a process on a loopback port, RTP sent to it, one
line per key on its output."""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
from array import array
from pathlib import Path

from rtp.dtmf import Rfc4733Generator
from rtp.g711 import encode_pcma
from tests.sipp import free_port
from tests.test_relay import rtp

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dtmf_listen.py"


def run_listener(send: list[bytes], *extra: str) -> list[str]:
    port = free_port("udp")
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--listen", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=EXAMPLE.parent.parent,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("listening on 127.0.0.1:")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        for data in send:
            sock.sendto(data, ("127.0.0.1", port))
            time.sleep(0.02 if len(data) > 20 else 0.005)
        sock.close()
        time.sleep(0.5)  # end-by-timeout of a press whose end packets were lost
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out.splitlines()


def test_rfc4733_on_a_dynamic_payload_type_and_junk_counted() -> None:
    generator = Rfc4733Generator(110)
    packets = [b"not rtp at all"]
    seq = 0
    for n, key in enumerate("42#"):
        for packet in generator.packets(key, 120, 8000 * (n + 1)):
            seq += 1
            packets.append(rtp(seq, packet.timestamp, 0xCAFE, packet.payload, pt=110, marker=packet.marker))
    lines = run_listener(packets)
    digits = [line for line in lines if line.startswith("digit=")]
    assert [line.split()[0:3] for line in digits] == [
        ["digit=4", "source=rfc4733", "duration_ms=120"],
        ["digit=2", "source=rfc4733", "duration_ms=120"],
        ["digit=#", "source=rfc4733", "duration_ms=120"],
    ]
    assert all("ssrc=0x0000cafe pt=110" in line for line in digits)
    assert any(line.startswith("stream from=127.0.0.1:") and "pt=110 (dynamic)" in line for line in lines)
    assert lines[-1] == "streams=1 not_rtp=1 rtcp=0"


def test_inband_tones_in_pcma() -> None:
    pcm = array("h")
    for low, high in ((697, 1336), (941, 1336)):  # 2, then 0
        pcm.extend(
            int(5000 * (math.sin(2 * math.pi * low * n / 8000) + math.sin(2 * math.pi * high * n / 8000)))
            for n in range(960)
        )
        pcm.extend([0] * 960)
    payload = encode_pcma(pcm)
    packets = [
        rtp(n, 160 * n, 0xBEEF, payload[160 * n : 160 * n + 160], pt=8) for n in range(len(payload) // 160)
    ]
    lines = run_listener(packets)
    digits = [line.split()[0:2] for line in lines if line.startswith("digit=")]
    assert digits == [["digit=2", "source=inband"], ["digit=0", "source=inband"]]
    assert any("pt=8 (PCMA)" in line for line in lines)


def test_bad_arguments_are_refused() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--listen", "127.0.0.1:1", "--event-pt", "8"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=EXAMPLE.parent.parent,
    )
    assert proc.returncode == 2 and "--event-pt must be a dynamic payload type" in proc.stderr
