"""The RProp family's record: its step, tolerances, refused settings, corpus cases and formula text."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import rprop
from .._numerics import FloatFormat
from ..family import Bound, Family, Invalid
from ..rprop import Backtrack, NanPolicy, RpropKnobs, SignTest, Switch
from ..vectors.casespec import CaseSpec, edge, exposes, special_gradients

if TYPE_CHECKING:
    from ..dialects import Dialect

__all__ = ["RPROP"]

_ONE_ROUNDING = Bound(
    1.0,
    "S counts each rounding, a hyperparameter's too; measured: every framework's RProp bit-exact where it "
    "conforms, the NumPy reference within 0.49 free-running and 0.65 teacher-forced",
)
_COPY = Bound(0.0, "a copy of an input (or 0): exact")


def _invalid(knobs: RpropKnobs) -> tuple[Invalid, ...]:
    common = (
        Invalid("lr", -0.1, 0.1),
        Invalid("eta_minus", 1.5, 0.5),
        Invalid("eta_plus", 0.5, 1.2),
        Invalid("step_min", 2.0, 1e-6),
        Invalid("weight_decay", -0.1, 0.1),
    )
    if not knobs.initial_step_within_bounds:
        return common
    # The bounds must hold the initial step (the default step_max is 50) and exclude a zero lower bound.
    return (*common, Invalid("lr", 60.0, 0.1), Invalid("step_min", 0.0, 1e-6))


def _random_hparams(dialect: Dialect, rng: random.Random) -> dict[str, Any]:
    drawn = {
        "lr": rng.choice([0.01, 0.05, 0.1]),
        "eta_minus": rng.choice([0.5, 0.4]),
        "eta_plus": rng.choice([1.2, 1.3]),
        "step_min": rng.choice([1e-6, 1e-3]),
        "step_max": rng.choice([50.0, 0.3]),
    }
    # Drawn last and only where exposed, so that the other dialects' cases keep their random stream.
    if exposes(dialect, "weight_decay"):
        drawn["weight_decay"] = rng.choice([0.0, 0.0, 0.01])
    return drawn


def _tiny_products(fmt: FloatFormat) -> tuple[float, float]:
    """(g whose g*g underflows to 0, g whose g*g is a nonzero subnormal), well clear of the threshold."""
    return {
        "float16": (1e-4, 1e-3),
        "bfloat16": (1e-25, 1e-19),
        "float32": (1e-25, 1e-19),
        "float64": (1e-170, 1e-160),
    }[fmt.name]


def _given_state_cases(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    # Step sizes and previous gradients per element, as a resumed run holds them: the signs of the stored gradients
    # decide, element by element, whether the first step grows, shrinks or keeps its step size.
    yield edge(
        d,
        fmt,
        ("INITIAL_STATE",),
        "step sizes and previous gradients given per element",
        {},
        [[1.0, -1.0, 0.5]],
        [[[0.5, 0.5, -0.25]], [[0.5, -0.5, -0.25]]],
        initial_state={d.slots["step_size"]: [[0.25, 0.5, 0.125]], d.slots["prev_grad"]: [[1.0, -1.0, 0.0]]},
    )


def _edge_cases(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    base = {"lr": 0.1}
    yield edge(
        d, fmt, ("SIGN_FLIPS",), "the sign flips every step", base, [[0.0, 1.0]], [[[1.0, -0.5]], [[-1.0, 0.5]]] * 5
    )
    yield edge(
        d,
        fmt,
        ("ZERO_GRADIENT",),
        "zero gradients between sign changes",
        base,
        [[0.0]],
        [[[g]] for g in (1.0, 0.0, 0.0, -1.0, 0.0, 1.0)],
    )
    yield edge(
        d, fmt, ("CLAMP_MAX",), "the step grows into step_max = 0.2", base | {"step_max": 0.2}, [[0.0]], [[[1.0]]] * 8
    )
    yield edge(
        d,
        fmt,
        ("CLAMP_MIN", "SIGN_FLIPS"),
        "the step shrinks into step_min = 0.01",
        base | {"step_min": 0.01},
        [[0.0]],
        [[[(-1.0) ** t]] for t in range(10)],
    )
    # A dialect that refuses an initial step outside the bounds has no such case.
    for lr in () if d.knobs.initial_step_within_bounds else (60.0, 1e-9):
        yield edge(
            d,
            fmt,
            ("INITIAL_STEP_OUTSIDE",),
            f"initial step {lr:g} outside [1e-6, 50]",
            {"lr": lr},
            [[0.0]],
            [[[1.0]], [[1.0]], [[-1.0]]],
        )
    under, sub = _tiny_products(fmt)
    for flag, g in (("PRODUCT_UNDERFLOW", under), ("PRODUCT_SUBNORMAL", sub)):
        yield edge(
            d,
            fmt,
            (flag,),
            f"g = {g:g}: g*p {'underflows to 0' if flag.endswith('FLOW') else 'is subnormal'}",
            base,
            [[0.0]],
            [[[g]], [[g]], [[g]], [[-g]], [[g]]],
        )
    if d.knobs.backtrack is Backtrack.IF_LOSS_ROSE:
        yield edge(
            d,
            fmt,
            ("LOSS_RISE_FALL_TIE",),
            "sign changes after a rise, a tie and a fall",
            base,
            [[0.0]],
            [[[g]] for g in (1.0, -1.0, 1.0, -1.0, 1.0, -1.0)],
            losses=[5.0, 6.0, 5.0, 5.0, 4.0, 3.0],
        )
    if exposes(d, "maximize"):
        yield edge(
            d,
            fmt,
            ("MAXIMIZE",),
            "maximize=True",
            base | {"maximize": True},
            [[0.0, 1.0]],
            [[[1.0, -1.0]], [[1.0, 1.0]], [[-1.0, 1.0]]],
        )
    if exposes(d, "weight_decay"):
        yield edge(
            d,
            fmt,
            ("WEIGHT_DECAY", "ZERO_GRADIENT"),
            "weight_decay = 0.25: a zero gradient still moves theta away from 0, and p keeps the decayed gradient",
            base | {"weight_decay": 0.25},
            [[1.0, -2.0, 0.0]],
            [[[0.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[-1.0, 0.0, 0.0]]],
        )
    yield from special_gradients(d, fmt, base)
    yield edge(
        d,
        fmt,
        ("BOUNDARY", "CLAMP_MAX"),
        "1.25 * eta+ lands on step_max = 1.5 (a deliberate tie)",
        {"lr": 1.25, "step_max": 1.5},
        [[0.0]],
        [[[1.0]], [[1.0]], [[1.0]]],
    )


def _describe(d: Dialect) -> list[str]:
    k: RpropKnobs = d.knobs
    lines = []
    if "maximize" in d.names.values():
        lines.append("g ← −g  (if maximize)")
    if exposes(d, "weight_decay"):
        lines.append("g ← g + fl(λ·θ)  (the decay term stored in the parameter format, then the sum)")
    test = "m = sign(fl(g·p))  (the product in the parameter format: it can underflow to 0)"
    if k.sign_test is SignTest.SIGNS:
        test = "m = sign(g)·sign(p)"
    if k.nan_policy is NanPolicy.SIGN_ZERO:
        test += "; sign(NaN) = 0"
    lines.append(test)
    lines.append("m > 0: Δ ← min(η⁺·Δ, Δmax); d = −sign(g)·Δ")
    shrink = "m < 0" if k.switch is Switch.THREE_WAY else "m ≤ 0"
    if k.backtrack is Backtrack.ALWAYS:
        move = "d = −d⁻ (backtrack)"
    elif k.backtrack is Backtrack.IF_LOSS_ROSE:
        move = "d = −d⁻ if E > E⁻ else " + ("−sign(g)·Δ" if k.move_on_sign_change else "0")
    else:
        move = "d = −sign(g)·Δ" if k.move_on_sign_change else "d = 0"
    freeze = "; p ← 0" if k.freeze else ""
    lines.append(f"{shrink}: Δ ← max(η⁻·Δ, Δmin); {move}{freeze}")
    if k.switch is Switch.THREE_WAY:
        kept = "Δ ← min(max(Δ, Δmin), Δmax)" if k.clamp_zero_branch else "Δ unchanged"
        lines.append(f"m = 0: {kept}; d = −sign(g)·Δ")
    lines.append("θ ← θ + d;  p ← g (after any freeze);  d⁻ ← d;  E⁻ ← E")
    return lines


RPROP = Family(
    name="rprop",
    hparams_type=rprop.RpropHparams,
    init=rprop.init,
    step=rprop.step,
    validate=rprop.validate,
    slots=("step_size", "prev_grad", "prev_update"),
    tolerance={
        "params": _ONE_ROUNDING,
        "step_size": _ONE_ROUNDING,
        "prev_update": _ONE_ROUNDING,
        "prev_grad": _COPY,
        "prev_loss": _COPY,  # iRprop+'s E_prev, reported as one more slot
    },
    invalid=_invalid,
    alongside={"step_min": {"step_max": 1.0}},  # step_min = 2 is only out of range beside step_max = 1
    random_hparams=_random_hparams,
    zero_chance=0.15,  # many exact zeros: the m = 0 branch
    edge_cases=_edge_cases,
    given_state_cases=_given_state_cases,
    stress_hparams={"lr": 0.01, "step_min": 0.004, "step_max": 0.03},
    describe=_describe,
    has_branches=True,
)
