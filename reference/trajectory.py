"""Run a dialect over a gradient sequence in either evaluator and read back every step in the dtype."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import mpmath
import numpy as np

from ._arith import NumpyOps, OracleOps, Tracked, given_exactly
from ._numerics import FloatFormat, format_of, round_mpf
from .dialects import LOSS_SLOT, Dialect, get
from .sparse import SparseGrad
from .stepping import step

__all__ = ["ORACLE_DPS", "Step", "observe", "run", "to_format", "with_state"]

ORACLE_DPS = 50
Evaluator = Literal["oracle", "numpy"]


@dataclass(frozen=True)
class Step:
    """The state after one update. `state` and `error_scale` use the dialect's slot names.

    `error_scale` (oracle only) holds S per element: |implementation - value| <= k * u * S (+ tiny), see
    CONFORMANCE.md ("Tolerance"). It accumulates over the trajectory, as a free-running implementation's errors do.
    `step_scale` (oracle, on request) is S of this step alone: the bound for an implementation handed the previous
    step's stored state exactly (teacher forcing).
    """

    params: list[np.ndarray]
    state: dict[str, list[np.ndarray]]
    count: int
    error_scale: dict[str, list[np.ndarray]] | None = None
    branches: list[np.ndarray] | None = None  # RProp: 1 grow, -1 shrink, 0 keep, per element
    step_scale: dict[str, list[np.ndarray]] | None = None


def to_format(values: Any, fmt: FloatFormat) -> np.ndarray:
    """Round float64 input data to `fmt` exactly (ties to even), independent of NumPy's own casts."""
    data = np.asarray(values, dtype=np.float64)
    out = np.empty(data.shape, dtype=fmt.np_dtype)
    with mpmath.workprec(64):
        for index, x in np.ndenumerate(data):
            out[index] = _from_mpf(round_mpf(mpmath.mpf(float(x)), fmt), bool(np.signbit(x)), fmt)
    if np.isnan(data).any():  # keep NaN payloads where the format can hold them
        out[np.isnan(data)] = data[np.isnan(data)].astype(fmt.np_dtype)
    return out


def _from_mpf(v: mpmath.mpf, negative_zero: bool, fmt: FloatFormat) -> Any:
    if v == 0:
        return fmt.np_dtype.type(-0.0 if negative_zero else 0.0)
    return fmt.np_dtype.type(float(v))


def run(
    dialect: Dialect | str,
    hparams: Mapping[str, Any] | None,
    dtype: str,
    params: Sequence[Any],
    grads: Sequence[Sequence[Any]],
    losses: Sequence[float] | None = None,
    *,
    evaluator: Evaluator = "oracle",
    dps: int = ORACLE_DPS,
    initial_count: int = 0,
    initial_state: Mapping[str, Sequence[Any]] | None = None,
    ops: Any = None,
    include_initial: bool = False,
    step_scales: bool = False,
) -> list[Step]:
    """Step `dialect` once per entry of `grads` (one array, or a `SparseGrad`, per parameter tensor).

    Inputs are rounded to `dtype` first. The oracle runs at `dps` significant digits. `initial_count` starts
    the step counter later (a trajectory resumed at step t). `initial_state` gives slots as inputs, by the
    dialect's slot names (one array per parameter tensor; the loss slot one scalar), for an implementation whose
    state is an input rather than built from the hyperparameters; a slot not given starts as the family builds
    it. `ops` lets a caller keep the oracle's `OracleOps` to read what it recorded (near ties).
    `include_initial` prepends the state before step 1. `step_scales` (oracle only) also gives each step's
    `step_scale`, at the cost of evaluating every step twice.
    """
    dialect = get(dialect) if isinstance(dialect, str) else dialect
    fmt = format_of(dtype)
    if fmt.name not in dialect.dtypes:
        raise ValueError(f"{dialect.id} does not support {fmt.name}; it supports {', '.join(dialect.dtypes)}")
    hp = dialect.hparams(hparams)
    if dialect.needs_loss and (losses is None or len(losses) != len(grads)):
        raise ValueError(
            f"{dialect.id} needs one loss per step: got {0 if losses is None else len(losses)} for {len(grads)} steps"
        )
    if initial_count < 0:
        raise ValueError(f"invalid initial_count={initial_count}: must be >= 0")
    p0 = [to_format(p, fmt) for p in params]
    given = _given_state(dialect, fmt, p0, initial_state or {})
    g_all = [_grads_in_format(index, row, p0, fmt) for index, row in enumerate(grads)]
    if evaluator not in ("oracle", "numpy"):
        raise ValueError(f"unknown evaluator {evaluator!r}; expected 'oracle' or 'numpy'")
    if ops is None:
        ops = OracleOps(fmt) if evaluator == "oracle" else NumpyOps(fmt)
    if step_scales and not isinstance(ops, OracleOps):
        raise ValueError("step_scales needs the oracle: only it carries error scales")
    if isinstance(ops, OracleOps):
        with mpmath.workdps(dps), ops.evaluating():
            steps = _run(ops, dialect, hp, p0, g_all, losses, initial_count, given, step_scales)
    else:
        with np.errstate(all="ignore"):
            steps = _run(ops, dialect, hp, p0, g_all, losses, initial_count, given, False)
    return steps if include_initial else steps[1:]


def _given_state(
    dialect: Dialect, fmt: FloatFormat, params: list[np.ndarray], given: Mapping[str, Sequence[Any]]
) -> dict[str, list[np.ndarray]]:
    """The slots given as inputs, rounded to the format and checked against the dialect's slots and the shapes."""
    slots = dialect.reported_slots
    unknown = sorted(set(given) - set(slots))
    if unknown:
        raise ValueError(f"{dialect.id} keeps no slot {unknown[0]!r}; its slots are {', '.join(slots)}")
    out = {}
    for name, arrays in given.items():
        shapes = [()] if name == LOSS_SLOT else [p.shape for p in params]
        values = [to_format(a, fmt) for a in arrays]
        if [v.shape for v in values] != shapes:
            got = [list(v.shape) for v in values]
            raise ValueError(f"initial slot {name!r}: shapes {got}, but {[list(s) for s in shapes]} expected")
        out[name] = values
    return out


def _grads_in_format(index: int, row: Sequence[Any], params: list[np.ndarray], fmt: FloatFormat) -> list[Any]:
    if len(row) != len(params):
        raise ValueError(f"step {index}: {len(row)} gradient tensors for {len(params)} parameter tensors")
    out: list[Any] = []
    for p, g in zip(params, row, strict=True):
        if isinstance(g, SparseGrad):
            values = to_format(g.values, fmt)
            if p.ndim == 0 or values.shape != (len(g.indices), *p.shape[1:]):
                raise ValueError(f"step {index}: sparse values of shape {values.shape} do not fit rows of {p.shape}")
            bad = [i for i in g.indices if not 0 <= i < p.shape[0]]
            if bad:
                raise ValueError(f"step {index}: sparse indices {bad} out of range for {p.shape[0]} rows")
            out.append(SparseGrad(tuple(int(i) for i in g.indices), values))
            continue
        dense = to_format(g, fmt)
        if p.shape != dense.shape:
            raise ValueError(f"step {index}: gradient shape {dense.shape} does not match parameter shape {p.shape}")
        out.append(dense)
    return out


def _run(
    ops: Any,
    dialect: Dialect,
    hp: Any,
    params: list[np.ndarray],
    grads: list[list[Any]],
    losses: Sequence[float] | None,
    initial_count: int,
    given: Mapping[str, list[np.ndarray]],
    step_scales: bool,
) -> list[Step]:
    family = dialect.family
    theta = [ops.array(p) for p in params]
    state = family.init(ops, hp, dialect.knobs, theta)._replace(count=initial_count)
    if given:
        built = observe(ops, dialect, theta, state).state
        state = with_state(ops, dialect, state, {name: given.get(name, built[name]) for name in built}, None)
    steps = [observe(ops, dialect, theta, state)]
    for index, row in enumerate(grads):
        loss = None if losses is None else float(losses[index])
        alone = _step_alone(ops, dialect, hp, state, theta, row, loss) if step_scales else None
        theta, state = step(ops, dialect, hp, state, theta, row, loss)
        steps.append(observe(ops, dialect, theta, state, alone))
    return steps


def _step_alone(
    ops: OracleOps, dialect: Dialect, hp: Any, state: Any, theta: list[Any], row: list[Any], loss: float | None
) -> dict[str, list[Any]]:
    """The step from the same state handed over exactly (every error scale 0), evaluated on the side: its own
    OracleOps, so that the near ties and overflows it meets again are not recorded twice."""
    side = OracleOps(ops.fmt)
    with side.evaluating():
        theta, state = step(side, dialect, hp, given_exactly(state), given_exactly(theta), row, loss)
    return _reported(dialect, theta, state)


def observe(
    ops: Any, dialect: Dialect, theta: list[Any], state: Any, alone: Mapping[str, list[Any]] | None = None
) -> Step:
    """A family state seen from outside: arrays in the format, under the dialect's slot names. `alone` is what
    the same step reports when evaluated from the state handed over exactly (`_step_alone`): its error scales
    become `step_scale`."""
    values = _reported(dialect, theta, state)
    exact = {key: [_values(x, ops.fmt) for x in arrays] for key, arrays in values.items()}
    if alone is not None and not _same_values(alone, values):
        raise RuntimeError(f"{dialect.id}: the step from the state handed over exactly computed other values")
    return Step(
        params=exact.pop("params"),
        state=exact,
        count=state.count,
        error_scale=_scales_of(values) if isinstance(ops, OracleOps) else None,
        branches=[np.array(b, dtype=np.int8) for b in state.branch] if getattr(state, "branch", ()) else None,
        step_scale=None if alone is None else _scales_of(alone),
    )


def _reported(dialect: Dialect, theta: list[Any], state: Any) -> dict[str, list[Any]]:
    """The parameters and the dialect's slots, by its names, as the evaluator holds them."""
    slots: dict[str, list[Any]] = {name: list(getattr(state, canonical)) for canonical, name in dialect.slots.items()}
    if dialect.keeps_loss:
        slots[LOSS_SLOT] = [state.prev_loss]
    return {"params": theta} | slots


def _same_values(a: Mapping[str, list[Any]], b: Mapping[str, list[Any]]) -> bool:
    """The oracle's values are identical, NaN and the sign of zero included (the error scales may differ)."""

    def identity(x: Any) -> Any:
        cells = np.asarray(x, dtype=object).ravel()
        # mpf's raw (sign, mantissa, exponent, bits) tuple: equal exactly when the values are, NaN included.
        return [(t.v._mpf_, t.neg) if isinstance(t, Tracked) else t for t in cells]

    return a.keys() == b.keys() and all(
        identity(x) == identity(y) for key in a for x, y in zip(a[key], b[key], strict=True)
    )


def _values(x: Any, fmt: FloatFormat) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype != object:
        return x.astype(fmt.np_dtype)
    cells = np.asarray(x, dtype=object)
    out = np.empty(cells.shape, dtype=fmt.np_dtype)
    for index, t in np.ndenumerate(cells):
        out[index] = _from_mpf(round_mpf(t.v, fmt), t.signbit, fmt)
    return out


def _scales_of(values: Mapping[str, list[Any]]) -> dict[str, list[np.ndarray]]:
    return {key: [_scales(x) for x in arrays] for key, arrays in values.items()}


def _scales(x: Any) -> np.ndarray:
    cells = np.asarray(x, dtype=object)
    out = np.empty(cells.shape, dtype=np.float64)
    for index, t in np.ndenumerate(cells):
        out[index] = float(t.e) if isinstance(t, Tracked) else 0.0
    return out


def with_state(ops: Any, dialect: Dialect, state: Any, slots: Mapping[str, Sequence[Any]], count: int | None) -> Any:
    """The inverse of `observe`: a family state whose slots (dialect names) and counter are overwritten."""
    changes: dict[str, Any] = {}
    for canonical, name in dialect.slots.items():
        if name not in slots:
            raise ValueError(f"{dialect.id} state needs slot {name!r}; got {', '.join(slots) or 'none'}")
        changes[canonical] = tuple(ops.array(a) for a in slots[name])
    if dialect.keeps_loss:
        changes["prev_loss"] = ops.array(slots[LOSS_SLOT][0])
    if count is not None:
        changes["count"] = int(count)
    return state._replace(**changes)
