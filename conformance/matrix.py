"""`optconf matrix`: run every installed built-in implementation through the level-1 corpus, in its own process,
and publish the Markdown matrix in CONFORMANCE.md with the JSON evidence beside it."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, TextIO

from .checks import BY_NAME
from .registry import MatrixRun
from .report import ALL_CHECKS

__all__ = ["render", "run_all", "run_one", "write_into"]

BEGIN, END = "<!-- BEGIN MATRIX (optconf matrix) -->\n", "<!-- END MATRIX -->"


def run_one(run: MatrixRun, folder: pathlib.Path, log: TextIO) -> dict[str, Any]:
    """`pytest --impl=...` at level 1 in a fresh process; returns its JSON evidence (plus exit status and time)."""
    evidence = folder / f"{run.name.replace('/', '_').replace(':', '_')}.json"
    env = os.environ | dict(run.environment) if run.environment else None
    started = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "conformance",
        f"--impl={run.impl}",
        "--optconf-level=1",
        f"--optconf-json={evidence}",
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-rN",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env)
    seconds = time.perf_counter() - started
    if not evidence.exists():
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise RuntimeError(f"--impl={run.name} produced no evidence (exit {result.returncode}): {' / '.join(tail)}")
    doc = json.loads(evidence.read_text(encoding="utf-8"))
    doc["exitStatus"], doc["seconds"], doc["run"] = result.returncode, round(seconds, 1), run.name
    print(
        f"optconf matrix: --impl={run.name}: exit {result.returncode}, {dict(Counter(doc['summary']))}, "
        f"{seconds:.0f} s",
        file=log,
        flush=True,
    )
    return doc


def run_all(runs: Sequence[MatrixRun], log: TextIO) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="optconf-matrix-") as folder:
        return [run_one(run, pathlib.Path(folder), log) for run in runs]


def render(evidence: Sequence[dict[str, Any]]) -> str:
    """The Markdown matrix: a row per implementation and dialect, a column per check, reasons as footnotes."""
    reasons: list[str] = []
    ran = {r["check"] for doc in evidence for r in doc["results"]}
    checks = [c for c in ALL_CHECKS if c in ran]
    lines = [
        "| Implementation | Versions | Dialect | " + " | ".join(f"`{BY_NAME[c].heading}`" for c in checks) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in checks) + " |",
    ]
    for doc in evidence:
        versions = {a["name"]: a.get("versions", {}) for a in doc["adapters"]}
        rows: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for result in doc["results"]:
            rows[result["impl"], result["dialect"]][result["check"]].append(result)
        for (impl, dialect), by_check in sorted(rows.items()):
            shown = ", ".join(f"{k} {v}" for k, v in versions.get(impl, {}).items())
            cells = [_cell(by_check.get(check, []), reasons) for check in checks]
            lines.append(f"| `{impl}` | {shown} | `{dialect}` | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Cells count checks over every format and level-1 case. **fail** is a deviation nobody has "
        "recorded; *xfail* is a recorded one (its reason below); skips say what is missing."
    )
    lines.append("")
    lines.extend(f"{n}. {reason}" for n, reason in enumerate(reasons, start=1))
    runs = ", ".join(f"`{d.get('run', d['impl'])}`: exit {d['exitStatus']}, {d['seconds']:.0f} s" for d in evidence)
    corpus = evidence[0]["corpus"] if evidence else {}
    lines += [
        "",
        f"Measured with `optconf matrix` on corpus {corpus.get('version')} "
        f"(sha256 {str(corpus.get('sha256'))[:16]}…); {runs}.",
    ]
    return "\n".join(lines) + "\n"


def _cell(results: list[dict[str, Any]], reasons: list[str]) -> str:
    if not results:
        return "–"
    counts = Counter(r["status"] for r in results)
    parts = []
    if counts["failed"] or counts["xpassed"]:
        parts.append(f"**fail {counts['failed'] + counts['xpassed']}**")
    for status, word in (("xfailed", "xfail"), ("skipped", "skip")):
        if counts[status]:
            notes = sorted({_note(r.get("reason", ""), reasons) for r in results if r["status"] == status})
            parts.append(f"*{word} {counts[status]}* ({', '.join(notes)})")
    if counts["passed"]:
        parts.append(f"pass {counts['passed']}")
    return "; ".join(parts)


def _note(reason: str, reasons: list[str]) -> str:
    text = " ".join(reason.split()).replace("|", "\\|") or "no reason given"
    if text not in reasons:
        reasons.append(text)
    return f"[{reasons.index(text) + 1}]"


def write_into(document: pathlib.Path, evidence_path: pathlib.Path, evidence: Sequence[dict[str, Any]]) -> None:
    text = document.read_text(encoding="utf-8")
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"{document} lacks the matrix markers {BEGIN.strip()} ... {END}")
    document.write_text(text[: start + len(BEGIN)] + render(evidence) + text[stop:], encoding="utf-8")
    evidence_path.write_text(json.dumps(list(evidence), indent=1) + "\n", encoding="utf-8")
