"""An optconf adapter for tinyopt.Adagrad, written against optconf's public API only.

Run as: pytest --impl=tests/guide/tinyopt_adapter.py:ADAPTER --manifest=tests/guide/tinyopt.toml
(with tinyopt importable). docs/writing-an-adapter.md walks through it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tinyopt

from conformance.adapter import Capabilities, LiveOptimizer
from conformance.kit import (
    check_arity,
    check_dialect,
    check_state,
    common_dtype,
    framework_kwargs,
    json_config,
    to_numpy,
)
from reference.sparse import SparseGrad

DIALECT = "adagrad/torch"
# The dialect's framework names that tinyopt spells differently; `lr_decay` and `weight_decay` are the same.
RENAME = {"lr": "learning_rate", "eps": "epsilon", "initial_accumulator_value": "initial_accumulator"}
SLOT = "sum"  # the dialect's name for tinyopt's `accumulators`; its counter `step` is tinyopt's `iterations`
STATE_FILE = "tinyopt.npz"


class TinyoptLive:
    """One tinyopt.Adagrad, seen through the dialect's names; `dtype` is the format of the parameters handed in."""

    def __init__(self, optimizer: tinyopt.Adagrad, dtype: str) -> None:
        self.optimizer = optimizer
        self.dtype = dtype

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        check_arity(grads, len(self.optimizer.params), "gradient")
        self.optimizer.step([_tinyopt_grad(g) for g in grads])

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p, self.dtype) for p in self.optimizer.params]

    def state(self) -> dict[str, list[np.ndarray]]:
        return {SLOT: [to_numpy(a, self.dtype) for a in self.optimizer.accumulators]}

    def count(self) -> int | None:
        return self.optimizer.iterations

    def gradients(self) -> list[np.ndarray] | None:
        return None  # tinyopt keeps no gradients

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        # Teacher forcing calls this before every step of the same instance: overwrite in place what `step` reads.
        check_arity(params, len(self.optimizer.params), "parameter")
        check_state([SLOT], state, len(self.optimizer.params))
        for held, value in zip(self.optimizer.params, params, strict=True):
            if np.shape(value) != held.shape:
                raise ValueError(f"parameter of shape {np.shape(value)} for one of {held.shape}")
            held[...] = value
        saved = {f"accumulator_{i}": np.asarray(a) for i, a in enumerate(state[SLOT])}
        iterations = self.optimizer.iterations if count is None else count
        self.optimizer.load_state_dict(saved | {"iterations": np.array(iterations)})

    def config(self) -> dict[str, Any]:
        return json_config(self.optimizer.get_config())

    def save(self, directory: pathlib.Path) -> None:
        self.optimizer.save(pathlib.Path(directory) / STATE_FILE)


def _tinyopt_grad(grad: Any) -> np.ndarray | tinyopt.RowSparse:
    # optconf's row-sparse gradient becomes tinyopt's own; repeated rows stay repeated, for tinyopt to sum.
    if isinstance(grad, SparseGrad):
        return tinyopt.RowSparse(np.array(grad.indices, dtype=np.int64), np.asarray(grad.values))
    return np.asarray(grad)


class TinyoptAdapter:
    """tinyopt.Adagrad (or a subclass with the same API) as an implementation of adagrad/torch."""

    def __init__(self, optimizer_class: type[tinyopt.Adagrad] = tinyopt.Adagrad, name: str = "tinyopt.Adagrad") -> None:
        self.optimizer_class = optimizer_class
        self.name = name
        self.capabilities = Capabilities(
            dialects=(DIALECT,),
            dtypes=("float16", "bfloat16", "float32", "float64"),
            set_state=True,
            config=True,
            serialize=True,
            sparse=True,
        )

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, DIALECT, dialect)
        return self._build(hparams, params)

    def _build(self, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> TinyoptLive:
        # The dialect's defaults, not tinyopt's (epsilon 1e-10, not 1e-6); tinyopt has no `maximize`.
        kwargs = framework_kwargs(DIALECT, hparams, lacks=("maximize",), rename=RENAME)
        return TinyoptLive(self.optimizer_class(list(params), **kwargs), common_dtype(params))

    def from_config(self, dialect: str, config: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, DIALECT, dialect)
        return TinyoptLive(self.optimizer_class.from_config(list(params), config), common_dtype(params))

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        check_dialect(self.name, DIALECT, dialect)
        live = self._build(hparams, params)
        live.optimizer.load(pathlib.Path(directory) / STATE_FILE)
        return live

    def versions(self) -> dict[str, str]:
        return {"tinyopt": "example"}


ADAPTER = TinyoptAdapter()
