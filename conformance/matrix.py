"""`optconf matrix`: run every installed built-in implementation through the level-1 corpus, in its own process,
and publish the Markdown matrix in CONFORMANCE.md with the JSON evidence beside it."""

from __future__ import annotations

import importlib.util
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

from .report import ALL_CHECKS

__all__ = ["BUILT_IN_SUBJECTS", "render", "run_all", "write_into"]

# SPEC -> the module whose presence means the framework is installed.
BUILT_IN_SUBJECTS = {
    "reference": "numpy",
    "torch": "torch",
    "keras": "keras",
    "tf_keras": "tf_keras",
    "tf_raw": "tensorflow",
    "optax": "optax",
    "conformance.community": "keras",
}
# Further runs of a SPEC under another environment: Keras 3 picks its backend once per process.
VARIANTS = {
    "keras@jax": ("keras", {"KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "1"}, "jax"),
    "keras@torch": ("keras", {"KERAS_BACKEND": "torch"}, "torch"),
}
BEGIN, END = "<!-- BEGIN MATRIX (optconf matrix) -->\n", "<!-- END MATRIX -->"


def installed(spec: str) -> bool:
    if spec in VARIANTS:
        base, _, extra = VARIANTS[spec]
        return installed(base) and importlib.util.find_spec(extra) is not None
    return importlib.util.find_spec(BUILT_IN_SUBJECTS.get(spec, spec.split(":")[0])) is not None


def run_one(spec: str, folder: pathlib.Path, log: TextIO) -> dict[str, Any]:
    """`pytest --impl=SPEC` at level 1 in a fresh process; returns its JSON evidence (plus exit status and time)."""
    evidence = folder / f"{spec.replace('/', '_').replace(':', '_')}.json"
    impl, env = (VARIANTS[spec][0], os.environ | VARIANTS[spec][1]) if spec in VARIANTS else (spec, None)
    started = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "conformance",
        f"--impl={impl}",
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
        raise RuntimeError(f"--impl={spec} produced no evidence (exit {result.returncode}): {' / '.join(tail)}")
    doc = json.loads(evidence.read_text(encoding="utf-8"))
    doc["exitStatus"], doc["seconds"], doc["run"] = result.returncode, round(seconds, 1), spec
    print(
        f"optconf matrix: --impl={spec}: exit {result.returncode}, {dict(Counter(doc['summary']))}, {seconds:.0f} s",
        file=log,
        flush=True,
    )
    return doc


def run_all(specs: Sequence[str], log: TextIO) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="optconf-matrix-") as folder:
        return [run_one(spec, pathlib.Path(folder), log) for spec in specs]


def render(evidence: Sequence[dict[str, Any]]) -> str:
    """The Markdown matrix: a row per implementation and dialect, a column per check, reasons as footnotes."""
    reasons: list[str] = []
    ran = {r["check"] for doc in evidence for r in doc["results"]}
    checks = [c for c in ALL_CHECKS if c in ran]
    lines = [
        "| Implementation | Versions | Dialect | " + " | ".join(f"`{c}`" for c in checks) + " |",
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
