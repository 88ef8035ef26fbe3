"""The adapter kit: what every adapter needs, written once, public and framework-free.

An adapter for a framework optconf does not ship (see "Writing an adapter for a new framework" in
docs/writing-an-adapter.md) uses these; so do the built-in adapters.

What an adapter receives (`Adapter.create`, `LiveOptimizer.step`, `LiveOptimizer.set_state`):

- **Hyperparameters** under the dialect's framework names, as the case gives them: only those the case sets. A
  pair (RProp's `etas`, `step_sizes`) is a two-element list. `framework_kwargs` fills in the dialect's defaults,
  so that a framework whose own defaults differ (another epsilon, another initial accumulator) is tested in the
  dialect's configuration, and turns a setting the framework lacks into `Unsupported`.
- **Parameters** as a list of NumPy arrays, one per tensor, all in one format: float16, bfloat16 (ml_dtypes),
  float32 or float64. A 0-d array is a scalar parameter; a zero-size array has no elements. Each call hands over
  fresh copies, so the implementation may keep them.
- **Gradients** as a list of the same length: dense NumPy arrays in the parameters' format, or, where the adapter
  claims `sparse`, `reference.sparse.SparseGrad(indices, values)` with possibly repeated row indices.
- **State** for `set_state`: the dialect's slot name -> one array per parameter tensor, and the counter (or
  None to leave it). `set_state` is called on an instance that may already have stepped (teacher forcing writes
  the state before every step), so it must overwrite in place what the framework's step reads: for a compiled
  graph, assign into the variables it captured rather than replacing them. A case whose state is an input (a
  counter that starts late, or slots given per element) is started through `set_state` too, and skipped with
  the reason where the adapter does not claim it; a framework that can take only part of such a state (a
  scalar initial accumulator, not one per element) raises `Unsupported` rather than setting what it can.

What it hands back: NumPy arrays in the parameters' own format. `to_numpy` converts without ever casting
silently: a framework that changed the format hands back its own dtype, and the check that reads it names both
formats (a cast would have shown a float64 parameter held as float32 only as a numeric divergence, if at all).

What it cannot do: raise `Unsupported` with the reason. The check is skipped, never failed, and never counted
as a refusal of an invalid setting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any

import numpy as np

import reference
from reference import FloatFormat, format_of

from .adapters._convert import carrier, common_dtype, dtype_name, restore
from .checks import CheckSkip

__all__ = [
    "Unsupported",
    "carrier",
    "check_arity",
    "check_dialect",
    "check_state",
    "common_dtype",
    "dtype_name",
    "fitted",
    "framework_kwargs",
    "json_config",
    "restore",
    "to_numpy",
]


class Unsupported(CheckSkip):
    """The implementation lacks a hyperparameter, a value of one, or a feature that the case needs.

    Raised from `Adapter.create` or any `LiveOptimizer` method, it skips the check with this message as the
    reason. It is never a failure, and never a refusal: the invalid-hyperparameter check skips too.
    """


def check_dialect(adapter_name: str, claimed: str, asked: str) -> None:
    """Refuse to build an optimizer for a dialect other than the one the adapter implements."""
    if asked != claimed:
        raise ValueError(f"{adapter_name} implements {claimed}, not {asked}")


def check_arity(given: Sequence[Any], tensors: int, what: str) -> None:
    """Refuse a list of `what` (gradient, parameter) arrays whose length is not the number of parameter tensors."""
    if len(given) != tensors:
        raise ValueError(f"{len(given)} {what} arrays for {tensors} parameter tensors")


def fitted(
    values: Sequence[Any], shapes: Sequence[tuple[int, ...]], dtype: str | FloatFormat, what: str
) -> list[np.ndarray]:
    """`values` (set_state's parameters or slots) as arrays in the parameters' format: one per parameter, each of its
    parameter's shape, refusing a wrong count, a wrong shape or a value the format would change."""
    check_arity(values, len(shapes), what)
    out = []
    for index, (value, shape) in enumerate(zip(values, shapes, strict=True)):
        array = np.asarray(value)
        if array.shape != tuple(shape):
            raise ValueError(f"{what}[{index}]: shape {array.shape} does not match the parameter's {tuple(shape)}")
        out.append(restore(array, dtype))
    return out


def check_state(slots: Iterable[str], state: Mapping[str, Sequence[Any]], tensors: int) -> None:
    """Refuse a `set_state` state that lacks one of `slots` or holds the wrong number of arrays for one."""
    names = list(slots)
    missing = [name for name in names if name not in state]
    if missing:
        raise ValueError(f"the state needs slots {missing}; got {sorted(state)}")
    for name in names:
        if len(state[name]) != tensors:
            raise ValueError(f"slot {name!r}: {len(state[name])} arrays for {tensors} parameter tensors")


def json_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A framework's configuration as JSON values, checked to serialise.

    NumPy scalars (TF's float32 learning rate) become Python numbers, exactly; tuples become lists. Anything
    else that is not JSON fails here with its name, not later in the runner.
    """

    def convert(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    out = convert(dict(config))
    try:
        json.dumps(out, allow_nan=True)
    except TypeError as exc:
        raise TypeError(f"the configuration is not JSON-serialisable: {exc}") from None
    return out


def framework_kwargs(
    dialect: reference.Dialect | str,
    hparams: Mapping[str, Any],
    *,
    lacks: Iterable[str] = (),
    rename: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The case's hyperparameters with the dialect's defaults filled in, ready for the framework's constructor.

    - Every hyperparameter that the dialect exposes and gives a default is present, under its framework name: what
      the case sets, else the dialect's default. A framework with other defaults is thus configured as the
      dialect says.
    - `lacks` names the framework keywords the framework does not have. Each is dropped when the case leaves it
      at its default (the dialect's, else the family's: `maximize=False`), since the framework behaves so
      implicitly, and is `Unsupported` when the case sets another value.
    - `rename` maps dialect names to the framework's own keywords, for a framework tested against a dialect
      named after another one.
    - Names the dialect does not know (a removed keyword that the invalid-hyperparameter check passes) and
      values of any type go through untouched: judging them is the framework's job, not the adapter's.
    """
    dialect = reference.get(dialect) if isinstance(dialect, str) else dialect
    given_targets: set[str] = set()
    for name in hparams:
        target = dialect.names.get(name)
        given_targets.update(target if isinstance(target, tuple) else (target,) if target else ())
    exposed = dialect.exposed
    # A default the dialect has no keyword for (keras2's initial accumulator) is fixed, not passed.
    unset = {t: v for t, v in dialect.defaults.items() if t in exposed and t not in given_targets}
    family = {f.name: f.default for f in fields(dialect.family.hparams_type) if f.default is not MISSING}
    defaults = dialect.framework_hparams({t: v for t, v in (family | dict(dialect.defaults)).items() if t in exposed})
    out = dialect.framework_hparams(unset) | dict(hparams)
    for name in lacks:
        if name not in out:
            continue
        value = out.pop(name)
        if name in hparams and not _same(value, defaults.get(name)):
            raise Unsupported(f"the implementation has no {name!r}; the case sets {name}={value!r}")
    return {(rename or {}).get(name, name): value for name, value in out.items()}


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, list | tuple) and isinstance(default, list | tuple):
        return len(value) == len(default) and all(_same(v, d) for v, d in zip(value, default, strict=True))
    return type(value) is type(default) and value == default


def to_numpy(value: Any, dtype: str | FloatFormat, *, carried: bool = False) -> np.ndarray:
    """A framework's array as a NumPy copy, for the parameters' format `dtype`, never silently cast.

    An array in `dtype` is copied as it is. One in another dtype is copied *in its own dtype*: a float64
    parameter that the framework holds as float32 then fails the check that reads it, with a diagnosis naming
    both formats, where a cast would have hidden the change (or shown it only as a numeric divergence).
    `carried=True` is for a carrier the adapter chose itself (bfloat16 handed over as float32, see `carrier`):
    the array is cast back to `dtype`, refusing any value the cast would change.
    """
    fmt = dtype if isinstance(dtype, FloatFormat) else format_of(dtype)
    array = np.asarray(value)
    if array.dtype != fmt.np_dtype and not carried:
        return array.copy()
    return restore(array, fmt)
