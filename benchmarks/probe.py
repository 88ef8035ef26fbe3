"""A pytest plugin for the measured suite run (`-p benchmarks.probe`): what the run asked of the frameworks.

When pytest ends it writes a JSON object to the file named by OPTCONF_BENCH_PROBE: which frameworks are in
`sys.modules`, and how many optimizers the torch adapter constructed (create, from_config, load) and stepped, so
that the bare loop's workload can be compared with the suite's. It imports no framework itself.
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


def pytest_unconfigure(config: pytest.Config) -> None:
    target = os.environ.get("OPTCONF_BENCH_PROBE")
    if target:
        imported = {name: name in sys.modules for name in FRAMEWORKS}
        pathlib.Path(target).write_text(json.dumps({"imported": imported, "torch": dict(COUNTS)}), encoding="utf-8")
