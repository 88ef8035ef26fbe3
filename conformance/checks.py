"""The checks: drive an adapter through a case and compare with the corpus, step by step.

Each check raises `CheckFailure` naming the first divergence: the step, the quantity and element, expected and
got in hex and decimal, the ulp distance, the bound and its source, and the branch the reference took.
"""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

import reference
from reference._numerics import FloatFormat, bits_to_hex, decimal_string, format_of
from reference.sparse import SparseGrad

from .adapter import Adapter, FullAdapter, LiveOptimizer, StatefulOptimizer, StepResult, claim_hint, handed, read
from .adapters.reference import ReferenceLive
from .corpus import Case, ExpectedStep
from .tolerance import Bound, bound_for, judge, ulp_distance

__all__ = [
    "CHECKS",
    "CheckFailure",
    "CheckSkip",
    "InvalidSetting",
    "Outcome",
    "invalid_settings",
]

BRANCH_NAMES = {1: "grow (m > 0)", -1: "shrink (m < 0)", 0: "keep (m = 0)"}


class CheckFailure(AssertionError):
    """A check found a divergence; str() is the full diagnosis."""


class CheckSkip(Exception):
    """The case needs a capability the adapter does not declare (the message is the reason)."""


@dataclass
class Outcome:
    """What a passing or failing check measured, for the evidence report."""

    worst_ulp: int = 0
    first_divergence: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    adapter: Adapter
    case: Case
    repro: str
    k_override: float | None = None

    @property
    def dialect(self) -> reference.Dialect:
        return reference.get(self.case.dialect)

    @property
    def fmt(self) -> FloatFormat:
        return format_of(self.case.dtype)

    def bound(self, quantity: str) -> Bound:
        canonical = {name: c for c, name in self.dialect.slots.items()}.get(quantity, quantity)
        if self.k_override is not None:
            return Bound(self.k_override, "a tolerance override in the implementer's manifest")
        return bound_for(self.dialect.family.name, canonical)

    def fail(self, message: str, outcome: Outcome) -> CheckFailure:
        outcome.first_divergence = message
        return CheckFailure(f"{self.case.test_id}: {message}\n  repro: {self.repro}")


# ---------------------------------------------------------------------------------------------------------------
# Comparison


def _quantities(result: StepResult | ExpectedStep) -> Iterator[tuple[str, list[np.ndarray]]]:
    yield "params", result.params
    yield from result.state.items()


def _value_text(x: Any, fmt: FloatFormat) -> str:
    return f"{bits_to_hex(x, fmt)} ({decimal_string(x, 21)})"


def compare(ctx: Context, step: int, got: StepResult, want: ExpectedStep, outcome: Outcome) -> None:
    """Every value of one step, parameters first, then each of the dialect's slots; raises on the first divergence.

    The counter and any extra slots are the counter check's concern, not this one: a framework that keeps no
    counter still has every number compared. A slot the dialect keeps but the implementation does not report
    cannot be compared, and that is a divergence here.
    """
    fmt = ctx.fmt
    for quantity, wanted in _quantities(want):
        gotten = got.params if quantity == "params" else got.state.get(quantity)
        if gotten is None:
            raise ctx.fail(
                f"step {step}: no state slot {quantity!r} to compare (the implementation reports "
                f"{sorted(got.state) or 'none'})",
                outcome,
            )
        if len(gotten) != len(wanted):
            raise ctx.fail(f"step {step}: {len(gotten)} {quantity} tensors, but should be {len(wanted)}", outcome)
        for tensor, (g, w) in enumerate(zip(gotten, wanted, strict=True)):
            g = np.asarray(g)
            where = f"{quantity}[{tensor}] at step {step}"
            if g.dtype != fmt.np_dtype or g.shape != w.shape:
                raise ctx.fail(f"{where} is {g.dtype}{list(g.shape)}, but should be {w.dtype}{list(w.shape)}", outcome)
            scales = (want.scales.get(quantity) or [np.zeros(w.shape)])[tensor]
            _compare_values(ctx, where, step, tensor, g, w, scales, ctx.bound(quantity), want, outcome)


def _compare_values(
    ctx: Context,
    where: str,
    step: int,
    tensor: int,
    got: np.ndarray,
    want: np.ndarray,
    scale: np.ndarray,
    bound: Bound,
    expected: ExpectedStep,
    outcome: Outcome,
) -> None:
    fmt = ctx.fmt
    if got.size == 0 or np.array_equal(got.view(fmt.uint_dtype), want.view(fmt.uint_dtype)):
        return  # bit for bit: no class differs, no error, no ulp
    judged = judge(got, want, scale, fmt, bound.k)
    ulps = ulp_distance(got, want, fmt)
    finite = np.isfinite(want.astype(np.float64))
    if finite.any():
        outcome.worst_ulp = max(outcome.worst_ulp, int(np.where(finite, ulps, 0).max()))
    if not judged.outside.any():
        return
    index = tuple(int(i) for i in np.argwhere(judged.outside)[0])
    g, w, s = got[index], want[index], float(scale[index])
    allowed = bound.k * fmt.unit_roundoff * s + fmt.smallest_subnormal
    detail = (
        "the special-value class differs (NaN, inf and the sign of zero are exact)"
        if judged.special[index]
        else f"{ulps[index]} ulp; |error| = {abs(float(g) - float(w)):.3g} > {bound.k:g}·u·S + tiny = {allowed:.3g} "
        f"(S = {s:.5g}; k = {bound.k:g}: {bound.source})"
    )
    message = f"{where}, element {list(index)}: got {_value_text(g, fmt)}, expected {_value_text(w, fmt)}; {detail}"
    branches = expected.branches
    if branches is not None and tensor < len(branches) and branches[tensor].size:
        branch = int(branches[tensor].reshape(want.shape)[index])
        message += f"; the reference took the {BRANCH_NAMES[branch]} branch"
    raise ctx.fail(message, outcome)


# ---------------------------------------------------------------------------------------------------------------
# Driving: everything handed to the implementation is a fresh copy (`handed`), everything read back is copied
# out (`read`), so no check can change what another check expects or sees.


def _needs(ctx: Context, capability: str, why: str) -> FullAdapter:
    """Skip unless the adapter declares `capability`; then the adapter, typed with the methods it unlocks."""
    if not getattr(ctx.adapter.capabilities, capability):
        hint = claim_hint(ctx.adapter, capability)  # e.g. "pass sparse=True to TorchAdapter"
        raise CheckSkip(f"capability '{capability}' not declared, which {why}" + (f"; {hint}" if hint else ""))
    # The optional methods cannot be checked at run time (an adapter has only those its capabilities name), so the
    # declared capability is what licenses the narrowing.
    return cast(FullAdapter, ctx.adapter)


def _unlocked(ctx: Context, capability: str, optimizer: LiveOptimizer) -> StatefulOptimizer:
    """`optimizer` typed with the methods behind `capability`, which the check has required with `_needs`."""
    if not getattr(ctx.adapter.capabilities, capability):  # a bug in the check, not in the adapter
        raise RuntimeError(f"a check used capability '{capability}' without requiring it")
    return cast(StatefulOptimizer, optimizer)


def _grads_supported(ctx: Context) -> None:
    if any(not isinstance(g, np.ndarray) for row in ctx.case.grads for g in row):
        _needs(ctx, "sparse", "this case's row-sparse gradients need")
    if ctx.case.losses is not None:
        _needs(ctx, "loss", "this case's losses need")


def _fresh(ctx: Context) -> LiveOptimizer:
    case = ctx.case
    return ctx.adapter.create(case.dialect, handed(case.hparams), handed(case.initial_params))


def _create(ctx: Context) -> LiveOptimizer:
    """A fresh optimizer in the case's initial state (set explicitly when the counter starts late)."""
    optimizer = _fresh(ctx)
    count, slots = ctx.case.initial_state
    if count:
        _needs(ctx, "set_state", f"starting the counter at {count} needs")
        _unlocked(ctx, "set_state", optimizer).set_state(handed(ctx.case.initial_params), handed(slots), count)
    return optimizer


def _loss(case: Case, step: int) -> float | None:
    return None if case.losses is None else case.losses[step]


def free_run(ctx: Context, steps: int | None = None, optimizer: LiveOptimizer | None = None) -> list[StepResult]:
    _grads_supported(ctx)
    optimizer = optimizer or _create(ctx)
    results = []
    for t, row in enumerate(ctx.case.grads[:steps]):
        optimizer.step(handed(row), _loss(ctx.case, t))
        results.append(read(optimizer))
    return results


def _free(ctx: Context, cache: dict[str, Any]) -> list[StepResult]:
    """The free-running trajectory, computed once per (adapter, case) and shared by the checks that read it. The
    results are copies (`read`), so a check that reads them sees what the implementation reported at that step
    whichever check ran it first."""
    if "free" not in cache:
        cache["free"] = free_run(ctx)
    return cache["free"]


# ---------------------------------------------------------------------------------------------------------------
# The checks


def check_trajectory(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """Free-running: params and every slot at every step, within the tolerance (the counter is judged apart)."""
    results = _free(ctx, cache)
    for step, (got, want) in enumerate(zip(results, ctx.case.expected, strict=True), start=1):
        compare(ctx, step, got, want, outcome)


def check_teacher_forced(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """From the expected state at step t, one step must give the expected state at t + 1, for every t."""
    _needs(ctx, "set_state", "teacher forcing needs")
    _grads_supported(ctx)
    case = ctx.case
    optimizer = _unlocked(ctx, "set_state", _fresh(ctx))
    count, slots = case.initial_state
    states = [(case.initial_params, slots, count), *[(e.params, e.state, e.count) for e in case.expected[:-1]]]
    for t, (params, state, counter) in enumerate(states):
        optimizer.set_state(handed(params), handed(state), counter)
        optimizer.step(handed(case.grads[t]), _loss(case, t))
        compare(ctx, t + 1, read(optimizer), case.expected[t], outcome)


def check_counter_and_slots(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """The counter is exact at every step; slot names, shapes and dtypes are the dialect's."""
    results = _free(ctx, cache)
    fmt = ctx.fmt
    counter = ctx.dialect.counter
    for step, (got, want) in enumerate(zip(results, ctx.case.expected, strict=True), start=1):
        if counter is not None and got.count is None:
            raise ctx.fail(f"the implementation keeps no step counter, but the dialect counts `{counter}`", outcome)
        if counter is not None and got.count != want.count:
            raise ctx.fail(f"counter `{counter}` after step {step} = {got.count}, but should be {want.count}", outcome)
        if sorted(got.state) != sorted(want.state):
            raise ctx.fail(
                f"step {step}: state slots {sorted(got.state)}, but the dialect's are {sorted(want.state)}", outcome
            )
        for quantity, wanted in _quantities(want):
            gotten = got.params if quantity == "params" else got.state[quantity]
            shapes = [(np.asarray(g).dtype, np.shape(g)) for g in gotten]
            expected = [(fmt.np_dtype, w.shape) for w in wanted]
            if shapes != expected:
                raise ctx.fail(
                    f"{quantity} at step {step} has dtypes/shapes {shapes}, but should be {expected}", outcome
                )


def check_config_round_trip(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """get_config -> from_config keeps the configuration and behaves bit-identically."""
    adapter = _needs(ctx, "config", "the config round trip needs")
    _grads_supported(ctx)
    case = ctx.case
    original = _unlocked(ctx, "config", _create(ctx))
    config = original.config()
    rebuilt = _unlocked(ctx, "config", adapter.from_config(case.dialect, handed(config), handed(case.initial_params)))
    count, slots = case.initial_state
    if count:  # `_create` has required set_state for this counter
        _unlocked(ctx, "set_state", rebuilt).set_state(handed(case.initial_params), handed(slots), count)
    again = rebuilt.config()
    if again != config:
        changed = sorted(k for k in set(config) | set(again) if config.get(k) != again.get(k))
        raise ctx.fail(
            f"from_config(get_config()) changed the configuration: {', '.join(changed)} "
            f"({ {k: config.get(k) for k in changed} } -> { {k: again.get(k) for k in changed} })",
            outcome,
        )
    _bit_identical(
        ctx, free_run(ctx, optimizer=original), free_run(ctx, optimizer=rebuilt), "the rebuilt optimizer", outcome
    )


def check_checkpoint(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """Save after step k, load into a fresh optimizer, continue: bit-identical to the uninterrupted run."""
    adapter = _needs(ctx, "serialize", "save/load needs")
    case = ctx.case
    k = case.checkpoint
    if k is None:
        raise CheckSkip("the case has no checkpoint step")
    uninterrupted = _free(ctx, cache)
    first = _unlocked(ctx, "serialize", _create(ctx))
    before = free_run(ctx, steps=k, optimizer=first)
    with tempfile.TemporaryDirectory(prefix="optconf-") as folder:
        first.save(pathlib.Path(folder))
        resumed = adapter.load(case.dialect, handed(case.hparams), handed(before[-1].params), pathlib.Path(folder))
    loaded = read(resumed)
    _bit_identical(ctx, [before[-1]], [loaded], f"the optimizer loaded after step {k}", outcome, first_step=k)
    after = []
    for t in range(k, len(case.grads)):
        resumed.step(handed(case.grads[t]), _loss(case, t))
        after.append(read(resumed))
    _bit_identical(ctx, uninterrupted[k:], after, f"the run resumed after step {k}", outcome, first_step=k + 1)


def _bit_identical(
    ctx: Context,
    reference_run: list[StepResult],
    other: list[StepResult],
    what: str,
    outcome: Outcome,
    first_step: int = 1,
) -> None:
    for step, (a, b) in enumerate(zip(reference_run, other, strict=True), start=first_step):
        if a.count != b.count:
            raise ctx.fail(
                f"{what}: counter {b.count} at step {step}, but the uninterrupted run has {a.count}", outcome
            )
        if sorted(a.state) != sorted(b.state):
            raise ctx.fail(f"{what}: slots {sorted(b.state)} at step {step}, but {sorted(a.state)} before", outcome)
        for quantity, arrays in _quantities(a):
            others = b.params if quantity == "params" else b.state[quantity]
            for tensor, (x, y) in enumerate(zip(arrays, others, strict=True)):
                x, y = np.asarray(x), np.asarray(y)
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    raise ctx.fail(
                        f"{what} differs from the uninterrupted run in {quantity}[{tensor}] at step {step}: "
                        f"{_first_bits(x, y, ctx.fmt)}",
                        outcome,
                    )


def _first_bits(x: np.ndarray, y: np.ndarray, fmt: FloatFormat) -> str:
    if x.shape != y.shape or x.dtype != y.dtype:
        return f"{x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}"
    index = tuple(int(i) for i in np.argwhere(x.view(fmt.uint_dtype) != y.view(fmt.uint_dtype))[0])
    return f"element {list(index)}: {_value_text(y[index], fmt)} instead of {_value_text(x[index], fmt)}"


def check_inputs_not_mutated(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """The gradients handed to the optimizer, dense and row-sparse (and its own copy of them), are unchanged by
    every step."""
    _grads_supported(ctx)
    case = ctx.case
    optimizer = _create(ctx)
    for t, row in enumerate(case.grads):
        given = handed(row)
        optimizer.step(given, _loss(case, t))
        for tensor, (before, after) in enumerate(zip(row, given, strict=True)):
            changed = _changed(before, after, ctx.fmt)
            if changed:
                raise ctx.fail(f"step {t + 1} changed the gradient passed in for tensor {tensor}: {changed}", outcome)
        held = optimizer.gradients()
        dense = [g for g in row if isinstance(g, np.ndarray)]
        if held is not None and len(held) == len(dense):
            for tensor, (before, after) in enumerate(zip(dense, held, strict=True)):
                changed = _changed(before, np.asarray(after, dtype=before.dtype), ctx.fmt)
                if changed:
                    raise ctx.fail(f"step {t + 1} mutated the gradient of tensor {tensor}: {changed}", outcome)


def _changed(before: Any, after: Any, fmt: FloatFormat) -> str | None:
    """How a gradient handed over differs from the corpus's (None if bit for bit the same)."""
    if isinstance(before, SparseGrad):
        if tuple(after.indices) != tuple(before.indices):
            return f"row indices {list(after.indices)} instead of {list(before.indices)}"
        before, after = before.values, after.values
        where = "row values, "
    else:
        where = ""
    after = np.asarray(after)
    if after.dtype != before.dtype or after.shape != before.shape or after.tobytes() != before.tobytes():
        return where + _first_bits(before, after, fmt)
    return None


def check_replicas(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """Two replicas holding halves of each gradient aggregate to the case's gradient (summed)."""
    _needs(ctx, "replicas", "replica aggregation needs")
    _grads_supported(ctx)
    case = ctx.case
    if any(not isinstance(g, np.ndarray) for row in case.grads for g in row) or case.losses is not None:
        raise CheckSkip("replica aggregation is checked on dense cases without losses")
    optimizer = _unlocked(ctx, "replicas", _create(ctx))
    for t, row in enumerate(case.grads):
        halves = [_halve(g) for g in row]
        optimizer.step_replicated([[h[0] for h in halves], [h[1] for h in halves]])
        compare(ctx, t + 1, read(optimizer), case.expected[t], outcome)


def _halve(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g = a + b exactly: a is g rounded to half (exact unless subnormal) and b = g - a (exact by Sterbenz)."""
    a = (g.astype(np.float64) / 2).astype(g.dtype)
    b = (g.astype(np.float64) - a.astype(np.float64)).astype(g.dtype)
    return a, b


CHECKS: dict[str, Callable[[Context, Outcome, dict[str, Any]], None]] = {
    "trajectory": check_trajectory,
    "teacher_forced": check_teacher_forced,
    "counter_and_slots": check_counter_and_slots,
    "config_round_trip": check_config_round_trip,
    "checkpoint": check_checkpoint,
    "inputs_not_mutated": check_inputs_not_mutated,
    "replicas": check_replicas,
}


# ---------------------------------------------------------------------------------------------------------------
# Invalid hyperparameters: a refusal is earned. The same optimizer must be created and stepped with a valid value
# of the same keywords (the control), so that an adapter that cannot step at all, or cannot take the keyword,
# proves nothing; and the error must come from the optimizer, be a refusal rather than a defect, and (for a
# removed keyword, which has no valid value) name the keyword.

# (canonical hyperparameter, a value the dialects refuse, a valid value for the control)
_INVALID: dict[str, list[tuple[str, Any, Any]]] = {
    "adagrad": [
        ("lr", -0.1, 0.1),
        ("eps", -1e-3, 1e-3),
        ("initial_accumulator", -1.0, 0.1),
        ("decay", -0.5, 0.5),
        ("weight_decay", -0.1, 0.1),
        ("clipnorm", -1.0, 1.0),
        ("clipvalue", -1.0, 1.0),
        ("global_clipnorm", -1.0, 1.0),
    ],
    "rprop": [("lr", -0.1, 0.1), ("eta_minus", 1.5, 0.5), ("eta_plus", 0.5, 1.2), ("step_min", 2.0, 1e-6)],
}
# Settings that are only out of range beside another one (step_min > step_max).
_ALONGSIDE = {"step_min": {"step_max": 1.0}}

# Exceptions that say the code is broken or the setting unsupported, never that the setting was judged and refused.
_DEFECTS: tuple[type[BaseException], ...] = (
    AttributeError,
    NameError,
    LookupError,
    ImportError,
    RecursionError,
    MemoryError,
)
_HERE = pathlib.Path(__file__).resolve().parent
# The built-in adapters, the protocol's helpers and the adapter kit: code that passes settings on, never judges them.
_ADAPTER_CODE = (_HERE / "adapters", _HERE / "adapter.py", _HERE / "kit.py")
_REFERENCE_CODE = pathlib.Path(reference.__file__).resolve().parent


@dataclass(frozen=True)
class InvalidSetting:
    """One out-of-range setting: what manifests select it by, and the two runs that judge the refusal."""

    label: str  # the refused setting in the framework's names, e.g. `eps=-0.001`
    invalid: dict[str, Any]  # the framework hyperparameters the dialect refuses
    valid: dict[str, Any]  # the same keywords with valid values: the control
    keyword: str | None = None  # a removed keyword: the refusal must name it


def invalid_settings(dialect: reference.Dialect) -> list[InvalidSetting]:
    """The settings that the dialect refuses, each one value out of its range, with its control.

    The learning rate is always given (a valid 0.01 unless it is the bad value), so that a framework without a
    default refuses the bad value, not a missing argument; the label names only the bad setting.
    """
    out = []
    candidates = list(_INVALID[dialect.family.name])
    if getattr(dialect.knobs, "initial_accumulator_positive", False):
        candidates.append(("initial_accumulator", 0.0, 0.1))
    exposed = {t for v in dialect.names.values() for t in (v if isinstance(v, tuple) else (v,))}
    for canonical, bad, good in candidates:
        alongside = _ALONGSIDE.get(canonical, {})
        if not {canonical, *alongside} <= exposed:
            continue
        invalid = dialect.framework_hparams({"lr": 0.01} | alongside | {canonical: bad})
        valid = dialect.framework_hparams({"lr": 0.01} | alongside | {canonical: good})
        if _refused(dialect, invalid) and not _refused(dialect, valid):
            label = ",".join(f"{k}={v}" for k, v in dialect.framework_hparams(alongside | {canonical: bad}).items())
            out.append(InvalidSetting(label, invalid, valid))
    out.extend(
        InvalidSetting(f"removed-{name}={value}", {name: value}, {}, keyword=name)
        for name, value in dialect.removed.items()
    )
    return out


def _refused(dialect: reference.Dialect, hparams: dict[str, Any]) -> str | None:
    try:
        dialect.hparams(hparams)
    except ValueError as exc:
        return str(exc)
    return None


def _create_and_step(adapter: Adapter, dialect: reference.Dialect, dtype: str, hparams: dict[str, Any]) -> None:
    dtype_ = format_of(dtype).np_dtype
    optimizer = adapter.create(dialect.id, handed(hparams), [np.ones((2,), dtype=dtype_)])
    optimizer.step([np.full((2,), 0.5, dtype=dtype_)], 1.0 if dialect.needs_loss else None)


def check_invalid_hparams(
    adapter: Adapter, dialect: reference.Dialect, dtype: str, setting: InvalidSetting, repro: str
) -> str:
    """The optimizer refuses the setting (at creation or first step) and steps with a valid one; returns the
    refusal. An error that is not a refusal is re-raised with its traceback and a note saying why."""
    try:
        _create_and_step(adapter, dialect, dtype, setting.valid)
    except CheckSkip:
        raise
    except Exception as exc:
        exc.add_note(
            f"optconf: the control failed: {adapter.name} could not create and step {dialect.id} with the valid "
            f"setting {setting.valid}, so a refusal of {setting.label} would prove nothing\n  repro: {repro}"
        )
        raise
    try:
        _create_and_step(adapter, dialect, dtype, setting.invalid)
    except CheckSkip:
        raise
    except Exception as exc:
        problem = _not_a_refusal(exc, adapter, setting)
        if problem is None:
            return f"{type(exc).__name__}: {exc}"
        exc.add_note(f"optconf: not a refusal of {setting.label}: {problem}\n  repro: {repro}")
        raise
    raise CheckFailure(
        f"{adapter.name} accepted {setting.invalid} for {dialect.id} and stepped; the dialect refuses it "
        f"({_refused(dialect, setting.invalid) or 'a removed keyword'})\n  repro: {repro}"
    )


def _not_a_refusal(exc: BaseException, adapter: Adapter, setting: InvalidSetting) -> str | None:
    """Why `exc` is not the optimizer refusing the setting, or None when it is."""
    if isinstance(exc, NotImplementedError):
        return (
            "NotImplementedError says the setting is unsupported, not refused; an adapter declares what it does "
            "not support by raising conformance.kit.Unsupported with the reason"
        )
    if isinstance(exc, _DEFECTS):
        return f"{type(exc).__name__} is a defect in the code, not a refusal"
    borrowed = _not_the_optimizers(exc, adapter)
    if borrowed is not None:
        return f"{borrowed}; an adapter passes settings through and lets the optimizer judge them"
    if setting.keyword is not None and setting.keyword not in str(exc):
        return f"the error does not name the removed keyword {setting.keyword!r}, so it may be about something else"
    return None


def _not_the_optimizers(exc: BaseException, adapter: Adapter) -> str | None:
    """Where `exc` was raised, when that was not the optimizer (or its framework) judging the setting.

    Two places are not the optimizer: the adapter layer (the runner's adapter modules, and any method of the
    adapter object), and optconf's own reference validation when the reference optimizer is not the one that
    called it (an adapter asking the spec instead of its optimizer). An exception raised *from* another
    (`raise ... from exc`) is judged by that cause.
    """
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    if not frames:
        return None
    frame = frames[-1]
    path = pathlib.Path(frame.f_code.co_filename).resolve()
    site = f"{path.name}:{frame.f_lineno}"
    if path.parent == _ADAPTER_CODE[0] or path in _ADAPTER_CODE[1:] or frame.f_locals.get("self") is adapter:
        if exc.__cause__ is not None:
            return _not_the_optimizers(exc.__cause__, adapter)
        return f"raised by the adapter's own code ({site}), not by the optimizer"
    if _REFERENCE_CODE in path.parents and not any(isinstance(f.f_locals.get("self"), ReferenceLive) for f in frames):
        return f"raised by optconf's reference validation ({site}), which the adapter called itself"
    return None
