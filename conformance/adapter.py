"""The adapter protocol: how the runner drives any optimizer implementation.

An adapter makes live optimizers for the dialects it claims; a live optimizer takes gradients and reports its
parameters and state as NumPy arrays, under the dialect's own slot names. Methods beyond the core four are needed
only for the capabilities an adapter declares; a check that needs an undeclared capability is skipped with the
reason, never failed. `StatefulOptimizer` and `FullAdapter` type those methods; the runner narrows to them only
once the capability is declared.

An adapter may also carry three optional members, read only through the functions named here, which hold their
defaults:

- `manifest`: the path of its own known-failure manifest (`own_manifest`; default none, and a built-in then
  falls back to the one in `conformance.registry`);
- `versions()`: framework name -> version, for the report header (`versions_of`; default none reported);
- `how_to_claim`: capability -> how a user claims it, for what the adapter does not claim (`claim_hint`; default
  no hint).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from reference.sparse import SparseGrad

__all__ = [
    "Adapter",
    "Capabilities",
    "FullAdapter",
    "LiveOptimizer",
    "StatefulOptimizer",
    "StepResult",
    "claim_hint",
    "drive",
    "handed",
    "own_manifest",
    "read",
    "step_through",
    "versions_of",
]


@dataclass(frozen=True)
class Capabilities:
    """What an adapter claims.

    - `set_state`: `LiveOptimizer.set_state` (teacher forcing, and cases whose state is an input: a counter that
      starts late, or slots given per element).
    - `config`: `LiveOptimizer.config` and `Adapter.from_config`.
    - `serialize`: `LiveOptimizer.save` and `Adapter.load`, through the framework's native format.
    - `sparse`: `step` accepts `reference.sparse.SparseGrad` entries.
    - `loss`: `step` uses its `loss` argument (iRprop+).
    - `replicas`: `LiveOptimizer.step_replicated` aggregates per-replica gradients.
    """

    dialects: tuple[str, ...]
    dtypes: tuple[str, ...] = ("float32", "float64")
    set_state: bool = False
    config: bool = False
    serialize: bool = False
    sparse: bool = False
    loss: bool = False
    replicas: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {name: list(v) if isinstance(v, tuple) else v for name, v in self.__dict__.items()}


@runtime_checkable
class LiveOptimizer(Protocol):
    """One optimizer instance over its own copy of the parameters."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None: ...

    def params(self) -> list[np.ndarray]: ...

    def state(self) -> dict[str, list[np.ndarray]]:
        """Every state slot, keyed by the dialect's slot name, one array per parameter tensor."""
        ...

    def count(self) -> int | None:
        """The framework's step counter, or None where it keeps none."""
        ...

    def gradients(self) -> list[np.ndarray] | None:
        """The gradients as the framework holds them after the last step (None if it keeps none): the runner
        compares them with what it passed in, to catch an optimizer that mutates its input."""
        ...


class StatefulOptimizer(LiveOptimizer, Protocol):
    """The optional methods, each behind a capability."""

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        """Overwrite parameters, every slot and the counter (capability `set_state`)."""
        ...

    def config(self) -> dict[str, Any]:
        """The framework's own serialisable configuration (capability `config`)."""
        ...

    def save(self, directory: pathlib.Path) -> None:
        """Write the optimizer state (and parameters) in the framework's native format (capability `serialize`)."""
        ...

    def step_replicated(self, per_replica: Sequence[Sequence[np.ndarray]]) -> None:
        """One step from gradients computed on several replicas (capability `replicas`)."""
        ...


@runtime_checkable
class Adapter(Protocol):
    name: str
    capabilities: Capabilities

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        """A fresh optimizer with these framework-named hyperparameters over copies of `params`."""
        ...


class FullAdapter(Adapter, Protocol):
    """The optional methods, each behind a capability."""

    def from_config(self, dialect: str, config: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        """A fresh optimizer built from `LiveOptimizer.config()` output (capability `config`)."""
        ...

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        """A fresh optimizer whose state (and parameters) come from `save`'s directory (capability `serialize`)."""
        ...


# The optional members. Each is duck-typed (a user's adapter need not have it), so it is read here, once, with its
# default, rather than declared in a protocol that every adapter would then have to satisfy.


def own_manifest(adapter: Adapter) -> pathlib.Path | None:
    """The adapter's own known-failure manifest: its `manifest` attribute (a path), or None if it names none."""
    manifest = getattr(adapter, "manifest", None)
    return pathlib.Path(manifest) if manifest else None


def versions_of(adapter: Adapter) -> dict[str, str]:
    """What the adapter's `versions()` reports (framework name -> version), or nothing if it has no `versions`."""
    versions = getattr(adapter, "versions", None)
    if versions is None:
        return {}
    reported: dict[str, str] = versions()
    return reported


def claim_hint(adapter: Adapter, capability: str) -> str | None:
    """How a user claims `capability` for their class (the adapter's `how_to_claim`), if the adapter says."""
    hints: Mapping[str, str] = getattr(adapter, "how_to_claim", {})
    return hints.get(capability)


@dataclass(frozen=True)
class StepResult:
    params: list[np.ndarray]
    state: dict[str, list[np.ndarray]]
    count: int | None


def handed(value: Any) -> Any:
    """A fresh, writable copy of what the runner hands to an implementation: arrays, row-sparse gradients, and the
    lists, tuples and dicts holding them. The corpus itself is read-only; an implementation may keep and update
    what it is given without changing what any later check expects."""
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True)
    if isinstance(value, SparseGrad):
        return SparseGrad(tuple(int(i) for i in value.indices), np.array(value.values, copy=True))
    if isinstance(value, Mapping):
        return {key: handed(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(handed(v) for v in value)
    return value


def read(optimizer: LiveOptimizer) -> StepResult:
    """Everything the optimizer reports, copied out: a result kept for a later comparison cannot change when the
    implementation later updates the buffers it returned."""
    state = optimizer.state()
    return StepResult(
        [np.array(p, copy=True) for p in optimizer.params()],
        {name: [np.array(a, copy=True) for a in arrays] for name, arrays in state.items()},
        optimizer.count(),
    )


def drive(
    adapter: Adapter,
    dialect: str,
    hparams: Mapping[str, Any],
    params: Sequence[np.ndarray],
    grads: Sequence[Sequence[Any]],
    losses: Sequence[float] | None = None,
) -> list[StepResult]:
    """Free-running trajectory: create once, then step through `grads`, reading everything after each step."""
    return step_through(adapter.create(dialect, handed(dict(hparams)), handed(list(params))), grads, losses)


def step_through(
    optimizer: LiveOptimizer, grads: Sequence[Sequence[Any]], losses: Sequence[float] | None = None
) -> list[StepResult]:
    """Step `optimizer` once per row of `grads` (with the loss of the same step), reading everything after each:
    the one free run, which `drive` and the checks share."""
    results = []
    for index, row in enumerate(grads):
        optimizer.step(handed(list(row)), None if losses is None else float(losses[index]))
        results.append(read(optimizer))
    return results
