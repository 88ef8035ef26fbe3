"""Shared machinery of the differential tests: seeded random cases, the oracle, worst-error measurement, bounds.

A real framework is driven through its adapter exactly as the runner drives it, and every step's params and
state slots are compared with the mpmath oracle (the spec) in ulps and in k = |got - exact| / (u * S + tiny);
the counter and the set of state slots must match exactly. The test files keep only what is their own: subjects,
hyperparameter draws, bounds with their measured numbers and reasons, and known deviations.

Calibrate a test file's bounds with `python tests/support/differential.py tests/adapters/test_differential_tf.py
[cases]`: it prints the worst errors of each of that file's (subject, dtype) over that many cases. A file
offers this with two names: `BOUNDS`, {(subject, dtype): Bound}, and `sweep_cases(subject, count)`, which returns
(adapter, cases).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conformance.adapter import Adapter, StepResult, drive
from conformance.tolerance import scaled_error, ulp_distance
from reference import FloatFormat, Step, format_of, get, run
from reference._numerics import bits_to_hex
from reference.trajectory import to_format

STEPS = 10
DTYPES = ("float32", "float64")

Hparams = dict[str, Any]


# ---------------------------------------------------------------- cases and hyperparameter draws


@dataclass(frozen=True)
class Case:
    """One seeded trajectory: the dialect, its framework-named hparams, params, and one gradient row per step."""

    name: str
    dialect: str
    hparams: Hparams = field(hash=False)
    params: tuple[np.ndarray, ...] = field(hash=False, repr=False)  # float64 draws; rounded to the dtype before use
    grads: tuple[tuple[np.ndarray, ...], ...] = field(hash=False, repr=False)

    def inputs(self, dtype: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """Params and gradients rounded to `dtype` the way the reference rounds them."""
        fmt = format_of(dtype)
        return [to_format(p, fmt) for p in self.params], [[to_format(g, fmt) for g in row] for row in self.grads]


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sometimes(rng: np.random.Generator, p: float, value: Callable[[], float], otherwise: float = 0.0) -> float:
    """`value()` with probability p, else `otherwise`: so each knob is both exercised and left at its default."""
    return value() if rng.random() < p else otherwise


# make_cases: every case has two parameter tensors; the second always has more than 64 elements so that the
# vectorised bodies of the kernels run, and the first leaves a scalar tail (torch's vector width is 8 or 16 floats).
SHAPES = (((3,), (67,)), ((2, 3), (4, 17)), ((), (70,)), ((5,), (9, 9)))
CASES_PER_DIALECT = 8  # x 10 steps x 2 tensors (one of 65+ elements) x 2 dtypes; the oracle dominates the run time


def make_cases(
    dialect: str,
    seed: int,
    hparams: Callable[[np.random.Generator], Hparams],
    gradient: Callable[[np.random.Generator, tuple[int, ...], int], np.ndarray],
    count: int = CASES_PER_DIALECT,
) -> list[Case]:
    """`count` cases cycling through SHAPES, all drawn from one default_rng(seed): hparams first, then the rest."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        shapes = SHAPES[index % len(SHAPES)]
        hp = hparams(rng)
        params = tuple(rng.normal(0.0, 1.0, size=s) for s in shapes)
        grads = tuple(tuple(gradient(rng, s, t) for s in shapes) for t in range(STEPS))
        cases.append(Case(f"{dialect}#{seed}.{index}", dialect, hp, params, grads))
    return cases


def gradient_with_zeros(rng: np.random.Generator, shape: tuple[int, ...], step: int) -> np.ndarray:
    """Normal, scaled by 10^U(-2, 1), with one element in ten exactly 0 (with A0 = 0 they reach the 0 / eps path)."""
    g = rng.normal(0.0, 1.0, size=shape) * 10 ** rng.uniform(-2, 1)
    return np.where(rng.random(shape) < 0.1, 0.0, g)


# draw_case: one generator per case index, so that every subject sees the same params and gradients. Cycled by
# case index; the 65+ element tensors run Eigen's vectorised kernels, shorter ones its scalar tails.
SCALED_SHAPES = ([(7,)], [(67,)], [(5, 13), (4,)], [(3, 2), (70,)])
Sampler = Callable[[np.random.Generator, int, float, Sequence[tuple[int, ...]]], Hparams]


@dataclass(frozen=True)
class Subject:
    """An adapter with the hparams it is tested with: `sample(rng, case index, gradient scale, shapes)`."""

    id: str
    make: Callable[[], Adapter]
    dialect: str
    sample: Sampler
    # Drawn as float32 values: the subject rounds these through float32 where the dialect keeps them exact.
    # The deviation itself is pinned by a strict xfail test; here it would only hide the arithmetic error.
    float32_drawn: frozenset[str] = field(default_factory=frozenset)


def draw_case(subject: Subject, seed: int, index: int) -> Case:
    """Case `index` of `subject`: the same params and grads for every subject and dtype, the subject's hparams."""
    rng = np.random.default_rng([seed, index])
    shapes = SCALED_SHAPES[index % len(SCALED_SHAPES)]
    scale = log_uniform(rng, 1e-2, 10.0)
    params = tuple(rng.normal(size=s) for s in shapes)
    # About one gradient element in ten is exactly zero, as for an unused embedding row.
    grads = tuple(tuple(scale * rng.normal(size=s) * (rng.random(s) > 0.1) for s in shapes) for _ in range(STEPS))
    hparams = subject.sample(rng, index, scale, shapes)
    for name in subject.float32_drawn & hparams.keys():
        hparams[name] = float(np.float32(hparams[name]))
    return Case(f"{subject.id}#{seed}.{index}", subject.dialect, hparams, params, grads)


def draw_cases(subject: Subject, seed: int, count: int) -> list[Case]:
    return [draw_case(subject, seed, index) for index in range(count)]


def subject_params(
    subjects: Sequence[Subject], seed: int, count: int, keep: Callable[[Case], bool] = lambda case: True
) -> list[Any]:
    """pytest params (subject, dtype, case) with ids `subject-dtype-caseN`, for the kept ones of `count` cases."""
    params = []
    for s in subjects:
        cases = draw_cases(s, seed, count)
        params += [
            pytest.param(s, dtype, case, id=f"{s.id}-{dtype}-case{index}")
            for dtype in DTYPES
            for index, case in enumerate(cases)
            if keep(case)
        ]
    return params


def without_norm_clipping(case: Case) -> bool:
    """No norm clipping: frameworks reduce the norm in their own order, the NumPy evaluator in its."""
    return not {"clipnorm", "global_clipnorm"} & case.hparams.keys()


# ---------------------------------------------------------------- the reference, and both trajectories

_EXPECTED: dict[tuple[int, str, str], tuple[Case, list[Step]]] = {}


def expected(case: Case, dtype: str, evaluator: str = "oracle") -> list[Step]:
    """The reference's steps for a case, computed once per process (several subjects share a case)."""
    key = (id(case), dtype, evaluator)  # the entry keeps `case` alive, so its id is not reused
    if key not in _EXPECTED:
        params, grads = case.inputs(dtype)
        _EXPECTED[key] = case, run(case.dialect, case.hparams, dtype, params, grads, evaluator=evaluator)
    return _EXPECTED[key][1]


def run_both(adapter: Adapter, case: Case, dtype: str, evaluator: str = "oracle") -> list[tuple[Step, StepResult]]:
    """The reference's trajectory and the subject's, step by step, from the same inputs rounded once to `dtype`."""
    params, grads = case.inputs(dtype)
    got = drive(adapter, case.dialect, case.hparams, params, grads)
    return list(zip(expected(case, dtype, evaluator), got, strict=True))


def _pairs(want: Step, got: StepResult) -> Iterator[tuple[str, list[np.ndarray], list[np.ndarray]]]:
    yield "params", want.params, got.params
    for slot, arrays in want.state.items():
        yield slot, arrays, got.state[slot]


def _locate(
    case: Case, step: int, quantity: str, tensor: int, got: np.ndarray, want: np.ndarray, fmt: FloatFormat, index: int
) -> str:
    at = [int(i) for i in np.unravel_index(index, want.shape)]
    g, e = got.ravel()[index], want.ravel()[index]
    return (
        f"{case.name} step {step}, {quantity}[{tensor}]{at}: "
        f"got {float(g)!r} ({bits_to_hex(g, fmt)}), expected {float(e)!r} ({bits_to_hex(e, fmt)})"
    )


# ---------------------------------------------------------------- measuring and bounding errors

# S / |exact| is how much larger the magnitudes behind a value's rounding errors are than the value itself. From
# 16 on, theta - step has cancelled and ulps of theta mostly measure that (measured on TF: <= 4 ulp below 16, up to
# ~100 ulp between 16 and 1000, thousands beyond, all with k < 1), so there only k is held.
CANCELLATION = 16.0


@dataclass(frozen=True)
class Bound:
    """The worst error allowed for one (subject, dtype), per quantity ('params' and each state slot).

    `ulp` lists quantities compared in ulps; `k` lists quantities compared in k = |got - exact| / (u * S + tiny),
    which suits those that come from a cancellation (theta - step, g + lambda * theta) whose result can be tiny
    next to its operands, making an ulp of the result meaningless. A quantity in `ulp_where_no_cancellation`
    (the TF tests' params) is held to its ulp bound only where S <= CANCELLATION * |exact|; k holds it everywhere.
    """

    ulp: dict[str, int]
    k: dict[str, float]
    reason: str
    ulp_where_no_cancellation: frozenset[str] = frozenset()


def adagrad_bound(dialect: str, params_ulp: int, params_k: float, slot_ulp: int, reason: str) -> Bound:
    """Params within `params_k` everywhere and `params_ulp` where nothing cancelled; every slot within `slot_ulp`."""
    slots = dict.fromkeys(get(dialect).slots.values(), slot_ulp)
    return Bound({"params": params_ulp} | slots, {"params": params_k}, reason, frozenset({"params"}))


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


def measure(adapter: Adapter, case: Case, dtype: str, bound: Bound | None = None) -> Worst:
    """Drive `adapter` through `case` and return the worst ulp distance and k per quantity over every step.

    Ulps of a quantity in `bound.ulp_where_no_cancellation` count only where S <= CANCELLATION * |exact|.
    """
    fmt = format_of(dtype)
    counter = get(case.dialect).counter
    masked = bound.ulp_where_no_cancellation if bound else frozenset()
    worst = Worst()
    for step, (want, got) in enumerate(run_both(adapter, case, dtype), start=1):
        count = want.count if counter is not None else None  # the adapter says None where the framework keeps none
        if got.count != count:
            worst.count_errors.append(f"{case.name} step {step}: counter {got.count}, but should be {count}")
        assert set(got.state) == set(want.state), (
            f"{adapter.name} ({case.name}): slots {sorted(got.state)}, but should be {sorted(want.state)}"
        )
        for quantity, wants, gots in _pairs(want, got):
            for tensor, (w, g) in enumerate(zip(wants, gots, strict=True)):
                assert g.dtype == w.dtype == fmt.np_dtype and g.shape == w.shape, (
                    f"{case.name}: {quantity}[{tensor}] is {g.dtype}{g.shape}, but should be {w.dtype}{w.shape}"
                )
                scale = want.error_scale[quantity][tensor]
                ulps = ulp_distance(g, w, fmt)
                if quantity in masked:
                    ulps = np.where(scale <= CANCELLATION * np.abs(w.astype(np.float64)), ulps, 0)
                ks = scaled_error(g, w, scale, fmt)
                worst.add(quantity, ulps.ravel(), ks.ravel(), partial(_locate, case, step, quantity, tensor, g, w, fmt))
    return worst


def measure_all(adapter: Adapter, cases: Sequence[Case], dtype: str, bound: Bound | None = None) -> Worst:
    total = Worst()
    for case in cases:
        total.merge(measure(adapter, case, dtype, bound))
    return total


def assert_within(worst: Worst, bound: Bound, label: str) -> None:
    """The counter exact and every quantity bounded; a quantity over its bound fails (pytest.fail) with where."""
    assert not worst.count_errors, f"{label}: the counter is exact, but " + "; ".join(worst.count_errors[:3])
    unmeasured = sorted(set(worst.ulp) - set(bound.ulp) - set(bound.k))
    assert not unmeasured, f"{label}: no bound for {unmeasured}"
    where = {q: f" where S <= {CANCELLATION:g} |exact|" for q in bound.ulp_where_no_cancellation}
    failures = [
        f"{q}: {worst.ulp[q]} ulp{where.get(q, '')} > bound {b}, at {worst.ulp_at[q]}"
        for q, b in bound.ulp.items()
        if worst.ulp[q] > b
    ] + [f"{q}: k = {worst.k[q]:.3g} > bound {b}, at {worst.k_at[q]}" for q, b in bound.k.items() if worst.k[q] > b]
    if failures:
        pytest.fail(f"{label} ({bound.reason}):\n  " + "\n  ".join(failures))


def check(adapter: Adapter, cases: Sequence[Case], dtype: str, bound: Bound, label: str) -> Worst:
    """The trajectory comparison: every case, every step within `bound`; the counter and the slots exact."""
    worst = measure_all(adapter, cases, dtype, bound)
    assert_within(worst, bound, label)
    return worst


def assert_bit_exact(adapter: Adapter, case: Case, dtype: str) -> None:
    """The reference's NumPy evaluator rounds every operation in the dtype, in the formula's order; a subject
    that computes the same ops in the same order (no FMA) must match it bit for bit."""
    fmt = format_of(dtype)
    for step, (want, got) in enumerate(run_both(adapter, case, dtype, evaluator="numpy"), start=1):
        for quantity, wants, gots in _pairs(want, got):
            for tensor, (w, g) in enumerate(zip(wants, gots, strict=True)):
                differ = np.flatnonzero(w.view(fmt.uint_dtype) != g.view(fmt.uint_dtype))
                if differ.size:
                    pytest.fail(_locate(case, step, quantity, tensor, g, w, fmt, int(differ[0])))


# ---------------------------------------------------------------- known deviations and refusals


def deviation(reason: str) -> pytest.MarkDecorator:
    """A known deviation: strict (an XPASS fails) and only for a failed check, never for an error."""
    return pytest.mark.xfail(strict=True, raises=pytest.fail.Exception, reason=reason)


def refusal(*values: Any, id: str, accepted_because: str | None = None) -> Any:
    """A pytest param of a refusal test; `accepted_because` makes it a known deviation: the subject accepts."""
    return pytest.param(*values, id=id, marks=[deviation(accepted_because)] if accepted_because else [])


def assert_refuses(adapter: Adapter, dialect: str, hparams: Hparams) -> None:
    """The dialect refuses these hyperparameters; the subject must too, when built or on its first step."""
    with pytest.raises(ValueError):
        get(dialect).hparams(hparams)
    params, grads = [np.ones(2, np.float32)], [[np.full(2, 0.5, np.float32)]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a subject that only warns has not refused
        with pytest.raises((ValueError, TypeError)):
            drive(adapter, dialect, hparams, params, grads)


# ---------------------------------------------------------------- calibration


def sweep(module_name: str, count: int | None = None) -> None:
    """Print the worst errors of each (subject, dtype) of a test file over `count` cases (default: its own)."""
    module = importlib.import_module(module_name)
    for (name, dtype), bound in module.BOUNDS.items():
        adapter, cases = module.sweep_cases(name) if count is None else module.sweep_cases(name, count)
        worst = measure_all(adapter, cases, dtype, bound)
        cells = ", ".join(f"{q}: {worst.ulp[q]} ulp, k {worst.k[q]:.3f}" for q in worst.ulp)
        print(f"{name:30} {dtype}  {cells}", flush=True)


def subject_sweep(subjects: Sequence[Subject], seed: int, count: int) -> Callable[..., tuple[Adapter, list[Case]]]:
    """A test file's `sweep_cases` for subjects whose cases draw_case draws: `count` is the default."""
    by_id = {s.id: s for s in subjects}

    def sweep_cases(name: str, count: int = count) -> tuple[Adapter, list[Case]]:
        return by_id[name].make(), draw_cases(by_id[name], seed, count)

    return sweep_cases


if __name__ == "__main__":
    # A test file's path (or its bare name, looked up in tests/adapters): importable with its own folder and tests/.
    TARGET = Path(sys.argv[1])
    TESTS = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(TESTS), str(TARGET.resolve().parent if TARGET.suffix else TESTS / "adapters")]
    sweep(TARGET.stem, int(sys.argv[2]) if len(sys.argv) > 2 else None)
