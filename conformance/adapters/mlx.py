"""The MLX adapter: `mlx.optimizers.Adagrad` (or a subclass with its API) on the CPU.

An MLX optimizer updates a tree of parameters: `apply_gradients(grads, params)` returns the new parameters and
keeps its state in `optimizer.state`, a dict holding the step counter `step` (a uint64 array, incremented before
the update), the learning rate `learning_rate` (a float32 array), and per parameter a dict of slots (`v` for
Adagrad). The adapter hands the parameter tensors over as the dict {"p0": ..., "p1": ...}: a list would not do,
since `Optimizer.init` turns a dict state into a list of its keys when the parameters are a list.

- `state()` reports each parameter's `v`; `count()` is `state["step"]`.
- `set_state` writes the parameters, every parameter's `v` and `step` into the state dict in place.
- `save` is `mx.savez` of `tree_flatten(optimizer.state)` (MLX's own npz writer); `load` builds a fresh optimizer
  with the case's hyperparameters and sets `optimizer.state` to `tree_unflatten` of `mx.load`. The examples of
  the MLX project save this tree with `mx.save_safetensors`, which refuses float64 (mlx/io/safetensors.cpp
  dtype_to_safetensor_str has no F64: "received invalid dtype"), so the npz format, which holds all four formats
  and the uint64 counter, is the one used.
- MLX has no configuration object (no get_config), no sparse gradients and no loss.
- bfloat16 travels to and from NumPy through float32, exactly (MLX takes no ml_dtypes bfloat16 array).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import reference

from ..adapter import Capabilities, LiveOptimizer
from ..kit import carrier, check_arity, check_dialect, check_state, common_dtype, fitted, framework_kwargs
from ..kit import to_numpy as kit_to_numpy
from ..registry import manifest_path

__all__ = ["DIALECT", "MlxAdapter", "MlxLive", "subjects"]

DIALECT = "adagrad/mlx"
SLOT = "v"  # the dialect's accumulator, MLX's own name
_DTYPES = ("float16", "bfloat16", "float32", "float64")
STATE_FILE = "optimizer.npz"


def _mx() -> Any:
    import mlx.core as mx

    return mx


def _key(index: int) -> str:
    return f"p{index}"


def to_mlx(array: np.ndarray) -> Any:
    """An MLX array with the NumPy array's own format and bits (bfloat16 through float32, exactly)."""
    mx = _mx()
    fmt = reference.format_of(np.asarray(array).dtype.name)
    carried = carrier(array)
    # The dtype is given: mx.array turns a float64 NumPy array into float32 unless told otherwise.
    return mx.array(carried, dtype=getattr(mx, carried.dtype.name)).astype(getattr(mx, fmt.name))


def to_numpy(value: Any, dtype: str) -> np.ndarray:
    mx = _mx()
    if value.dtype == mx.bfloat16:  # NumPy has no native bfloat16 for MLX to hand over
        return kit_to_numpy(np.array(value.astype(mx.float32)), dtype, carried=True)
    return kit_to_numpy(np.array(value), dtype)


class MlxLive:
    """One MLX optimizer over its own parameter dict {"p0": ..., "p1": ...}."""

    def __init__(self, optimizer: Any, params: Sequence[np.ndarray], dtype: str) -> None:
        self.optimizer = optimizer
        self._dtype = dtype
        self._format = reference.format_of(dtype)
        self._shapes = [tuple(np.shape(p)) for p in params]
        self._params = {_key(i): to_mlx(np.asarray(p)) for i, p in enumerate(params)}
        self.optimizer.init(self._params)  # the state exists before the first step, for set_state and save
        self._grads: list[Any] | None = None

    def _arrays(self, values: Sequence[Any], what: str) -> list[Any]:
        return [to_mlx(array) for array in fitted(values, self._shapes, self._format, what)]

    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None:
        del loss  # Adagrad takes no loss
        mx = _mx()
        check_arity(grads, len(self._shapes), "gradient")
        arrays = [to_mlx(np.asarray(g).astype(self._format.np_dtype)) for g in grads]
        updated = self.optimizer.apply_gradients({_key(i): g for i, g in enumerate(arrays)}, self._params)
        mx.eval(updated, self.optimizer.state)  # MLX is lazy: evaluate now, so that a failure shows at this step
        self._params = dict(updated)
        self._grads = arrays

    def params(self) -> list[np.ndarray]:
        return [to_numpy(self._params[_key(i)], self._dtype) for i in range(len(self._shapes))]

    def state(self) -> dict[str, list[np.ndarray]]:
        return {SLOT: [to_numpy(self.optimizer.state[_key(i)][SLOT], self._dtype) for i in range(len(self._shapes))]}

    def count(self) -> int | None:
        return int(np.array(self.optimizer.state["step"]))

    def gradients(self) -> list[np.ndarray] | None:
        """The gradient arrays handed to apply_gradients at the last step (MLX arrays are immutable)."""
        if self._grads is None:
            return None
        return [to_numpy(g, self._dtype) for g in self._grads]

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        mx = _mx()
        check_state([SLOT], state, len(self._shapes))
        self._params = {_key(i): p for i, p in enumerate(self._arrays(params, "parameter"))}
        for index, value in enumerate(self._arrays(state[SLOT], f"slot {SLOT!r}")):
            self.optimizer.state[_key(index)][SLOT] = value
        if count is not None:
            self.optimizer.state["step"] = mx.array(count, dtype=mx.uint64)

    def save(self, directory: pathlib.Path) -> None:
        from mlx.utils import tree_flatten

        _mx().savez(str(pathlib.Path(directory) / STATE_FILE), **dict(tree_flatten(self.optimizer.state)))

    def _load(self, directory: pathlib.Path) -> None:
        from mlx.utils import tree_unflatten

        saved = _mx().load(str(pathlib.Path(directory) / STATE_FILE))
        self.optimizer.state = tree_unflatten(list(saved.items()))


class MlxAdapter:
    """An MLX optimizer class with `mlx.optimizers.Adagrad`'s API as an implementation of adagrad/mlx."""

    def __init__(
        self, optimizer_class: type | None = None, *, name: str | None = None, manifest: pathlib.Path | None = None
    ) -> None:
        self._class = optimizer_class
        self.manifest = manifest
        self.name = name or (
            "mlx.optimizers.Adagrad"
            if optimizer_class is None
            else f"{optimizer_class.__module__}.{optimizer_class.__qualname__}"
        )
        self.capabilities = Capabilities(dialects=(DIALECT,), dtypes=_DTYPES, set_state=True, serialize=True)

    @property
    def optimizer_class(self) -> type:
        if self._class is not None:
            return self._class
        import mlx.optimizers

        adagrad: type = mlx.optimizers.Adagrad
        return adagrad

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> MlxLive:
        check_dialect(self.name, DIALECT, dialect)
        dtype = common_dtype(params)
        # Values go through untouched: judging them is the optimizer's job (it refuses eps <= 0 only).
        return MlxLive(self.optimizer_class(**framework_kwargs(DIALECT, hparams)), params, dtype)

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        live = self.create(dialect, hparams, params)
        live._load(pathlib.Path(directory))
        return live

    def versions(self) -> dict[str, str]:
        return {"mlx": str(_mx().__version__)}

    def __repr__(self) -> str:
        return f"MlxAdapter({self.name!r})"


def subjects() -> list[MlxAdapter]:
    """MLX's own Adagrad, with the known-failure manifest `mlx.toml`."""
    return [MlxAdapter(manifest=manifest_path("mlx"))]
