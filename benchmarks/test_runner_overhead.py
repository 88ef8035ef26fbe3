"""`pytest --impl=torch` (level 1) against torch alone stepping the same cases, and the suite's wall time.

Numerator: the whole `python -m pytest --impl=torch -q -p no:cacheprovider` process: interpreter, pytest, the
optconf plugin, the corpus, torch's import, every check, the report. Denominator: `bare_torch.py` in its own
process, minus its input preparation (decoding the corpus, which is the runner's job): interpreter, `import
torch`, and the optimizer constructions and steps the checks ask of torch (workload `suite`; `once` is every
(subject, case) pair stepped once, shown for reference). Rounds interleave the three, and each figure is the
least of its rounds, the one least disturbed by other load. Both run in an empty folder, as in a maintainer's
repository (this checkout's own tests/conftest.py is not theirs), after one unmeasured run of each that fills
the bytecode cache.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
from typing import Any

from benchmarks._harness import GIB, PYTHON, ROOT, Measured, load_average, measure, summary

ROUNDS = int(os.environ.get("OPTCONF_BENCH_ROUNDS", "3"))
SUITE = [PYTHON, "-m", "pytest", "--impl=torch", "-q", "-p", "no:cacheprovider", "-p", "benchmarks.probe"]


def _run_suite(probe: str, where: pathlib.Path, *extra: str) -> Measured:
    # PYTHONPATH only makes the probe plugin importable from outside the checkout.
    return measure([*SUITE, *extra], {"OPTCONF_BENCH_PROBE": probe, "PYTHONPATH": str(ROOT)}, cwd=where)


def _bare(workload: str, where: pathlib.Path) -> tuple[Measured, dict[str, Any]]:
    result = measure([PYTHON, str(ROOT / "benchmarks" / "bare_torch.py"), "--workload", workload], cwd=where)
    assert result.returncode == 0, result.stderr[-2000:]
    return result, json.loads(result.stdout.strip().splitlines()[-1])


def _bare_cost(result: Measured, info: dict[str, Any]) -> tuple[float, float]:
    """(wall, cpu) of the bare process without its input preparation."""
    return result.wall_s - info["prepare_wall_s"], result.cpu_s - info["prepare_cpu_s"]


def test_runner_overhead_against_bare_torch(benchmark: Any, record: Any, tmp_path: Any) -> None:
    probe = str(tmp_path / "probe.json")
    where = tmp_path / "project"
    where.mkdir()
    _bare("suite", where), _run_suite(probe, where)  # unmeasured: fills the bytecode cache

    def rounds() -> list[tuple[tuple[Measured, dict[str, Any]], Measured, tuple[Measured, dict[str, Any]]]]:
        return [(_bare("suite", where), _run_suite(probe, where), _bare("once", where)) for _ in range(ROUNDS)]

    results = benchmark.pedantic(rounds, rounds=1, iterations=1)
    # pytest's log capture attaches a handler to every non-propagating logger, three times per test: torch has
    # dozens. Shown apart, not part of the bound: the gate runs pytest as users do.
    no_logging = min(_run_suite(probe, where, "-p", "no:logging").wall_s for _ in range(ROUNDS))
    suites = [s for _, s, _ in results]
    for suite in suites:
        assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-2000:]
    bare = [_bare_cost(*b) for b, _, _ in results]
    once = [_bare_cost(*o) for _, _, o in results]
    suite_wall, suite_cpu = min(s.wall_s for s in suites), min(s.cpu_s for s in suites)
    bare_wall, bare_cpu = min(w for w, _ in bare), min(c for _, c in bare)
    once_wall, once_cpu = min(w for w, _ in once), min(c for _, c in once)
    info = results[0][0][1]
    probed = json.loads(open(probe, encoding="utf-8").read())
    asked = probed["torch"]
    outcome = suites[0].stdout.strip().splitlines()[-1]
    record(
        summary(
            "runner / bare torch, wall",
            suite_wall / bare_wall,
            1.5,
            "x",
            f"{suite_wall:.1f} s / {bare_wall:.1f} s; torch alone: {info['constructions']} constructions, "
            f"{info['steps']} steps (the suite: {asked.get('constructions', 0)}, {asked.get('steps', 0)})",
        )
    )
    record(summary("runner / bare torch, CPU", suite_cpu / bare_cpu, 1.5, "x", f"{suite_cpu:.1f} s / {bare_cpu:.1f} s"))
    record(
        summary(
            "runner with -p no:logging / bare torch, wall",
            no_logging / bare_wall,
            1.5,
            "x",
            f"{no_logging:.1f} s / {bare_wall:.1f} s: what pytest's log capture costs with torch's loggers",
        )
    )
    record(
        summary(
            "runner / torch stepping each case once, wall",
            suite_wall / once_wall,
            1.5,
            "x",
            f"{suite_wall:.1f} s / {once_wall:.1f} s (CPU {suite_cpu:.1f} s / {once_cpu:.1f} s)",
        )
    )
    record(
        summary(
            "whole suite --impl=torch, wall",
            suite_wall,
            20.0,
            "s",
            f"CPU {suite_cpu:.1f} s; median wall {statistics.median(s.wall_s for s in suites):.1f} s; "
            f"{outcome}; {load_average()}",
        )
    )
    peak = max(s.peak_tree_rss_bytes for s in suites)
    record(summary("whole suite --impl=torch, peak RSS", peak / GIB, 2.0, "GiB", "sum over the process tree"))
    imported = probed["imported"]
    assert imported["torch"], "the probe saw no torch: the suite did not run the torch adapter"
    assert not imported["tensorflow"], "--impl=torch imported TensorFlow"
    assert not imported["jax"], "--impl=torch imported JAX"
