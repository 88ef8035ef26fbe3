"""The adapter protocol: how the runner drives any optimizer implementation.

An adapter makes live optimizers for a dialect; a live optimizer takes gradients and reports its parameters
and state as NumPy arrays, under the dialect's own slot names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Adapter", "Capabilities", "LiveOptimizer", "StepResult", "drive"]


@dataclass(frozen=True)
class Capabilities:
    """What an adapter claims; a case outside its claims is skipped with the reason, never failed."""

    dialects: tuple[str, ...]
    dtypes: tuple[str, ...] = ("float32", "float64")
    set_state: bool = False
    serialize: bool = False
    sparse: bool = False
    loss: bool = False
    replicas: bool = False


@runtime_checkable
class LiveOptimizer(Protocol):
    """One optimizer instance over its own copy of the parameters."""

    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None: ...

    def params(self) -> list[np.ndarray]: ...

    def state(self) -> dict[str, list[np.ndarray]]:
        """Every state slot, keyed by the dialect's slot name, one array per parameter tensor."""
        ...

    def count(self) -> int | None:
        """The framework's step counter, or None where it keeps none."""
        ...


@runtime_checkable
class Adapter(Protocol):
    name: str
    capabilities: Capabilities

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        """A fresh optimizer with these framework-named hyperparameters over copies of `params`."""
        ...


@dataclass(frozen=True)
class StepResult:
    params: list[np.ndarray]
    state: dict[str, list[np.ndarray]]
    count: int | None


def drive(
    adapter: Adapter,
    dialect: str,
    hparams: Mapping[str, Any],
    params: Sequence[np.ndarray],
    grads: Sequence[Sequence[np.ndarray]],
    losses: Sequence[float] | None = None,
) -> list[StepResult]:
    """Free-running trajectory: create once, then step through `grads`, reading everything after each step."""
    optimizer = adapter.create(dialect, hparams, [np.array(p, copy=True) for p in params])
    results = []
    for index, row in enumerate(grads):
        optimizer.step([np.array(g, copy=True) for g in row], None if losses is None else float(losses[index]))
        results.append(StepResult(optimizer.params(), optimizer.state(), optimizer.count()))
    return results
