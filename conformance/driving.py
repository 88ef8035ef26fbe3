"""Driving: create the adapter's optimizer for a case and step it, skipping (never failing) where the case needs
a capability the adapter does not declare. Everything handed to the implementation is a fresh copy (`handed`),
everything read back is copied out (`read`), so no check can change what another check expects or sees."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from .adapter import (
    FullAdapter,
    LiveOptimizer,
    StatefulOptimizer,
    StepResult,
    claim_hint,
    handed,
    read,
    step_through,
)
from .context import CheckSkip, Context

__all__ = [
    "create",
    "free_run",
    "fresh",
    "full",
    "grads_supported",
    "loss_at",
    "needs",
    "shared_free_run",
    "start",
    "unlocked",
]


def needs(ctx: Context, capability: str, why: str) -> FullAdapter:
    """Skip unless the adapter declares `capability`; then the adapter, typed with the methods it unlocks."""
    if not getattr(ctx.adapter.capabilities, capability):
        hint = claim_hint(ctx.adapter, capability)  # e.g. "pass sparse=True to TorchAdapter"
        raise CheckSkip(f"capability '{capability}' not declared, which {why}" + (f"; {hint}" if hint else ""))
    # The optional methods cannot be checked at run time (an adapter has only those its capabilities name), so the
    # declared capability is what licenses the narrowing.
    return cast(FullAdapter, ctx.adapter)


def _required(ctx: Context, capability: str) -> None:
    if not getattr(ctx.adapter.capabilities, capability):  # a bug in the check, not in the adapter
        raise RuntimeError(f"a check used capability '{capability}' without requiring it")


def full(ctx: Context, capability: str) -> FullAdapter:
    """The adapter typed with the methods behind `capability`, which the check's record has required (`needs`)."""
    _required(ctx, capability)
    return cast(FullAdapter, ctx.adapter)


def unlocked(ctx: Context, capability: str, optimizer: LiveOptimizer) -> StatefulOptimizer:
    """`optimizer` typed with the methods behind `capability`, which the check has required with `needs`."""
    _required(ctx, capability)
    return cast(StatefulOptimizer, optimizer)


def grads_supported(ctx: Context) -> None:
    if any(not isinstance(g, np.ndarray) for row in ctx.case.grads for g in row):
        needs(ctx, "sparse", "this case's row-sparse gradients need")
    if ctx.case.losses is not None:
        needs(ctx, "loss", "this case's losses need")


def fresh(ctx: Context) -> LiveOptimizer:
    case = ctx.case
    return ctx.adapter.create(case.dialect, handed(case.hparams), handed(case.initial_params))


def create(ctx: Context) -> LiveOptimizer:
    """A fresh optimizer in the case's initial state (set explicitly where the case gives it as an input)."""
    return start(ctx, fresh(ctx))


def start(ctx: Context, optimizer: LiveOptimizer) -> LiveOptimizer:
    """`optimizer`, just built, set to the case's initial state where the case gives it: a counter that starts
    late or slots given per element. Without `set_state` such a case is skipped with the reason, never run from
    the state the hyperparameters would build."""
    case = ctx.case
    if case.state_given:
        count, slots = case.initial_state
        given = "the initial state given per element" if case.record["initialState"].get("given") else ""
        late = f"starting the counter at {count}" if count else ""
        needs(ctx, "set_state", f"{' and '.join(w for w in (given, late) if w)} needs")
        unlocked(ctx, "set_state", optimizer).set_state(handed(case.initial_params), handed(slots), count)
    return optimizer


def loss_at(ctx: Context, step: int) -> float | None:
    """The loss the case gives with its gradients of `step` (counted from 0), where it has losses."""
    losses = ctx.case.losses
    return None if losses is None else losses[step]


def free_run(
    ctx: Context, steps: int | None = None, optimizer: LiveOptimizer | None = None, start: int = 0
) -> list[StepResult]:
    """The case's gradients `start:steps` through `optimizer` (default: a new one in the case's initial state)."""
    grads_supported(ctx)
    optimizer = optimizer or create(ctx)
    losses = ctx.case.losses
    return step_through(optimizer, ctx.case.grads[start:steps], None if losses is None else losses[start:steps])


def forced_run(ctx: Context) -> Iterator[StepResult]:
    """Teacher forcing: one optimizer set to the expected state before each step (the case's initial state before
    the first), stepped once and read. Lazy, so a check compares step t before step t + 1 runs."""
    grads_supported(ctx)
    case = ctx.case
    optimizer = unlocked(ctx, "set_state", fresh(ctx))
    count, slots = case.initial_state
    states = [(case.initial_params, slots, count), *[(e.params, e.state, e.count) for e in case.expected[:-1]]]
    for t, (params, state, counter) in enumerate(states):
        optimizer.set_state(handed(params), handed(state), counter)
        optimizer.step(handed(case.grads[t]), loss_at(ctx, t))
        yield read(optimizer)


def shared_free_run(ctx: Context, cache: dict[str, Any]) -> list[StepResult]:
    """The free-running trajectory, computed once per (adapter, case) and shared by the checks that read it. The
    results are copies (`read`), so a check that reads them sees what the implementation reported at that step
    whichever check ran it first."""
    if "free" not in cache:
        cache["free"] = free_run(ctx)
    results: list[StepResult] = cache["free"]
    return results
