"""Shared helpers for the benches in this directory.

Every bench in ``bench/`` is a script run from the repository root, e.g.
``.venv/bin/python bench/parser.py --json bench/out/parser.json``.  The helpers here give
them the same command-line conventions (``--json PATH``, ``--cpu N``/``--no-pin``), the same
environment report and the same timing statistics, so that figures in ``bench/RESULTS.md``
are comparable from one bench to the next.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Add the options every bench takes: ``--json``, ``--cpu`` and ``--no-pin``."""
    parser.add_argument(
        "--json",
        metavar="PATH",
        type=Path,
        default=None,
        help="also write every figure of the run to PATH as JSON (parent dirs are created)",
    )
    parser.add_argument(
        "--cpu",
        metavar="N",
        type=int,
        default=None,
        help="pin the process to core N (default: the highest-numbered core it may run on)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the process to a core",
    )


@dataclass
class Pinning:
    pinned: bool
    cpu: int | None
    detail: str


def pin_cpu(cpu: int | None = None, *, enabled: bool = True) -> Pinning:
    """Pin the current process to one core, when the platform allows it.

    Without ``cpu``, the highest-numbered core of the current affinity set is chosen
    (core 0 usually takes most of the interrupts).  Never raises: a bench still runs,
    unpinned, where ``os.sched_setaffinity`` does not exist or is refused.
    """
    if not enabled:
        return Pinning(False, None, "pinning disabled (--no-pin)")
    getaff = getattr(os, "sched_getaffinity", None)
    setaff = getattr(os, "sched_setaffinity", None)
    if getaff is None or setaff is None:
        return Pinning(False, None, "os.sched_setaffinity not available on this platform")
    try:
        allowed = sorted(getaff(0))
        core = allowed[-1] if cpu is None else cpu
        setaff(0, {core})
        now = getaff(0)
    except (OSError, ValueError, IndexError) as exc:
        return Pinning(False, None, f"could not pin: {exc}")
    if now != {core}:
        return Pinning(False, None, f"affinity is {sorted(now)} after pinning to {core}")
    return Pinning(True, core, f"pinned to core {core} of {len(allowed)} allowed")


def environment(pinning: Pinning) -> dict[str, Any]:
    """What a reader needs to reproduce or judge a figure."""
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "python": sys.version.split()[0],
        "python_full": sys.version,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "pinned": pinning.pinned,
        "cpu": pinning.cpu,
        "pinning": pinning.detail,
        "loadavg_at_start": load_average(),
        "git": git_revision(),
    }


def git_revision() -> str | None:
    """``git describe --always --dirty`` of the repository the bench is in, if there is one."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def print_environment(env: dict[str, Any]) -> None:
    print(f"Python {env['python']} ({env['implementation']}) on {env['platform']}")
    pinned = "yes" if env["pinned"] else "no"
    print(f"CPUs: {env['cpu_count']}; pinned: {pinned} ({env['pinning']})")
    print(f"Date: {env['date']}; load average: {env['loadavg_at_start']}; git: {env['git']}")


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=False)
        f.write("\n")


# --- timing -------------------------------------------------------------------------------


@dataclass
class Measurement:
    """Rates (operations per second) of one case over several repetitions."""

    rates: list[float] = field(default_factory=list)
    ops_per_rep: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def spread(self) -> float:
        """(max - min) / median, a rough figure of the run's noise."""
        if len(self.rates) < 2 or self.median == 0:
            return 0.0
        return (max(self.rates) - min(self.rates)) / self.median

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_per_s": self.median,
            "min_per_s": min(self.rates) if self.rates else 0.0,
            "max_per_s": max(self.rates) if self.rates else 0.0,
            "spread": self.spread,
            "ops_per_repetition": self.ops_per_rep,
            "repetitions_per_s": self.rates,
        }


def run_loop(fn: Callable[[bytes], object], items: Sequence[bytes], loops: int) -> float:
    """Seconds taken by ``loops`` passes of ``fn`` over ``items``."""
    perf = time.perf_counter
    t0 = perf()
    for _ in range(loops):
        for item in items:
            fn(item)
    return perf() - t0


def calibrate(fn: Callable[[bytes], object], items: Sequence[bytes], duration: float, warmup: float) -> int:
    """Warm ``fn`` up for about ``warmup`` seconds; return the loop count of ~``duration`` s."""
    loops = 1
    spent = 0.0
    elapsed = 0.0
    while True:
        elapsed = run_loop(fn, items, loops)
        spent += elapsed
        if elapsed >= 0.02 and spent >= warmup:
            break
        loops *= 2
    return max(1, round(loops * duration / elapsed))


def measure_pair(
    cases: Sequence[tuple[str, Callable[[bytes], object]]],
    items: Sequence[bytes],
    *,
    duration: float,
    iterations: int | None,
    repeat: int,
    warmup: float,
) -> dict[str, Measurement]:
    """Measure several implementations of the same work on the same items, interleaved.

    Each repetition runs every implementation once, one after the other, so a slow spell
    of the machine hits them alike.  The rate is ``len(items) * loops / seconds``.
    """
    loops: dict[str, int] = {}
    for name, fn in cases:
        loops[name] = iterations if iterations is not None else calibrate(fn, items, duration, warmup)
        if iterations is not None:  # still warm up
            run_loop(fn, items, max(1, iterations // 10))
    out = {name: Measurement(ops_per_rep=loops[name] * len(items)) for name, _ in cases}
    for _ in range(repeat):
        for name, fn in cases:
            gc.collect()
            seconds = run_loop(fn, items, loops[name])
            out[name].rates.append(loops[name] * len(items) / seconds)
    return out
