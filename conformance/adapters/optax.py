"""The optax adapter: any factory of an optax `GradientTransformation`, eager or under `jax.jit`.

`OptaxAdapter(my_adagrad, dialect="adagrad/optax")` calls `my_adagrad(**hparams)` with the dialect's framework
keywords (`learning_rate`, `initial_accumulator_value`, `eps`), applies its updates with `optax.apply_updates`,
and reads each dialect slot from the first state field of that name (`ScaleByRssState.sum_of_squares`), wherever
it sits in the chain's state. jax and optax are imported only when an optimizer is created.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import reference

from ..adapter import Capabilities, LiveOptimizer
from ._convert import carrier, common_dtype, restore

__all__ = ["OptaxAdapter", "subjects"]

_DEFAULT_FACTORIES = {"adagrad/optax": "adagrad"}
_DTYPES = ("float16", "bfloat16", "float32", "float64")
_JAX_NATIVE = frozenset(_DTYPES)  # JAX takes ml_dtypes' bfloat16 arrays as they are
_MISSING = object()


def _jax() -> tuple[Any, Any]:
    import jax
    import optax

    return jax, optax


def _enable_x64(dtype: str) -> None:
    # Without x64, JAX silently turns float64 arrays into float32 (no warning), so a float64 case would test
    # the float32 path. The flag is process-wide; float32 results were measured bit-identical with it on or off.
    if dtype == "float64":
        jax, _ = _jax()
        jax.config.update("jax_enable_x64", True)


def find_field(tree: Any, name: str) -> Any:
    """The first field called `name` in a nest of NamedTuples, tuples, lists and dicts (depth first)."""
    if hasattr(tree, "_fields"):
        if name in tree._fields:
            return getattr(tree, name)
        children: Sequence[Any] = tuple(tree)
    elif isinstance(tree, tuple | list):
        children = tree
    elif isinstance(tree, dict):
        if name in tree:
            return tree[name]
        children = tuple(tree.values())
    else:
        return _MISSING
    for child in children:
        found = find_field(child, name)
        if found is not _MISSING:
            return found
    return _MISSING


class OptaxLive:
    """One transformation's state over its own parameter list, stepped eagerly or by one jitted function."""

    def __init__(self, transform: Any, params: list[Any], dialect: reference.Dialect, dtype: str, jit: bool) -> None:
        jax, optax = _jax()
        self._dialect = dialect
        self._format = reference.format_of(dtype)
        self._params = params
        self._state = transform.init(params)

        def update(params: list[Any], state: Any, grads: list[Any]) -> tuple[list[Any], Any]:
            updates, state = transform.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        self._update: Callable[..., tuple[list[Any], Any]] = jax.jit(update) if jit else update

    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None:
        del loss  # no optax transformation in scope takes a loss
        if len(grads) != len(self._params):
            raise ValueError(f"{len(grads)} gradient tensors for {len(self._params)} parameter tensors")
        # Gradients take the parameters' format, rounded by NumPy (exact to nearest, bfloat16 included).
        arrays = [to_array(np.asarray(g).astype(self._format.np_dtype)) for g in grads]
        self._params, self._state = self._update(self._params, self._state, arrays)

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p, self._format.name) for p in self._params]

    def state(self) -> dict[str, list[np.ndarray]]:
        """Every dialect slot found in the state, one array per parameter tensor."""
        out = {}
        for name in self._dialect.slots.values():
            found = find_field(self._state, name)
            if found is not _MISSING:
                out[name] = [to_numpy(x, self._format.name) for x in found]
        return out

    def count(self) -> int | None:
        if self._dialect.counter is None:
            return None
        found = find_field(self._state, self._dialect.counter)
        return None if found is _MISSING else int(np.asarray(found))


def to_array(array: np.ndarray) -> Any:
    jax, _ = _jax()
    out = jax.numpy.asarray(carrier(array, native=_JAX_NATIVE))
    if out.dtype != array.dtype:  # e.g. float64 without x64: the case would silently test float32
        raise RuntimeError(f"JAX turned a {array.dtype} array into {out.dtype}")
    return out


def to_numpy(array: Any, dtype: str) -> np.ndarray:
    return restore(np.asarray(array), dtype)


class OptaxAdapter:
    """Drives a factory of optax transformations as an implementation of one dialect."""

    def __init__(
        self,
        transform_factory: Callable[..., Any] | None = None,
        *,
        dialect: str,
        jit: bool = False,
        name: str | None = None,
    ) -> None:
        self.dialect = reference.get(dialect)
        if transform_factory is None and self.dialect.id not in _DEFAULT_FACTORIES:
            raise ValueError(f"no built-in optax transformation for {self.dialect.id}; pass transform_factory")
        self.jit = jit
        self._factory = transform_factory
        self.name = name or f"{self._factory_name()}[{'jit' if jit else 'eager'}]"
        dtypes = tuple(d for d in _DTYPES if d in self.dialect.dtypes)
        self.capabilities = Capabilities(dialects=(self.dialect.id,), dtypes=dtypes)

    def _factory_name(self) -> str:
        if self._factory is None:
            return f"optax.{_DEFAULT_FACTORIES[self.dialect.id]}"
        return f"{self._factory.__module__}.{self._factory.__qualname__}"

    @property
    def transform_factory(self) -> Callable[..., Any]:
        if self._factory is not None:
            return self._factory
        _, optax = _jax()
        return getattr(optax, _DEFAULT_FACTORIES[self.dialect.id])

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        if dialect != self.dialect.id:
            raise ValueError(f"{self.name} implements {self.dialect.id}, not {dialect}")
        dtype = common_dtype(params)
        _enable_x64(dtype)
        arrays = [to_array(np.asarray(p)) for p in params]
        transform = self.transform_factory(**hparams)
        return OptaxLive(transform, arrays, self.dialect, dtype, self.jit)

    def __repr__(self) -> str:
        return f"OptaxAdapter({self.name!r}, dialect={self.dialect.id!r})"


def subjects() -> list[OptaxAdapter]:
    """optax's own Adagrad as conformance subjects: eager, and compiled by XLA (which fuses FMAs)."""
    return [OptaxAdapter(dialect="adagrad/optax", jit=jit) for jit in (False, True)]
