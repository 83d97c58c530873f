"""Transactions bench: the highest call rate ``examples/uas.py`` sustains, beside SIPp and Kamailio.

Run from the repository root (Linux, 2 cores or more; SIPp and, for the baseline, Kamailio
installed: ``apt-get install sip-tester kamailio``)::

    .venv/bin/python bench/transactions.py --json bench/out/transactions.json   # ~20 minutes
    .venv/bin/python bench/transactions.py --quick                                # smoke run, ~2 min

SIPp places calls at rising rates against each system in turn; each step lasts ``--step-seconds``
(10). A call is SIPp's built-in ``uac`` scenario: INVITE, (100,) 180, 200 with SDP, ACK, a 1 s
pause (``-d 1000``), BYE, 200. A separate test sends OPTIONS only (one transaction per "call",
scenario generated into the run directory). A step is clean when every call succeeded and SIPp
saw nothing but the scenario: no failed call, no retransmission at all (sent or received; on
loopback without loss there is no reason for one, so any retransmission means someone answered
later than 500 ms or dropped a datagram), no unexpected, out-of-call or dead-call message, no
datagram dropped by the server's socket, the calls went out at >= 95 % of the asked rate, and the
server did not need its whole core (>= 98 %: a large socket buffer hides a backlog for a while). The
figure reported for a system is its highest clean rate; the ladder stops at the first step that is
not clean.

Systems, each started afresh for each test, the server pinned to one core (``--cpu``, default the
highest-numbered) and every SIPp, and this script, to another (``--sipp-cpu``):

- ``sipp``: SIPp UAC straight to a SIPp UAS (``-sn uas``): the ceiling of the setup;
- ``kamailio``: SIPp UAC -> Kamailio, transaction-stateful proxy (``bench/kamailio/kamailio.cfg``:
  tm ``t_relay()``, rr, maxfwd, sl; one UDP worker, ``-n 1``) -> SIPp UAS;
- ``sippy``: SIPp UAC -> sippy's ``b2bua_simple`` (the pure-Python B2BUA, installed with the dev
  extras; logging off: ``SIPLOG_BEND=none``) -> SIPp UAS. Calls only: it answers OPTIONS 501. It is
  a B2BUA, so it does two legs of work per call where ``examples/uas.py`` does one;
- ``ours``: SIPp UAC -> ``examples/uas.py --log-level WARNING`` (UDP, uvloop when installed), run
  through ``transactions.py run-uas`` (see ``run_uas``: it wraps the example's RTP port counter,
  which runs out after 12,768 calls, and reports the garbage collector's pauses).

Per step the bench records SIPp's counters (``-trace_stat``, ``-trace_counts``, ``-trace_err``),
the server's CPU time (utime + stime from ``/proc/PID/stat``, summed over the server's process
group, so Kamailio's workers and timer processes count), SIPp's own CPU, the deepest receive queue
and the drops of the server's socket (``/proc/net/udp``, read every 50 ms), the machine's UDP
counters (``/proc/net/snmp``) and, for ``ours``, the collector's pauses and the lines it logged.
CPU time is read before the step and after a settle time that follows SIPp's exit, so timers
firing after the last call count. The server keeps running from one step to the next, as a server
would, with what the earlier steps left in it; ``--fresh`` starts it anew for every step.

``--profile RATE`` runs ``ours`` once more at RATE calls/s under py-spy (``pip install py-spy`` into
the venv; not a project dependency) or cProfile (``--profile-tool cprofile``) and prints where its
time goes. ``--uas-gc-off`` runs ``ours`` with the collector disabled: a diagnosis of how much the
collector's pauses cost, not a way to run it.

The target (from the issue): ``examples/uas.py`` >= 1,500 calls/s on one core with zero failures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import gc
import importlib.util
import itertools
import json
import os
import pstats
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import common

REPO = Path(__file__).resolve().parent.parent
KAMAILIO_CFG = REPO / "bench" / "kamailio" / "kamailio.cfg"

CALL_RATES = (100, 200, 400, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000)
OPTIONS_RATES = (200, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 15000, 20000)
QUICK_CALL_RATES = (200, 800, 1500)
QUICK_OPTIONS_RATES = (500, 2000)
QUICK_STEP_SECONDS = 3.0

TARGET_CALL_RATE = 1500  # calls/s on one core, zero failures (the issue)
CALL_MILLISECONDS = 1000  # -d: the pause between ACK and BYE
# A step whose calls went out slower than this share of the asked rate did not hold the rate: SIPp
# (or its -l cap) could not keep up, so the step says nothing about the server at that rate.
RATE_HELD = 0.95
# After SIPp's exit: the back-end SIPp dumps its counters every second (-fd 1), and the server's
# tail of work (timers, the last BYEs) belongs to the step.
SETTLE_SECONDS = 2.0
# SIPp may still be retransmitting a failed call's requests long after the step: past this, it is
# asked to stop (SIGUSR1), then killed.
SIPP_GRACE_SECONDS = 45.0
# Socket buffers of every SIPp: big enough that a load generator never drops a burst itself (the
# machine's net.core.rmem_max caps it). Servers keep their own settings.
SIPP_SOCKET_BUFFER = 1 << 20
WARMUP_RATE = 50
WARMUP_SECONDS = 2.0
# tm keeps each transaction in shared memory until its wait timer (5 s) after the final response:
# 512 MB ran out at 8,000 OPTIONS/s.
KAMAILIO_SHM_MB = 2048
STOP_TIMEOUT = 5.0
SOCKET_POLL_SECONDS = 0.05  # how often the sockets' receive queues are read during a step

#: A step whose server needed this share of its core (CPU per call x rate) is not clean.
SATURATED = 0.98

SYSTEMS = ("sipp", "kamailio", "sippy", "ours")
TESTS = ("calls", "options")
LABELS = {
    "sipp": "SIPp UAS (ceiling)",
    "kamailio": "Kamailio tm proxy -> SIPp UAS",
    "sippy": "sippy b2bua_simple -> SIPp UAS",
    "ours": "examples/uas.py (ours)",
}

OPTIONS_UAC_XML = """\
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- bench/transactions.py: one OPTIONS transaction per call (RFC 3261 §11), retransmitted over UDP
     from 500 ms (§17.1.2.2) like the built-in uac's requests. -->
<scenario name="bench OPTIONS UAC">
  <send retrans="500">
    <![CDATA[

      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="true"/>
</scenario>
"""

OPTIONS_UAS_XML = """\
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- bench/transactions.py: answers an OPTIONS with 200 (RFC 3261 §11.2), the OPTIONS ceiling and
     the UAS behind the proxy. -->
<scenario name="bench OPTIONS UAS">
  <recv request="OPTIONS"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Allow: INVITE, ACK, BYE, CANCEL, OPTIONS
      Accept: application/sdp
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""


# --- processes ----------------------------------------------------------------------------


@dataclass
class Started:
    """A process the bench started, in its own session (so its whole group can be stopped)."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    cpu: int | None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, chars: int = 2000) -> str:
        text = ""
        for path in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")[-chars:]
        return text


class Processes:
    """Every process the bench starts goes through here, so that all are stopped at the end."""

    def __init__(self, pin: bool) -> None:
        self.pin = pin
        self.running: list[Started] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpu: int | None,
        cwd: Path,
        env: dict[str, str] | None = None,
    ) -> Started:
        full = [*(["taskset", "-c", str(cpu)] if self.pin and cpu is not None else []), *argv]
        cwd.mkdir(parents=True, exist_ok=True)
        stdout, stderr = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            popen = subprocess.Popen(
                full,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        started = Started(name, full, popen, stdout, stderr, cpu if self.pin else None)
        self.running.append(started)
        return started

    def stop(self, started: Started, sig: int = signal.SIGTERM) -> None:
        """Stop ``started`` and everything in its process group (Kamailio's children)."""
        popen = started.popen
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(STOP_TIMEOUT)
        # The group may outlive its leader (a child that ignores SIGTERM): kill what is left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(STOP_TIMEOUT)
        if started in self.running:
            self.running.remove(started)

    def stop_all(self) -> None:
        for started in reversed(list(self.running)):
            self.stop(started)


def free_udp_ports(count: int) -> list[int]:
    """``count`` distinct UDP ports on 127.0.0.1 that the kernel says are free right now."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def udp_sockets(ports: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Port -> (bytes waiting in the receive queue, datagrams dropped so far) of the sockets bound
    to ``ports`` (/proc/net/udp): a full receive queue is where a server too slow loses requests."""
    wanted = set(ports)
    out: dict[int, tuple[int, int]] = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as f:
            next(f, None)
            for line in f:
                cols = line.split()
                port = int(cols[1].rsplit(":", 1)[1], 16)
                if port in wanted:
                    rx_queue = int(cols[4].split(":")[1], 16)
                    out[port] = (rx_queue, int(cols[-1]))
    return out


def socket_rcvbuf(port: int) -> int | None:
    """SO_RCVBUF of the UDP socket bound to ``port`` (``ss -m``): how big a burst it can hold."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["ss", "-uamnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10, check=True
        )
        m = re.search(r"\brb(\d+)", done.stdout)
        return int(m.group(1)) if m else None
    return None


def wait_bound(started: Started, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while port not in udp_sockets([port]):
        if started.popen.poll() is not None:
            raise RuntimeError(f"{started.name} exited ({started.popen.returncode}):\n{started.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{started.name} did not bind UDP port {port} in {timeout:g} s")
        time.sleep(0.05)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            raw = f.read()
    except OSError:
        return None
    # comm is in parentheses and may hold spaces: the fields that follow start after the last ')'
    return raw[raw.rfind(")") + 2 :].split()


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in process group ``pgid`` (all threads included)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # after comm: state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
        if fields is None or len(fields) < 13 or int(fields[2]) != pgid:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def cpus_allowed(pid: int) -> str | None:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    return None


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def udp_counters() -> dict[str, int]:
    """The machine's UDP counters (/proc/net/snmp): receive-buffer drops show up here."""
    with contextlib.suppress(OSError), open("/proc/net/snmp", encoding="ascii") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
        if len(rows) >= 2:
            return {k: int(v) for k, v in zip(rows[0][1:], rows[1][1:], strict=False)}
    return {}


def sysctl(name: str) -> str | None:
    with contextlib.suppress(OSError):
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    return None


# --- SIPp's counters ------------------------------------------------------------------------


def _last_row(path: Path) -> dict[str, str]:
    """Header -> value of the last row of a ';'-separated SIPp dump (stat or counts)."""
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            rows = [row for row in csv.reader(f, delimiter=";") if row]
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    return {h: v for h, v in zip(rows[0], rows[-1], strict=False) if h}


def _seconds(text: str) -> float:
    """SIPp's durations: ``HH:MM:SS:usec`` (or ``HH:MM:SS``)."""
    parts = [p for p in text.strip().split(":") if p]
    if len(parts) < 3:
        return 0.0
    try:
        hours, minutes, seconds = (int(p) for p in parts[:3])
        micros = int(parts[3]) if len(parts) > 3 else 0
    except ValueError:
        return 0.0
    return hours * 3600 + minutes * 60 + seconds + micros / 1e6


def _int(row: dict[str, str], key: str) -> int:
    try:
        return int(float(row.get(key, "0") or 0))
    except ValueError:
        return 0


@dataclass
class SippCounts:
    """Cumulative counters of one SIPp instance (``-trace_stat`` + ``-trace_counts``)."""

    created: int = 0
    successful: int = 0
    failed: int = 0
    failed_by: dict[str, int] = field(default_factory=dict)
    retransmissions: int = 0  # the stat file's Retransmissions(C)
    retrans_sent: int = 0  # -trace_counts: retransmissions of the messages SIPp sends
    retrans_received: int = 0  # -trace_counts: retransmissions SIPp received (a peer resending)
    timeouts: int = 0
    unexpected: int = 0
    out_of_call: int = 0
    dead_call: int = 0
    watchdog: int = 0
    call_rate: float = 0.0
    response_time_ms: float = 0.0
    call_length_s: float = 0.0

    @classmethod
    def read(cls, workdir: Path) -> SippCounts:
        stat = _last_row(workdir / "stat.csv")
        counts: dict[str, str] = {}
        for path in sorted(workdir.glob("*_counts.csv")):
            counts = _last_row(path)
        out = cls(
            created=_int(stat, "TotalCallCreated"),
            successful=_int(stat, "SuccessfulCall(C)"),
            failed=_int(stat, "FailedCall(C)"),
            retransmissions=_int(stat, "Retransmissions(C)"),
            out_of_call=_int(stat, "OutOfCallMsgs(C)"),
            dead_call=_int(stat, "DeadCallMsgs(C)"),
            watchdog=_int(stat, "WatchdogMajor(C)") + _int(stat, "WatchdogMinor(C)"),
            response_time_ms=_seconds(stat.get("ResponseTime1(C)", "")) * 1000,
            call_length_s=_seconds(stat.get("CallLength(C)", "")),
        )
        with contextlib.suppress(ValueError):
            out.call_rate = float(stat.get("CallRate(C)", "0") or 0)
        out.failed_by = {
            key[len("Failed") : -len("(C)")]: _int(stat, key)
            for key in stat
            if key.startswith("Failed") and key.endswith("(C)") and key != "FailedCall(C)"
            if _int(stat, key)
        }
        # -trace_counts columns: N_NAME_Sent / N_NAME_Recv, then N_NAME_Retrans, _Timeout, _Unexp
        sent = {key.split("_", 1)[0] for key in counts if key.endswith("_Sent")}
        for key in counts:
            index = key.split("_", 1)[0]
            if key.endswith("_Retrans"):
                if index in sent:
                    out.retrans_sent += _int(counts, key)
                else:
                    out.retrans_received += _int(counts, key)
            elif key.endswith("_Timeout"):
                out.timeouts += _int(counts, key)
            elif key.endswith("_Unexp"):
                out.unexpected += _int(counts, key)
        return out

    def minus(self, before: SippCounts) -> SippCounts:
        """What happened between two readings of a long-running SIPp (the back-end UAS)."""
        failed_by = {k: v - before.failed_by.get(k, 0) for k, v in self.failed_by.items()}
        return SippCounts(
            created=self.created - before.created,
            successful=self.successful - before.successful,
            failed=self.failed - before.failed,
            failed_by={k: v for k, v in failed_by.items() if v},
            retransmissions=self.retransmissions - before.retransmissions,
            retrans_sent=self.retrans_sent - before.retrans_sent,
            retrans_received=self.retrans_received - before.retrans_received,
            timeouts=self.timeouts - before.timeouts,
            unexpected=self.unexpected - before.unexpected,
            out_of_call=self.out_of_call - before.out_of_call,
            dead_call=self.dead_call - before.dead_call,
            watchdog=self.watchdog - before.watchdog,
        )

    def problems(self, who: str) -> list[str]:
        """Everything that makes a step unclean, in words."""
        out: list[str] = []
        if self.failed:
            causes = ", ".join(f"{k} {v}" for k, v in sorted(self.failed_by.items()))
            out.append(f"{who}: {self.failed} failed calls" + (f" ({causes})" if causes else ""))
        retrans = max(self.retransmissions, self.retrans_sent) + self.retrans_received
        if retrans:
            out.append(
                f"{who}: retransmissions (sent {max(self.retransmissions, self.retrans_sent)}, "
                f"received {self.retrans_received})"
            )
        if self.timeouts:
            out.append(f"{who}: {self.timeouts} timeouts")
        odd = self.unexpected + self.out_of_call + self.dead_call
        if odd:
            out.append(
                f"{who}: {odd} unexpected messages (in call {self.unexpected}, out of call "
                f"{self.out_of_call}, dead call {self.dead_call})"
            )
        return out


def _new_text(path: Path, offset: int, limit: int = 1500) -> tuple[int, int, str]:
    """(new size, new line count, head of the new text) of a growing log file."""
    try:
        size = path.stat().st_size
    except OSError:
        return offset, 0, ""
    if size <= offset:
        return size, 0, ""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    return size, data.count(b"\n"), data[:limit].decode(errors="replace")


# --- the systems ----------------------------------------------------------------------------


@dataclass
class Cores:
    server: int | None
    sipp: int | None


@dataclass
class Deployment:
    """A system started and ready: where SIPp sends, and which processes are whose."""

    system: str
    test: str
    port: int
    scenarios: Path
    server: Started
    backend: Started | None = None
    backend_dir: Path | None = None
    backend_port: int | None = None
    gc_stats: Path | None = None  # ours: where run_uas writes its collector's pauses on SIGUSR2
    commands: dict[str, list[str]] = field(default_factory=dict)
    log_offset: int = 0
    backend_err_offset: int = 0
    backend_before: SippCounts = field(default_factory=SippCounts)


def _sipp_common(control_port: int) -> list[str]:
    return ["-nostdin", "-cp", str(control_port), "-buff_size", str(SIPP_SOCKET_BUFFER)]


def _sipp_uas_argv(test: str, port: int, control_port: int, scenarios: Path) -> list[str]:
    scenario = ["-sn", "uas"] if test == "calls" else ["-sf", str(scenarios / "options_uas.xml")]
    return [
        "sipp",
        *scenario,
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        *_sipp_common(control_port),
        "-trace_stat",
        "-stf",
        "stat.csv",
        "-fd",
        "1",
        "-trace_counts",
        "-trace_err",
        "-error_file",
        "errors.log",
    ]


@dataclass(frozen=True)
class UasOptions:
    """How ``ours`` is run: see ``run_uas``."""

    as_is: bool = False
    cprofile: Path | None = None
    gc_off: bool = False


def deploy(
    system: str,
    test: str,
    procs: Processes,
    cores: Cores,
    workdir: Path,
    scenarios: Path,
    uas: UasOptions = UasOptions(),
) -> Deployment:
    """Start ``system`` for ``test``; return when its port is bound. ``scenarios``: the XML files."""
    workdir.mkdir(parents=True, exist_ok=True)
    gc_stats: Path | None = None
    port, backend_port, control_port = free_udp_ports(3)
    backend: Started | None = None
    backend_dir: Path | None = None
    commands: dict[str, list[str]] = {}
    if system in ("kamailio", "sippy"):
        backend_dir = workdir / "backend"
        backend = procs.start(
            "sipp-uas",
            _sipp_uas_argv(test, backend_port, control_port, scenarios),
            cpu=cores.sipp,
            cwd=backend_dir,
        )
        commands["backend"] = backend.argv
        wait_bound(backend, backend_port)
    if system == "sipp":
        server = procs.start(
            "server",
            _sipp_uas_argv(test, port, control_port, scenarios),
            cpu=cores.server,
            cwd=workdir / "server",
        )
    elif system == "kamailio":
        rundir = workdir / "kamailio-run"
        rundir.mkdir(parents=True, exist_ok=True)
        argv = ["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-n", "1"]
        argv += ["-m", str(KAMAILIO_SHM_MB), "-M", "16", "-Y", str(rundir), "-w", str(rundir)]
        argv += ["-l", f"udp:127.0.0.1:{port}", "-A", f'UAS_URI="sip:127.0.0.1:{backend_port}"']
        modules = kamailio_modules_dir()
        if modules is not None:
            argv += ["-A", f'MODULES_PATH="{modules}/"']
        server = procs.start("server", argv, cpu=cores.server, cwd=workdir / "server")
    elif system == "sippy":
        argv = [sys.executable, "-m", "sippy.b2bua_simple", "-f", "-l", "127.0.0.1", "-p", str(port)]
        argv += ["-n", f"127.0.0.1:{backend_port}"]
        env = dict(os.environ, SIPLOG_BEND="none")
        server = procs.start("server", argv, cpu=cores.server, cwd=workdir / "server", env=env)
    elif system == "ours":
        argv = [sys.executable, str(Path(__file__).resolve()), "run-uas", "--listen", f"127.0.0.1:{port}"]
        argv += ["--log-level", "WARNING", *(["--uas-as-is"] if uas.as_is else [])]
        env = dict(os.environ, **{ENV_GC_STATS: str(workdir / "gc.json")})
        if uas.cprofile is not None:
            env[ENV_CPROFILE] = str(uas.cprofile)
        if uas.gc_off:
            env[ENV_GC_OFF] = "1"
        server = procs.start("server", argv, cpu=cores.server, cwd=workdir / "server", env=env)
        gc_stats = workdir / "gc.json"
    else:
        raise ValueError(system)
    commands["server"] = server.argv
    wait_bound(server, port)
    time.sleep(0.5)  # Kamailio forks its workers after binding
    if server.popen.poll() is not None:
        raise RuntimeError(f"{system} exited ({server.popen.returncode}):\n{server.tail()}")
    return Deployment(
        system,
        test,
        port,
        scenarios,
        server,
        backend,
        backend_dir,
        backend_port if backend else None,
        gc_stats,
        commands,
    )


def kamailio_modules_dir() -> str | None:
    """Where the Debian package put tm.so (``dpkg -L kamailio``), if it can be found."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listing = subprocess.run(
            ["dpkg", "-L", "kamailio"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
        for line in listing.splitlines():
            if line.endswith("/tm.so"):
                return line.rsplit("/", 1)[0]
    return None


def missing_tools(system: str) -> str | None:
    """Why ``system`` cannot run here, or None."""
    if shutil.which("sipp") is None:
        return "sipp not found (apt-get install sip-tester)"
    if system == "kamailio" and shutil.which("kamailio") is None:
        return "kamailio not found (apt-get install kamailio)"
    if system == "sippy":
        try:
            import sippy.b2bua_simple  # noqa: F401
        except ImportError:
            return "sippy not installed (pip install -e '.[dev]')"
    return None


# --- our UAS, as the bench runs it --------------------------------------------------------
#
# ``transactions.py run-uas ARGS`` runs examples/uas.py's ``main(ARGS)`` in this process, with
# bench-only switches the example does not have (the example itself is not edited):
#
# - its RTP port allocator, ``itertools.count(40000, 2)``, runs past 65535 after 12,768 calls and
#   every later INVITE then fails with a 500 (SDP port out of range). A server that answers more
#   calls than that in one run needs the allocator to wrap: the runner swaps in a cycle over the
#   same even ports. ``--uas-as-is`` runs the example without it;
# - BENCH_UAS_GC_STATS=PATH: the cyclic garbage collector's pauses (gc.callbacks) are counted, and
#   written to PATH as JSON (then reset) on SIGUSR2, which the bench sends after each step;
# - BENCH_UAS_CPROFILE=PATH: the whole run under cProfile, its stats dumped to PATH at exit;
# - BENCH_UAS_GC_OFF=1 (``--uas-gc-off``, a diagnosis, not a way to run): the cyclic collector
#   disabled, to see what the server sustains without its pauses (memory then grows with every
#   reference cycle the stack leaves behind).

ENV_GC_STATS = "BENCH_UAS_GC_STATS"
ENV_CPROFILE = "BENCH_UAS_CPROFILE"
ENV_GC_OFF = "BENCH_UAS_GC_OFF"
RTP_PORTS = range(40000, 65534, 2)


class _GcPauses:
    """Count and time the collector's runs per generation (gc.callbacks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = 0.0
        self.reset()

    def reset(self) -> None:
        self.stats = {g: {"collections": 0, "total_ms": 0.0, "max_ms": 0.0} for g in range(3)}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        ms = (time.perf_counter() - self.started) * 1000
        stats = self.stats[info["generation"]]
        stats["collections"] += 1
        stats["total_ms"] += ms
        stats["max_ms"] = max(stats["max_ms"], ms)

    def dump(self, signum: int, frame: FrameType | None) -> None:
        data: dict[str, Any] = {f"gen{g}": v for g, v in self.stats.items()}
        data["tracked_objects"] = len(gc.get_objects())
        self.path.write_text(json.dumps(data), encoding="utf-8")
        self.reset()


def run_uas(argv: list[str]) -> int:
    as_is = "--uas-as-is" in argv
    argv = [a for a in argv if a != "--uas-as-is"]
    spec = importlib.util.spec_from_file_location("examples_uas", REPO / "examples" / "uas.py")
    if spec is None or spec.loader is None:
        raise SystemExit("cannot load examples/uas.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    example = getattr(module, "ExampleUas", None)
    if not as_is and example is not None:
        original_init = example.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            if isinstance(getattr(self, "ports", None), itertools.count):
                self.ports = itertools.cycle(RTP_PORTS)

        example.__init__ = init
    if os.environ.get(ENV_GC_OFF) == "1":
        gc.disable()
    if path := os.environ.get(ENV_GC_STATS):
        pauses = _GcPauses(Path(path))
        gc.callbacks.append(pauses)
        signal.signal(signal.SIGUSR2, pauses.dump)
    profile_path = os.environ.get(ENV_CPROFILE)
    if not profile_path:
        return int(module.main(argv))
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return int(module.main(argv))
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)


# --- one step -----------------------------------------------------------------------------


def _epoch(text: str) -> float:
    """SIPp's time stamps: ``date<TAB>time<TAB>epoch``; the epoch is what is needed."""
    try:
        return float(text.split()[-1])
    except (IndexError, ValueError):
        return 0.0


def placement_rate(stat_csv: Path, calls: int) -> float | None:
    """Calls/s SIPp placed, from its 1 s dumps: the calls out at the last dump before all were out,
    over the time since the start. None when no dump fell inside the placing time (a short step)."""
    try:
        with stat_csv.open(encoding="utf-8", errors="replace", newline="") as f:
            rows = [row for row in csv.reader(f, delimiter=";") if row]
    except OSError:
        return None
    if len(rows) < 2:
        return None
    cols = {name: i for i, name in enumerate(rows[0])}
    if not {"StartTime", "CurrentTime", "OutgoingCall(C)"} <= cols.keys():
        return None
    start = _epoch(rows[1][cols["StartTime"]])
    rate = None
    for row in rows[1:]:
        placed = int(row[cols["OutgoingCall(C)"]] or 0)
        since = _epoch(row[cols["CurrentTime"]]) - start
        if 0 < placed < calls and since > 0.5:
            rate = placed / since
    return rate


def run_step(
    dep: Deployment,
    procs: Processes,
    cores: Cores,
    rate: int,
    seconds: float,
    workdir: Path,
    *,
    warmup: bool = False,
) -> dict[str, Any]:
    calls = max(1, round(rate * seconds))
    call_s = CALL_MILLISECONDS / 1000 if dep.test == "calls" else 0.0
    limit = max(1000, round(rate * (call_s + 10)))
    (local_port, control_port) = free_udp_ports(2)
    scenario = ["-sn", "uac"] if dep.test == "calls" else ["-sf", str(dep.scenarios / "options_uac.xml")]
    argv = ["sipp", f"127.0.0.1:{dep.port}", *scenario, "-i", "127.0.0.1", "-p", str(local_port)]
    argv += _sipp_common(control_port)
    argv += ["-r", str(rate), "-m", str(calls), "-l", str(limit)]
    if dep.test == "calls":
        argv += ["-d", str(CALL_MILLISECONDS)]
    argv += ["-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_counts"]
    argv += ["-trace_err", "-error_file", "errors.log"]

    server_pgid = dep.server.pid
    backend_pgid = dep.backend.pid if dep.backend is not None else None
    ports = {"server": dep.port, "uac": local_port}
    if dep.backend_port is not None:
        ports["backend"] = dep.backend_port
    sockets0 = udp_sockets(list(ports.values()))
    udp0 = udp_counters()
    cpu0 = group_cpu_seconds(server_pgid)
    backend_cpu0 = group_cpu_seconds(backend_pgid) if backend_pgid is not None else 0.0
    child0 = children_cpu_seconds()
    t0 = time.monotonic()
    uac = procs.start("sipp-uac", argv, cpu=cores.sipp, cwd=workdir)
    # While SIPp runs: the deepest receive queue of each socket, and the drops last seen.
    deepest = dict.fromkeys(ports, 0)
    dropped = dict.fromkeys(ports, 0)
    deadline = t0 + seconds + call_s + SIPP_GRACE_SECONDS
    finished = True
    while uac.popen.poll() is None:
        if time.monotonic() > deadline:
            finished = False
            with contextlib.suppress(ProcessLookupError):
                os.kill(uac.pid, signal.SIGUSR1)  # SIPp's soft exit: no new calls
            with contextlib.suppress(subprocess.TimeoutExpired):
                uac.popen.wait(10)
            break
        sockets = udp_sockets(list(ports.values()))
        for name, port in ports.items():
            if port in sockets:
                queue, drops = sockets[port]
                deepest[name] = max(deepest[name], queue)
                dropped[name] = drops - sockets0.get(port, (0, 0))[1]
        time.sleep(SOCKET_POLL_SECONDS)
    procs.stop(uac)
    sipp_done = time.monotonic()
    uac_cpu = children_cpu_seconds() - child0
    time.sleep(SETTLE_SECONDS)
    wall = time.monotonic() - t0
    cpu = group_cpu_seconds(server_pgid) - cpu0
    backend_cpu = group_cpu_seconds(backend_pgid) - backend_cpu0 if backend_pgid is not None else 0.0
    udp1 = udp_counters()
    gc_pauses = read_gc_stats(dep)
    for name, port in ports.items():
        if name != "uac" and port in (after := udp_sockets([port])):
            dropped[name] = after[port][1] - sockets0.get(port, (0, 0))[1]

    counts = SippCounts.read(workdir)
    problems = counts.problems("SIPp UAC")
    if not finished:
        problems.insert(0, f"SIPp UAC did not finish within {seconds + call_s + SIPP_GRACE_SECONDS:g} s")
    if counts.successful < calls:
        problems.append(f"SIPp UAC: {counts.successful} of {calls} calls succeeded")
    placed = placement_rate(workdir / "stat.csv", calls)
    if placed is None:  # a short step: the rate over SIPp's whole run, less the last call's length
        elapsed = counts.created / counts.call_rate if counts.call_rate > 0 else 0.0
        placing = elapsed - counts.call_length_s
        placed = calls / placing if placing > 0 else 0.0
    if not warmup and placed < RATE_HELD * rate:
        problems.append(f"rate not held: calls went out at {placed:,.0f}/s")
    if counts.watchdog:
        problems.append(f"SIPp UAC watchdog tripped {counts.watchdog}x (the load generator fell behind)")
    if dropped["server"]:
        problems.append(f"server socket dropped {dropped['server']:,} datagrams (receive queue full)")
    if calls and cpu / calls * rate >= SATURATED:
        # A big socket buffer can carry a server through a 10 s step it cannot sustain: the backlog
        # only shows as latency. A step that needed the whole core is not a rate it holds.
        problems.append(f"server saturated: it needed {cpu / calls * rate:.0%} of its core at this rate")
    backend: dict[str, Any] | None = None
    if dep.backend_dir is not None:
        now = SippCounts.read(dep.backend_dir)
        delta = now.minus(dep.backend_before)
        dep.backend_before = now
        problems += delta.problems("SIPp UAS (back-end)")
        size, lines, head = _new_text(dep.backend_dir / "errors.log", dep.backend_err_offset)
        dep.backend_err_offset = size
        backend = {"counts": asdict(delta), "error_log_lines": lines, "error_log_head": head}
    log_size, log_lines, log_head = _new_text(dep.server.stderr, dep.log_offset)
    dep.log_offset = log_size
    _, err_lines, err_head = _new_text(workdir / "errors.log", 0)
    if dep.server.popen.poll() is not None:
        problems.insert(0, f"server exited ({dep.server.popen.returncode})")
    machine = {k: udp1.get(k, 0) - udp0.get(k, 0) for k in ("InErrors", "RcvbufErrors", "SndbufErrors")}
    return {
        "rate": rate,
        "seconds": seconds,
        "calls": calls,
        "clean": not problems,
        "problems": problems,
        "placed_rate": placed,
        "uac": asdict(counts),
        "uac_exit_code": uac.popen.returncode,
        "uac_error_log_lines": err_lines,
        "uac_error_log_head": err_head,
        "backend": backend,
        "server_cpu_s": cpu,
        "server_cpu_ms_per_call": 1000 * cpu / calls,
        # the share of its core the server needs at this rate, from its CPU per call
        "server_load": cpu / calls * rate,
        "sipp_cpu_s": uac_cpu + backend_cpu,
        "sipp_load": (uac_cpu + backend_cpu) / calls * rate,
        "wall_s": wall,
        "sipp_wall_s": sipp_done - t0,
        "socket_queue_max_bytes": deepest,
        "socket_drops": dropped,
        "machine_udp_errors": machine,
        "gc": gc_pauses,
        "server_log_lines": log_lines,
        "server_log_head": log_head,
        "command": uac.argv,
    }


def read_gc_stats(dep: Deployment) -> dict[str, Any] | None:
    """Ask ``ours`` for its collector's pauses since the last step (SIGUSR2; see ``run_uas``)."""
    if dep.gc_stats is None or dep.server.popen.poll() is not None:
        return None
    with contextlib.suppress(FileNotFoundError):
        dep.gc_stats.unlink()
    os.kill(dep.server.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            data: dict[str, Any] = json.loads(dep.gc_stats.read_text(encoding="utf-8"))
            return data
        time.sleep(0.05)
    return None


def _gc_text(stats: dict[str, Any] | None) -> str:
    if not stats:
        return ""
    full = stats["gen2"]
    worst = max(stats[f"gen{g}"]["max_ms"] for g in range(3))
    total = sum(stats[f"gen{g}"]["total_ms"] for g in range(3))
    return (
        f"  [GC: {total:,.0f} ms in all, longest pause {worst:,.0f} ms, {full['collections']} full "
        f"collections; {stats['tracked_objects']:,} objects tracked]"
    )


def _step_line(step: dict[str, Any]) -> str:
    uac = step["uac"]
    retrans = max(uac["retransmissions"], uac["retrans_sent"]) + uac["retrans_received"]
    odd = uac["unexpected"] + uac["out_of_call"] + uac["dead_call"]
    verdict = "clean" if step["clean"] else "FAIL: " + "; ".join(step["problems"])
    return (
        f"{step['rate']:>7,}{step['placed_rate']:>9,.0f}{uac['successful']:>9,}{uac['failed']:>7,}"
        f"{retrans:>8,}{odd:>6,}{uac['response_time_ms']:>7.1f}{step['server_cpu_ms_per_call']:>8.3f}"
        f"{step['server_load']:>7.0%}{step['sipp_load']:>6.0%}"
        f"{step['socket_queue_max_bytes']['server'] / 1024:>8,.0f}{step['socket_drops']['server']:>7,}"
        f"  {verdict}{_gc_text(step.get('gc'))}"
    )


STEP_HEADER = (
    f"{'rate/s':>7}{'placed':>9}{'ok':>9}{'failed':>7}{'retrans':>8}{'unexp':>6}{'rtd ms':>7}"
    f"{'ms CPU':>8}{'load':>7}{'SIPp':>6}{'queue K':>8}{'drops':>7}  result"
)


def run_ladder(
    system: str,
    test: str,
    rates: Sequence[int],
    seconds: float,
    procs: Processes,
    cores: Cores,
    root: Path,
    uas: UasOptions,
    *,
    fresh: bool = False,
) -> dict[str, Any]:
    """Start ``system``, warm it up, then run ``rates`` in turn until a step is not clean.

    The server runs from one step to the next, with the state the previous steps left (timers of
    finished transactions, and so on), unless ``fresh``: then it is started anew for every step."""
    workdir = root / test / system
    result: dict[str, Any] = {"system": system, "label": LABELS[system], "test": test, "steps": []}
    result["fresh_server_per_step"] = fresh

    def start() -> Deployment:
        dep = deploy(system, test, procs, cores, workdir, root, uas)
        warm = run_step(dep, procs, cores, WARMUP_RATE, WARMUP_SECONDS, workdir / "warmup", warmup=True)
        result.setdefault("warmups", []).append(warm)
        if not warm["clean"]:
            print(f"  warm-up at {WARMUP_RATE}/s not clean: {'; '.join(warm['problems'])}")
        return dep

    def stop(dep: Deployment) -> None:
        procs.stop(dep.server)
        if dep.backend is not None:
            procs.stop(dep.backend)
        result.setdefault("server_exit_logs", []).append(dep.server.tail(1500))

    dep = start()
    try:
        result["commands"] = dep.commands
        result["server_rcvbuf"] = socket_rcvbuf(dep.port)
        result["affinity"] = {
            "server": cpus_allowed(dep.server.pid),
            "backend": cpus_allowed(dep.backend.pid) if dep.backend else None,
        }
        rcvbuf = result["server_rcvbuf"]
        print(
            f"  server pid {dep.server.pid}, cores {result['affinity']['server']}; its socket's receive "
            f"buffer: {rcvbuf:,} bytes" + ("; started anew for every step" if fresh else "")
            if rcvbuf
            else f"  server pid {dep.server.pid}"
        )
        print(f"  {STEP_HEADER}")
        for index, rate in enumerate(rates):
            if fresh and index:
                stop(dep)
                dep = start()
            step = run_step(dep, procs, cores, rate, seconds, workdir / f"rate-{rate}")
            result["steps"].append(step)
            print(f"  {_step_line(step)}", flush=True)
            if step["server_log_lines"]:
                print(
                    f"      server logged {step['server_log_lines']} lines: {step['server_log_head'][:300]!r}"
                )
            if not step["clean"]:
                break
    finally:
        stop(dep)
    summarize(result)
    return result


def summarize(result: dict[str, Any]) -> None:
    steps = result["steps"]
    clean = [s for s in steps if s["clean"]]
    failed = next((s for s in steps if not s["clean"]), None)
    best = clean[-1] if clean and (failed is None or clean[-1]["rate"] < failed["rate"]) else None
    result["best_rate"] = best["rate"] if best else 0
    # True when no step failed: the system may do more than the highest rate asked
    result["open_ended"] = failed is None and bool(steps)
    result["best_cpu_ms_per_call"] = best["server_cpu_ms_per_call"] if best else None
    result["best_server_load"] = best["server_load"] if best else None
    result["first_failure"] = {"rate": failed["rate"], "problems": failed["problems"]} if failed else None


# --- profile ------------------------------------------------------------------------------


def profile_ours(
    rate: int,
    seconds: float,
    tool: str,
    procs: Processes,
    cores: Cores,
    root: Path,
    uas: UasOptions,
    top: int = 30,
) -> dict[str, Any]:
    """Run ``ours`` at ``rate`` calls/s under py-spy or cProfile; where does its time go?

    py-spy samples the running server from outside, with native frames (``--native``: otherwise
    the collector's pauses are charged to whichever Python line allocated the object that set it
    off); it pauses the server ~100 times a second to read its stack, so that step is no capacity
    figure either. cProfile runs inside it (``run_uas``), counts every call and roughly doubles the
    CPU per call; it charges the collector's pauses to the Python function that set them off."""
    workdir = root / "profile"
    spy_argv: list[str] | None = None
    if tool == "py-spy":
        py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        if py_spy is None:
            return {"error": "py-spy not found: .venv/bin/pip install py-spy (not a project dependency)"}
        raw = workdir / "py-spy.txt"
        spy_argv = [py_spy, "record", "--native", "--format", "raw", "-r", "100", "-o", str(raw)]
    else:
        raw = workdir / "cprofile.pstats"
        uas = UasOptions(as_is=uas.as_is, cprofile=raw, gc_off=uas.gc_off)
    dep = deploy("ours", "calls", procs, cores, workdir, root, uas)
    try:
        run_step(dep, procs, cores, WARMUP_RATE, WARMUP_SECONDS, workdir / "warmup", warmup=True)
        spy: Started | None = None
        if spy_argv is not None:
            spy_argv += ["-p", str(dep.server.pid)]
            spy = procs.start("py-spy", spy_argv, cpu=cores.sipp, cwd=workdir)
            time.sleep(0.5)
        step = run_step(dep, procs, cores, rate, seconds, workdir / f"rate-{rate}")
        if spy is not None:
            procs.stop(spy, signal.SIGINT)  # py-spy writes its file on SIGINT
    finally:
        procs.stop(dep.server)  # SIGTERM: the example returns from main(), run_uas dumps cProfile's stats
    if spy_argv is not None:
        own, inclusive, total = _read_py_spy(raw)
    else:
        own, inclusive, total = _read_cprofile(raw)
    return {
        "tool": tool,
        "rate": rate,
        "step": step,
        "samples": total,
        "command": spy_argv or dep.commands["server"],
        "own": own.most_common(top),
        "inclusive": inclusive.most_common(top),
    }


def _read_py_spy(raw: Path) -> tuple[Counter[str], Counter[str], int]:
    """Shares of busy samples per function: its own (leaf) and inclusive (anywhere on the stack)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with contextlib.suppress(OSError), raw.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [name for name in map(_frame_name, stack.split(";")) if name]
            if not frames or frames[-1].endswith(IDLE_LEAVES):
                continue  # the event loop waiting for a datagram: idle, not work
            total += count
            own[frames[-1]] += count
            for name in set(frames):
                if ".py:" in name or name.endswith(":gc_collect_main"):
                    inclusive[name] += count
    shares = (Counter({k: v / total for k, v in c.items()}) if total else Counter() for c in (own, inclusive))
    return next(shares), next(shares), total


def _read_cprofile(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """Shares of the server's busy time per function: own (tottime) and inclusive (cumtime).

    The event loop's wait for datagrams is C code under the outermost frames (``asyncio.run``):
    their own time is idle time, left out of the total the shares are of."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    try:
        stats = pstats.Stats(str(path))
    except (OSError, TypeError, EOFError):
        return own, inclusive, 0
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in table.values())
    outermost = max((ct for (_cc, _nc, _tt, ct, _callers) in table.values()), default=0.0)
    idle = sum(tt for (_cc, _nc, tt, ct, _callers) in table.values() if ct >= 0.99 * outermost)
    busy = (total - idle) or 1.0
    calls = 0
    for (filename, _line, func), (_cc, nc, tt, ct, _callers) in table.items():
        calls += nc
        if ct >= 0.99 * outermost:
            continue
        name = _frame_name(f"{func} ({filename})")
        own[name] += tt / busy
        inclusive[name] = max(inclusive[name], ct / busy)
    return own, inclusive, calls


IDLE_LEAVES = (":epoll_wait", ":epoll_pwait", ":select", ":poll")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame_name(frame: str) -> str:
    """``handle (sip_stack/ua.py:123)`` -> ``sip_stack/ua.py:handle`` (lines merged)."""
    frame = frame.strip()
    if frame.startswith("process ") or frame.startswith("thread "):
        return ""
    m = _FRAME.match(frame)
    if m is None:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{m.group('func')}"


def print_profile(profile: dict[str, Any]) -> None:
    if "error" in profile:
        print(f"Profile: {profile['error']}")
        return
    step = profile["step"]
    what = "samples of busy time" if profile["tool"] == "py-spy" else "function calls (cProfile)"
    print(
        f"Profile ({profile['tool']}) of examples/uas.py at {profile['rate']:,} calls/s "
        f"({profile['samples']:,} {what}; step {'clean' if step['clean'] else 'not clean'}, "
        f"{step['server_cpu_ms_per_call']:.3f} ms CPU per call){_gc_text(step.get('gc'))}"
    )
    print(f"  {'own time (the function itself)':<74}share")
    for name, share in profile["own"][:20]:
        print(f"    {name:<72}{share:>6.1%}")
    print(f"  {'inclusive time (the function and what it calls)':<74}share")
    for name, share in profile["inclusive"][:30]:
        print(f"    {name:<72}{share:>6.1%}")


# --- report -------------------------------------------------------------------------------


def _rate_text(result: dict[str, Any] | None) -> str:
    if result is None or "error" in result:
        return "-"
    if not result["best_rate"]:
        return "none"
    return ("≥" if result["open_ended"] else "") + f"{result['best_rate']:,}/s"


def _ratio(ours: dict[str, Any], base: dict[str, Any] | None) -> str:
    if base is None or "error" in base or not base.get("best_rate") or "best_rate" not in ours:
        return "-"
    if ours is base:
        return "1.00x"
    if ours["open_ended"] and base["open_ended"]:
        return "?"  # neither failed: no ratio of limits
    value = ours["best_rate"] / base["best_rate"]
    # against an open-ended baseline the ratio is an upper bound; an open-ended system's, a lower
    bound = "≤" if base["open_ended"] and not ours["open_ended"] else ""
    bound = "≥" if ours["open_ended"] and not base["open_ended"] else bound
    return f"{bound}{value:.2f}x"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_summary(test: str, results: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    what = "calls/s (INVITE..BYE, 1 s calls)" if test == "calls" else "OPTIONS/s"
    ran = [r for r in results.values() if "error" not in r]
    # the highest rate every system stepped through cleanly: CPU per call compared at one load
    common_rate = min((r["best_rate"] for r in ran), default=0)
    print(f"\n{test.capitalize()}: highest clean rate, {what}, steps of {seconds:g} s")
    head = f"{'system':<34}{'clean rate':>12}{'ms CPU/call':>13}{'core load':>11}"
    head += f"{'vs SIPp':>9}{'vs Kamailio':>13}"
    if common_rate:
        head += f"{f'ms CPU @{common_rate:,}/s':>18}"
    print(head)
    print("-" * len(head))
    summary: dict[str, Any] = {"common_rate": common_rate, "systems": {}}
    for system, r in results.items():
        if "error" in r:
            print(f"{LABELS[system]:<34}  skipped: {r['error']}")
            summary["systems"][system] = {"skipped": r["error"]}
            continue
        cpu = r["best_cpu_ms_per_call"]
        busy = r["best_server_load"]
        at_common = next((s for s in r["steps"] if s["rate"] == common_rate and s["clean"]), None)
        line = f"{LABELS[system]:<34}{_rate_text(r):>12}"
        line += f"{_fmt(cpu, '.3f'):>13}{_fmt(busy, '.0%'):>11}"
        line += f"{_ratio(r, results.get('sipp')):>9}{_ratio(r, results.get('kamailio')):>13}"
        if common_rate:
            line += f"{_fmt(at_common['server_cpu_ms_per_call'] if at_common else None, '.3f'):>18}"
        print(line)
        summary["systems"][system] = {
            "label": r["label"],
            "best_rate": r["best_rate"],
            "open_ended": r["open_ended"],
            "cpu_ms_per_call": cpu,
            "server_load": busy,
            "vs_sipp": _ratio(r, results.get("sipp")),
            "vs_kamailio": _ratio(r, results.get("kamailio")),
            "cpu_ms_per_call_at_common_rate": at_common["server_cpu_ms_per_call"] if at_common else None,
            "first_failure": r["first_failure"],
        }
    for system, r in results.items():
        if "error" not in r and r["first_failure"]:
            f = r["first_failure"]
            print(f"  {LABELS[system]} failed at {f['rate']:,}/s: {'; '.join(f['problems'])}")
        elif "error" not in r:
            print(f"  {LABELS[system]}: no step failed (the ladder ended); raise the rates to find its limit")
    return summary


# --- main ---------------------------------------------------------------------------------


def _rates(text: str) -> list[int]:
    try:
        rates = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated rates expected, got {text!r}") from None
    if not rates or any(r <= 0 for r in rates) or rates != sorted(rates):
        raise argparse.ArgumentTypeError("rates must be positive and rising")
    return rates


def _names(choices: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        names = [x for x in text.replace(" ", "").split(",") if x]
        bad = [x for x in names if x not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}")
        return names

    return parse


def choose_cores(args: argparse.Namespace) -> tuple[Cores, str]:
    if args.no_pin:
        return Cores(None, None), "no pinning (--no-pin)"
    allowed = sorted(os.sched_getaffinity(0))
    server = args.cpu if args.cpu is not None else allowed[-1]
    others = [c for c in allowed if c != server]
    sipp = args.sipp_cpu if args.sipp_cpu is not None else (others[0] if others else server)
    if server == sipp:
        return Cores(server, sipp), f"server and SIPp share core {server}: the figures are not comparable"
    return Cores(server, sipp), f"server on core {server}, SIPp and this script on core {sipp}"


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT stop the bench through every ``finally`` (children are stopped)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell starts a background job with SIGINT ignored, and Python then leaves it so.
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run-uas"]:
        return run_uas(argv[1:])
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="--cpu N is the server's core here (default: the highest-numbered); SIPp and this "
        "script run on --sipp-cpu (default: the lowest other core).",
    )
    common.add_common_args(ap)
    ap.add_argument("--sipp-cpu", type=int, default=None, metavar="N", help="core for SIPp and this script")
    ap.add_argument("--systems", type=_names(SYSTEMS), default=list(SYSTEMS), help=",".join(SYSTEMS))
    ap.add_argument("--tests", type=_names(TESTS), default=list(TESTS), help=",".join(TESTS))
    ap.add_argument("--call-rates", type=_rates, default=None, metavar="R,R,...", help="calls/s per step")
    ap.add_argument(
        "--options-rates", type=_rates, default=None, metavar="R,R,...", help="OPTIONS/s per step"
    )
    ap.add_argument("--step-seconds", type=float, default=None, metavar="S", help="seconds per step (10)")
    ap.add_argument("--quick", action="store_true", help="smoke run: few steps of 3 s")
    ap.add_argument(
        "--profile",
        type=int,
        default=None,
        metavar="RATE",
        help="also run ours at RATE calls/s under py-spy and print where the time goes",
    )
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="start each server anew for every step (default: one server runs through the ladder)",
    )
    ap.add_argument(
        "--profile-tool",
        choices=("py-spy", "cprofile"),
        default="py-spy",
        help="py-spy samples from outside (default); cprofile runs inside and slows the server ~2x",
    )
    ap.add_argument(
        "--uas-as-is",
        action="store_true",
        help="run examples/uas.py without the bench's RTP-port wrap-around (see run_uas)",
    )
    ap.add_argument(
        "--uas-gc-off",
        action="store_true",
        help="diagnosis: run ours with the cyclic garbage collector disabled (see run_uas)",
    )
    ap.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="keep SIPp's files and logs in DIR"
    )
    args = ap.parse_args(argv)
    uas = UasOptions(as_is=args.uas_as_is, gc_off=args.uas_gc_off)

    seconds = args.step_seconds or (QUICK_STEP_SECONDS if args.quick else 10.0)
    rates = {
        "calls": args.call_rates or list(QUICK_CALL_RATES if args.quick else CALL_RATES),
        "options": args.options_rates or list(QUICK_OPTIONS_RATES if args.quick else OPTIONS_RATES),
    }
    cores, cores_text = choose_cores(args)
    pinning = common.pin_cpu(cores.sipp, enabled=not args.no_pin)
    env = common.environment(pinning)
    env |= {
        "server_cpu": cores.server,
        "sipp_cpu": cores.sipp,
        "cores": cores_text,
        "sipp_version": _version(["sipp", "-v"], r"SIPp v\S+"),
        "kamailio_version": _version(["kamailio", "-v"], r"kamailio \S+"),
        "git_head": _git(["rev-parse", "--short", "HEAD"]),
        # the code measured is the work tree: say which of its files differ from HEAD
        "git_changed": (
            _git(["status", "--short", "--", "sip_stack", "examples", "bench"]) or ""
        ).splitlines(),
        "net.core.rmem_default": sysctl("net.core.rmem_default"),
        "net.core.rmem_max": sysctl("net.core.rmem_max"),
    }
    common.print_environment(env)
    print(f"Cores: {cores_text}; {env['sipp_version']}; {env['kamailio_version']}")
    print(
        f"Commit {env['git_head']}"
        + (f"; changed in the work tree: {env['git_changed']}" if env["git_changed"] else "")
    )
    if uas.gc_off or uas.as_is:
        print(
            "ours runs"
            + (
                " with the cyclic garbage collector OFF (a diagnosis, not a capacity figure)"
                if uas.gc_off
                else ""
            )
            + (" without the RTP-port wrap-around (--uas-as-is)" if uas.as_is else "")
        )
    print(
        f"Steps of {seconds:g} s. A step is clean with no failed call, no retransmission, no\n"
        "unexpected message, no datagram dropped by the server's socket, >= "
        f"{RATE_HELD:.0%} of the asked rate placed\nand a server load under {SATURATED:.0%}.\n"
        "Columns: placed = calls/s SIPp achieved; rtd = mean INVITE->200 (OPTIONS->200) ms; ms CPU = the\n"
        "server's CPU per call; load, SIPp = share of their cores the server and SIPp need at that rate\n"
        "(CPU per call x rate); queue K = deepest receive queue of the server's socket (KiB); drops =\n"
        "datagrams its socket dropped."
    )

    root = Path(tempfile.mkdtemp(prefix="bench-transactions-")) if args.keep is None else args.keep
    root.mkdir(parents=True, exist_ok=True)
    (root / "options_uac.xml").write_text(OPTIONS_UAC_XML, encoding="latin-1")
    (root / "options_uas.xml").write_text(OPTIONS_UAS_XML, encoding="latin-1")
    procs = Processes(pin=not args.no_pin)
    out: dict[str, Any] = {
        "bench": "transactions",
        "environment": env,
        "settings": {
            "step_seconds": seconds,
            "rates": rates,
            "call_milliseconds": CALL_MILLISECONDS,
            "rate_held": RATE_HELD,
            "settle_seconds": SETTLE_SECONDS,
            "sipp_socket_buffer": SIPP_SOCKET_BUFFER,
            "warmup": {"rate": WARMUP_RATE, "seconds": WARMUP_SECONDS},
            "fresh_server_per_step": args.fresh,
            "uas": asdict(uas),
            "kamailio_shm_mb": KAMAILIO_SHM_MB,
        },
        "results": {},
        "summary": {},
    }
    interrupted = False
    try:
        with terminate_as_interrupt():
            for test in args.tests:
                results: dict[str, dict[str, Any]] = {}
                for system in args.systems:
                    why = missing_tools(system)
                    if why is None and system == "sippy" and test == "options":
                        why = "b2bua_simple answers OPTIONS with 501"
                    if why is not None:
                        results[system] = {"error": why}
                        continue
                    print(f"\n{test}: {LABELS[system]}")
                    results[system] = run_ladder(
                        system, test, rates[test], seconds, procs, cores, root, uas, fresh=args.fresh
                    )
                out["results"][test] = results
                out["summary"][test] = print_summary(test, results, seconds)
            if "calls" in out["summary"] and "ours" in out["summary"]["calls"]["systems"]:
                ours = out["summary"]["calls"]["systems"]["ours"]
                if "best_rate" in ours:
                    ok = ours["best_rate"] >= TARGET_CALL_RATE
                    out["target"] = {
                        "calls_per_s": TARGET_CALL_RATE,
                        "measured": ours["best_rate"],
                        "pass": ok,
                    }
                    caveat = ""
                    if uas.gc_off:
                        caveat = " -- but with the collector off: a diagnosis, not the target's measure"
                    elif args.fresh:
                        caveat = " -- with a server started anew for every step"
                    print(
                        f"\nTarget: examples/uas.py >= {TARGET_CALL_RATE:,} calls/s clean on one core: "
                        f"{'PASS' if ok else 'FAIL'} ({ours['best_rate']:,}/s){caveat}"
                    )
            if args.profile is not None:
                print()
                profile = profile_ours(args.profile, seconds, args.profile_tool, procs, cores, root, uas)
                out["profile"] = profile
                print_profile(profile)
    except KeyboardInterrupt:
        interrupted = True
        print("\nInterrupted: stopping every process the bench started", file=sys.stderr)
    finally:
        procs.stop_all()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"SIPp's files and the servers' logs are in {root}")
    out["loadavg_at_end"] = common.load_average()
    out["interrupted"] = interrupted
    if args.json is not None:
        common.write_json(args.json, out)
        print(f"\nWrote {args.json}")
    return 130 if interrupted else 0


def _git(args: list[str]) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()
    return None


def _version(argv: list[str], pattern: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        m = re.search(pattern, done.stdout + done.stderr)
        return m.group(0) if m else None
    return None


if __name__ == "__main__":
    sys.exit(main())
