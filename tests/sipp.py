"""SIPp as a real SIP peer in tests: run a scenario, read its verdict, always stop it.

SIPp (Debian package ``sip-tester``) plays the carrier, the gateway or the phone on loopback. This module
builds its command line, runs it with a wall-clock bound (sync, or as an asyncio subprocess so the stack
under test can share the event loop), and turns SIPp's statistics file, error log and message trace into
a :class:`SippResult` whose :meth:`SippResult.raise_for_failure` puts all of them in the test failure.

The project's test standards it enforces: loopback only (127.0.0.0/8), ports that are ephemeral or
documented, bounded time, every process it starts is stopped and reaped (SIPp runs in its own process
group, and the whole group is killed), and when ``CI`` is set a missing ``sipp`` fails instead of skipping.

Each run gets its own directory (``sipp-*`` under the temp dir) holding every file SIPp writes; the
directory's path is on SIPp's command line, which makes a unique marker for ``pgrep -f``. The directory is
removed after a clean run and kept after a failed one (its path is in the failure message).

SIPp 3.6 behaviours this module works around:

- SIPp's global ``-timeout`` is an ``alarm()`` in whole seconds, so it is rounded up, and SIPp does not
  honour it while it sleeps (``-sleep``) or is wedged: the hard wall-clock kill is the real bound.
- By default SIPp also binds a media echo socket on 6000 and a control socket on 0.0.0.0:8888; both are
  moved to loopback ephemeral ports here (``-mi``/``-mp``, ``-ci``/``-cp``).
- Over TCP, SIPp fails a call (``FailedTcpClosed``) when the peer closes the connection while the call
  sits in its ``<timewait>``; ``-reconnect_close false`` is passed for TCP transports so a peer closing
  after the last message does not fail the call.
- SIGUSR1 asks SIPp to finish its calls and exit; a second SIGUSR1 aborts the calls but leaves SIPp
  hung until its global timeout, so it is never sent. SIGTERM exits at once, writes the statistics and
  returns exit code 0 whatever happened: a result stopped that way is never ``ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import ipaddress
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

import pytest

TESTS_DIR = Path(__file__).resolve().parent
SCENARIO_DIR = TESTS_DIR / "sipp_scenarios"
PEER_SCENARIO_DIR = SCENARIO_DIR / "peers"
DRACHTIO_SCENARIO_DIR = TESTS_DIR / "vectors" / "drachtio-sipp"

# Credentials baked into sipp_scenarios/uac_digest.xml and uas_digest.xml (realm "enx.test"); a test of
# our stack configures the same pair on its side.
DIGEST_REALM = "enx.test"
DIGEST_USERNAME = "enx-test"
DIGEST_PASSWORD = "enx-secret"

# Our UAS scenarios linger after their last message (RFC 3261 §17.2: absorb retransmitted BYEs); they read
# the length from this SIPp global variable and default to SIPp's own 4000 ms when it is not set.
TIMEWAIT_VARIABLE = "timewait_ms"
SHORT_TIMEWAIT = {TIMEWAIT_VARIABLE: "200"}

BUILTIN_SCENARIOS = frozenset(
    {"uac", "uas", "regexp", "branchc", "branchs", "3pcc-C-A", "3pcc-C-B", "3pcc-A", "3pcc-B"}
)

Transport = Literal["u1", "un", "t1", "tn"]
TCP_TRANSPORTS = frozenset({"t1", "tn"})
PortKind = Literal["udp", "tcp", "both"]

# SIPp's exit codes (sipp -h, "Exit codes"; screen.hpp). 253/252 changed meaning across versions.
EXIT_CODES: Mapping[int, str] = {
    0: "all calls were successful",
    1: "at least one call failed",
    95: "test stopped manually",
    96: "test killed",
    97: "exit on internal command",
    98: "unknown test result",
    99: "normal exit without calls processed",
    252: "argument error",
    253: "RTP validation failure or system error",
    254: "fatal error binding a socket",
    255: "fatal error",
}

# SIPp needs a moment after its own -timeout fires to print screens and write the final statistics row.
KILL_GRACE_S = 2.0
# After SIGTERM (immediate exit with statistics) how long before SIGKILL.
TERM_GRACE_S = 1.5
# SippServer.stop(): time for calls to finish after SIGUSR1; covers SIPp's default 4 s <timewait>.
STOP_DRAIN_S = 4.5
# SippServer start-up: SIPp parses the scenario and binds in a few ms; allow slow CI machines.
READY_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.02
FREE_PORT_ATTEMPTS = 50
# Failure messages quote the error log and the message trace; beyond this they stop being read.
MAX_QUOTED_CHARS = 6000


def sipp_binary() -> str:
    """Path to ``sipp``; a missing binary skips the test, or fails it when ``CI`` is set."""
    path = shutil.which("sipp")
    if path is not None:
        return path
    message = "sipp is not on PATH (install the Debian package sip-tester)"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{message}; CI is set, so SIP tests fail instead of skipping", pytrace=False)
    pytest.skip(message)


def free_port(kind: PortKind = "udp", host: str = "127.0.0.1") -> int:
    """An ephemeral port on ``host`` that is free now for UDP, TCP or ``"both"``.

    The port is released before returning, so another process may take it first: the usual race of this
    technique, harmless on a test machine.
    """
    _require_loopback(host)
    first_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    for _ in range(FREE_PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, first_type) as first:
            first.bind((host, 0))
            port: int = first.getsockname()[1]
            if kind != "both":
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no {kind} port free on {host} after {FREE_PORT_ATTEMPTS} attempts")


def key_args(keys: Mapping[str, object]) -> tuple[str, ...]:
    """``-key name value`` pairs: each becomes a ``[name]`` keyword in the scenario's messages."""
    return tuple(arg for name, value in keys.items() for arg in ("-key", name, str(value)))


def set_args(variables: Mapping[str, object]) -> tuple[str, ...]:
    """``-set name value`` pairs: global variables the scenario declares with ``<Global variables=...>``."""
    return tuple(arg for name, value in variables.items() for arg in ("-set", name, str(value)))


def lost_args(percent: int) -> tuple[str, ...]:
    """``-lost N``: SIPp drops N % of the messages it sends and receives (UDP loss simulation)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"-lost takes a percentage 0..100, got {percent}")
    return ("-lost", str(percent))


@dataclass(frozen=True, slots=True)
class SippResult:
    """What one SIPp run did: exit code, final cumulative counters and the text of its logs."""

    scenario: str
    argv: tuple[str, ...]
    run_dir: Path
    exit_code: int
    duration: float
    # The calls asked for (-m): ok needs every one of them successful.
    calls: int = 1
    # Final row of the -stf statistics file, header -> value ("SuccessfulCall(C)" -> "1").
    stats: Mapping[str, str] = field(default_factory=dict)
    errors: str = ""
    messages: str = ""
    logs: str = ""
    screen: str = ""
    # The strongest signal we sent: None (exited by itself), "SIGUSR1" (asked to finish its calls),
    # "SIGTERM" or "SIGKILL" (stopped: the counters are whatever SIPp had at that moment).
    stop_signal: str | None = None
    # True when the wall-clock limit passed and we had to stop SIPp.
    killed: bool = False

    def counter(self, name: str) -> int:
        """A cumulative counter of the statistics file, by its name without "(C)"."""
        value = self.stats.get(f"{name}(C)", "")
        try:
            return int(value)
        except ValueError:
            return 0

    @property
    def successful(self) -> int:
        return self.counter("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.counter("FailedCall")

    @property
    def retransmissions(self) -> int:
        return self.counter("Retransmissions")

    @property
    def unexpected_messages(self) -> int:
        """Calls failed because a message arrived that the scenario did not expect at that point."""
        return self.counter("FailedUnexpectedMessage")

    @property
    def out_of_call_messages(self) -> int:
        return self.counter("OutOfCallMsgs")

    @property
    def timed_out(self) -> bool:
        """SIPp's own global ``-timeout`` fired (it then exits 255 because of ``-timeout_error``)."""
        return " timed out after " in self.errors

    @property
    def exit_meaning(self) -> str:
        if self.exit_code < 0:
            try:
                return f"killed by {signal.Signals(-self.exit_code).name}"
            except ValueError:
                return f"killed by signal {-self.exit_code}"
        return EXIT_CODES.get(self.exit_code, "undocumented exit code")

    @property
    def ok(self) -> bool:
        """All ``calls`` succeeded and SIPp exited by itself (or after finishing its calls on SIGUSR1)."""
        return (
            self.exit_code == 0
            and not self.killed
            and self.stop_signal in (None, "SIGUSR1")
            and self.failed == 0
            and self.successful >= self.calls
        )

    def describe(self) -> str:
        """A report for a failure message: verdict, counters, command, errors, screen, message trace."""
        lines = [
            f"SIPp {self.scenario}: exit code {self.exit_code} ({self.exit_meaning}); "
            f"{self.successful} successful, {self.failed} failed, {self.retransmissions} retransmissions, "
            f"{self.unexpected_messages} failed on unexpected messages, "
            f"{self.out_of_call_messages} out-of-call messages; {self.duration:.2f} s",
        ]
        if self.killed:
            lines.append(f"past its wall-clock limit: stopped with {self.stop_signal}")
        elif self.stop_signal is not None:
            lines.append(f"stopped with {self.stop_signal}")
        lines.append(f"command: {' '.join(self.argv)}")
        lines.append(f"files: {self.run_dir}")
        for title, text, from_end in (
            ("errors", self.errors, False),
            ("log actions", self.logs, False),
            ("scenario screen", _scenario_screen(self.screen), False),
            ("messages", self.messages, True),
        ):
            if text.strip():
                lines.append(f"--- {title} ---")
                lines.append(_quote(text, from_end=from_end))
        return "\n".join(lines)

    def raise_for_failure(self) -> SippResult:
        """Fail the test with :meth:`describe` unless the run is :attr:`ok`; returns self for chaining."""
        if not self.ok:
            pytest.fail(self.describe(), pytrace=False)
        return self


@dataclass(slots=True)
class _SippRun:
    """One prepared SIPp invocation: its command line and the files it writes in its own directory."""

    scenario: str
    argv: list[str]
    run_dir: Path
    local_ip: str
    local_port: int
    transport: Transport
    calls: int
    wall_clock: float
    keep_files: bool | None
    started: float = 0.0

    def file(self, name: str) -> Path:
        return self.run_dir / name

    def open_output(self, name: str) -> int:
        return os.open(self.file(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def collect(self, exit_code: int, stop_signal: str | None, killed: bool) -> SippResult:
        errors = _read(self.file("errors.log"))
        # SIPp prints fatal errors on stderr and in the error log: keep only what the log lacks.
        stderr = [
            line
            for line in _read(self.file("stderr.log")).splitlines()
            if line.strip() and line not in errors and not line.startswith("Resolving remote host")
        ]
        if stderr:
            errors = "\n".join([errors.rstrip(), "[stderr]", *stderr]).lstrip()
        result = SippResult(
            scenario=self.scenario,
            argv=tuple(self.argv),
            run_dir=self.run_dir,
            exit_code=exit_code,
            duration=time.monotonic() - self.started,
            calls=self.calls,
            stats=_final_stats(self.file("stats.csv")),
            errors=errors,
            messages=_read(self.file("messages.log")),
            logs=_read(self.file("logs.log")),
            screen=_read(self.file("screen.log")),
            stop_signal=stop_signal,
            killed=killed,
        )
        keep = self.keep_files if self.keep_files is not None else not result.ok
        if not keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return result


def _prepare(
    scenario: Path | str,
    target: str | None,
    *,
    local_port: int | None,
    local_ip: str,
    transport: Transport,
    calls: int,
    rate: float | None,
    timeout: float,
    extra_args: Sequence[str],
    variables: Mapping[str, object] | None,
    keys: Mapping[str, object] | None,
    inject_csv: Path | None,
    service: str | None,
    trace_messages: bool,
    keep_files: bool | None,
) -> _SippRun:
    binary = sipp_binary()
    _require_loopback(local_ip)
    if target is not None:
        host, _, target_port = target.rpartition(":")
        if not target_port.isdigit():
            raise ValueError(f"target must be host:port, got {target!r}")
        _require_loopback(host)
    if transport not in ("u1", "un", "t1", "tn"):
        raise ValueError(f"unsupported transport {transport!r}")
    if calls < 1:
        raise ValueError(f"calls must be at least 1, got {calls}")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")

    if isinstance(scenario, str) and scenario in BUILTIN_SCENARIOS:
        scenario_args = ["-sn", scenario]
        name = scenario
    else:
        path = Path(scenario).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"SIPp scenario not found: {path}")
        scenario_args = ["-sf", str(path)]
        name = path.name

    port = local_port if local_port is not None else free_port("both", local_ip)
    run_dir = Path(tempfile.mkdtemp(prefix=f"sipp-{Path(name).stem}-"))
    sipp_timeout_s = max(1, math.ceil(timeout))
    argv = [binary, *scenario_args]
    if target is not None:
        argv.append(target)
    argv += [
        "-i", local_ip, "-p", str(port), "-bind_local", "-t", transport,
        "-mi", local_ip, "-mp", str(free_port("udp", local_ip)),
        "-ci", local_ip, "-cp", str(free_port("udp", local_ip)),
        "-m", str(calls),
        "-timeout", f"{sipp_timeout_s}s", "-timeout_error",
        "-nostdin",
        "-trace_stat", "-stf", str(run_dir / "stats.csv"),
        "-trace_err", "-error_file", str(run_dir / "errors.log"),
        "-trace_screen", "-screen_file", str(run_dir / "screen.log"),
        "-trace_logs", "-log_file", str(run_dir / "logs.log"),
    ]  # fmt: skip
    if trace_messages:
        argv += ["-trace_msg", "-message_file", str(run_dir / "messages.log")]
    if transport in TCP_TRANSPORTS:
        argv += ["-reconnect_close", "false"]
    if rate is not None:
        argv += ["-r", f"{rate:g}"]
    if service is not None:
        argv += ["-s", service]
    if inject_csv is not None:
        argv += ["-inf", str(Path(inject_csv).resolve())]
    if variables:
        argv += set_args(variables)
    if keys:
        argv += key_args(keys)
    argv += list(extra_args)
    return _SippRun(
        scenario=name,
        argv=argv,
        run_dir=run_dir,
        local_ip=local_ip,
        local_port=port,
        transport=transport,
        calls=calls,
        wall_clock=sipp_timeout_s + KILL_GRACE_S,
        keep_files=keep_files,
    )


def run_sipp(
    scenario: Path | str,
    target: str | None = None,
    *,
    local_port: int | None = None,
    local_ip: str = "127.0.0.1",
    transport: Transport = "u1",
    calls: int = 1,
    rate: float | None = None,
    timeout: float = 20.0,
    extra_args: Sequence[str] = (),
    variables: Mapping[str, object] | None = None,
    keys: Mapping[str, object] | None = None,
    inject_csv: Path | None = None,
    service: str | None = None,
    trace_messages: bool = True,
    keep_files: bool | None = None,
) -> SippResult:
    """Run SIPp to completion (``-m calls``) and return its result; never raises on a failed run.

    ``scenario`` is a built-in name ("uac", "uas", ...) or a path to an XML file; ``target`` is the peer
    as ``host:port`` (None for a UAS). ``timeout`` bounds the run: it is SIPp's own ``-timeout`` (whole
    seconds, with ``-timeout_error``) and, :data:`KILL_GRACE_S` later, a kill of SIPp's process group.
    ``variables`` become ``-set``, ``keys`` become ``-key``, ``inject_csv`` is ``-inf``; anything else
    (``lost_args(10)``, ``-d 500``, ``-recv_timeout``) goes in ``extra_args``.
    """
    run = _prepare(
        scenario, target, local_port=local_port, local_ip=local_ip, transport=transport, calls=calls,
        rate=rate, timeout=timeout, extra_args=extra_args, variables=variables, keys=keys,
        inject_csv=inject_csv, service=service, trace_messages=trace_messages, keep_files=keep_files,
    )  # fmt: skip
    proc = _spawn(run)
    stop_signal: str | None = None
    killed = False
    try:
        try:
            proc.wait(timeout=run.wall_clock)
        except subprocess.TimeoutExpired:
            killed = True
            stop_signal = _terminate_sync(proc)
    finally:
        if proc.returncode is None:  # an exception (KeyboardInterrupt) interrupted the wait
            stop_signal = _terminate_sync(proc)
        _kill_group(proc.pid)
    return run.collect(_returncode(proc.returncode), stop_signal, killed)


async def run_sipp_async(
    scenario: Path | str,
    target: str | None = None,
    *,
    local_port: int | None = None,
    local_ip: str = "127.0.0.1",
    transport: Transport = "u1",
    calls: int = 1,
    rate: float | None = None,
    timeout: float = 20.0,
    extra_args: Sequence[str] = (),
    variables: Mapping[str, object] | None = None,
    keys: Mapping[str, object] | None = None,
    inject_csv: Path | None = None,
    service: str | None = None,
    trace_messages: bool = True,
    keep_files: bool | None = None,
) -> SippResult:
    """:func:`run_sipp` as an asyncio subprocess: the event loop (and our server on it) keeps running."""
    run = _prepare(
        scenario, target, local_port=local_port, local_ip=local_ip, transport=transport, calls=calls,
        rate=rate, timeout=timeout, extra_args=extra_args, variables=variables, keys=keys,
        inject_csv=inject_csv, service=service, trace_messages=trace_messages, keep_files=keep_files,
    )  # fmt: skip
    proc = await _spawn_async(run)
    stop_signal: str | None = None
    killed = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), run.wall_clock)
        except TimeoutError:
            killed = True
            stop_signal = await _terminate_async(proc)
    finally:
        if proc.returncode is None:  # cancelled: still stop and reap SIPp
            stop_signal = await _terminate_async(proc)
        _kill_group(proc.pid)
    return run.collect(_returncode(proc.returncode), stop_signal, killed)


class SippServer:
    """A SIPp UAS running in the background for the duration of a test (``with`` or ``async with``).

    Entering starts SIPp and waits until its SIP socket listens; leaving stops and reaps it: after a clean
    block it lets SIPp finish its calls (:meth:`stop`), after an exception it stops it at once.
    ``address`` is the ``host:port`` to send to. After leaving, :attr:`result` holds the run;
    call :meth:`wait` (or :meth:`wait_async`) inside the block to let the server finish its ``calls`` and
    judge its own verdict::

        with SippServer(SCENARIO_DIR / "uas_basic.xml", variables=SHORT_TIMEWAIT) as uas:
            run_sipp("uac", uas.address).raise_for_failure()
            uas.wait().raise_for_failure()
    """

    def __init__(
        self,
        scenario: Path | str = "uas",
        *,
        local_port: int | None = None,
        local_ip: str = "127.0.0.1",
        transport: Transport = "u1",
        calls: int = 1,
        timeout: float = 30.0,
        extra_args: Sequence[str] = (),
        variables: Mapping[str, object] | None = None,
        keys: Mapping[str, object] | None = None,
        inject_csv: Path | None = None,
        service: str | None = None,
        trace_messages: bool = True,
        keep_files: bool | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        drain: float = STOP_DRAIN_S,
    ) -> None:
        self._run = _prepare(
            scenario, None, local_port=local_port, local_ip=local_ip, transport=transport, calls=calls,
            rate=None, timeout=timeout, extra_args=extra_args, variables=variables, keys=keys,
            inject_csv=inject_csv, service=service, trace_messages=trace_messages, keep_files=keep_files,
        )  # fmt: skip
        self._ready_timeout = ready_timeout
        self._drain = drain
        self._proc: subprocess.Popen[bytes] | None = None
        self._aproc: asyncio.subprocess.Process | None = None
        self.result: SippResult | None = None

    @property
    def host(self) -> str:
        return self._run.local_ip

    @property
    def port(self) -> int:
        return self._run.local_port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def run_dir(self) -> Path:
        """SIPp's own directory: also the unique marker in its command line (``pgrep -f``)."""
        return self._run.run_dir

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(self._run.argv)

    # -- sync -------------------------------------------------------------------------------------------

    def start(self) -> SippServer:
        """Start SIPp and wait until it listens; fails the test (after stopping SIPp) if it never does."""
        proc = self._proc = _spawn(self._run)
        deadline = time.monotonic() + self._ready_timeout
        try:
            while not _is_listening(self._run, proc.pid):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(POLL_INTERVAL_S)
        except BaseException:  # KeyboardInterrupt while waiting: SIPp must not outlive us
            self.stop(drain=0)
            raise
        if proc.poll() is not None or not _is_listening(self._run, proc.pid):
            result = self.stop(drain=0)
            pytest.fail(f"SIPp server never listened on {self.address}\n{result.describe()}", pytrace=False)
        return self

    def wait(self, timeout: float | None = None) -> SippResult:
        """Let SIPp finish its calls and exit by itself (within ``timeout``, default its own limit)."""
        proc = self._require_sync()
        if self.result is not None:
            return self.result
        budget = self._remaining() if timeout is None else timeout
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, budget))
        return self.stop()

    def stop(self, drain: float | None = None) -> SippResult:
        """Stop SIPp and reap it; idempotent. SIGUSR1 lets its calls finish for ``drain`` seconds (default
        :data:`STOP_DRAIN_S`; 0 skips it), then SIGTERM, then SIGKILL of the whole process group."""
        if self.result is not None:
            return self.result
        proc = self._require_sync()
        drain = self._drain if drain is None else drain
        stop_signal: str | None = None
        try:
            if proc.poll() is None and drain > 0:
                stop_signal = _signal(proc.pid, signal.SIGUSR1)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=drain)
            if proc.poll() is None:
                stop_signal = _terminate_sync(proc)
        finally:
            if proc.returncode is None:
                stop_signal = _terminate_sync(proc)
            _kill_group(proc.pid)
        killed = stop_signal in ("SIGTERM", "SIGKILL") and self._remaining() <= 0
        self.result = self._run.collect(_returncode(proc.returncode), stop_signal, killed)
        return self.result

    def __enter__(self) -> SippServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # After a failure nobody waits for the calls to finish: SIGTERM still writes the statistics.
        self.stop(drain=0 if exc_type is not None else None)

    # -- async ------------------------------------------------------------------------------------------

    async def start_async(self) -> SippServer:
        """:meth:`start` without blocking the event loop; a cancelled start still stops SIPp."""
        proc = self._aproc = await _spawn_async(self._run)
        deadline = time.monotonic() + self._ready_timeout
        try:
            while not _is_listening(self._run, proc.pid):
                if proc.returncode is not None or time.monotonic() > deadline:
                    break
                await asyncio.sleep(POLL_INTERVAL_S)
        except BaseException:  # cancelled while waiting: SIPp must not outlive the task
            await self.stop_async(drain=0)
            raise
        if proc.returncode is not None or not _is_listening(self._run, proc.pid):
            result = await self.stop_async(drain=0)
            pytest.fail(f"SIPp server never listened on {self.address}\n{result.describe()}", pytrace=False)
        return self

    async def wait_async(self, timeout: float | None = None) -> SippResult:
        """:meth:`wait` without blocking the event loop."""
        proc = self._require_async()
        if self.result is not None:
            return self.result
        budget = self._remaining() if timeout is None else timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), max(0.0, budget))
        return await self.stop_async()

    async def stop_async(self, drain: float | None = None) -> SippResult:
        """:meth:`stop` without blocking the event loop."""
        if self.result is not None:
            return self.result
        proc = self._require_async()
        drain = self._drain if drain is None else drain
        stop_signal: str | None = None
        try:
            if proc.returncode is None and drain > 0:
                stop_signal = _signal(proc.pid, signal.SIGUSR1)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), drain)
            if proc.returncode is None:
                stop_signal = await _terminate_async(proc)
        finally:
            if proc.returncode is None:
                stop_signal = await _terminate_async(proc)
            _kill_group(proc.pid)
        killed = stop_signal in ("SIGTERM", "SIGKILL") and self._remaining() <= 0
        self.result = self._run.collect(_returncode(proc.returncode), stop_signal, killed)
        return self.result

    async def __aenter__(self) -> SippServer:
        return await self.start_async()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async(drain=0 if exc_type is not None else None)

    # -- helpers ----------------------------------------------------------------------------------------

    def _remaining(self) -> float:
        return self._run.started + self._run.wall_clock - time.monotonic()

    def _require_sync(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("SippServer was not started with start() / with")
        return self._proc

    def _require_async(self) -> asyncio.subprocess.Process:
        if self._aproc is None:
            raise RuntimeError("SippServer was not started with start_async() / async with")
        return self._aproc


# -- process handling ---------------------------------------------------------------------------------


def _spawn(run: _SippRun) -> subprocess.Popen[bytes]:
    stdout, stderr = run.open_output("stdout.log"), run.open_output("stderr.log")
    try:
        run.started = time.monotonic()
        return subprocess.Popen(
            run.argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=run.run_dir,
            start_new_session=True,
        )
    finally:
        os.close(stdout)
        os.close(stderr)


async def _spawn_async(run: _SippRun) -> asyncio.subprocess.Process:
    stdout, stderr = run.open_output("stdout.log"), run.open_output("stderr.log")
    try:
        run.started = time.monotonic()
        return await asyncio.create_subprocess_exec(
            *run.argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=run.run_dir,
            start_new_session=True,
        )
    finally:
        os.close(stdout)
        os.close(stderr)


def _signal(pid: int, sig: signal.Signals) -> str:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    return sig.name


def _kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of SIPp's process group (children of <exec> actions); no-op if empty."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _terminate_sync(proc: subprocess.Popen[bytes]) -> str:
    stop_signal = _signal(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=TERM_GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        stop_signal = "SIGKILL"
        proc.wait()
    return stop_signal


async def _terminate_async(proc: asyncio.subprocess.Process) -> str:
    stop_signal = _signal(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), TERM_GRACE_S)
    except TimeoutError:
        _kill_group(proc.pid)
        stop_signal = "SIGKILL"
        await proc.wait()
    return stop_signal


def _returncode(code: int | None) -> int:
    if code is None:
        raise RuntimeError("SIPp was not reaped")
    return code


def _is_listening(run: _SippRun, pid: int) -> bool:
    """True once SIPp (process ``pid``) owns a socket bound (UDP) or listening (TCP) on its SIP address.

    Read from /proc/net/{udp,tcp} and /proc/<pid>/fd: another process holding the port does not count.
    """
    table, state = ("/proc/net/tcp", "0A") if run.transport in TCP_TRANSPORTS else ("/proc/net/udp", "07")
    address = socket.inet_aton(run.local_ip)[::-1].hex().upper() + f":{run.local_port:04X}"
    try:
        with open(table) as sockets:
            next(sockets, None)
            inodes = {
                fields[9]
                for fields in (line.split() for line in sockets)
                if len(fields) > 9 and fields[1] == address and fields[3] == state
            }
    except FileNotFoundError:  # no procfs: SIPp writes its first statistics row once its sockets are open
        return len(_read(run.file("stats.csv")).splitlines()) >= 2
    if not inodes:
        return False
    owned = set()
    with contextlib.suppress(FileNotFoundError, PermissionError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                owned.add(os.readlink(fd))
    return any(f"socket:[{inode}]" in owned for inode in inodes)


# -- reading SIPp's files -------------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _final_stats(path: Path) -> dict[str, str]:
    """Header -> value of the last row of SIPp's ``-trace_stat`` file (';'-separated, one row a dump)."""
    rows = [row for row in csv.reader(_read(path).splitlines(), delimiter=";") if row]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _scenario_screen(screen: str) -> str:
    """The first screen SIPp dumps (per-message counts: sent, retransmitted, timed out, unexpected)."""
    marker = "Statistics Screen"
    head = screen.split(marker, 1)[0]
    return head.rsplit("\n", 1)[0] if marker in screen else head


def _quote(text: str, *, from_end: bool) -> str:
    if len(text) <= MAX_QUOTED_CHARS:
        return text.rstrip()
    if from_end:
        return f"[... {len(text) - MAX_QUOTED_CHARS} chars cut ...]\n{text[-MAX_QUOTED_CHARS:].rstrip()}"
    return f"{text[:MAX_QUOTED_CHARS].rstrip()}\n[... {len(text) - MAX_QUOTED_CHARS} chars cut ...]"


def _require_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"SIPp tests use loopback IPv4 literals only, got {host!r}") from None
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"SIPp tests use loopback only (127.0.0.0/8), got {host}")
