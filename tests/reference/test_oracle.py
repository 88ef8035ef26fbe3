"""The oracle's precision is enough: doubling it changes no stored bit and no stored digit of S."""

import numpy as np
import pytest

from reference import ORACLE_DPS, run

CASES = [
    (
        "adagrad/tf-keras-v2",
        {"learning_rate": 0.1, "decay": 0.01},
        [[1.0, -0.5, 3e-8, 0.0]],
        [[[0.5, -1.0, 1e-8, 0.0]], [[0.3, 1e3, -1e-8, 0.0]], [[-0.4, 1.0, 2e-8, 1e-30]]],
        None,
    ),
    (
        "adagrad/optax",
        {"learning_rate": 0.3, "eps": 0.0, "initial_accumulator_value": 0.0},
        [[2.0, 0.0]],
        [[[1e-20, 0.0]], [[3.0, 0.0]]],
        None,
    ),
    (
        "adagrad/torch",
        {"lr": 0.7, "lr_decay": 0.3, "weight_decay": 0.2, "maximize": True},
        [[0.1, -7.0, 1e10]],
        [[[0.25, 1e-12, 1e20]], [[-3.0, 2.5, 1e-3]]],
        None,
    ),
    (
        "rprop/irprop+",
        {"delta_0": 0.07},
        [[1.0, 2.0]],
        [[[1.0, -1e-25]], [[-1.0, 1e-25]], [[1.0, 0.0]]],
        [3.0, 4.0, 2.0],
    ),
    ("rprop/torch", {"lr": 60.0}, [[1.0]], [[[1.0]], [[1.0]], [[-1.0]]], None),
]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize(("dialect", "hparams", "params", "grads", "losses"), CASES, ids=[c[0] for c in CASES])
def test_doubling_precision_changes_no_stored_digit(dialect, hparams, params, grads, losses, dtype):
    base = run(dialect, hparams, dtype, params, grads, losses, dps=ORACLE_DPS)
    double = run(dialect, hparams, dtype, params, grads, losses, dps=2 * ORACLE_DPS)
    for a, b in zip(base, double, strict=True):
        for key in ["params", *a.state]:
            x = a.params if key == "params" else a.state[key]
            y = b.params if key == "params" else b.state[key]
            for xa, ya in zip(x, y, strict=True):
                assert xa.tobytes() == ya.tobytes(), key
            for sa, sb in zip(a.error_scale[key], b.error_scale[key], strict=True):
                assert [f"{v:.6e}" for v in sa.ravel()] == [f"{v:.6e}" for v in sb.ravel()], key


@pytest.mark.parametrize(("dialect", "hparams", "params", "grads", "losses"), CASES, ids=[c[0] for c in CASES])
def test_step_scales_leave_the_trajectory_alone_and_never_exceed_it(dialect, hparams, params, grads, losses):
    """Asking for step scales evaluates each step a second time, on the side: the values and the accumulated S
    are those of a plain run, and each step's own S is at most the accumulated one."""
    plain = run(dialect, hparams, "float32", params, grads, losses)
    both = run(dialect, hparams, "float32", params, grads, losses, step_scales=True)
    for a, b in zip(plain, both, strict=True):
        assert a.step_scale is None and b.step_scale is not None
        for key in ["params", *a.state]:
            x = a.params if key == "params" else a.state[key]
            y = b.params if key == "params" else b.state[key]
            assert all(xa.tobytes() == ya.tobytes() for xa, ya in zip(x, y, strict=True)), key
            for full, again, alone in zip(a.error_scale[key], b.error_scale[key], b.step_scale[key], strict=True):
                assert full.tobytes() == again.tobytes(), key
                assert (alone <= full).all(), key


def test_a_step_from_an_exact_state_counts_that_steps_roundings_alone():
    """float32 Adagrad, A0 = 0.5, g = 0.5 twice: the second step's accumulator A = 0.75 + 0.25 has S = |g·g| + |A|
    (the sum) + |A| (the store) = 2.25 alone, where the trajectory also carries the first step's 0.25 + 2·0.75."""
    steps = run(
        "adagrad/torch",
        {"lr": 0.1, "initial_accumulator_value": 0.5},
        "float32",
        [[1.0]],
        [[[0.5]]] * 2,
        step_scales=True,
    )
    assert steps[1].state["sum"][0][0] == 1.0
    assert steps[1].step_scale["sum"][0][0] == 2.25
    assert steps[1].error_scale["sum"][0][0] == 2.25 + 0.25 + 2 * 0.75 + 0.5  # and the initial store of A0


def test_step_scales_need_the_oracle():
    with pytest.raises(ValueError, match="step_scales needs the oracle"):
        run("adagrad/torch", {}, "float32", [[1.0]], [[[0.5]]], evaluator="numpy", step_scales=True)


def test_oracle_is_exact_not_working_precision():
    # torch Adagrad, float16, default eps 1e-10: sqrt(0) + 1e-10 is not 0 in exact arithmetic, so a zero
    # gradient on a zero accumulator moves nothing (a float16 evaluation would divide 0 by 0).
    steps = run("adagrad/torch", {"lr": 0.1}, "float16", [[1.0]], [[[0.0]]])
    assert steps[0].params[0][0] == 1.0


def test_overflowing_square_saturates_the_stored_accumulator():
    # float32: g = 1e20 squares to 1e40 > max float32, so the stored A is inf and the step g / sqrt(A) is 0.
    steps = run("adagrad/torch", {"lr": 0.1}, "float32", [[1.0]], [[[1e20]]])
    assert np.isinf(steps[0].state["sum"][0][0])
    assert steps[0].params[0][0] == 1.0


def test_rprop_product_underflow_in_working_format():
    # float32: 1e-25 * 1e-25 underflows to 0, so m = 0 and Delta keeps 0.01 (torch's rprop.py: grad.mul(prev).sign());
    # 1e-20 * 1e-20 = 1e-40 survives as a subnormal, so Delta grows by 1.2.
    tiny = run("rprop/torch", {}, "float32", [[0.0]], [[[1e-25]], [[1e-25]]])
    assert tiny[1].state["step_size"][0][0] == np.float32(0.01)
    sub = run("rprop/torch", {}, "float32", [[0.0]], [[[1e-20]], [[1e-20]]])
    assert sub[1].state["step_size"][0][0] == np.float32(np.float32(0.01) * np.float32(1.2))
    # The sign test never underflows: a float64 run of the same values grows too.
    wide = run("rprop/torch", {}, "float64", [[0.0]], [[[1e-25]], [[1e-25]]])
    assert wide[1].state["step_size"][0][0] == 0.01 * 1.2


def test_torch_rounds_etas_to_the_parameter_format():
    # bfloat16: eta+ = 1.2 rounds to 1.203125, so Delta goes 0.1 -> 0.10009765625 (bf16(0.1)) -> 0.12060546875.
    steps = run("rprop/torch", {"lr": 0.1}, "bfloat16", [[0.0]], [[[1.0]], [[1.0]]])
    assert float(steps[0].state["step_size"][0][0]) == 0.10009765625
    assert float(steps[1].state["step_size"][0][0]) == 0.12060546875


def test_signed_zero_survives():
    # theta = -0 with a zero step stays -0: (-0) - (+0) = -0 in round-to-nearest.
    steps = run("adagrad/optax", {"learning_rate": 0.1}, "float32", [[-0.0]], [[[0.0]]])
    assert np.signbit(steps[0].params[0][0])


def test_nan_policies():
    # torch: sign(NaN) = 0, so a NaN gradient moves nothing and is stored; the paper's rule lets NaN through.
    torch_steps = run("rprop/torch", {}, "float32", [[1.0]], [[[float("nan")]], [[1.0]]])
    assert torch_steps[0].params[0][0] == 1.0 and np.isnan(torch_steps[0].state["prev"][0][0])
    assert torch_steps[1].params[0][0] == np.float32(1.0) - np.float32(0.01)
    paper = run("rprop/irprop-", {}, "float32", [[1.0]], [[[float("nan")]]])
    assert np.isnan(paper[0].params[0][0])
