"""Shared machinery of the differential tests: seeded random cases, the oracle, and worst-error measurement.

A real framework is driven through its adapter exactly as the runner drives it, and every step's params and
state slots are compared with the mpmath oracle (the spec) in ulps and in k = |got - exact| / (u * S + tiny).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from conformance.adapter import Adapter, drive
from conformance.tolerance import scaled_error, ulp_distance
from reference import FloatFormat, format_of, get, run
from reference.trajectory import to_format

STEPS = 10
# Each case has two parameter tensors; the second always has more than 64 elements so that the vectorised
# bodies of the kernels run, and the first leaves a scalar tail (torch's vector width is 8 or 16 floats).
SHAPES = (((3,), (67,)), ((2, 3), (4, 17)), ((), (70,)), ((5,), (9, 9)))


@dataclass(frozen=True)
class Case:
    """One seeded trajectory: the dialect, its framework-named hparams, params, and one gradient row per step."""

    name: str
    dialect: str
    hparams: dict[str, Any] = field(hash=False)
    params: tuple[np.ndarray, ...] = field(hash=False, repr=False)
    grads: tuple[tuple[np.ndarray, ...], ...] = field(hash=False, repr=False)

    def inputs(self, dtype: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """Params and gradients rounded to `dtype` the way the reference rounds them."""
        fmt = format_of(dtype)
        return [to_format(p, fmt) for p in self.params], [[to_format(g, fmt) for g in row] for row in self.grads]


def make_cases(
    dialect: str,
    seed: int,
    count: int,
    hparams: Callable[[np.random.Generator], dict[str, Any]],
    gradient: Callable[[np.random.Generator, tuple[int, ...], int], np.ndarray],
) -> list[Case]:
    """`count` cases cycling through SHAPES, all drawn from one default_rng(seed)."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        shapes = SHAPES[index % len(SHAPES)]
        hp = hparams(rng)
        params = tuple(rng.normal(0.0, 1.0, size=s) for s in shapes)
        grads = tuple(tuple(gradient(rng, s, t) for s in shapes) for t in range(STEPS))
        cases.append(Case(f"{dialect}#{seed}.{index}", dialect, hp, params, grads))
    return cases


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sometimes(rng: np.random.Generator, p: float, value: Callable[[], float], otherwise: float = 0.0) -> float:
    """`value()` with probability p, else `otherwise`: so each knob is both exercised and left at its default."""
    return value() if rng.random() < p else otherwise


_ORACLE: dict[tuple[str, str], list[Any]] = {}


def oracle(case: Case, dtype: str) -> list[Any]:
    """The oracle's steps for a case, computed once per process (several subjects share a dialect)."""
    key = (case.name, dtype)
    if key not in _ORACLE:
        params, grads = case.inputs(dtype)
        _ORACLE[key] = run(case.dialect, case.hparams, dtype, params, grads, evaluator="oracle")
    return _ORACLE[key]


@dataclass
class Worst:
    """The largest error seen per quantity ('params' and each slot), in ulps and in k, with where each happened."""

    ulp: dict[str, int] = field(default_factory=dict)
    k: dict[str, float] = field(default_factory=dict)
    ulp_at: dict[str, str] = field(default_factory=dict)
    k_at: dict[str, str] = field(default_factory=dict)
    count_errors: list[str] = field(default_factory=list)

    def add(self, quantity: str, ulps: np.ndarray, ks: np.ndarray, location: Callable[[int], str]) -> None:
        if ulps.size:
            at_ulp, at_k = location(int(ulps.argmax())), location(int(ks.argmax()))
            self._raise(quantity, int(ulps.max()), float(ks.max()), at_ulp, at_k)

    def merge(self, other: Worst) -> None:
        for q in other.ulp:
            self._raise(q, other.ulp[q], other.k[q], other.ulp_at[q], other.k_at[q])
        self.count_errors += other.count_errors

    def _raise(self, quantity: str, ulp: int, k: float, ulp_at: str, k_at: str) -> None:
        if ulp > self.ulp.get(quantity, -1):
            self.ulp[quantity], self.ulp_at[quantity] = ulp, ulp_at
        if k > self.k.get(quantity, -1.0):
            self.k[quantity], self.k_at[quantity] = k, k_at


def _pairs(got: Any, want: Any) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray], list[np.ndarray]]]:
    yield "params", got.params, want.params, want.error_scale["params"]
    for slot, arrays in want.state.items():
        yield slot, got.state[slot], arrays, want.error_scale[slot]


def _locate(case: Case, step: int, tensor: int, got: np.ndarray, exact: np.ndarray, index: int) -> str:
    g, e = got.ravel()[index], exact.ravel()[index]
    return f"{case.name} step {step} tensor {tensor} element {index}: got {g!r}, exact {e!r}"


def _compare_step(worst: Worst, case: Case, step: int, got: Any, want: Any, fmt: FloatFormat) -> None:
    for quantity, got_arrays, want_arrays, scales in _pairs(got, want):
        for tensor, (g, w, s) in enumerate(zip(got_arrays, want_arrays, scales, strict=True)):
            assert g.dtype == w.dtype, f"{case.name}: {quantity}[{tensor}] dtype {g.dtype}, but should be {w.dtype}"
            ulps = ulp_distance(g, w, fmt).ravel()
            ks = scaled_error(g, w, s, fmt).ravel()
            worst.add(quantity, ulps, ks, partial(_locate, case, step, tensor, g, w))


def measure(adapter: Adapter, case: Case, dtype: str) -> Worst:
    """Drive `adapter` through `case` and return the worst ulp distance and k per quantity over every step."""
    fmt = format_of(dtype)
    counter = get(case.dialect).counter
    params, grads = case.inputs(dtype)
    results = drive(adapter, case.dialect, case.hparams, params, grads)
    worst = Worst()
    for step, (got, want) in enumerate(zip(results, oracle(case, dtype), strict=True), start=1):
        if counter is not None and got.count != want.count:
            worst.count_errors.append(f"{case.name} step {step}: {counter}={got.count}, but should be {want.count}")
        missing = sorted(set(want.state) - set(got.state))
        assert not missing, f"{adapter.name} keeps no state slot {missing} ({case.name})"
        _compare_step(worst, case, step, got, want, fmt)
    return worst


def measure_all(adapter: Adapter, cases: list[Case], dtype: str) -> Worst:
    total = Worst()
    for case in cases:
        total.merge(measure(adapter, case, dtype))
    return total


@dataclass(frozen=True)
class Bound:
    """The worst error allowed for one (subject, dtype), per quantity, in the one measure that suits it.

    `ulp` lists quantities compared in ulps. `k` lists quantities compared in k = |got - exact| / (u * S + tiny)
    instead, because they come from a cancellation (theta - step, g + lambda * theta) whose result can be tiny
    next to its operands, which makes an ulp of the result meaningless.
    """

    ulp: dict[str, int]
    k: dict[str, float]
    reason: str


def assert_within(worst: Worst, bound: Bound, label: str) -> None:
    assert not worst.count_errors, f"{label}: the counter is exact, but " + "; ".join(worst.count_errors[:3])
    unmeasured = sorted(set(worst.ulp) - set(bound.ulp) - set(bound.k))
    assert not unmeasured, f"{label}: no bound for {unmeasured}"
    failures = [
        f"{q}: {worst.ulp[q]} ulp > bound {b}, at {worst.ulp_at[q]}" for q, b in bound.ulp.items() if worst.ulp[q] > b
    ] + [f"{q}: k = {worst.k[q]:.3g} > bound {b}, at {worst.k_at[q]}" for q, b in bound.k.items() if worst.k[q] > b]
    assert not failures, f"{label} ({bound.reason}):\n  " + "\n  ".join(failures)
