"""A pytest plugin for the measured suite run (`-p benchmarks.probe`): what the run asked of the frameworks.

When the checks end it writes a JSON object to the file named by OPTCONF_BENCH_PROBE: which frameworks are in
`sys.modules`, and how many optimizers the torch adapter constructed (create, from_config, load) and stepped, so
that the bare loop's workload can be compared with the suite's. It imports no framework itself. The checks run in
a forked process by default, which ends without pytest's session end: so the process that ran the last check
writes, at that check's teardown.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

FRAMEWORKS = ("torch", "tensorflow", "keras", "tf_keras", "jax", "optax")
COUNTS: Counter[str] = Counter()


def _counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        COUNTS[name] += 1
        return method(*args, **kwargs)

    return wrapper


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("OPTCONF_BENCH_PROBE"):
        return
    from conformance.adapters import torch as adapter  # the adapter module; torch itself loads on first use

    for method in ("create", "from_config", "load"):
        setattr(adapter.TorchAdapter, method, _counted("constructions", getattr(adapter.TorchAdapter, method)))
    adapter.TorchLive.step = _counted("steps", adapter.TorchLive.step)  # type: ignore[method-assign]


_RAN_HERE: list[bool] = []  # whether this process ran a check
_WRITTEN: list[bool] = []


def _write() -> None:
    target = os.environ.get("OPTCONF_BENCH_PROBE")
    if target:
        imported = {name: name in sys.modules for name in FRAMEWORKS}
        pathlib.Path(target).write_text(json.dumps({"imported": imported, "torch": dict(COUNTS)}), encoding="utf-8")
        _WRITTEN.append(True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _RAN_HERE.append(True)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None:  # the last check, in whichever process ran it
        _write()


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Checks collected but none run here: a forked process ran them and wrote at its last teardown.
    if not _WRITTEN and (_RAN_HERE or not session.items):
        _write()
