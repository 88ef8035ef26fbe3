"""Comparison: one step's values against the corpus within the tolerance, or two runs bit for bit, and the
diagnosis that names the first divergence (the step, the quantity and element, expected and got in hex and
decimal, the ulp distance, the bound and its source, and the branch the reference took)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from reference._numerics import FloatFormat, bits_to_hex, decimal_string

from .adapter import StepResult
from .context import Context, Outcome
from .corpus import ExpectedStep
from .tolerance import judge, ulp_distance

__all__ = ["BRANCH_NAMES", "bit_identical", "compare", "first_bits", "quantities"]

BRANCH_NAMES = {1: "grow (m > 0)", -1: "shrink (m < 0)", 0: "keep (m = 0)"}


def quantities(result: StepResult | ExpectedStep) -> Iterator[tuple[str, list[np.ndarray]]]:
    yield "params", result.params
    yield from result.state.items()


def _value_text(x: Any, fmt: FloatFormat) -> str:
    return f"{bits_to_hex(x, fmt)} ({decimal_string(x, 21)})"


def compare(
    ctx: Context, step: int, got: StepResult, want: ExpectedStep, outcome: Outcome, *, forced: bool = False
) -> None:
    """Every value of one step, parameters first, then each of the dialect's slots; raises on the first divergence.

    The counter and any extra slots are the counter check's concern, not this one: a framework that keeps no
    counter still has every number compared. A slot the dialect keeps but the implementation does not report
    cannot be compared, and that is a divergence here. `forced`: the implementation was handed the previous
    step's stored state, so the bound is S of this step alone, not S accumulated over the trajectory.
    """
    fmt = ctx.fmt
    scales = want.scales_for(forced)
    for quantity, wanted in quantities(want):
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
            where = _where(quantity, tensor, step)
            if g.dtype != fmt.np_dtype or g.shape != w.shape:
                raise ctx.fail(f"{where} is {g.dtype}{list(g.shape)}, but should be {w.dtype}{list(w.shape)}", outcome)
            scale = scales[quantity][tensor]
            _compare_values(ctx, quantity, step, tensor, g, w, scale, want, outcome, forced)


def _where(quantity: str, tensor: int, step: int) -> str:
    return f"{quantity}[{tensor}] at step {step}"


def _compare_values(
    ctx: Context,
    quantity: str,
    step: int,
    tensor: int,
    got: np.ndarray,
    want: np.ndarray,
    scale: np.ndarray,
    expected: ExpectedStep,
    outcome: Outcome,
    forced: bool,
) -> None:
    fmt, bound, where = ctx.fmt, ctx.bound(quantity), _where(quantity, tensor, step)
    if got.size == 0 or np.array_equal(got.view(fmt.uint_dtype), want.view(fmt.uint_dtype)):
        return  # bit for bit: no class differs, no error, no ulp
    judged = judge(got, want, scale, fmt, bound.k)
    ulps = ulp_distance(got, want, fmt)
    finite = np.isfinite(want.astype(np.float64))
    if finite.any():
        outcome.worst_ulp = max(outcome.worst_ulp, int(np.where(finite, ulps, 0).max()))
        needed = float(np.where(finite & ~judged.special, judged.needed, 0.0).max())
        if bound.k > 0 and math.isfinite(needed):
            outcome.worst_k[quantity] = max(outcome.worst_k.get(quantity, 0.0), needed)
    if not judged.outside.any():
        return
    index = tuple(int(i) for i in np.argwhere(judged.outside)[0])
    g, w, s = got[index], want[index], float(scale[index])
    allowed = bound.k * fmt.unit_roundoff * s + fmt.smallest_subnormal
    detail = (
        "the special-value class differs (NaN, inf and the sign of zero are exact)"
        if judged.special[index]
        else f"{ulps[index]} ulp; |error| = {abs(float(g) - float(w)):.3g} > {bound.k:g}·u·S + tiny = {allowed:.3g} "
        f"(S = {s:.5g}{' of this step alone' if forced else ''}; k = {bound.k:g}: {bound.source})"
    )
    message = f"{where}, element {list(index)}: got {_value_text(g, fmt)}, expected {_value_text(w, fmt)}; {detail}"
    branches = expected.branches
    if branches is not None and tensor < len(branches) and branches[tensor].size:
        branch = int(branches[tensor].reshape(want.shape)[index])
        message += f"; the reference took the {BRANCH_NAMES[branch]} branch"
    raise ctx.fail(message, outcome)


def bit_identical(
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
        for quantity, arrays in quantities(a):
            others = b.params if quantity == "params" else b.state[quantity]
            for tensor, (x, y) in enumerate(zip(arrays, others, strict=True)):
                x, y = np.asarray(x), np.asarray(y)
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    raise ctx.fail(
                        f"{what} differs from the uninterrupted run in {quantity}[{tensor}] at step {step}: "
                        f"{first_bits(x, y, ctx.fmt)}",
                        outcome,
                    )


def first_bits(x: np.ndarray, y: np.ndarray, fmt: FloatFormat) -> str:
    if x.shape != y.shape or x.dtype != y.dtype:
        return f"{x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}"
    index = tuple(int(i) for i in np.argwhere(x.view(fmt.uint_dtype) != y.view(fmt.uint_dtype))[0])
    return f"element {list(index)}: {_value_text(y[index], fmt)} instead of {_value_text(x[index], fmt)}"
