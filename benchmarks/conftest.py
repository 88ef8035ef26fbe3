"""The benchmark table: every benchmark records its measured value against its bound; the table prints at the end.

Nothing here fails on time by default: the machine is shared and wall times move with its load. Set
OPTCONF_BENCH_STRICT=1 to turn a missed bound into a test error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from benchmarks._harness import cpu_model, load_average

ROWS = pytest.StashKey[list[dict[str, Any]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ROWS] = []


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[Callable[[dict[str, Any]], None]]:
    """record(row): add a row (see _harness.summary) to the table and to pytest-benchmark's extra_info."""
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        request.config.stash[ROWS].append(row)
        if "benchmark" in request.fixturenames:
            request.getfixturevalue("benchmark").extra_info[row["name"]] = row

    yield add
    missed = [r["name"] for r in rows if r["verdict"] != "meets"]
    if missed and os.environ.get("OPTCONF_BENCH_STRICT") == "1":
        pytest.fail(f"OPTCONF_BENCH_STRICT: missed bounds: {', '.join(missed)}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    terminalreporter.section("optconf performance: measured vs bound")
    terminalreporter.write_line(f"machine: {os.cpu_count()} cores, {cpu_model()}, {load_average()} at the end")
    name_width = max(len(r["name"]) for r in rows)
    for r in rows:
        value = f"{r['measured']:.2f} {r['unit']}".ljust(12)
        bound = f"<= {r['bound']:g} {r['unit']}".ljust(12)
        terminalreporter.write_line(
            f"  {r['name'].ljust(name_width)}  {value} {bound} {r['verdict']:6s}  {r['detail']}"
        )
