"""Every built-in implementation through the real runner, with its own manifest applied: each run exits 0."""

import json
import subprocess
import sys

import pytest

from conformance.matrix import render
from conformance.registry import BUILT_INS

SPECS = {b.name: b for b in BUILT_INS}


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_builtin_implementation_conforms_or_records_why(spec, tmp_path):
    if not SPECS[spec].runs()[0].installed():
        pytest.skip(f"{SPECS[spec].requires} is not installed")
    evidence = tmp_path / "evidence.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "conformance",
            f"--impl={spec}",
            f"--optconf-json={evidence}",
            "-q",
            "-p",
            "no:cacheprovider",
            "--strict-manifest",
            "-x",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    doc = json.loads(evidence.read_text())
    assert doc["summary"].get("passed", 0) > 0
    assert "failed" not in doc["summary"] and "xpassed" not in doc["summary"]
    assert doc["manifest"]["stale"] == []


def test_matrix_renders_cells_and_reasons():
    doc = {
        "impl": "x",
        "exitStatus": 0,
        "seconds": 1.0,
        "corpus": {"version": "1.0.0", "sha256": "ab" * 32},
        "adapters": [{"name": "sub", "versions": {"fw": "1.2"}}],
        "results": [
            {"impl": "sub", "dialect": "adagrad/torch", "check": "trajectory", "status": "passed"},
            {"impl": "sub", "dialect": "adagrad/torch", "check": "trajectory", "status": "xfailed", "reason": "known"},
            {"impl": "sub", "dialect": "adagrad/torch", "check": "replicas", "status": "skipped", "reason": "no"},
            {"impl": "sub", "dialect": "adagrad/torch", "check": "checkpoint", "status": "failed"},
        ],
    }
    text = render([doc])
    assert "| `sub` | fw 1.2 | `adagrad/torch` | *xfail 1* ([1]); pass 1 |" in text
    assert "**fail 1**" in text and "*skip 1* ([2])" in text
    assert "1. known" in text and "2. no" in text
