"""Measuring subprocesses on a shared machine: wall and CPU time, peak memory, and the bound each is held to.

Every ratio is taken between measurements made in the same run, interleaved, so that load from other processes
shifts numerator and denominator alike. CPU time (user + system of the process and every descendant it waited
for) is reported next to wall time: on a loaded machine it is the steadier of the two.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GIB = 2**30


@dataclass
class Measured:
    """One subprocess: what it printed, its exit status, and what it cost."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float  # user + system, the process and its waited-for descendants
    max_rss_bytes: int  # the largest single process in the tree (wait4's ru_maxrss)
    peak_tree_rss_bytes: int  # the largest sum over the live process tree, sampled every 20 ms


def _children(pid: int) -> list[int]:
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            text = pathlib.Path(f"/proc/{pid}/task/{task}/children").read_text()
        except OSError:
            continue
        found.extend(int(c) for c in text.split())
    return found


def _rss(pid: int) -> int:
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """The resident memory of `pid` and all its descendants, now."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += _rss(current)
        stack.extend(_children(current))
    return total


@dataclass
class _Sampler:
    pid: int
    peak: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.stop.wait(0.02)


# Bytecode is cached, as in any installed environment (pip compiles the wheel; pytest caches its rewritten test
# modules), but under a scratch prefix, so that the checkout stays clean. The first run of a command fills it.
_PYCACHE = tempfile.mkdtemp(prefix="optconf-bench-pycache-")
_BYTECODE = {"PYTHONPYCACHEPREFIX": _PYCACHE}


def measure(argv: list[str], env: dict[str, str] | None = None, cwd: pathlib.Path = ROOT) -> Measured:
    """Run `argv` to completion and measure it (no timeout: a benchmark that hangs should be seen hanging)."""
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    full_env = inherited | _BYTECODE | (env or {})
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = _Sampler(process.pid)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    readers = [
        threading.Thread(target=lambda: out_chunks.append(process.stdout.read()), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err_chunks.append(process.stderr.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    sampler.stop.set()
    thread.join()
    return Measured(
        argv=argv,
        returncode=process.returncode,
        stdout="".join(out_chunks),
        stderr="".join(err_chunks),
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_bytes=usage.ru_maxrss * 1024,
        peak_tree_rss_bytes=sampler.peak,
    )


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} on {os.cpu_count()} cores"


def cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def verdict(measured: float, bound: float) -> str:
    return "meets" if measured <= bound else "MISSES"


def summary(name: str, measured: float, bound: float, unit: str, detail: str = "") -> dict[str, Any]:
    """One row of the benchmark table (see conftest.py), also stored in pytest-benchmark's extra_info."""
    return {
        "name": name,
        "measured": round(measured, 3),
        "bound": bound,
        "unit": unit,
        "verdict": verdict(measured, bound),
        "detail": detail,
    }
