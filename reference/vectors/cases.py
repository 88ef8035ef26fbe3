"""The case catalogue: for every dialect and format, seeded random trajectories plus the edge grid.

Randomness comes from Python's `random.Random` seeded from a SHA-256 of the case's key, and every random
number is a dyadic rational built from integers, so the catalogue is the same on any platform and NumPy.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._numerics import FloatFormat, format_of
from ..adagrad import ClipKind, EpsPlacement
from ..dialects import DIALECTS, Dialect
from ..rprop import Backtrack
from ..sparse import SparseGrad

__all__ = ["SEED", "CaseSpec", "catalogue", "redraw"]

SEED = 20261121
RANDOM_STEPS = 10
LEVEL1_RANDOM_SHAPES: tuple[tuple[tuple[int, ...], ...], ...] = (((3,),), ((2, 2),))
LEVEL2_RANDOM_SHAPES: tuple[tuple[tuple[int, ...], ...], ...] = (
    ((5,),),
    ((8,),),
    ((3, 4),),
    ((4,), (3,)),
    ((),),
    ((16,),),
)


@dataclass(frozen=True)
class CaseSpec:
    """One case before evaluation. `hparams` use the dialect's own names; arrays hold float64 inputs."""

    dialect: str
    dtype: str
    level: int
    flags: tuple[str, ...]
    comment: str
    hparams: dict[str, Any]
    params: list[np.ndarray]
    grads: list[list[Any]]
    losses: list[float] | None = None
    initial_count: int = 0
    checkpoint: int | None = None
    seed_key: str = ""
    attempt: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def rng_for(key: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{SEED}/{key}".encode()).digest()[:8], "big"))


def _dyadic(rng: random.Random, lo_exp: int = -3, hi_exp: int = 1) -> float:
    """A random float (1 + m/2^20) * 2^e with a random sign: exact in every format's range used here."""
    mantissa = 1 + rng.getrandbits(20) / 2**20
    return (-1) ** rng.getrandbits(1) * mantissa * 2.0 ** rng.randint(lo_exp, hi_exp)


def _tensor(rng: random.Random, shape: tuple[int, ...], zero_chance: float = 0.0) -> np.ndarray:
    size = int(np.prod(shape, dtype=int))
    values = [0.0 if rng.random() < zero_chance else _dyadic(rng) for _ in range(size)]
    return np.array(values, dtype=np.float64).reshape(shape)


def _exposes(dialect: Dialect, canonical: str) -> bool:
    return any(canonical == t or (isinstance(t, tuple) and canonical in t) for t in dialect.names.values())


def _hparams(dialect: Dialect, canonical: dict[str, Any]) -> dict[str, Any]:
    return dialect.framework_hparams({k: v for k, v in canonical.items() if _exposes(dialect, k)})


def random_hparams(dialect: Dialect, rng: random.Random) -> dict[str, Any]:
    if dialect.family.name == "adagrad":
        lowest_a0 = 0.1 if dialect.knobs.initial_accumulator_positive else 0.0
        canonical = {
            "lr": rng.choice([0.01, 0.05, 0.1, 0.5]),
            "initial_accumulator": rng.choice([lowest_a0, 0.1, 0.5]),
            "eps": rng.choice([1e-7, 1e-3, dialect.defaults.get("eps", 1e-7)]),
            "decay": rng.choice([0.0, 0.01, 0.1]),
            "weight_decay": rng.choice([0.0, 0.0, 0.01]),
        }
    else:
        canonical = {
            "lr": rng.choice([0.01, 0.05, 0.1]),
            "eta_minus": rng.choice([0.5, 0.4]),
            "eta_plus": rng.choice([1.2, 1.3]),
            "step_min": rng.choice([1e-6, 1e-3]),
            "step_max": rng.choice([50.0, 0.3]),
        }
    return _hparams(dialect, canonical)


def _random_cases(dialect: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    shapes = [(1, s) for s in LEVEL1_RANDOM_SHAPES] + [(2, s) for s in LEVEL2_RANDOM_SHAPES]
    for index, (level, tensor_shapes) in enumerate(shapes):
        yield _random_case(dialect, fmt, index, level, tensor_shapes, attempt=0)


def _random_case(
    dialect: Dialect, fmt: FloatFormat, index: int, level: int, shapes: tuple[tuple[int, ...], ...], attempt: int
) -> CaseSpec:
    key = f"{dialect.id}/{fmt.name}/random{index}" + (f"/retry{attempt}" if attempt else "")
    rng = rng_for(key)
    flags = ["RANDOM"]
    if len(shapes) > 1:
        flags.append("MULTI_TENSOR")
    if shapes == ((),):
        flags.append("SCALAR")
    checkpoint = RANDOM_STEPS // 2 if index in (1, 3) else None
    if checkpoint:
        flags.append("CHECKPOINT")
    zero_chance = 0.15 if dialect.family.name == "rprop" else 0.05
    return CaseSpec(
        dialect=dialect.id,
        dtype=fmt.name,
        level=level,
        flags=tuple(flags),
        comment=f"random trajectory, shapes {[list(s) for s in shapes]}",
        hparams=random_hparams(dialect, rng),
        params=[_tensor(rng, s) for s in shapes],
        grads=[[_tensor(rng, s, zero_chance) for s in shapes] for _ in range(RANDOM_STEPS)],
        losses=[float(rng.randint(0, 40)) / 4 for _ in range(RANDOM_STEPS)] if dialect.needs_loss else None,
        checkpoint=checkpoint,
        seed_key=key,
        attempt=attempt,
        extra={"index": index, "shapes": shapes},
    )


def redraw(spec: CaseSpec) -> CaseSpec:
    """The same random case drawn again from the next seed (the guard band rejected the previous draw)."""
    index, shapes = spec.extra["index"], spec.extra["shapes"]
    return _random_case(DIALECTS[spec.dialect], format_of(spec.dtype), index, spec.level, shapes, spec.attempt + 1)


def _edge(
    dialect: Dialect,
    fmt: FloatFormat,
    flags: tuple[str, ...],
    comment: str,
    canonical: dict[str, Any],
    params: list[Any],
    grads: list[list[Any]],
    **extra: Any,
) -> CaseSpec:
    losses = extra.pop("losses", None)
    if dialect.needs_loss and losses is None:
        losses = [float(10 - t) for t in range(len(grads))]
    return CaseSpec(
        dialect=dialect.id,
        dtype=fmt.name,
        level=1,
        flags=flags,
        comment=comment,
        hparams=_hparams(dialect, canonical),
        params=[np.asarray(p, dtype=np.float64) for p in params],
        grads=[[g if isinstance(g, SparseGrad) else np.asarray(g, dtype=np.float64) for g in row] for row in grads],
        losses=losses,
        **extra,
    )


def _overflowing(fmt: FloatFormat) -> float:
    return {"float16": 300.0, "bfloat16": 1e20, "float32": 1e20, "float64": 1e160}[fmt.name]


def _adagrad_edges(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    k = d.knobs
    base = {"lr": 0.1}
    a0 = "initial_accumulator"
    a0_zero_ok = not k.initial_accumulator_positive and (_exposes(d, a0) or d.defaults.get(a0) == 0.0)
    has_eps = _exposes(d, "eps")
    s = fmt.smallest_subnormal
    if a0_zero_ok and has_eps:
        flags = ("ZERO_ACCUMULATOR_EPS0", "ZERO_GRADIENT") + (("EPS_ZERO_REWRITE",) if k.eps_if_falsy else ())
        yield _edge(
            d,
            fmt,
            flags,
            "A0 = 0, eps = 0, a zero gradient in the first element",
            base | {"initial_accumulator": 0.0, "eps": 0.0},
            [[1.0, -2.0]],
            [[[0.0, 1.0]], [[0.0, 2.0]]],
        )
    yield _edge(d, fmt, ("ZERO_GRADIENT",), "zero gradients: nothing moves", base, [[1.0, -0.5]], [[[0.0, 0.0]]] * 3)
    if has_eps and a0_zero_ok:
        yield _edge(
            d,
            fmt,
            ("EPS_DECIDES",),
            "tiny gradients where eps placement decides: with A0 0, sqrt(A + eps) and sqrt(A) + eps are far apart",
            base | {"initial_accumulator": 0.0, "eps": 1e-7},
            [[1.0, -2.0, 0.5]],
            [[[1e-4, -3e-4, 0.0]], [[2e-4, 1e-4, 0.0]], [[-1e-4, 5e-4, 0.0]]],
        )
    big = _overflowing(fmt)
    yield _edge(
        d,
        fmt,
        ("SQUARE_OVERFLOW",),
        f"g = {big:g}: g*g overflows {fmt.name}",
        base,
        [[1.0, 1.0]],
        [[[big, 1.0]], [[1.0, -big]], [[0.5, 0.5]]],
    )
    yield _edge(
        d,
        fmt,
        ("SUBNORMAL",),
        "subnormal parameters and gradients",
        base,
        [[3 * s, -5 * s, 1.0]],
        [[[s, -2 * s, 7 * s]], [[-s, 4 * s, 0.0]]],
    )
    if _exposes(d, "decay"):
        yield _edge(
            d,
            fmt,
            ("DECAY_LARGE_STEP",),
            "inverse-time decay with the counter starting at 1e6",
            base | {"decay": 0.01},
            [[1.0, -1.0]],
            [[[0.5, 0.25]], [[-0.5, 1.0]]],
            initial_count=10**6,
        )
    if _exposes(d, "weight_decay"):
        yield _edge(
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
        yield _edge(
            d,
            fmt,
            ("CLIPPING", "MULTI_TENSOR"),
            f"clipping: {name}",
            base | {c.value: thresholds[c] for c in clips},
            [[1.0, -2.0], [0.5]],
            [[[3.0, 0.25], [-2.0]], [[-1.0, 4.0], [0.125]]],
        )
    if _exposes(d, "maximize"):
        yield _edge(
            d,
            fmt,
            ("MAXIMIZE",),
            "maximize=True",
            base | {"maximize": True},
            [[1.0, -1.0]],
            [[[0.5, -0.25]], [[1.0, 2.0]]],
        )
    if _exposes(d, "update_slots"):
        yield _edge(
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
        yield _edge(
            d,
            fmt,
            ("EPS_BELOW_FORMAT", "ZERO_GRADIENT"),
            f"default eps {default_eps:g} with A = g = 0",
            base | {"initial_accumulator": 0.0},
            [[1.0, 2.0]],
            [[[0.0, 1.0]], [[0.0, 1.0]]],
        )
    yield from _special_gradients(d, fmt, base)
    if k.sparse is not None:
        rows = SparseGrad((1, 1, 2), np.array([[1.0, 0.5], [2.0, -1.0], [0.25, 0.25]]))
        again = SparseGrad((2, 0, 2), np.array([[-1.0, 1.0], [0.5, 0.5], [1.0, 1.0]]))
        yield _edge(
            d,
            fmt,
            ("SPARSE_DUPLICATES",),
            f"row-sparse gradients with repeated rows ({k.sparse.value})",
            base,
            [[[1.0, -1.0], [2.0, 0.5], [-0.5, 0.25]]],
            [[rows], [again]],
        )


def _structural(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    yield _edge(
        d,
        fmt,
        ("ZERO_SIZE", "MULTI_TENSOR"),
        "an empty parameter tensor beside a normal one",
        {"lr": 0.1},
        [np.zeros((0,)), [1.0, -1.0]],
        [[np.zeros((0,)), [0.5, -0.25]], [np.zeros((0,)), [-1.0, 1.0]]],
    )


def _clip_combinations(d: Dialect) -> Iterator[tuple[ClipKind, ...]]:
    order = d.knobs.clip_order
    for kind in order:
        yield (kind,)
    for i, first in enumerate(order):
        for second in order[i + 1 :]:
            if not {first, second} <= d.knobs.exclusive_clips:
                yield (first, second)


def _special_gradients(d: Dialect, fmt: FloatFormat, base: dict[str, Any]) -> Iterator[CaseSpec]:
    for flag, bad in (("NAN_GRADIENT", float("nan")), ("INF_GRADIENT", float("inf"))):
        yield _edge(
            d,
            fmt,
            (flag,),
            f"a {bad} gradient element, then ordinary steps",
            base,
            [[1.0, 2.0]],
            [[[bad, 0.5]], [[1.0, 0.5]], [[-1.0, 0.5]]],
        )


def _tiny_products(fmt: FloatFormat) -> tuple[float, float]:
    """(g whose g*g underflows to 0, g whose g*g is a nonzero subnormal), well clear of the threshold."""
    return {
        "float16": (1e-4, 1e-3),
        "bfloat16": (1e-25, 1e-19),
        "float32": (1e-25, 1e-19),
        "float64": (1e-170, 1e-160),
    }[fmt.name]


def _rprop_edges(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    base = {"lr": 0.1}
    yield _edge(
        d, fmt, ("SIGN_FLIPS",), "the sign flips every step", base, [[0.0, 1.0]], [[[1.0, -0.5]], [[-1.0, 0.5]]] * 5
    )
    yield _edge(
        d,
        fmt,
        ("ZERO_GRADIENT",),
        "zero gradients between sign changes",
        base,
        [[0.0]],
        [[[g]] for g in (1.0, 0.0, 0.0, -1.0, 0.0, 1.0)],
    )
    yield _edge(
        d, fmt, ("CLAMP_MAX",), "the step grows into step_max = 0.2", base | {"step_max": 0.2}, [[0.0]], [[[1.0]]] * 8
    )
    yield _edge(
        d,
        fmt,
        ("CLAMP_MIN", "SIGN_FLIPS"),
        "the step shrinks into step_min = 0.01",
        base | {"step_min": 0.01},
        [[0.0]],
        [[[(-1.0) ** t]] for t in range(10)],
    )
    for lr in (60.0, 1e-9):
        yield _edge(
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
        yield _edge(
            d,
            fmt,
            (flag,),
            f"g = {g:g}: g*p {'underflows to 0' if flag.endswith('FLOW') else 'is subnormal'}",
            base,
            [[0.0]],
            [[[g]], [[g]], [[g]], [[-g]], [[g]]],
        )
    if d.knobs.backtrack is Backtrack.IF_LOSS_ROSE:
        yield _edge(
            d,
            fmt,
            ("LOSS_RISE_FALL_TIE",),
            "sign changes after a rise, a tie and a fall",
            base,
            [[0.0]],
            [[[g]] for g in (1.0, -1.0, 1.0, -1.0, 1.0, -1.0)],
            losses=[5.0, 6.0, 5.0, 5.0, 4.0, 3.0],
        )
    if _exposes(d, "maximize"):
        yield _edge(
            d,
            fmt,
            ("MAXIMIZE",),
            "maximize=True",
            base | {"maximize": True},
            [[0.0, 1.0]],
            [[[1.0, -1.0]], [[1.0, 1.0]], [[-1.0, 1.0]]],
        )
    yield from _special_gradients(d, fmt, base)
    yield _edge(
        d,
        fmt,
        ("BOUNDARY", "CLAMP_MAX"),
        "1.25 * eta+ lands on step_max = 1.5 (a deliberate tie)",
        {"lr": 1.25, "step_max": 1.5},
        [[0.0]],
        [[[1.0]], [[1.0]], [[1.0]]],
    )


def catalogue(dialect_id: str, dtype: str) -> list[CaseSpec]:
    """Every case of one dialect and format, in tcId order."""
    d = DIALECTS[dialect_id]
    fmt = format_of(dtype)
    edges: Callable[[Dialect, FloatFormat], Iterator[CaseSpec]] = (
        _adagrad_edges if d.family.name == "adagrad" else _rprop_edges
    )
    return [*edges(d, fmt), *_structural(d, fmt), *_random_cases(d, fmt)]
