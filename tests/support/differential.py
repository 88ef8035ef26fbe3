"""Shared machinery of the differential tests: cases drawn as the corpus and the fuzzer draw them, the oracle, and
the error model's verdict.

A real framework is driven through its adapter exactly as the runner drives it, and every step's params and state
slots are judged against the mpmath oracle (the spec) by the error model (conformance/tolerance.py): every element
within k·u·S + tiny, with k from the family's record, and NaN, inf and the sign of zero exact. The counter and the
set of state slots must match exactly, and a quantity a subject is known to round once, as the spec does (its
`exact`), must match bit for bit.

The cases are the corpus generator's random trajectories (`random_inputs` in reference/vectors/cases.py: the family
record's hyperparameter draw, dyadic params and gradients with the record's share of exact zeros), on shapes of
their own, with one of the fuzzer's hyperparameter edges (`HPARAM_EDGES` in conformance/fuzz.py) on top. Hypothesis
picks the seed, the edge and the shapes (`DRAWS`); the CI profile derandomizes it (tests/conftest.py).

`python tests/support/differential.py tests/adapters/test_differential_tf.py [cases]` prints the worst k of each of
a test file's (subject, dtype) pairs (its SUBJECTS) over that many cases, for the measured numbers in CONFORMANCE.md.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, assume, given, settings
from hypothesis import strategies as st

from conformance.adapter import Adapter, StepResult, drive
from conformance.fuzz import HPARAM_EDGES, exposed
from conformance.tolerance import bound_of, judge, ulp_distance
from reference import FloatFormat, Step, format_of, get, run
from reference._numerics import bits_to_hex
from reference.trajectory import to_format
from reference.vectors.cases import random_inputs, rng_for

STEPS = 10
DTYPES = ("float32", "float64")

Hparams = dict[str, Any]


# ---------------------------------------------------------------- subjects, draws and cases


@dataclass(frozen=True)
class Subject:
    """An adapter under test, the dialect it claims, and what is known of its arithmetic.

    `fixed` hyperparameters are set on every drawn case (a subject is one setting, e.g. update_slots=False).
    `exact` names the quantities ('params' or a slot) the subject rounds once, as the spec does: bit-exact.
    `float32_drawn` names hyperparameters the subject rounds through float32 where the dialect keeps them exact;
    they are drawn as float32 values, because the deviation is pinned by a strict xfail test of its own and here
    would only hide the arithmetic error.
    """

    id: str
    make: Callable[[], Adapter]
    dialect: str
    fixed: Hparams = field(default_factory=dict, hash=False)
    exact: frozenset[str] = frozenset()
    float32_drawn: frozenset[str] = frozenset()


def adapter_subjects(adapters: Sequence[Adapter], exact: Mapping[str, frozenset[str]]) -> list[Subject]:
    """Subjects of built-in adapters that claim one dialect each; `exact` maps an adapter's name to its `exact`."""
    return [
        Subject(a.name, lambda a=a: a, a.capabilities.dialects[0], exact=exact.get(a.name, frozenset()))
        for a in adapters
    ]


# Two parameter tensors per case: the second has more than 64 elements so that the vectorised bodies of the kernels
# run (torch's vector width is 8 or 16 floats, Eigen's packets as many), the first leaves a scalar tail.
SHAPES = (((3,), (67,)), ((2, 3), (4, 17)), ((), (70,)), ((5,), (9, 9)))


@dataclass(frozen=True)
class Draw:
    """What picks one case: the generator's seed, an index into the fuzzer's HPARAM_EDGES and one into SHAPES."""

    seed: int
    edge: int
    shapes: int


DRAWS = st.builds(
    Draw, st.integers(0, 2**32 - 1), st.integers(0, len(HPARAM_EDGES) - 1), st.integers(0, len(SHAPES) - 1)
)


def differential(cases: int) -> settings:
    """The hypothesis settings of a differential test: `cases` draws, and no shrinking, since a smaller seed is
    not a simpler case (the failing draw is reported as it is)."""
    return settings(max_examples=cases, phases=(Phase.explicit, Phase.reuse, Phase.generate))


@dataclass(frozen=True)
class Case:
    """One trajectory: the dialect, its framework-named hparams, params, and one gradient row per step."""

    name: str
    dialect: str
    hparams: Hparams = field(hash=False)
    params: tuple[np.ndarray, ...] = field(hash=False, repr=False)  # float64 inputs; rounded to the dtype before use
    grads: tuple[tuple[np.ndarray, ...], ...] = field(hash=False, repr=False)
    losses: tuple[float, ...] | None = field(default=None, hash=False, repr=False)

    def inputs(self, dtype: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """Params and gradients rounded to `dtype` the way the reference rounds them."""
        fmt = format_of(dtype)
        return [to_format(p, fmt) for p in self.params], [[to_format(g, fmt) for g in row] for row in self.grads]


def draw_case(subject: Subject, draw: Draw) -> Case | None:
    """The generator's random trajectory of `draw.seed` for the subject's dialect, with the fuzzer's edge
    `draw.edge` and the subject's fixed settings on top; None where the dialect refuses the result (TF1 a zero
    initial accumulator, Keras 3 two clips). The dialects of one family see the same params and gradients."""
    dialect = get(subject.dialect)
    rng = rng_for(f"differential/{dialect.family.name}/{draw.seed}")
    drawn = random_inputs(dialect, rng, SHAPES[draw.shapes], STEPS)
    hparams = drawn.hparams | exposed(dialect, HPARAM_EDGES[draw.edge]) | subject.fixed
    for name in subject.float32_drawn & hparams.keys():
        hparams[name] = float(np.float32(hparams[name]))
    try:
        dialect.hparams(hparams)
    except ValueError:
        return None
    name = f"{subject.dialect}#{draw.seed}.{draw.edge}.{draw.shapes}"
    losses = None if drawn.losses is None else tuple(drawn.losses)
    return Case(name, subject.dialect, hparams, tuple(drawn.params), tuple(map(tuple, drawn.grads)), losses)


def draw_valid(subject: Subject, draw: Draw, keep: Callable[[Case], bool] = lambda case: True) -> Case:
    """`draw_case` inside a hypothesis test: a draw the dialect refuses, or that `keep` leaves out, is rejected."""
    case = draw_case(subject, draw)
    assume(case is not None and keep(case))
    assert case is not None
    return case


def seeded_cases(subject: Subject, count: int) -> list[Case]:
    """`count` fixed draws (seed i, every edge and every shapes in turn), for calibration and one-case tests."""
    draws = (Draw(i, i % len(HPARAM_EDGES), i % len(SHAPES)) for i in range(count))
    return [case for case in (draw_case(subject, d) for d in draws) if case is not None]


def subject_dtypes(subjects: Sequence[Subject]) -> list[Any]:
    """pytest params (subject, dtype) with ids `subject-dtype`."""
    return [pytest.param(s, dtype, id=f"{s.id}-{dtype}") for s in subjects for dtype in DTYPES]


def without_norm_clipping(case: Case) -> bool:
    """No norm clipping: frameworks reduce the norm in their own order, the NumPy evaluator in its."""
    return not {"clipnorm", "global_clipnorm"} & case.hparams.keys()


# ---------------------------------------------------------------- the reference, and both trajectories

_EXPECTED: dict[tuple[str, str, str, str], list[Step]] = {}


def expected(case: Case, dtype: str, evaluator: str = "oracle") -> list[Step]:
    """The reference's steps for a case, computed once per process (the subjects of a dialect share a draw)."""
    key = (case.name, repr(sorted(case.hparams.items())), dtype, evaluator)
    if key not in _EXPECTED:
        params, grads = case.inputs(dtype)
        _EXPECTED[key] = run(case.dialect, case.hparams, dtype, params, grads, case.losses, evaluator=evaluator)
    return _EXPECTED[key]


def run_both(adapter: Adapter, case: Case, dtype: str, evaluator: str = "oracle") -> list[tuple[Step, StepResult]]:
    """The reference's trajectory and the subject's, step by step, from the same inputs rounded once to `dtype`."""
    params, grads = case.inputs(dtype)
    got = drive(adapter, case.dialect, case.hparams, params, grads, case.losses)
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


# ---------------------------------------------------------------- measuring errors, and the verdict


@dataclass
class Worst:
    """The largest k seen per quantity ('params' and each slot) with where, and every way the run failed."""

    k: dict[str, float] = field(default_factory=dict)
    k_at: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def merge(self, other: Worst) -> None:
        for q, k in other.k.items():
            if k > self.k.get(q, -1.0):
                self.k[q], self.k_at[q] = k, other.k_at[q]
        self.failures += other.failures


def measure(adapter: Adapter, case: Case, dtype: str, exact: frozenset[str] = frozenset()) -> Worst:
    """Drive `adapter` through `case`: the worst k per quantity over every step, and each failure: an element
    outside the error model's bound, any ulp off in a quantity in `exact`, or a wrong counter."""
    fmt = format_of(dtype)
    dialect = get(case.dialect)
    worst = Worst()
    for step, (want, got) in enumerate(run_both(adapter, case, dtype), start=1):
        count = want.count if dialect.counter is not None else None  # None: the framework keeps none
        if got.count != count:
            worst.failures.append(f"{case.name} step {step}: counter {got.count}, but should be {count}")
        assert set(got.state) == set(want.state), (
            f"{adapter.name} ({case.name}): slots {sorted(got.state)}, but should be {sorted(want.state)}"
        )
        assert want.error_scale is not None
        for quantity, wants, gots in _pairs(want, got):
            bound = bound_of(dialect, quantity)
            for tensor, (w, g) in enumerate(zip(wants, gots, strict=True)):
                assert g.dtype == w.dtype == fmt.np_dtype and g.shape == w.shape, (
                    f"{case.name}: {quantity}[{tensor}] is {g.dtype}{g.shape}, but should be {w.dtype}{w.shape}"
                )
                if not w.size:
                    continue
                judged = judge(g, w, want.error_scale[quantity][tensor], fmt, bound.k)
                needed = np.where(judged.special, np.inf, judged.needed).ravel()
                here = int(needed.argmax())
                if needed[here] > worst.k.get(quantity, -1.0):
                    worst.k[quantity] = float(needed[here])
                    worst.k_at[quantity] = _locate(case, step, quantity, tensor, g, w, fmt, here)
                outside = np.flatnonzero(judged.outside)
                if outside.size:
                    where = _locate(case, step, quantity, tensor, g, w, fmt, int(outside[0]))
                    worst.failures.append(f"{where}: k = {needed[outside[0]]:.3g} > {bound.k:g} ({bound.source})")
                off = np.flatnonzero(ulp_distance(g, w, fmt)) if quantity in exact else ()
                if len(off):
                    where = _locate(case, step, quantity, tensor, g, w, fmt, int(off[0]))
                    worst.failures.append(f"{where}: {quantity} should be bit-exact")
    return worst


def check_case(adapter: Adapter, case: Case, dtype: str, label: str, exact: frozenset[str] = frozenset()) -> Worst:
    """The trajectory comparison of one case: every step within the error model, `exact` bit for bit, the counter
    and the slots exact; a failure (pytest.fail) says where."""
    worst = measure(adapter, case, dtype, exact)
    if worst.failures:
        pytest.fail(f"{label}:\n  " + "\n  ".join(worst.failures[:5]))
    return worst


def check(subject: Subject, draw: Draw, dtype: str, keep: Callable[[Case], bool] = lambda case: True) -> Worst:
    """The differential test of one drawn case of `subject` in `dtype` (of those `keep` keeps)."""
    case = draw_valid(subject, draw, keep)
    return check_case(subject.make(), case, dtype, f"{subject.id} {dtype}", subject.exact)


def trajectory_test(subjects: Sequence[Subject], cases: int) -> Callable[..., None]:
    """A test file's `test_trajectory`: each (subject, dtype) on `cases` drawn cases, judged by `check`."""

    @pytest.mark.parametrize(("subject", "dtype"), subject_dtypes(subjects))
    @differential(cases)
    @given(draw=DRAWS)
    def test_trajectory(subject: Subject, dtype: str, draw: Draw) -> None:
        check(subject, draw, dtype)

    return test_trajectory


def bit_exact_test(subjects: Sequence[Subject], cases: int) -> Callable[..., None]:
    """A test file's `test_bit_exact_with_numpy_evaluator`: subjects that round each op of the formula once, in its
    order, match the NumPy evaluator bit for bit on `cases` drawn cases without norm clipping."""

    @pytest.mark.parametrize(("subject", "dtype"), subject_dtypes(subjects))
    @differential(cases)
    @given(draw=DRAWS)
    def test_bit_exact_with_numpy_evaluator(subject: Subject, dtype: str, draw: Draw) -> None:
        assert_bit_exact(subject.make(), draw_valid(subject, draw, without_norm_clipping), dtype)

    return test_bit_exact_with_numpy_evaluator


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


def single_step(dialect: str, hparams: Hparams, param: float, grad: float) -> Case:
    """A one-step, one-element case: with g = 0 it isolates what a hyperparameter does (a minimal repro)."""
    return Case("-".join(hparams), dialect, hparams, (np.array([param]),), ((np.array([grad]),),))


# ---------------------------------------------------------------- measuring, for CONFORMANCE.md


def sweep(module_name: str, count: int) -> None:
    """Print the worst k of each (subject, dtype) of a test file over `count` seeded cases."""
    module = importlib.import_module(module_name)
    for subject in module.SUBJECTS:
        cases = seeded_cases(subject, count)
        for dtype in DTYPES:
            adapter, total = subject.make(), Worst()
            for case in cases:
                total.merge(measure(adapter, case, dtype, subject.exact))
            cells = ", ".join(f"{q}: k {k:.3f}" for q, k in total.k.items())
            print(f"{subject.id:30} {dtype}  {cells}  ({len(cases)} cases, {len(total.failures)} failures)")
            for failure in total.failures[:3]:
                print(f"    {failure}")


if __name__ == "__main__":
    # A test file's path (or its bare name, looked up in tests/adapters): importable with its own folder and tests/.
    TARGET = Path(sys.argv[1])
    TESTS = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(TESTS), str(TARGET.resolve().parent if TARGET.suffix else TESTS / "adapters")]
    sweep(TARGET.stem, int(sys.argv[2]) if len(sys.argv) > 2 else 40)
