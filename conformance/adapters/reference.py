"""The project's own NumPy evaluator as an implementation: `--impl=reference`, the runner's self-check."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import reference
from reference._arith import NumpyOps
from reference.sparse import SparseGrad
from reference.stepping import step
from reference.trajectory import observe, to_format, with_state
from reference.vectors.codec import decode_hparams, decode_tensor, encode_hparams, encode_input

from ..adapter import Capabilities, LiveOptimizer

__all__ = ["ReferenceAdapter", "subjects"]

_STATE_FILE = "state.json"


class ReferenceLive:
    """The reference step evaluated by NumPy in the format's work dtype, one rounding per store (on large tensors,
    with numba installed, by one compiled loop that gives the same bits)."""

    def __init__(self, dialect: reference.Dialect, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> None:
        self._dialect = dialect
        self._given = dict(hparams)
        self._hp = dialect.hparams(hparams)
        self._ops = NumpyOps(reference.format_of(np.asarray(params[0]).dtype.name if params else "float32"))
        self._theta = [self._ops.array(p) for p in params]
        self._state = dialect.family.init(self._ops, self._hp, dialect.knobs, self._theta)
        self._grads: list[np.ndarray] = []

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        self._grads = [g for g in grads if isinstance(g, np.ndarray)]
        row = [
            SparseGrad(g.indices, to_format(g.values, self._ops.fmt)) if isinstance(g, SparseGrad) else g for g in grads
        ]
        with np.errstate(all="ignore"):
            # The new state may be written over the old (the compiled loop's fast store): this object hands out
            # only copies of it.
            self._theta, self._state = step(
                self._ops, self._dialect, self._hp, self._state, self._theta, row, loss, overwrite=True
            )

    def step_replicated(self, per_replica: Sequence[Sequence[np.ndarray]]) -> None:
        # Replicas are summed before the step, as the frameworks' default aggregation does.
        summed = [sum(self._ops.array(g) for g in tensors) for tensors in zip(*per_replica, strict=True)]
        self.step(summed)

    def _observed(self) -> reference.Step:
        return observe(self._ops, self._dialect, self._theta, self._state)

    def params(self) -> list[np.ndarray]:
        return self._observed().params

    def state(self) -> dict[str, list[np.ndarray]]:
        return self._observed().state

    def count(self) -> int | None:
        return self._state.count if self._dialect.counter else None

    def gradients(self) -> list[np.ndarray] | None:
        return self._grads

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        self._theta = [self._ops.array(p) for p in params]
        self._state = with_state(self._ops, self._dialect, self._state, state, count)

    def config(self) -> dict[str, Any]:
        return {"dialect": self._dialect.id, "hparams": encode_hparams(self._given)}

    def save(self, directory: pathlib.Path) -> None:
        fmt = self._ops.fmt
        doc = {
            "dtype": fmt.name,
            "count": self._state.count,
            "slots": {name: [encode_input(a, fmt) for a in arrays] for name, arrays in self.state().items()},
        }
        (directory / _STATE_FILE).write_text(json.dumps(doc), encoding="utf-8")


class ReferenceAdapter:
    """Claims every dialect, every format and every capability."""

    def __init__(self, dialects: Sequence[str] | None = None, *, name: str = "reference") -> None:
        ids = tuple(dialects or reference.DIALECTS)
        self.name = name
        self.capabilities = Capabilities(
            dialects=ids,
            dtypes=tuple(reference.DTYPES),
            set_state=True,
            config=True,
            serialize=True,
            sparse=True,
            loss=True,
            replicas=True,
        )

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> ReferenceLive:
        return ReferenceLive(reference.get(dialect), hparams, params)

    def from_config(self, dialect: str, config: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        if config.get("dialect") != dialect:
            raise ValueError(f"config is for {config.get('dialect')!r}, not {dialect}")
        return self.create(dialect, decode_hparams(dict(config["hparams"])), params)

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        live = self.create(dialect, hparams, params)
        doc = json.loads((directory / _STATE_FILE).read_text(encoding="utf-8"))
        fmt = reference.format_of(doc["dtype"])
        slots = {name: [_dense(t, fmt) for t in tensors] for name, tensors in doc["slots"].items()}
        live.set_state(params, slots, doc["count"])
        return live

    def versions(self) -> dict[str, str]:
        return {"optconf reference": reference.__version__, "numpy": np.__version__}


def _dense(record: Mapping[str, Any], fmt: reference.FloatFormat) -> np.ndarray:
    """A slot tensor that `save` wrote: dense, as every slot is."""
    value = decode_tensor(record, fmt)
    if not isinstance(value, np.ndarray):
        raise ValueError("a saved state slot holds row indices; slots are dense")
    return value


def subjects() -> list[ReferenceAdapter]:
    return [ReferenceAdapter()]
