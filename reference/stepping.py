"""One step of a dialect in any evaluator: where the row-sparse, compiled and plain dense steps are chosen.

`reference.run` and the reference adapter (`--impl=reference`) both step through here, so the NumPy evaluator
takes the compiled loop wherever it applies, whichever of them drives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._arith import NumpyOps
from ._fused import fused_step
from .dialects import Dialect
from .sparse import SparseGrad, sparse_step

__all__ = ["step"]


def step(
    ops: Any,
    dialect: Dialect,
    hp: Any,
    state: Any,
    theta: list[Any],
    grads: Sequence[Any],
    loss: float | None = None,
    *,
    overwrite: bool = False,
) -> tuple[list[Any], Any]:
    """The parameters and family state after one step on `grads` (already in the format).

    A row with a `SparseGrad` steps its first tensor row-sparsely. A dense row under NumPy goes through the
    compiled loop where it applies (large tensors, numba installed): the same bits as `family.step`. With
    `overwrite`, the caller gives up `theta` and the state's arrays, which the loop may then write over.
    """
    family, knobs = dialect.family, dialect.knobs
    if any(isinstance(g, SparseGrad) for g in grads):
        stepped: tuple[list[Any], Any] = sparse_step(family, ops, hp, knobs, state, theta, grads[0])
        return stepped
    if isinstance(ops, NumpyOps):
        fused = fused_step(family, ops, hp, knobs, state, theta, list(grads), loss, overwrite=overwrite)
        if fused is not None:
            return fused
    stepped = family.step(ops, hp, knobs, state, theta, [ops.array(g) for g in grads], loss)
    return stepped
