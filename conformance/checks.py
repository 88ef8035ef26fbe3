"""The checks: drive an adapter through a case and compare with the corpus, step by step; and the registry that
says, once per check, what the runner collects it for.

Each check raises `CheckFailure` naming the first divergence (`conformance.comparison` writes the diagnosis);
`conformance.driving` creates and steps the optimizer.
"""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

import reference
from reference._numerics import FloatFormat, format_of
from reference.sparse import SparseGrad

from .adapter import Adapter, handed, read
from .adapters.reference import ReferenceLive
from .comparison import BRANCH_NAMES, bit_identical, compare, first_bits, quantities
from .context import CheckFailure, CheckSkip, Context, Outcome
from .corpus import Case
from .driving import (
    create,
    forced_run,
    free_run,
    full,
    grads_supported,
    loss_at,
    needs,
    shared_free_run,
    start,
    unlocked,
)

__all__ = [
    "BRANCH_NAMES",
    "CHECKS",
    "REGISTRY",
    "Check",
    "CheckFailure",
    "CheckSkip",
    "Context",
    "InvalidSetting",
    "Outcome",
    "check_trajectory",
    "compare",
    "free_run",
    "invalid_settings",
]

# ---------------------------------------------------------------------------------------------------------------
# The checks


def check_trajectory(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """Free-running: params and every slot at every step, within the tolerance (the counter is judged apart)."""
    results = shared_free_run(ctx, cache)
    for step, (got, want) in enumerate(zip(results, ctx.case.expected, strict=True), start=1):
        compare(ctx, step, got, want, outcome)


def check_teacher_forced(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """From the expected state at step t, one step must give the expected state at t + 1, for every t, within the
    error scale of that one step (the corpus's stepScale), so a late step's error cannot hide in the earlier steps'
    accumulated S."""
    for step, (got, want) in enumerate(zip(forced_run(ctx), ctx.case.expected, strict=True), start=1):
        compare(ctx, step, got, want, outcome, forced=True)


def check_counter_and_slots(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """The counter is exact at every step; slot names, shapes and dtypes are the dialect's."""
    results = shared_free_run(ctx, cache)
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
        for quantity, wanted in quantities(want):
            gotten = got.params if quantity == "params" else got.state[quantity]
            shapes = [(np.asarray(g).dtype, np.shape(g)) for g in gotten]
            expected = [(fmt.np_dtype, w.shape) for w in wanted]
            if shapes != expected:
                raise ctx.fail(
                    f"{quantity} at step {step} has dtypes/shapes {shapes}, but should be {expected}", outcome
                )


def check_config_round_trip(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """get_config -> from_config keeps the configuration and behaves bit-identically."""
    adapter = full(ctx, "config")
    grads_supported(ctx)
    case = ctx.case
    original = unlocked(ctx, "config", create(ctx))
    config = original.config()
    rebuilt = unlocked(
        ctx, "config", start(ctx, adapter.from_config(case.dialect, handed(config), handed(case.initial_params)))
    )
    again = rebuilt.config()
    if again != config:
        changed = sorted(k for k in set(config) | set(again) if config.get(k) != again.get(k))
        raise ctx.fail(
            f"from_config(get_config()) changed the configuration: {', '.join(changed)} "
            f"({ {k: config.get(k) for k in changed} } -> { {k: again.get(k) for k in changed} })",
            outcome,
        )
    bit_identical(
        ctx, free_run(ctx, optimizer=original), free_run(ctx, optimizer=rebuilt), "the rebuilt optimizer", outcome
    )


def check_checkpoint(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """Save after step k, load into a fresh optimizer, continue: bit-identical to the uninterrupted run."""
    adapter = full(ctx, "serialize")
    case = ctx.case
    k = case.checkpoint
    if k is None:
        raise CheckSkip("the case has no checkpoint step")
    uninterrupted = shared_free_run(ctx, cache)
    first = unlocked(ctx, "serialize", create(ctx))
    before = free_run(ctx, steps=k, optimizer=first)
    with tempfile.TemporaryDirectory(prefix="optconf-") as folder:
        first.save(pathlib.Path(folder))
        resumed = adapter.load(case.dialect, handed(case.hparams), handed(before[-1].params), pathlib.Path(folder))
    loaded = read(resumed)
    bit_identical(ctx, [before[-1]], [loaded], f"the optimizer loaded after step {k}", outcome, first_step=k)
    after = free_run(ctx, optimizer=resumed, start=k)
    bit_identical(ctx, uninterrupted[k:], after, f"the run resumed after step {k}", outcome, first_step=k + 1)


def check_inputs_not_mutated(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """The gradients handed to the optimizer, dense and row-sparse (and its own copy of them), are unchanged by
    every step."""
    grads_supported(ctx)
    case = ctx.case
    optimizer = create(ctx)
    for t, row in enumerate(case.grads):
        given = handed(row)
        optimizer.step(given, loss_at(ctx, t))
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
        return where + first_bits(before, after, fmt)
    return None


def check_replicas(ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
    """Two replicas holding halves of each gradient aggregate to the case's gradient (summed)."""
    grads_supported(ctx)
    case = ctx.case
    if any(not isinstance(g, np.ndarray) for row in case.grads for g in row) or case.losses is not None:
        raise CheckSkip("replica aggregation is checked on dense cases without losses")
    optimizer = unlocked(ctx, "replicas", create(ctx))
    for t, row in enumerate(case.grads):
        halves = [_halve(g) for g in row]
        optimizer.step_replicated([[h[0] for h in halves], [h[1] for h in halves]])
        compare(ctx, t + 1, read(optimizer), case.expected[t], outcome)


def _halve(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g = a + b exactly: a is g rounded to half (exact unless subnormal) and b = g - a (exact by Sterbenz)."""
    a = (g.astype(np.float64) / 2).astype(g.dtype)
    b = (g.astype(np.float64) - a.astype(np.float64)).astype(g.dtype)
    return a, b


# ---------------------------------------------------------------------------------------------------------------
# Invalid hyperparameters: a refusal is earned. The same optimizer must be created and stepped with a valid value
# of the same keywords (the control), so that an adapter that cannot step at all, or cannot take the keyword,
# proves nothing; and the error must come from the optimizer, be a refusal rather than a defect, and (for a
# removed keyword, which has no valid value) name the keyword.

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
    candidates = dialect.family.invalid(dialect.knobs)  # the family's record says which values are out of range
    exposed = dialect.exposed
    for canonical, bad, good in candidates:
        alongside = dict(dialect.family.alongside.get(canonical, {}))
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


# ---------------------------------------------------------------------------------------------------------------
# The registry: one record per check, from which the runner's test functions are matched, the cases each check is
# collected for (`session.CASE_FILTERS`), its items and its report column are derived, in this order.

# The random cases, plus every edge whose option an optimizer might apply to the gradient in place.
_GRADIENT_TOUCHING = {"RANDOM", "SPARSE_DUPLICATES", "WEIGHT_DECAY", "MAXIMIZE", "CLIPPING"}

CaseCheck = Callable[[Context, Outcome, dict[str, Any]], None]


def _every_case(case: Case) -> bool:
    return True


def _touching_gradients(case: Case) -> bool:
    return bool(set(case.flags) & _GRADIENT_TOUCHING)


def _random_with_checkpoint(case: Case) -> bool:
    return "RANDOM" in case.flags and "CHECKPOINT" in case.flags


def _with_checkpoint(case: Case) -> bool:
    return "CHECKPOINT" in case.flags


def _random(case: Case) -> bool:
    return "RANDOM" in case.flags


@dataclass(frozen=True)
class Check:
    """One check: `test_<name>` in conformance/test_conformance.py runs it.

    `subjects` says what it is collected over: corpus cases (those `cases` keeps, of the dialects an adapter
    claims), the out-of-range settings of each claimed dialect, or fresh fuzzed cases of each (with --fuzz).
    `needs` is the capability it skips without, with why; `column` heads its column of the report, when that is
    not its name. `function` is what it runs, whose docstring documents it (fuzzing is run by conformance.fuzz,
    which itself runs a check, so it has none here).
    """

    name: str
    subjects: Literal["cases", "settings", "fuzz"]
    function: Callable[..., Any] | None = None
    cases: Callable[[Case], bool] = _every_case
    needs: tuple[str, str] | None = None  # (capability, what needs it)
    column: str | None = None
    forced: bool = False  # it drives by teacher forcing: its repro is `optconf explain --forced`

    @property
    def heading(self) -> str:
        return self.column or self.name

    def run(self, ctx: Context, outcome: Outcome, cache: dict[str, Any]) -> None:
        """The check on one case: skipped unless the adapter declares what it needs."""
        if self.subjects != "cases" or self.function is None:
            raise TypeError(f"check {self.name} does not run on a corpus case")
        if self.needs is not None:
            needs(ctx, *self.needs)
        self.function(ctx, outcome, cache)


REGISTRY: tuple[Check, ...] = (
    Check("trajectory", "cases", check_trajectory),
    Check("teacher_forced", "cases", check_teacher_forced, needs=("set_state", "teacher forcing needs"), forced=True),
    Check("counter_and_slots", "cases", check_counter_and_slots),
    Check(
        "config_round_trip",
        "cases",
        check_config_round_trip,
        _random_with_checkpoint,
        ("config", "the config round trip needs"),
    ),
    Check("checkpoint", "cases", check_checkpoint, _with_checkpoint, ("serialize", "save/load needs")),
    Check("inputs_not_mutated", "cases", check_inputs_not_mutated, _touching_gradients),
    Check("replicas", "cases", check_replicas, _random, ("replicas", "replica aggregation needs")),
    Check("invalid_hparams", "settings", check_invalid_hparams),
    Check("fuzz", "fuzz"),
)
BY_NAME = {check.name: check for check in REGISTRY}

# The checks that run on one corpus case, by name, each skipping unless the adapter declares what it needs.
CHECKS: dict[str, CaseCheck] = {check.name: check.run for check in REGISTRY if check.subjects == "cases"}
