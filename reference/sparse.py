"""Row-sparse gradients: which rows an update touches, and how duplicate indices combine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

__all__ = ["SparseGrad", "SparseRule", "sparse_step"]


class SparseRule(Enum):
    """How a framework applies a row-sparse gradient whose indices repeat."""

    # Duplicates are summed first, then only the touched rows update: torch (coalesce), tf.keras OptimizerV2
    # (unique + segment sum), tf_keras new, TF1 AdagradOptimizer.
    SUMMED = "summed"
    # Each (index, row) is applied in order as its own update of that row: TF's raw sparse Adagrad ops.
    SEQUENTIAL = "sequential"


@dataclass(frozen=True)
class SparseGrad:
    """A gradient for rows `indices` of a parameter (first axis); `values` has one row per index."""

    indices: tuple[int, ...]
    values: np.ndarray


def sparse_step(family: Any, ops: Any, hp: Any, knobs: Any, state: Any, params: list[Any], grad: SparseGrad) -> Any:
    """One update of a single parameter tensor from a row-sparse gradient; untouched rows keep their values."""
    rule = getattr(knobs, "sparse", None)
    if rule is None:
        raise ValueError(f"this dialect takes no sparse gradients ({family.name} knob sparse=None)")
    if len(params) != 1:
        raise ValueError("sparse gradients are supported for a single parameter tensor")
    values = ops.array(grad.values)
    if rule is SparseRule.SUMMED:
        rows = sorted(set(grad.indices))
        summed = [ops.full_like(values[0], 0.0) for _ in rows]
        for index, row in zip(grad.indices, values, strict=True):
            summed[rows.index(index)] = summed[rows.index(index)] + row
        updates = [(rows, _stack(summed, values))]
    else:
        updates = [([index], values[position : position + 1]) for position, index in enumerate(grad.indices)]
    theta, count = params[0], state.count
    for rows, g in updates:
        sub_params, sub_state = [theta[rows]], _rows_of(family, state, rows)
        new_params, new_state = family.step(ops, hp, knobs, sub_state, sub_params, [g])
        theta = _with_rows(theta, rows, new_params[0])
        state = _merge_rows(family, state, new_state, rows)
    # One optimizer step, however many row updates it took.
    return [theta], state._replace(count=count + 1)


def _stack(rows: list[Any], like: Any) -> Any:
    out = np.empty((len(rows), *np.shape(like)[1:]), dtype=np.asarray(like).dtype)
    for position, row in enumerate(rows):
        out[position] = row
    return out


def _rows_of(family: Any, state: Any, rows: list[int]) -> Any:
    return state._replace(**{slot: (getattr(state, slot)[0][rows],) for slot in _slots(family, state)})


def _merge_rows(family: Any, state: Any, new_state: Any, rows: list[int]) -> Any:
    merged = {
        slot: (_with_rows(getattr(state, slot)[0], rows, getattr(new_state, slot)[0]),)
        for slot in _slots(family, state)
    }
    return new_state._replace(**merged)


def _slots(family: Any, state: Any) -> list[str]:
    return [slot for slot in family.slots if slot in state._fields]


def _with_rows(full: Any, rows: list[int], part: Any) -> Any:
    out = np.array(full, copy=True)
    out[rows] = part
    return out
