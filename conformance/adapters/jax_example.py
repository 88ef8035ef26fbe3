"""The jax.example_libraries adapter: `optimizers.adagrad(step_size, momentum)`, eager or under `jax.jit`.

jax.example_libraries.optimizers is the small functional library that many JAX tutorials copy: a factory returns
`(init_fun, update_fun, get_params)`, the state is an `OptimizerState` holding, per parameter tensor, the pytree
`(x, g_sq, m)`, and the caller passes the step index `i` to every `update_fun(i, grads, state)`. The state keeps
no counter, so the dialect `adagrad/jax-example` has none (`count()` is None); the adapter keeps `i` itself, as a
training loop does: 0 on the first step, then the number of completed updates. A constant step size ignores it.

- `state()` reports `g_sq` and `m`; `x` is the parameter itself (`params()`).
- `set_state` rebuilds the `OptimizerState` from the parameters and both slots, keeping its tree structure, and
  sets `i` to `count` where one is given.
- `save` writes the leaves of the `OptimizerState` pytree (the library registers it with jax.tree_util) as raw
  bits to `jax_example_state.npz`, and their dtypes, shapes, the tree's text and `i` to `jax_example_state.json`;
  `load` builds a fresh optimizer, checks that its state has the same structure, and puts the leaves in. The
  library's own `unpack_optimizer_state` leaves nested `JoinPoint` objects meant for pickle, which is not used.
- The library has no configuration object, takes no sparse gradients and no loss.
- float64 runs inside `jax.enable_x64(True)`, scoped, as for optax (`x64_scope`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import reference

from ..adapter import Capabilities, LiveOptimizer
from ..kit import check_arity, check_dialect, check_state, common_dtype, fitted, framework_kwargs
from ..registry import manifest_path
from ._pytree_files import load_leaves, save_leaves
from .optax import to_array, to_numpy, x64_scope

__all__ = ["DIALECT", "JaxExampleAdapter", "JaxExampleLive", "subjects"]

DIALECT = "adagrad/jax-example"
_DTYPES = ("float16", "bfloat16", "float32", "float64")
# Each per-parameter state (x, g_sq, m): the slot name of each position after the parameter x.
_SLOTS = ("g_sq", "m")
STATE_FILES = "jax_example_state"  # the saved state: its .npz (the leaves) and its .json (the layout)


def _modules() -> tuple[Any, Any]:
    import jax
    from jax.example_libraries import optimizers

    return jax, optimizers


class JaxExampleLive:
    """One `OptimizerState` over its own parameter list, and the step index the caller passes."""

    def __init__(
        self, update: Callable[..., Any], get_params: Callable[[Any], Any], state: Any, dtype: str, shapes: list[Any]
    ) -> None:
        self._update = update
        self._get_params = get_params
        self._state = state
        self._dtype = dtype
        self._format = reference.format_of(dtype)
        self._shapes = shapes
        self._i = 0  # the index passed to update_fun: the number of completed updates
        self._grads: list[Any] | None = None

    @property
    def opt_state(self) -> Any:
        """The library's `OptimizerState`, as it holds it."""
        return self._state

    def _per_param(self) -> list[Any]:
        # OptimizerState(packed_state, tree_def, subtree_defs): packed_state holds each tensor's flat [x, g_sq, m].
        return list(self._state.packed_state)

    def _arrays(self, values: Sequence[Any], what: str) -> list[Any]:
        return [to_array(array) for array in fitted(values, self._shapes, self._format, what)]

    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None:
        del loss  # Adagrad takes no loss
        check_arity(grads, len(self._shapes), "gradient")
        with x64_scope(self._dtype):
            arrays = [to_array(np.asarray(g).astype(self._format.np_dtype)) for g in grads]
            self._state = self._update(self._i, arrays, self._state)
        self._i += 1
        self._grads = arrays

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p, self._dtype) for p in self._get_params(self._state)]

    def state(self) -> dict[str, list[np.ndarray]]:
        per_param = self._per_param()
        return {name: [to_numpy(s[k], self._dtype) for s in per_param] for k, name in enumerate(_SLOTS, start=1)}

    def count(self) -> int | None:
        return None  # the state keeps no counter: the caller passes i

    def gradients(self) -> list[np.ndarray] | None:
        """The gradient arrays handed to update_fun at the last step (immutable JAX arrays); None before one."""
        if self._grads is None:
            return None
        return [to_numpy(g, self._dtype) for g in self._grads]

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        check_state(_SLOTS, state, len(self._shapes))
        with x64_scope(self._dtype):
            columns = [self._arrays(params, "parameter")] + [self._arrays(state[n], f"slot {n!r}") for n in _SLOTS]
            packed = [list(row) for row in zip(*columns, strict=True)]
            self._state = type(self._state)(packed, self._state.tree_def, self._state.subtree_defs)
        if count is not None:
            self._i = int(count)

    # -- serialisation: the state pytree's leaves as raw bits, and a JSON layout (no pickle)

    def save(self, directory: pathlib.Path) -> None:
        jax, _ = _modules()
        save_leaves(jax, self._state, directory, STATE_FILES, {"dtype": self._dtype, "i": self._i})

    def _load(self, directory: pathlib.Path) -> None:
        """Put what `save` wrote into this fresh optimizer, refusing any other structure or format."""
        jax, _ = _modules()
        with x64_scope(self._dtype):
            self._state, document = load_leaves(
                jax, self._state, directory, STATE_FILES, {"dtype": self._dtype}, to_array
            )
        self._i = int(document["i"])


class JaxExampleAdapter:
    """`jax.example_libraries.optimizers.adagrad` as an implementation of adagrad/jax-example.

    `jit`: step with `jax.jit(update_fun)` (compiled once per hyperparameters, shapes and format), as the
    library's own examples do, instead of eagerly.
    """

    def __init__(self, *, jit: bool = False, manifest: pathlib.Path | None = None) -> None:
        self.jit = jit
        self.manifest = manifest
        self.name = f"jax.example_libraries.optimizers.adagrad[{'jit' if jit else 'eager'}]"
        self.capabilities = Capabilities(dialects=(DIALECT,), dtypes=_DTYPES, set_state=True, serialize=True)
        self._built: dict[Any, tuple[Any, ...]] = {}

    def _triple(self, kwargs: Mapping[str, Any], x64: bool) -> tuple[Any, ...]:
        """(init_fun, update_fun, get_params), update_fun jitted where asked, shared by optimizers with the same
        hyperparameters and 64-bit mode so that a jitted one compiles once per shape and format."""
        jax, optimizers = _modules()
        try:
            key: Any = (x64, *sorted((k, type(v).__name__, v) for k, v in kwargs.items()))
            hash(key)
        except TypeError:  # an unhashable hyperparameter: build it afresh
            key = None
        if key is not None and key in self._built:
            return self._built[key]
        init_fun, update_fun, get_params = optimizers.adagrad(**kwargs)
        built = (init_fun, jax.jit(update_fun) if self.jit else update_fun, get_params)
        if key is not None:
            self._built[key] = built
        return built

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> JaxExampleLive:
        check_dialect(self.name, DIALECT, dialect)
        dtype = common_dtype(params)
        # Values go through untouched: judging them is the library's job (it judges none).
        init_fun, update, get_params = self._triple(framework_kwargs(DIALECT, hparams), dtype == "float64")
        with x64_scope(dtype):
            state = init_fun([to_array(np.asarray(p)) for p in params])
        return JaxExampleLive(update, get_params, state, dtype, [tuple(np.shape(p)) for p in params])

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        live = self.create(dialect, hparams, params)
        live._load(pathlib.Path(directory))
        return live

    def versions(self) -> dict[str, str]:
        import jax
        import jaxlib

        return {"jax": str(jax.__version__), "jaxlib": str(jaxlib.__version__)}

    def __repr__(self) -> str:
        return f"JaxExampleAdapter({self.name!r})"


def subjects() -> list[JaxExampleAdapter]:
    """The library's Adagrad, eager and compiled by XLA, with the known-failure manifest `jax_example.toml`."""
    manifest = manifest_path("jax_example")
    return [JaxExampleAdapter(jit=jit, manifest=manifest) for jit in (False, True)]
