"""`optconf generate` (the whole corpus, into a scratch folder) and `optconf generate --check`: time and memory.

Both run the exact oracle (mpmath at 50 digits, on gmpy2's integers) over every case, in worker processes, one
per core by default. Bounds: 30 s wall each, 2 GiB peak resident memory over the process tree.
"""

from __future__ import annotations

import json
import multiprocessing
import pathlib
import sys
from typing import Any

from benchmarks._harness import GIB, PYTHON, ROOT, load_average, measure, summary

OPTCONF = pathlib.Path(sys.executable).with_name("optconf")
COMMAND = [str(OPTCONF)] if OPTCONF.exists() else [PYTHON, "-m", "conformance.cli"]


def _backend() -> str:
    import mpmath.libmp

    return str(mpmath.libmp.BACKEND)


def test_mpmath_uses_the_gmpy2_backend() -> None:
    """Without gmpy2 (or with MPMATH_NOGMPY set) mpmath falls back to Python integers, several times slower."""
    assert _backend() == "gmpy"
    # The generator evaluates in spawned workers: they must get the same backend.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_backend) == "gmpy"


def _record_run(record: Any, name: str, result: Any) -> None:
    parallel = result.cpu_s / result.wall_s if result.wall_s else 0.0
    record(
        summary(
            f"{name}, wall",
            result.wall_s,
            30.0,
            "s",
            f"CPU {result.cpu_s:.1f} s (x{parallel:.1f} parallel); {load_average()}",
        )
    )
    record(
        summary(
            f"{name}, peak RSS",
            result.peak_tree_rss_bytes / GIB,
            2.0,
            "GiB",
            f"sum over the process tree; largest single process {result.max_rss_bytes / GIB:.2f} GiB",
        )
    )


def test_generate_whole_corpus(benchmark: Any, record: Any, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "vectors"
    result = benchmark.pedantic(
        measure, args=([*COMMAND, "generate", "--out", str(out), "--quiet"],), rounds=1, iterations=1
    )
    assert result.returncode == 0, result.stderr[-3000:]
    committed = ROOT / "vectors"
    listed = json.loads((committed / "MANIFEST.json").read_text(encoding="utf-8"))["files"]
    for relative in [*listed, "MANIFEST.json"]:
        assert (out / relative).read_bytes() == (committed / relative).read_bytes(), relative
    _record_run(record, "optconf generate (whole corpus)", result)


def test_generate_check(benchmark: Any, record: Any) -> None:
    result = benchmark.pedantic(measure, args=([*COMMAND, "generate", "--check", "--quiet"],), rounds=1, iterations=1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bit-identical" in result.stdout
    _record_run(record, "optconf generate --check", result)
