"""`optconf diff --plot`: the two loss curves and their relative gap, drawn with matplotlib (the `plot` extra)."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from conformance.porting import Porting

__all__ = ["FORMATS", "figure", "save"]

FORMATS = (".png", ".svg")


def figure(porting: Porting) -> Any:
    """A two-panel matplotlib Figure: both losses per step (log scale), then the relative gap (log scale; steps
    where the losses are equal are left out, since a log axis has no zero)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    fig = Figure(figsize=(8, 6), layout="constrained")
    losses, gap = fig.subplots(2, 1, sharex=True)
    steps = np.arange(porting.steps + 1)
    losses.plot(steps, porting.trajectory_a.losses, label=porting.a)
    losses.plot(steps, porting.trajectory_b.losses, label=porting.b, linestyle="--")
    losses.set_yscale("log")
    losses.set_ylabel("loss")
    losses.legend()
    losses.set_title(f"{porting.a} vs {porting.b}: least-squares fit, {porting.dtype}, seed {porting.seed}")
    relative = porting.relative_gap
    gap.plot(steps, np.where(relative > 0, relative, np.nan), color="black")
    gap.set_yscale("log")
    gap.set_ylabel("relative loss gap")
    gap.set_xlabel("step")
    first = porting.first_differing_step
    if first is not None:
        gap.axvline(first, color="grey", linestyle=":", label=f"weights first differ (step {first})")
        gap.legend()
    return fig


def save(porting: Porting, path: pathlib.Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--plot writes {' or '.join(FORMATS)} files, not {path.name!r}")
    figure(porting).savefig(path)
