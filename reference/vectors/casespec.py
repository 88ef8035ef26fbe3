"""A corpus case before evaluation, and the helpers each family's module builds its edge cases with.

It imports no dialect table, so that a family's record can build cases without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._numerics import FloatFormat
from ..sparse import SparseGrad

if TYPE_CHECKING:
    from ..dialects import Dialect

__all__ = ["CaseSpec", "edge", "exposes", "named_hparams", "special_gradients"]


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
    # Slots given as inputs (the dialect's slot names, one float64 array per tensor); None: built by the family.
    initial_state: dict[str, list[np.ndarray]] | None = None
    checkpoint: int | None = None
    seed_key: str = ""
    attempt: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def exposes(dialect: Dialect, canonical: str) -> bool:
    return canonical in dialect.exposed


def named_hparams(dialect: Dialect, canonical: dict[str, Any]) -> dict[str, Any]:
    """Canonical settings -> the dialect's own keywords, dropping those it does not expose."""
    return dialect.framework_hparams({k: v for k, v in canonical.items() if exposes(dialect, k)})


def edge(
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
    given = extra.pop("initial_state", None)
    if given is not None:
        extra["initial_state"] = {name: [np.asarray(a, dtype=np.float64) for a in arr] for name, arr in given.items()}
    if dialect.needs_loss and losses is None:
        losses = [float(10 - t) for t in range(len(grads))]
    return CaseSpec(
        dialect=dialect.id,
        dtype=fmt.name,
        level=1,
        flags=flags,
        comment=comment,
        hparams=named_hparams(dialect, canonical),
        params=[np.asarray(p, dtype=np.float64) for p in params],
        grads=[[g if isinstance(g, SparseGrad) else np.asarray(g, dtype=np.float64) for g in row] for row in grads],
        losses=losses,
        **extra,
    )


def special_gradients(d: Dialect, fmt: FloatFormat, base: dict[str, Any]) -> Iterator[CaseSpec]:
    for flag, bad in (("NAN_GRADIENT", float("nan")), ("INF_GRADIENT", float("inf"))):
        yield edge(
            d,
            fmt,
            (flag,),
            f"a {bad} gradient element, then ordinary steps",
            base,
            [[1.0, 2.0]],
            [[[bad, 0.5]], [[1.0, 0.5]], [[-1.0, 0.5]]],
        )
