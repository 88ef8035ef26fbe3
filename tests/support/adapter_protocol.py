"""What the adapter protocol tests share: corpus cases by flag, stepping a live optimizer through a case, and the
two comparisons (within the tolerance table's k against the corpus, bit-identical against the same framework)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from conformance import corpus
from conformance.tolerance import bound_for, judge
from reference import FloatFormat, format_of

# The tolerance table's k for Adagrad, the family these tests step most.
K = bound_for("adagrad", "params").k

# (params, slots by dialect name, counter), as the adapter reports them after a step.
Snapshot = tuple[list[np.ndarray], dict[str, list[np.ndarray]], int | None]


@cache
def _corpus() -> corpus.Corpus:
    return corpus.load()


def cases(dialect: str, dtype: str, flag: str | None = None, *, level: int | None = None) -> list[corpus.Case]:
    """The corpus's cases of `dialect` and `dtype` (flagged `flag`, of one level, where given); at least one."""
    found = [
        c
        for c in _corpus()
        if c.dialect == dialect and c.dtype == dtype and flag in (None, *c.flags) and level in (None, c.level)
    ]
    which = f"level-{level} " if level is not None else ""
    assert found, f"the corpus has no {which}{dialect} {dtype} case" + (f" flagged {flag}" if flag else "")
    return found


def snapshot(live: Any) -> Snapshot:
    return live.params(), live.state(), live.count()


def run(live: Any, case: corpus.Case, start: int = 0, stop: int | None = None) -> list[Snapshot]:
    """Step `live` through the case's gradients `start:stop` (copies, with the losses it has), reading everything
    after each step."""
    out = []
    for index in range(start, len(case.grads) if stop is None else stop):
        row = [g.copy() if isinstance(g, np.ndarray) else g for g in case.grads[index]]
        live.step(row, None if case.losses is None else case.losses[index])
        out.append(snapshot(live))
    return out


def assert_within_k(
    got: Snapshot,
    want: corpus.ExpectedStep,
    dtype: str | FloatFormat,
    label: str,
    *,
    counter: bool = True,
    forced: bool = False,
) -> None:
    """Every value within K·u·S + tiny of the corpus, slot names equal, and (unless `counter` is off, for an
    optimizer that keeps none) the counter exact. `forced`: the optimizer was set to the previous expected step,
    so S is that of the step alone."""
    params, state, count = got
    fmt = dtype if isinstance(dtype, FloatFormat) else format_of(dtype)
    if counter:
        assert count == want.count, f"{label}: counter {count}, expected {want.count}"
    assert set(state) == set(want.state), f"{label}: slots {sorted(state)}, expected {sorted(want.state)}"
    pairs = [("params", params, want.params)] + [(n, state[n], want.state[n]) for n in want.state]
    for quantity, gots, wants in pairs:
        for tensor, (g, w) in enumerate(zip(gots, wants, strict=True)):
            assert g.dtype == w.dtype and g.shape == w.shape, f"{label}: {quantity}[{tensor}] {g.dtype}{g.shape}"
            scale = want.scales_for(forced)[quantity][tensor]
            judged = judge(g, w, scale, fmt, K)
            assert not judged.outside.any(), f"{label}: {quantity}[{tensor}] k = {judged.needed.max():.3g} > {K}"


def assert_identical(got: Sequence[Snapshot], want: Sequence[Snapshot], label: str) -> None:
    assert len(got) == len(want)
    for step, ((gp, gs, gc), (wp, ws, wc)) in enumerate(zip(got, want, strict=True), start=1):
        assert gc == wc, f"{label} step {step}: counter {gc} != {wc}"
        assert set(gs) == set(ws), f"{label} step {step}: slots {sorted(gs)} != {sorted(ws)}"
        for quantity, a, b in [("params", gp, wp)] + [(n, gs[n], ws[n]) for n in ws]:
            for tensor, (x, y) in enumerate(zip(a, b, strict=True)):
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), (
                    f"{label} step {step}: {quantity}[{tensor}] differs: {x!r} != {y!r}"
                )
