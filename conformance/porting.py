"""The porting view behind `optconf diff`: two dialects of one family, setting by setting and on one seeded fit.

People who port a model between frameworks see their loss curves part and ask why. This module lists every
setting in which two dialects differ, finds which of those change the numbers for the hyperparameters at hand (by
trying each one alone on the same problem, not by rules about knobs), and shows where the two trajectories first
differ and how far apart they drift.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

import reference
from conformance.adapters.reference import ReferenceLive
from reference.trajectory import to_format

__all__ = ["Difference", "Porting", "Problem", "Trajectory", "compare", "least_squares", "render"]

MAX_STEPS = 10_000


class Matters(enum.Enum):
    YES = "yes"
    NO = "no"
    NAMING = "naming only"  # a keyword, slot or counter name: it cannot change a number
    ACCEPTS = "what each accepts"  # formats, refused keywords, aliases: what a run may use, not what it computes
    UNTRIED = "not alone"  # it cannot be tried alone (the other dialect refuses it, or it has no keyword for it)


@dataclass(frozen=True)
class Difference:
    aspect: str  # knob, default, keyword, slot, counter, formats, refused, aliases
    name: str
    a: str
    b: str
    matters: Matters


@dataclass(frozen=True)
class Problem:
    """A least-squares fit, 0.5·mean((X·w − y)²), with its data in float64; w starts at zero."""

    features: np.ndarray
    targets: np.ndarray

    def loss(self, w: np.ndarray) -> float:
        residual = self.features @ w - self.targets
        return float(0.5 * np.mean(residual * residual))

    def gradient(self, w: np.ndarray) -> np.ndarray:
        residual: np.ndarray = self.features.T @ (self.features @ w - self.targets) / len(self.targets)
        return residual


def least_squares(seed: int, samples: int = 32, width: int = 4) -> Problem:
    """A generated regression problem: standard normal features and weights, targets with noise of scale 0.1."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((samples, width))
    targets = features @ rng.standard_normal(width) + 0.1 * rng.standard_normal(samples)
    return Problem(features, targets)


@dataclass(frozen=True)
class Trajectory:
    losses: np.ndarray  # the loss at the start and after each step (steps + 1 values)
    params: np.ndarray  # the weights after each step, one row per step, in the format's values (as float64)


def fit(
    dialect: reference.Dialect, canonical: Mapping[str, Any], problem: Problem, steps: int, dtype: str
) -> Trajectory:
    """The reference's trajectory of `dialect` on `problem`: gradients and losses in float64, rounded to the format
    as a framework receives them."""
    fmt = reference.format_of(dtype)
    live = ReferenceLive(dialect, _keywords(dialect, canonical), [to_format(np.zeros(problem.features.shape[1]), fmt)])
    w = live.params()[0].astype(np.float64)
    losses, params = [problem.loss(w)], []
    with np.errstate(all="ignore"):
        for _ in range(steps):
            live.step([to_format(problem.gradient(w), fmt)], losses[-1])
            w = live.params()[0].astype(np.float64)
            losses.append(problem.loss(w))
            params.append(w)
    return Trajectory(np.array(losses), np.array(params))


def _keywords(dialect: reference.Dialect, canonical: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical values -> the dialect's keywords. A value the dialect has no keyword for is refused unless it is
    the value the dialect fixes anyway (keras2's initial accumulator of 0)."""
    fixed = {k for k in canonical if k not in dialect.exposed and dialect.defaults.get(k) == canonical[k]}
    return dialect.framework_hparams({k: v for k, v in canonical.items() if k not in fixed})


@dataclass(frozen=True)
class Porting:
    a: str
    b: str
    dtype: str
    steps: int
    seed: int
    given: Mapping[str, Any]
    differences: list[Difference]
    trajectory_a: Trajectory
    trajectory_b: Trajectory

    @property
    def first_differing_step(self) -> int | None:
        """The first step after which the weights differ in any bit (NaNs equal), or None."""
        pairs = zip(self.trajectory_a.params, self.trajectory_b.params, strict=True)
        same = [np.array_equal(x, y, equal_nan=True) for x, y in pairs]
        return next((step for step, equal in enumerate(same, start=1) if not equal), None)

    @property
    def relative_gap(self) -> np.ndarray:
        """|loss_a − loss_b| / max(|loss_a|, |loss_b|) at the start and after each step (0 where both are 0)."""
        la, lb = self.trajectory_a.losses, self.trajectory_b.losses
        with np.errstate(all="ignore"):
            scale = np.maximum(np.abs(la), np.abs(lb))
            return np.where(scale > 0, np.abs(la - lb) / np.where(scale > 0, scale, 1.0), 0.0)


def compare(
    a_id: str, b_id: str, given: Mapping[str, Any], *, steps: int = 100, dtype: str = "float32", seed: int = 0
) -> Porting:
    """Both dialects on one seeded problem, and every difference between them with whether it matters here."""
    a, b = reference.get(a_id), reference.get(b_id)
    if a.family is not b.family:
        raise ValueError(f"{a.id} and {b.id} are dialects of different families; diff compares one family's dialects")
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"--steps must be between 1 and {MAX_STEPS}, not {steps}")
    for dialect in (a, b):
        if dtype not in dialect.dtypes:
            raise ValueError(f"{dialect.id} does not support {dtype} (it supports {', '.join(dialect.dtypes)})")
    fields_known = {f.name for f in fields(a.family.hparams_type)}
    unknown = sorted(set(given) - fields_known)
    if unknown:
        raise ValueError(
            f"--hparams takes the family's canonical names ({', '.join(sorted(fields_known))}), not "
            f"{', '.join(unknown)}"
        )
    problem = least_squares(seed)
    own_a = fit(a, given, problem, steps, dtype)

    def changes(trial: reference.Dialect, canonical: Mapping[str, Any]) -> Matters:
        try:
            variant = fit(trial, canonical, problem, steps, dtype)
        except ValueError:  # the variant refuses the setting, or has no keyword for it
            return Matters.UNTRIED
        return Matters.NO if np.array_equal(variant.params, own_a.params, equal_nan=True) else Matters.YES

    differences = list(_differences(a, b, given, changes))
    own_b = fit(b, given, problem, steps, dtype)
    return Porting(a.id, b.id, dtype, steps, seed, dict(given), differences, own_a, own_b)


def _differences(
    a: reference.Dialect,
    b: reference.Dialect,
    given: Mapping[str, Any],
    tried: Callable[[reference.Dialect, Mapping[str, Any]], Matters],
) -> Iterator[Difference]:
    """Every setting in which the dialects differ; `tried(dialect, canonical)` says whether a variant of `a` with
    one setting of `b` moves differently from `a`."""
    for f in fields(a.knobs):
        va, vb = getattr(a.knobs, f.name), getattr(b.knobs, f.name)
        if va != vb:
            trial = dataclasses.replace(a, knobs=dataclasses.replace(a.knobs, **{f.name: vb}))
            yield Difference("knob", f.name, _shown(va), _shown(vb), tried(trial, given))
    for name in sorted(set(a.defaults) | set(b.defaults)):
        da, db = a.defaults.get(name), b.defaults.get(name)
        if da != db:
            if name in given:
                matters = Matters.NO  # both run with the given value
            else:
                matters = tried(a, {**given, name: db}) if db is not None else Matters.UNTRIED
            yield Difference("default", name, _shown(da), _shown(db), matters)
    for name in sorted(a.exposed | b.exposed):
        ka, kb = _keyword(a, name), _keyword(b, name)
        if ka != kb:
            yield Difference("keyword", name, ka, kb, Matters.NAMING)
    for slot in sorted(set(a.slots) | set(b.slots)):
        sa, sb = a.slots.get(slot, "not kept"), b.slots.get(slot, "not kept")
        if sa != sb:
            yield Difference("slot", slot, sa, sb, Matters.NAMING)
    for aspect, va, vb in (
        ("counter", a.counter or "none", b.counter or "none"),
        ("formats", ", ".join(a.dtypes), ", ".join(b.dtypes)),
        ("refused", _shown(frozenset(a.removed)), _shown(frozenset(b.removed))),
        ("aliases", _shown(a.alias_winners), _shown(b.alias_winners)),
    ):
        if va != vb:
            yield Difference(aspect, aspect, va, vb, Matters.NAMING if aspect == "counter" else Matters.ACCEPTS)


def _keyword(dialect: reference.Dialect, canonical: str) -> str:
    names = [n for n, t in dialect.names.items() if t == canonical or (isinstance(t, tuple) and canonical in t)]
    return ", ".join(f"`{n}`" for n in names) or "no keyword"


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, frozenset | set):
        return "{" + ", ".join(sorted(_shown(v) for v in value)) + "}" if value else "none"
    if isinstance(value, tuple):
        return "(" + ", ".join(_shown(v) for v in value) + ")" if value else "none"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        parts = [f"{f.name}={_shown(getattr(value, f.name))}" for f in fields(value)]
        return "; ".join(p for p in parts if not p.endswith("=none")) or "none"
    return repr(value)


def render(porting: Porting) -> str:
    """The text `optconf diff` prints: the differences, then the two trajectories at log-spaced steps."""
    head = (
        f"{porting.a} vs {porting.b}: {porting.dtype}, {porting.steps} steps of a least-squares fit "
        f"(seed {porting.seed}), hyperparameters {dict(porting.given) or 'at each dialect’s defaults'}"
    )
    rows = [("setting", porting.a, porting.b, "changes the numbers here")] + [
        (f"{d.aspect} {d.name}" if d.aspect != d.name else d.aspect, d.a, d.b, d.matters.value)
        for d in porting.differences
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3] for row in rows]
    first = porting.first_differing_step
    parted = (
        f"The weights first differ after step {first}."
        if first is not None
        else "The trajectories are bit-identical over every step."
    )
    gap = porting.relative_gap
    curve = [f"{'step':>6}  {'loss ' + porting.a:>24}  {'loss ' + porting.b:>24}  relative gap"] + [
        f"{step:>6}  {porting.trajectory_a.losses[step]:>24.9g}  {porting.trajectory_b.losses[step]:>24.9g}  "
        f"{gap[step]:.3g}"
        for step in _shown_steps(porting.steps)
    ]
    return "\n".join([head, "", *table, "", parted, *curve]) + "\n"


def _shown_steps(steps: int) -> list[int]:
    """0, 1, 2, 5, 10, 20, 50, … up to `steps`, and `steps` itself."""
    shown, decade = [0], 1
    while decade <= steps:
        shown += [m * decade for m in (1, 2, 5) if m * decade <= steps]
        decade *= 10
    return sorted(set(shown) | {steps})
