"""The optax adapter: any factory of an optax `GradientTransformation`, eager or under `jax.jit`.

`OptaxAdapter(my_adagrad, dialect="adagrad/optax")` calls `my_adagrad(**kwargs)` with optax's own keywords for
the dialect's hyperparameters (`learning_rate`, `initial_accumulator_value`, `eps`; for RProp `learning_rate`,
`eta_minus`, `eta_plus`, `min_step_size`, `max_step_size`), applies its updates with `optax.apply_updates`, and
reports the transformation's state as it is. jax and optax are imported only when an optimizer is created.

The built-in subjects are `optax.adagrad` (dialect `adagrad/optax`) and `optax.rprop`, which claims `rprop/irprop-`
(its docstring cites the Rprop papers; it freezes, does not move on a sign change and keeps Δ at m = 0), each eager
and jitted.

**State, honestly.** `state()` reports every per-parameter field of the state pytree (a field holding one array
per parameter tensor, shaped like it), wherever it sits: in a chain, in a user's NamedTuple or dict, or in one
NamedTuple per parameter. A field that holds a dialect slot is reported under the dialect's name
(`sum_of_squares` is `adagrad/optax`'s own name; `step_sizes` is RProp's Δ, reported as `delta`; a user's field
named in `slots=`); every other field keeps its own name. So optax's RProp reports `delta` and `prev_updates`:
it stores the previous signed step, not the previous gradient, and keeps no counter, so the dialect's `prev_grad`
and `t` are missing and the slot check says so (naming the fields reported). Nothing is translated to look like
the dialect.

Beyond the core protocol:

- `set_state` replaces the parameters and the reported fields in the state pytree (`sum_of_squares`; for RProp
  `delta` → `step_sizes` and `prev_updates`), and a counter field of the dialect's counter name where the state has
  one. It takes exactly the slots that `state()` reports, so the dialect's RProp state ({delta, prev_grad}) is
  refused: optax's `prev_updates` is not something that state holds.
- `save` writes the state pytree's leaves as raw bits to `optax_state.npz` and their dtypes, shapes and the
  treedef's text to `optax_state.json`; `load` builds a fresh transformation with the same hyperparameters, checks
  that its `init` gives the same structure, and puts the saved leaves in (`np.load(..., allow_pickle=False)`).
- optax has no configuration object (no get_config), so `config` is not declared and that check is skipped.

**float64.** JAX silently turns float64 arrays into float32 unless 64-bit mode is on. Every float64 optimizer does
all its JAX work inside `jax.enable_x64(True)`, a scoped switch, so the process-wide flag is never flipped and the
other formats run the same whatever order the cases come in; `to_array` refuses any silent narrowing.

**Subnormals.** XLA's CPU backend flushes subnormal inputs and results to zero, eagerly and under jit alike
(float64 1e-160·1e-160 is 0, not 1e-320); nothing here hides it, so a case that needs a subnormal shows it.

**Compilation.** A jitted subject compiles one update function per (hyperparameters, shapes, format); the
function is cached on the adapter per hyperparameters (JAX caches per shape and format), so cases that share them
do not compile again.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import reference

from ..adapter import Capabilities, LiveOptimizer
from ..kit import carrier, check_arity, check_dialect, common_dtype, fitted
from ..kit import to_numpy as kit_to_numpy
from ._pytree_files import load_leaves, save_leaves

__all__ = [
    "MANIFEST",
    "OptaxAdapter",
    "OptaxLive",
    "optax_kwargs",
    "per_param_fields",
    "subjects",
    "to_array",
    "x64_scope",
]

# The built-in subjects: the optax factory for each claimed dialect.
_DEFAULT_FACTORIES = {"adagrad/optax": "adagrad", "rprop/irprop-": "rprop"}
_DTYPES = ("float16", "bfloat16", "float32", "float64")
_JAX_NATIVE = frozenset(_DTYPES)  # JAX takes ml_dtypes' bfloat16 arrays as they are
# optax's keyword for each canonical hyperparameter (optax.adagrad, optax.rprop and their scale_by_* parts).
OPTAX_KEYWORDS: Mapping[str, str] = {
    "lr": "learning_rate",
    "initial_accumulator": "initial_accumulator_value",
    "eps": "eps",
    "eta_minus": "eta_minus",
    "eta_plus": "eta_plus",
    "step_min": "min_step_size",
    "step_max": "max_step_size",
}
# The optax state field that holds each canonical slot. optax's RProp `prev_updates` is absent on purpose: it is
# the previous signed step, not any slot of a dialect that claims it.
OPTAX_FIELDS: Mapping[str, str] = {"sum_of_squares": "accumulator", "step_sizes": "step_size"}
MANIFEST = pathlib.Path(__file__).resolve().parent.parent / "manifests" / "optax.toml"
STATE_FILES = "optax_state"  # the saved state: optax_state.npz (leaves) and optax_state.json (layout)


def _jax() -> tuple[Any, Any]:
    import jax
    import optax

    return jax, optax


def x64_scope(dtype: str) -> contextlib.AbstractContextManager[Any]:
    """64-bit mode for float64 work, scoped (thread-local); nothing for the other formats."""
    if dtype != "float64":
        return contextlib.nullcontext()
    jax, _ = _jax()
    return jax.enable_x64(True)


def to_array(array: np.ndarray) -> Any:
    """A JAX array with the NumPy array's own dtype and bits; refuses a silent narrowing (float64 without x64).

    Floating arrays must be in one of the four formats; other leaves (an int32 counter) go as they are.
    """
    jax, _ = _jax()
    floating = np.issubdtype(array.dtype, np.floating) or array.dtype.name == "bfloat16"
    out = jax.numpy.asarray(carrier(array, native=_JAX_NATIVE) if floating else np.array(array, copy=True))
    if out.dtype != array.dtype:
        raise RuntimeError(f"JAX turned a {array.dtype} array into {out.dtype} (float64 needs jax.enable_x64)")
    return out


def to_numpy(array: Any, dtype: str) -> np.ndarray:
    return kit_to_numpy(array, dtype, carried=dtype not in _JAX_NATIVE)


def optax_kwargs(dialect: reference.Dialect, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The dialect's framework-named hyperparameters under optax's keywords (pairs split; values untouched).

    A keyword with no optax counterpart (torch's `maximize`) is passed on under its own name, so a factory that
    does not take it raises. Nothing is validated here: refusing a bad value is the transformation's job.
    """
    out: dict[str, Any] = {}
    for name, value in hparams.items():
        target = dialect.names.get(name)
        if isinstance(target, tuple):
            for canonical, part in zip(target, value, strict=True):
                out[OPTAX_KEYWORDS.get(canonical, canonical)] = part
        elif target is None:
            out[name] = value
        else:
            out[OPTAX_KEYWORDS.get(target, name)] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# The state pytree


@dataclass(frozen=True)
class Field:
    """One per-parameter field of a state pytree: its reported name, where it sits (the key path without the
    parameter index, e.g. ("0", "sum_of_squares") in a chain) and the flat leaf index of each tensor's array."""

    name: str
    leaves: tuple[int, ...]
    path: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return ".".join(self.path)


def _key_name(key: Any) -> str | None:
    for attr in ("name", "key"):  # GetAttrKey (NamedTuple fields), DictKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return None


def _key_text(key: Any) -> str:
    name = _key_name(key)
    return name if name is not None else str(getattr(key, "idx", key))


def _per_param_groups(
    flat: Sequence[tuple[Any, Any]], shapes: Sequence[tuple[int, ...]]
) -> list[tuple[tuple[Any, ...], tuple[int, ...]]]:
    """(key path without the parameter index, leaf indices) for every group of leaves that holds one array per
    parameter tensor, shaped like it, in depth-first order.

    The parameter index may sit anywhere in a leaf's path: last for optax's own states (a field holding a list
    of arrays), or higher up for a user's state built per parameter (a list of NamedTuples). Where several
    positions would do, the deepest wins, and a leaf belongs to one field only.
    """
    n = len(shapes)
    candidates: dict[tuple[Any, ...], dict[int, int]] = {}
    for leaf, (path, _value) in enumerate(flat):
        for position, key in enumerate(path):
            if hasattr(key, "idx") and int(key.idx) < n:
                group = (position, *path[:position], *path[position + 1 :])
                candidates.setdefault(group, {})[int(key.idx)] = leaf
    valid = {
        group: tuple(members[i] for i in range(n))
        for group, members in candidates.items()
        if sorted(members) == list(range(n))
        and all(np.shape(flat[members[i]][1]) == shapes[i] for i in range(n))
        and any(_key_name(k) is not None for k in group[1:])  # a field has a name somewhere on its path
    }
    owner: dict[int, tuple[Any, ...]] = {}
    for group in sorted(valid, key=lambda g: -g[0]):  # the deepest position first
        for leaf in valid[group]:
            owner.setdefault(leaf, group)
    kept = [g for g in valid if all(owner[leaf] == g for leaf in valid[g])]
    return [(g[1:], valid[g]) for g in sorted(kept, key=lambda g: valid[g][0])]


def per_param_fields(
    state: Any,
    shapes: Sequence[tuple[int, ...]],
    rename: Mapping[str, str],
    mapped: Mapping[str, str] | None = None,
) -> list[Field]:
    """Every field of `state` holding one array per parameter tensor, shaped like it, in depth-first order.

    `mapped` names where a dialect slot sits (slot -> a field name or the end of a dotted field path, e.g.
    "acc" or "0.acc" in a chain): that field is reported under the slot's name, and a path that matches no
    field, or several, is a LookupError listing the fields there are. `rename` maps the other fields' names to
    reported names. A name met twice (a chain of two scale_by_rss) is reported as `name#2`, `name#3`, ...: the
    state really holds several.
    """
    jax, _ = _jax()
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    groups = _per_param_groups(flat, shapes)
    paths = [tuple(_key_text(k) for k in prefix) for prefix, _ in groups]
    names: dict[int, str] = {}
    for slot, wanted in (mapped or {}).items():
        tail = tuple(wanted.split("."))
        hits = [i for i, path in enumerate(paths) if path[-len(tail) :] == tail]
        if len(hits) != 1:
            problem = "no per-parameter field" if not hits else f"{len(hits)} fields ({[paths[i] for i in hits]})"
            raise LookupError(
                f"slots={{{slot!r}: {wanted!r}}}: the state has {problem} at {wanted!r}; its per-parameter fields "
                f"are {['.'.join(p) for p in paths]} (pass one of these, or enough of its end to be unique)"
            )
        names[hits[0]] = slot
    fields: list[Field] = []
    seen: dict[str, int] = {name: 1 for name in names.values()}
    for index, ((prefix, leaves), path) in enumerate(zip(groups, paths, strict=True)):
        if index in names:
            fields.append(Field(names[index], leaves, path))
            continue
        field_name = next(n for n in map(_key_name, reversed(prefix)) if n is not None)
        name = rename.get(field_name, field_name)
        seen[name] = seen.get(name, 0) + 1
        fields.append(Field(name if seen[name] == 1 else f"{name}#{seen[name]}", leaves, path))
    return fields


def counter_leaf(state: Any, name: str | None) -> int | None:
    """The flat index of the first scalar leaf called `name` (a NamedTuple field or a dict key), if any."""
    if name is None:
        return None
    jax, _ = _jax()
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    for index, (path, leaf) in enumerate(flat):
        if path and _key_name(path[-1]) == name and np.ndim(leaf) == 0:
            return index
    return None


# ---------------------------------------------------------------------------------------------------------------
# The live optimizer


class OptaxLive:
    """One transformation's state over its own parameter list, stepped eagerly or by one jitted function."""

    def __init__(
        self,
        transform: Any,
        update: Callable[..., tuple[list[Any], Any]],
        params: Sequence[np.ndarray],
        dialect: reference.Dialect,
        dtype: str,
        rename: Mapping[str, str],
        mapped: Mapping[str, str] | None = None,
    ) -> None:
        self._dialect = dialect
        self._dtype = dtype
        self._format = reference.format_of(dtype)
        self._update = update
        self._shapes = [tuple(np.shape(p)) for p in params]
        self._grads: list[Any] | None = None
        with self.x64():
            self._params = [to_array(np.asarray(p)) for p in params]
            self._state = transform.init(self._params)
        self._fields = per_param_fields(self._state, self._shapes, rename, mapped)
        self._counter = counter_leaf(self._state, dialect.counter)

    def x64(self) -> contextlib.AbstractContextManager[Any]:
        return x64_scope(self._dtype)

    @property
    def opt_state(self) -> Any:
        """The transformation's state pytree, as optax holds it."""
        return self._state

    def _arrays(self, values: Sequence[Any], what: str) -> list[Any]:
        return [to_array(array) for array in fitted(values, self._shapes, self._format, what)]

    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None:
        del loss  # no optax transformation in scope takes a loss
        check_arity(grads, len(self._shapes), "gradient")
        with self.x64():
            # Gradients take the parameters' format, rounded by NumPy (exact to nearest, bfloat16 included).
            arrays = [to_array(np.asarray(g).astype(self._format.np_dtype)) for g in grads]
            self._params, self._state = self._update(self._params, self._state, arrays)
        self._grads = arrays

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p, self._format.name) for p in self._params]

    def _leaves(self) -> list[Any]:
        jax, _ = _jax()
        return jax.tree_util.tree_leaves(self._state)

    def state(self) -> dict[str, list[np.ndarray]]:
        """Every per-parameter field of the state pytree, under the dialect's slot name where it holds one."""
        leaves = self._leaves()
        return {f.name: [to_numpy(leaves[i], self._format.name) for i in f.leaves] for f in self._fields}

    def count(self) -> int | None:
        """The state's counter field of the dialect's counter name; None where the state keeps none (optax's
        Adagrad and RProp keep none)."""
        if self._counter is None:
            return None
        return int(np.asarray(self._leaves()[self._counter]))

    def gradients(self) -> list[np.ndarray] | None:
        """The gradient arrays handed to the transformation at the last step (JAX arrays are immutable, so this
        is what it was given unless the adapter itself went wrong); None before the first step."""
        if self._grads is None:
            return None
        return [to_numpy(g, self._format.name) for g in self._grads]

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        """Replace the parameters, every reported state field and the counter field (where the state has one).

        `state` must hold exactly the slots that `state()` reports. `count` is ignored where the state keeps no
        counter (`count()` then reports None, and the counter check says so).
        """
        jax, _ = _jax()
        held = sorted(f.name for f in self._fields)
        if sorted(state) != held:
            missing = sorted(set(held) - set(state))
            foreign = sorted(set(state) - set(held))
            raise ValueError(
                f"this optax state holds the slots {held}; set_state got {sorted(state)}"
                + (f" (missing {missing})" if missing else "")
                + (f" ({foreign} not held by the transformation)" if foreign else "")
            )
        with self.x64():
            new_params = self._arrays(params, "parameter")
            leaves, treedef = jax.tree_util.tree_flatten(self._state)
            for f in self._fields:
                for leaf, value in zip(f.leaves, self._arrays(state[f.name], f"slot {f.name!r}"), strict=True):
                    leaves[leaf] = value
            if self._counter is not None and count is not None:
                old = leaves[self._counter]
                new = jax.numpy.asarray(count, dtype=old.dtype)
                if int(new) != count:
                    raise ValueError(f"the {old.dtype} counter field cannot hold {count} exactly")
                leaves[self._counter] = new
            self._params = new_params
            self._state = jax.tree_util.tree_unflatten(treedef, leaves)

    # -- serialisation: the state pytree's leaves as raw bits, and a JSON layout (no pickle)

    def save(self, directory: pathlib.Path) -> None:
        jax, _ = _jax()
        save_leaves(jax, self._state, directory, STATE_FILES, {"dtype": self._dtype})

    def _load(self, directory: pathlib.Path) -> None:
        """Put the leaves that `save` wrote into this (fresh) optimizer's state, refusing any other structure."""
        jax, _ = _jax()
        with self.x64():
            self._state, _ = load_leaves(jax, self._state, directory, STATE_FILES, {"dtype": self._dtype}, to_array)


# ---------------------------------------------------------------------------------------------------------------
# The adapter


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a hyperparameter value (lists become tuples); raises TypeError if there is none."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    hash(value)
    return (type(value).__name__, value)


class OptaxAdapter:
    """Drives a factory of optax transformations as an implementation of one dialect.

    - `transform_factory`: called with optax's keywords (see `optax_kwargs`); None for the built-in optax
      transformation of the dialect (`optax.adagrad` for `adagrad/optax`, `optax.rprop` for `rprop/irprop-`).
    - `jit`: step with one `jax.jit`-compiled function (apply_updates included) instead of eagerly.
    - `slots`: where the state keeps a dialect slot whose field is not named after it (dialect slot -> field
      name, or the end of a dotted path where several fields share a name: "acc", "0.acc"). Fields of the
      dialect's slot names, and optax's own (`step_sizes` for the step-size slot, ...), need no mapping.
    - `manifest`: the adapter's own known-failure manifest, applied unless `--no-default-manifest`.
    """

    def __init__(
        self,
        transform_factory: Callable[..., Any] | None = None,
        *,
        dialect: str,
        jit: bool = False,
        name: str | None = None,
        slots: Mapping[str, str] | None = None,
        manifest: pathlib.Path | None = None,
    ) -> None:
        self.dialect = reference.get(dialect)
        if transform_factory is None and self.dialect.id not in _DEFAULT_FACTORIES:
            raise ValueError(f"no built-in optax transformation for {self.dialect.id}; pass transform_factory")
        self.jit = jit
        self.manifest = manifest
        self._factory = transform_factory
        self.name = name or f"{self._factory_name()}[{'jit' if jit else 'eager'}]"
        self._rename = {
            field: self.dialect.slots[canonical]
            for field, canonical in OPTAX_FIELDS.items()
            if canonical in self.dialect.slots
        }
        own_slots = tuple(self.dialect.slots.values())
        unknown = sorted(set(slots or {}) - set(own_slots))
        if unknown:  # the mapping runs slot -> field, as for the Keras adapters' `slots=`
            raise ValueError(
                f"{self.dialect.id} has no slot {', '.join(unknown)}; slots= maps the dialect's slots "
                f"({', '.join(own_slots)}) to the fields that hold them"
            )
        self._mapped = dict(slots or {})
        dtypes = tuple(d for d in _DTYPES if d in self.dialect.dtypes)
        self.capabilities = Capabilities(
            dialects=(self.dialect.id,), dtypes=dtypes, set_state=True, config=False, serialize=True
        )
        self._compiled: dict[Any, tuple[Any, Callable[..., Any]]] = {}

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

    def _transform(self, kwargs: Mapping[str, Any], x64: bool) -> tuple[Any, Callable[..., Any]]:
        """The transformation and its update function (jitted or not), shared by optimizers with the same
        hyperparameters and 64-bit mode, so that a jitted one compiles once per shape and format."""
        try:
            key: Any = (x64, *sorted((k, _frozen(v)) for k, v in kwargs.items()))
        except TypeError:  # an unhashable hyperparameter (an array): build it afresh
            key = None
        if key is not None and key in self._compiled:
            return self._compiled[key]
        jax, optax = _jax()
        transform = self.transform_factory(**kwargs)

        def update(params: list[Any], state: Any, grads: list[Any]) -> tuple[list[Any], Any]:
            updates, state = transform.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        built = (transform, jax.jit(update) if self.jit else update)
        if key is not None:
            self._compiled[key] = built
        return built

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> OptaxLive:
        check_dialect(self.name, self.dialect.id, dialect)
        dtype = common_dtype(params)
        with x64_scope(dtype):
            transform, update = self._transform(optax_kwargs(self.dialect, hparams), dtype == "float64")
            return OptaxLive(transform, update, params, self.dialect, dtype, self._rename, self._mapped)

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        """A fresh optimizer over `params` with `hparams`, its state read from `save`'s directory."""
        live = self.create(dialect, hparams, params)
        live._load(pathlib.Path(directory))
        return live

    def versions(self) -> dict[str, str]:
        import jax
        import jaxlib
        import optax

        return {"jax": str(jax.__version__), "jaxlib": str(jaxlib.__version__), "optax": str(optax.__version__)}

    def __repr__(self) -> str:
        return f"OptaxAdapter({self.name!r}, dialect={self.dialect.id!r})"


def _subjects() -> Iterator[OptaxAdapter]:
    for dialect in _DEFAULT_FACTORIES:
        for jit in (False, True):
            yield OptaxAdapter(dialect=dialect, jit=jit, manifest=MANIFEST)


def subjects() -> list[OptaxAdapter]:
    """optax's own Adagrad and RProp as conformance subjects, eager and compiled by XLA (which fuses FMAs), each
    with the known-failure manifest `manifests/optax.toml`."""
    return list(_subjects())
