"""The case catalogue: for every dialect and format, seeded random trajectories plus the edge grid.

Randomness comes from Python's `random.Random` seeded from a SHA-256 of the case's key, and every random
number is a dyadic rational built from integers, so the catalogue is the same on any platform and NumPy.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from .._numerics import FloatFormat, format_of
from ..dialects import DIALECTS, Dialect
from .casespec import CaseSpec, edge, named_hparams

__all__ = [
    "SEED",
    "CaseSpec",
    "RandomInputs",
    "catalogue",
    "given_state_catalogue",
    "random_hparams",
    "random_inputs",
    "redraw",
    "rng_for",
]

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


def random_hparams(dialect: Dialect, rng: random.Random) -> dict[str, Any]:
    """A random case's hyperparameters in the dialect's own names, drawn as the family's record says."""
    return named_hparams(dialect, dialect.family.random_hparams(dialect, rng))


class RandomInputs(NamedTuple):
    """A random trajectory's inputs: hyperparameters in the dialect's names, float64 params, one gradient row a step."""

    hparams: dict[str, Any]
    params: list[np.ndarray]
    grads: list[list[np.ndarray]]
    losses: list[float] | None


def random_inputs(dialect: Dialect, rng: random.Random, shapes: Sequence[tuple[int, ...]], steps: int) -> RandomInputs:
    """Draw a random trajectory's inputs from `rng`, in the corpus's order: hyperparameters (as the family's record
    draws them), params, gradients (exact zeros as often as the record says), then losses where the dialect needs
    them. The corpus draws its random cases here, and so do the differential tests, with their own shapes."""
    zero_chance = dialect.family.zero_chance
    return RandomInputs(
        hparams=random_hparams(dialect, rng),
        params=[_tensor(rng, s) for s in shapes],
        grads=[[_tensor(rng, s, zero_chance) for s in shapes] for _ in range(steps)],
        losses=[float(rng.randint(0, 40)) / 4 for _ in range(steps)] if dialect.needs_loss else None,
    )


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
    drawn = random_inputs(dialect, rng, shapes, RANDOM_STEPS)
    return CaseSpec(
        dialect=dialect.id,
        dtype=fmt.name,
        level=level,
        flags=tuple(flags),
        comment=f"random trajectory, shapes {[list(s) for s in shapes]}",
        hparams=drawn.hparams,
        params=drawn.params,
        grads=drawn.grads,
        losses=drawn.losses,
        checkpoint=checkpoint,
        seed_key=key,
        attempt=attempt,
        extra={"index": index, "shapes": shapes},
    )


def redraw(spec: CaseSpec) -> CaseSpec:
    """The same random case drawn again from the next seed (the guard band rejected the previous draw)."""
    index, shapes = spec.extra["index"], spec.extra["shapes"]
    return _random_case(DIALECTS[spec.dialect], format_of(spec.dtype), index, spec.level, shapes, spec.attempt + 1)


def _structural(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    yield from _aliases_together(d, fmt)
    yield edge(
        d,
        fmt,
        ("ZERO_SIZE", "MULTI_TENSOR"),
        "an empty parameter tensor beside a normal one",
        {"lr": 0.1},
        [np.zeros((0,)), [1.0, -1.0]],
        [[np.zeros((0,)), [0.5, -0.25]], [np.zeros((0,)), [-1.0, 1.0]]],
    )


def _aliases_together(d: Dialect, fmt: FloatFormat) -> Iterator[CaseSpec]:
    """Each keyword the framework prefers, given together with an alias of it: the preferred one's value applies."""
    for winner in sorted(d.alias_winners):
        target = d.names[winner]
        for other in (n for n, t in d.names.items() if t == target and n != winner):
            case = edge(
                d,
                fmt,
                ("ALIASES",),
                f"{other}=0.5 and {winner}=0.1 given together: {winner} applies",
                {},
                [[1.0, -2.0]],
                [[[0.5, -1.0]], [[0.25, 0.5]]],
            )
            yield replace(case, hparams=case.hparams | {other: 0.5, winner: 0.1})


def catalogue(dialect_id: str, dtype: str) -> list[CaseSpec]:
    """Every case of one dialect and format that vector set 1.0 numbered, in tcId order."""
    d = DIALECTS[dialect_id]
    fmt = format_of(dtype)
    return [*d.family.edge_cases(d, fmt), *_structural(d, fmt), *_random_cases(d, fmt)]


def given_state_catalogue(dialect_id: str, dtype: str) -> list[CaseSpec]:
    """The cases of one dialect and format whose initial state is an input, where the dialect has them (1.1.0).

    A file numbers them after every `catalogue` case of every format, so that adding them changed no earlier tcId.
    """
    d = DIALECTS[dialect_id]
    return list(d.family.given_state_cases(d, format_of(dtype))) if dtype in d.given_state else []
