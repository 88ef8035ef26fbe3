"""PaddlePaddle's adapter tests (own_process/paddle_adapter.py), run in a Python of their own.

Importing paddle 3.3.1 after TensorFlow 2.21 in one process segfaults while paddle loads its core library
(`paddle/base/core.py`); paddle first, then TensorFlow, works. This test session has imported TensorFlow by the
time it reaches this module, so the paddle tests get a fresh interpreter. `pytest --impl=paddle` imports no
TensorFlow and needs none of this.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def test_the_paddle_adapter_tests_pass_in_their_own_process() -> None:
    if importlib.util.find_spec("paddle") is None:
        pytest.skip("paddle is not installed")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(HERE / "own_process/paddle_adapter.py"),
    ]
    result = subprocess.run(command, cwd=HERE.parents[1], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1] and "failed" not in result.stdout.splitlines()[-1]


def test_tensorflow_then_paddle_in_one_process_is_what_crashes() -> None:
    """The reason above, measured: the order matters, and only the order."""
    if importlib.util.find_spec("paddle") is None or importlib.util.find_spec("tensorflow") is None:
        pytest.skip("needs paddle and tensorflow")
    crashed = subprocess.run([sys.executable, "-c", "import tensorflow, paddle"], capture_output=True)
    fine = subprocess.run([sys.executable, "-c", "import paddle, tensorflow"], capture_output=True)
    assert crashed.returncode < 0 and fine.returncode == 0, (crashed.returncode, fine.returncode)
