"""Properties of the reference under hypothesis (derandomized in CI: see conftest.py)."""

import itertools

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from conformance.tolerance import scaled_error
from reference import DIALECTS, format_of, run
from reference._arith import NumpyOps

ADAGRAD = sorted(d for d in DIALECTS if d.startswith("adagrad/") and d != "adagrad/keras2")
RPROP = sorted(d for d in DIALECTS if d.startswith("rprop/"))
DTYPES = st.sampled_from(["float32", "float64"])


def finite(lo=-1e3, hi=1e3):
    return st.floats(lo, hi, allow_nan=False, allow_subnormal=False)


NOT_TINY = st.one_of(st.just(0.0), finite(1e-3, 10), finite(-10, -1e-3))


@st.composite
def trajectories(draw, max_size=4, max_steps=6, zero_weight=0.2, element=None):
    size = draw(st.integers(1, max_size))
    steps = draw(st.integers(1, max_steps))
    if element is None:
        element = st.one_of(finite(-10, 10), st.just(0.0)) if zero_weight else finite(-10, 10)
    params = draw(st.lists(finite(-5, 5), min_size=size, max_size=size))
    grads = draw(st.lists(st.lists(element, min_size=size, max_size=size), min_size=steps, max_size=steps))
    losses = draw(st.lists(finite(0, 100), min_size=steps, max_size=steps))
    return params, grads, losses


def run_case(dialect, hparams, dtype, case, evaluator="oracle"):
    params, grads, losses = case
    return run(dialect, hparams, dtype, [params], [[g] for g in grads], losses, evaluator=evaluator)


LR = {"adagrad/optax": "learning_rate", "adagrad/tf1": "learning_rate", "adagrad/tf-raw-v2": "lr"}


@given(st.sampled_from(ADAGRAD), DTYPES, trajectories())
def test_accumulator_never_decreases(dialect, dtype, case):
    steps = run_case(dialect, {LR.get(dialect, next(iter(DIALECTS[dialect].names))): 0.05}, dtype, case)
    slot = DIALECTS[dialect].slots["accumulator"]
    history = [s.state[slot][0].astype(np.float64) for s in steps]
    for before, after in itertools.pairwise(history):
        assert np.all(after >= before)


@given(st.sampled_from(RPROP), DTYPES, trajectories(), st.floats(1e-4, 1.0), st.floats(1e-6, 1e-3), st.floats(1.0, 5.0))
def test_step_sizes_stay_within_bounds(dialect, dtype, case, lr, lo, hi):
    d = DIALECTS[dialect]
    assume(not d.knobs.initial_step_within_bounds or lo <= lr <= hi)  # Paddle refuses Δ0 outside the bounds
    hparams = d.framework_hparams({"lr": lr, "step_min": lo, "step_max": hi})
    fmt = format_of(dtype)
    ops = NumpyOps(fmt)

    def stored(name: str, x: float) -> float:
        """The bound as the dialect rounds it, then as a step size stores it."""
        return float(np.asarray(float(d.knobs.rounding.exact_value(ops, name, x)), dtype=fmt.np_dtype))

    lo_f, hi_f, lr_f = stored("step_min", lo), stored("step_max", hi), stored("lr", lr)
    for s in run_case(dialect, hparams, dtype, case):
        step_size = s.state[d.slots["step_size"]][0].astype(np.float64)
        assert np.all((step_size >= min(lo_f, lr_f)) & (step_size <= max(hi_f, lr_f)))
        if d.knobs.clamp_zero_branch or lo <= lr <= hi:
            assert np.all((step_size >= lo_f) & (step_size <= hi_f))


@given(st.sampled_from(RPROP), DTYPES, trajectories(element=NOT_TINY), st.sampled_from([0.5, 3.0, 1024.0, 1e-3]))
def test_rprop_invariant_to_positive_gradient_scaling(dialect, dtype, case, scale):
    # Non-zero gradients stay >= 1e-6 after scaling, so no product underflows and the branches are unchanged.
    params, grads, losses = case
    scaled = [[g * scale for g in row] for row in grads]
    a = run_case(dialect, {}, dtype, case)
    b = run_case(dialect, {}, dtype, (params, scaled, losses))
    slot = DIALECTS[dialect].slots["step_size"]
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x.params[0], y.params[0])
        np.testing.assert_array_equal(x.state[slot][0], y.state[slot][0])


ZERO_EPS = {
    "adagrad/torch": {"lr": 0.1, "eps": 0.0},
    "adagrad/keras3": {"learning_rate": 0.1, "epsilon": 0.0, "initial_accumulator_value": 0.0},
    "adagrad/optax": {"learning_rate": 0.1, "eps": 0.0, "initial_accumulator_value": 0.0},
    "adagrad/tf-raw-v2": {"lr": 0.1, "epsilon": 0.0, "initial_accumulator_value": 0.0},
}


NONZERO = st.one_of(finite(1e-3, 10), finite(-10, -1e-3))


@given(st.sampled_from(sorted(ZERO_EPS)), DTYPES, trajectories(element=NONZERO), st.sampled_from([0.25, 8.0, 2.0**-10]))
def test_adagrad_without_eps_is_invariant_to_gradient_scaling(dialect, dtype, case, scale):
    # Power-of-two scales are exact in the format, so A scales by scale**2 and g / sqrt(A) does not change
    # (as long as g**2 stays clear of the subnormal range, which |g| >= 1e-3 guarantees).
    params, grads, losses = case
    a = run_case(dialect, ZERO_EPS[dialect], dtype, case)
    b = run_case(dialect, ZERO_EPS[dialect], dtype, (params, [[g * scale for g in row] for row in grads], losses))
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x.params[0], y.params[0])


@given(DTYPES, trajectories(zero_weight=0.3))
def test_irprop_minus_never_moves_on_a_sign_change(dtype, case):
    steps = run_case("rprop/irprop-", {}, dtype, case)
    previous_theta = np.asarray(case[0], dtype=format_of(dtype).np_dtype)
    previous_grad = np.zeros_like(previous_theta)
    for s, g in zip(steps, case[1], strict=False):
        g = np.asarray(g, dtype=previous_theta.dtype)
        # The dialect's sign test is the product in the format: an underflowing product is no sign change.
        sign_change = g * previous_grad < 0
        np.testing.assert_array_equal(s.params[0][sign_change], previous_theta[sign_change])
        previous_theta, previous_grad = s.params[0], s.state["prev_grad"][0]


@given(st.sampled_from(ADAGRAD + RPROP), trajectories())
def test_numpy_float64_agrees_with_oracle_within_error_model(dialect, case):
    # A correctly rounded float64 evaluation of the same definition is within 1 * u * S of the oracle.
    hparams = {LR.get(dialect, next(iter(DIALECTS[dialect].names))): 0.05} if dialect.startswith("adagrad") else {}
    exact = run_case(dialect, hparams, "float64", case)
    fast = run_case(dialect, hparams, "float64", case, evaluator="numpy")
    fmt = format_of("float64")
    for e, f in zip(exact, fast, strict=False):
        for key, got in [("params", f.params), *list(f.state.items())]:
            want = e.params if key == "params" else e.state[key]
            k = scaled_error(got[0], want[0], e.error_scale[key][0], fmt)
            assert np.all(k <= 1.0), (key, k)


@given(st.sampled_from(ADAGRAD + RPROP), trajectories())
def test_numpy_float64_from_each_stored_state_is_within_the_step_scale(dialect, case):
    # Teacher forcing's bound: one correctly rounded float64 step from the oracle's stored state of step t - 1 is
    # within 1 * u * (S of the step alone) of the oracle's step t.
    params, grads, losses = case
    hparams = {LR.get(dialect, next(iter(DIALECTS[dialect].names))): 0.05} if dialect.startswith("adagrad") else {}
    exact = run(
        dialect, hparams, "float64", [params], [[g] for g in grads], losses, step_scales=True, include_initial=True
    )
    fmt = format_of("float64")
    for t, (before, e) in enumerate(itertools.pairwise(exact)):
        (f,) = run(
            dialect,
            hparams,
            "float64",
            before.params,
            [[grads[t]]],
            None if losses is None else [losses[t]],
            evaluator="numpy",
            initial_count=before.count,
            initial_state=before.state,
        )
        for key, got in [("params", f.params), *list(f.state.items())]:
            want = e.params if key == "params" else e.state[key]
            k = scaled_error(got[0], want[0], e.step_scale[key][0], fmt)
            assert np.all(k <= 1.0), (t, key, k)
