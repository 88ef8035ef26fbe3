"""The Adagrad family's record: its step, tolerances, refused settings, corpus cases and formula text."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import adagrad
from .._numerics import FloatFormat
from ..adagrad import AdagradKnobs, ClipKind, ClipPolicy, EpsPlacement, LrDecay, Momentum, WeightDecay
from ..family import Bound, Family, Invalid
from ..sparse import SparseGrad
from ..vectors.casespec import CaseSpec, edge, exposes, special_gradients

if TYPE_CHECKING:
    from ..dialects import Dialect

__all__ = ["ADAGRAD"]

_K = Bound(
    2.0,
    "measured worst k over every framework of the matrix in all its formats: 0.76 free-running, 0.94 "
    "teacher-forced (S of the step alone); 1.85 in the SUBNORMAL case, where TF and XLA flush subnormals to "
    "zero; x2 for CPUs whose sqrt/rsqrt round differently",
)

# The momentum slot m is one rounding away from a scaled gradient, like the parameters' update: the same k.
_K_MOMENTUM = Bound(
    2.0,
    "as for the parameters; measured worst k for m over jax.example_libraries' Adagrad (eager, jit) in all four "
    "formats: 0.29 free-running, 0.56 teacher-forced",
)

_INVALID = (
    Invalid("lr", -0.1, 0.1),
    Invalid("eps", -1e-3, 1e-3),
    Invalid("initial_accumulator", -1.0, 0.1),
    Invalid("decay", -0.5, 0.5),
    Invalid("weight_decay", -0.1, 0.1),
    Invalid("clipnorm", -1.0, 1.0),
    Invalid("clipvalue", -1.0, 1.0),
    Invalid("global_clipnorm", -1.0, 1.0),
    Invalid("momentum", -0.1, 0.9),
    Invalid("momentum", 1.0, 0.9),
)


def _invalid(knobs: AdagradKnobs) -> tuple[Invalid, ...]:
    # TF1 refuses a zero initial accumulator too, and MLX a zero epsilon, which every other dialect accepts.
    return (
        _INVALID
        + ((Invalid("initial_accumulator", 0.0, 0.1),) if knobs.initial_accumulator_positive else ())
        + ((Invalid("eps", 0.0, 1e-3),) if knobs.eps_positive else ())
    )


def _random_hparams(dialect: Dialect, rng: random.Random) -> dict[str, Any]:
    lowest_a0 = 0.1 if dialect.knobs.initial_accumulator_positive else 0.0
    drawn = {
        "lr": rng.choice([0.01, 0.05, 0.1, 0.5]),
        "initial_accumulator": rng.choice([lowest_a0, 0.1, 0.5]),
        "eps": rng.choice([1e-7, 1e-3, dialect.defaults.get("eps", 1e-7)]),
        "decay": rng.choice([0.0, 0.01, 0.1]),
        "weight_decay": rng.choice([0.0, 0.0, 0.01]),
    }
    # Drawn last, and only where the dialect has momentum: every other dialect's draws, and so its corpus, stay.
    if exposes(dialect, "momentum"):
        drawn["momentum"] = rng.choice([0.0, 0.5, 0.9])
    return drawn


def _overflowing(fmt: FloatFormat) -> float:
    return {"float16": 300.0, "bfloat16": 1e20, "float32": 1e20, "float64": 1e160}[fmt.name]


def _edge_cases(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    k = d.knobs
    base = {"lr": 0.1}
    a0 = "initial_accumulator"
    a0_zero_ok = not k.initial_accumulator_positive and (exposes(d, a0) or d.defaults.get(a0) == 0.0)
    has_eps = exposes(d, "eps")
    s = fmt.smallest_subnormal
    if a0_zero_ok and has_eps and not k.eps_positive:
        flags = ("ZERO_ACCUMULATOR_EPS0", "ZERO_GRADIENT") + (("EPS_ZERO_REWRITE",) if k.eps_if_falsy else ())
        yield edge(
            d,
            fmt,
            flags,
            "A0 = 0, eps = 0, a zero gradient in the first element",
            base | {"initial_accumulator": 0.0, "eps": 0.0},
            [[1.0, -2.0]],
            [[[0.0, 1.0]], [[0.0, 2.0]]],
        )
    yield edge(d, fmt, ("ZERO_GRADIENT",), "zero gradients: nothing moves", base, [[1.0, -0.5]], [[[0.0, 0.0]]] * 3)
    if has_eps and a0_zero_ok:
        yield edge(
            d,
            fmt,
            ("EPS_DECIDES",),
            "tiny gradients where eps placement decides: with A0 0, sqrt(A + eps) and sqrt(A) + eps are far apart",
            base | {"initial_accumulator": 0.0, "eps": 1e-7},
            [[1.0, -2.0, 0.5]],
            [[[1e-4, -3e-4, 0.0]], [[2e-4, 1e-4, 0.0]], [[-1e-4, 5e-4, 0.0]]],
        )
    big = _overflowing(fmt)
    yield edge(
        d,
        fmt,
        ("SQUARE_OVERFLOW",),
        f"g = {big:g}: g*g overflows {fmt.name}",
        base,
        [[1.0, 1.0]],
        [[[big, 1.0]], [[1.0, -big]], [[0.5, 0.5]]],
    )
    yield edge(
        d,
        fmt,
        ("SUBNORMAL",),
        "subnormal parameters and gradients",
        base,
        [[3 * s, -5 * s, 1.0]],
        [[[s, -2 * s, 7 * s]], [[-s, 4 * s, 0.0]]],
    )
    if exposes(d, "decay"):
        yield edge(
            d,
            fmt,
            ("DECAY_LARGE_STEP",),
            "inverse-time decay with the counter starting at 1e6",
            base | {"decay": 0.01},
            [[1.0, -1.0]],
            [[[0.5, 0.25]], [[-0.5, 1.0]]],
            initial_count=10**6,
        )
    if exposes(d, "weight_decay"):
        yield edge(
            d,
            fmt,
            ("WEIGHT_DECAY",),
            "weight decay 0.1",
            base | {"weight_decay": 0.1},
            [[1.0, -2.0, 0.5]],
            [[[0.5, -1.0, 0.0]], [[0.25, 1.0, -0.5]], [[-0.5, 0.5, 0.5]]],
        )
    for clips in _clip_combinations(d):
        name = "+".join(c.value for c in clips)
        thresholds = {ClipKind.VALUE: 0.5, ClipKind.NORM: 1.0, ClipKind.GLOBAL_NORM: 1.5}
        yield edge(
            d,
            fmt,
            ("CLIPPING", "MULTI_TENSOR"),
            f"clipping: {name}",
            base | {c.value: thresholds[c] for c in clips},
            [[1.0, -2.0], [0.5]],
            [[[3.0, 0.25], [-2.0]], [[-1.0, 4.0], [0.125]]],
        )
    if exposes(d, "maximize"):
        yield edge(
            d,
            fmt,
            ("MAXIMIZE",),
            "maximize=True",
            base | {"maximize": True},
            [[1.0, -1.0]],
            [[[0.5, -0.25]], [[1.0, 2.0]]],
        )
    if exposes(d, a0) and d.defaults.get(a0) == 0.0:
        # The default of 0 would hide an implementation that ignores the keyword: every other case leaves it at 0.
        yield edge(
            d,
            fmt,
            ("INITIAL_ACCUMULATOR",),
            "initial accumulator 0.5 through its keyword (the default is 0)",
            base | {a0: 0.5},
            [[1.0, -2.0]],
            [[[0.5, -1.0]], [[0.25, 0.5]]],
        )
    if exposes(d, "momentum"):
        yield edge(
            d,
            fmt,
            ("MOMENTUM", "ZERO_GRADIENT"),
            "momentum 0.5: the parameters keep moving on zero gradients, and the first element never moves",
            base | {"momentum": 0.5},
            [[1.0, -1.0]],
            [[[0.0, 0.5]], [[0.0, -1.0]], [[0.0, 0.0]], [[0.0, 0.0]]],
        )
    if exposes(d, "update_slots"):
        yield edge(
            d,
            fmt,
            ("UPDATE_SLOTS_FALSE",),
            "update_slots=False",
            base | {"update_slots": False},
            [[1.0, -1.0]],
            [[[0.5, -0.25]], [[1.0, 2.0]]],
        )
    default_eps = d.defaults.get("eps", 0.0)
    if a0_zero_ok and 0 < default_eps < fmt.smallest_subnormal and k.eps_placement is not EpsPlacement.INSIDE_MASKED:
        yield edge(
            d,
            fmt,
            ("EPS_BELOW_FORMAT", "ZERO_GRADIENT"),
            f"default eps {default_eps:g} with A = g = 0",
            base | {"initial_accumulator": 0.0},
            [[1.0, 2.0]],
            [[[0.0, 1.0]], [[0.0, 1.0]]],
        )
    yield from special_gradients(d, fmt, base)
    if k.sparse is not None:
        rows = SparseGrad((1, 1, 2), np.array([[1.0, 0.5], [2.0, -1.0], [0.25, 0.25]]))
        again = SparseGrad((2, 0, 2), np.array([[-1.0, 1.0], [0.5, 0.5], [1.0, 1.0]]))
        yield edge(
            d,
            fmt,
            ("SPARSE_DUPLICATES",),
            f"row-sparse gradients with repeated rows ({k.sparse.value})",
            base,
            [[[1.0, -1.0], [2.0, 0.5], [-0.5, 0.25]]],
            [[rows], [again]],
        )


def _given_state_cases(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    # A different accumulator in every element, one of them 0 under a non-zero gradient: a scalar initial value
    # cannot build it, so an implementation that ignores the state handed in fails at step 1.
    slot = d.slots["accumulator"]
    yield edge(
        d,
        fmt,
        ("INITIAL_STATE",),
        "an initial accumulator given per element",
        {"lr": 0.1},
        [[1.0, -2.0, 0.5, 3.0]],
        [[[0.5, -1.0, 0.25, 2.0]], [[-0.25, 0.5, 1.0, -1.0]], [[1.0, 1.0, -0.5, 0.5]]],
        initial_state={slot: [[0.25, 4.0, 0.0, 100.0]]},
    )
    if exposes(d, "decay") and d.counter is not None:
        yield edge(
            d,
            fmt,
            ("INITIAL_STATE", "MULTI_TENSOR"),
            "the whole state given: accumulators per element and the counter at 5, with inverse-time decay",
            {"lr": 0.5, "decay": 0.1},
            [[1.0, -1.0], [2.0]],
            [[[0.5, 0.25], [-1.0]], [[-0.5, 1.0], [0.125]]],
            initial_state={slot: [[1.0, 0.5], [2.0]]},
            initial_count=5,
        )


def _clip_combinations(d: Dialect) -> Iterator[tuple[ClipKind, ...]]:
    order = d.knobs.clip_order
    for kind in order:
        yield (kind,)
    for i, first in enumerate(order):
        for second in order[i + 1 :]:
            if not {first, second} <= d.knobs.exclusive_clips:
                yield (first, second)


_DENOMINATOR = {
    EpsPlacement.OUTSIDE: "(√A + ε)",
    EpsPlacement.INSIDE: "√(A + ε)",
    EpsPlacement.INSIDE_MASKED: "√(A + ε), and the step is 0 where A = 0",
    EpsPlacement.NONE: "√A",
    EpsPlacement.NONE_MASKED: "√A, and 0 where A = 0",
}
_CLIP = {
    ClipKind.VALUE: "g ← min(max(g, −v), v)  (clipvalue v)",
    ClipKind.NORM: "g ← g·c / max(‖g‖₂, c)  (clipnorm c, each tensor alone)",
    ClipKind.GLOBAL_NORM: "g ← g·c / max(‖G‖₂, c)  (global clipnorm c, G = all tensors together)",
}


def _describe(d: Dialect) -> list[str]:
    k: AdagradKnobs = d.knobs
    lines = []
    if "maximize" in d.names.values():
        lines.append("g ← −g  (if maximize)")
    clip_note = {
        ClipPolicy.ALL_IN_ORDER: "each one set, in this order",
        ClipPolicy.FIRST_SET_ONLY: "only the first set",
    }
    note = "at most one may be set" if set(k.clip_order) <= k.exclusive_clips else clip_note[k.clip_policy]
    for kind in k.clip_order:
        lines.append(f"{_CLIP[kind]}  [{note}]")
    if k.weight_decay is WeightDecay.COUPLED:
        lines.append("g ← g + λ·θ")
    if k.weight_decay is WeightDecay.COUPLED_ALWAYS:
        lines.append("g ← g + λ·θ  (at every step, even λ = 0: 0·θ is NaN where θ is NaN or ±∞)")
    lines.append("η_t = η / (1 + κ·t)" if k.lr_decay is LrDecay.INVERSE_TIME else "η_t = η")
    slots_note = "  (skipped when update_slots is false)" if "update_slots" in d.names.values() else ""
    lines.append(f"A ← A + g·g{slots_note}")
    if k.weight_decay is WeightDecay.DECOUPLED:
        lines.append("θ ← θ − θ·λ·η_t  (whenever weight_decay is given, even 0)")
    if k.momentum is Momentum.PRECONDITIONED:
        lines.append(f"u = g / {_DENOMINATOR[k.eps_placement]}")
        lines.append("m ← (1 − β)·u + β·m  (1 − β evaluated in binary64, then rounded as β is)")
        lines.append("θ ← θ − η_t·m")
    else:
        lines.append(f"θ ← θ − (η_t·g) / {_DENOMINATOR[k.eps_placement]}")
    return lines


ADAGRAD = Family(
    name="adagrad",
    hparams_type=adagrad.AdagradHparams,
    init=adagrad.init,
    step=adagrad.step,
    validate=adagrad.validate,
    slots=("accumulator", "momentum"),
    tolerance={"params": _K, "accumulator": _K, "momentum": _K_MOMENTUM},
    invalid=_invalid,
    alongside={},
    random_hparams=_random_hparams,
    zero_chance=0.05,
    edge_cases=_edge_cases,
    given_state_cases=_given_state_cases,
    stress_hparams={"clipvalue": 0.5, "weight_decay": 0.01, "decay": 0.1, "lr": 0.05},
    describe=_describe,
    has_branches=False,
)
