"""Hand-worked traces: every expected number below is derived by hand in the comments, not by the code."""

import itertools
import math

import numpy as np
import pytest

from reference import run
from reference.sparse import SparseGrad

G = [1, 1, 1, -1, 1, 0, 1, -1, -1, 1]
E = [10, 9, 8, 8.5, 7, 7, 6, 6.5, 5, 4.5]


def changes(dialect, hparams, grads=G, losses=E):
    steps = run(dialect, hparams, "float64", [[0.0]], [[[g]] for g in grads], losses)
    theta = [0.0] + [float(s.params[0][0]) for s in steps]
    return [b - a for a, b in itertools.pairwise(theta)], steps


# Delta_0 = 0.1, eta- = 0.5, eta+ = 1.2. p starts at 0, so step 1 takes the m = 0 branch.
#  t  g   m=g*p  Rprop+ (backtrack, freeze)      Rprop- (move, no freeze)     iRprop+ (E rose?)          iRprop-
#  1  1   0      D .1,  d -.1                    D .1,  d -.1                 d -.1                      d -.1
#  2  1   +      D .12, d -.12                   D .12, d -.12                d -.12                     d -.12
#  3  1   +      D .144, d -.144                 D .144, d -.144              d -.144                    d -.144
#  4 -1   -      D .072, d +.144 (undo), p=0     D .072, d +.072, p=-1        8.5>8 rose: d +.144, p=0   d 0, p=0
#  5  1   0|-    D .072, d -.072                 m<0: D .036, d -.036         m=0: d -.072               d -.072
#  6  0   0      d 0, p=0                        d 0, p=0                     d 0                        d 0
#  7  1   0      d -.072 (Rprop-: D .036 -> -.036)                            d -.072                    d -.072
#  8 -1   -      D .036, d +.072 (undo)          D .018, d +.018              6.5>6 rose: d +.072        d 0
#  9 -1   0|+    m=0: d +.036                    m>0: D .0216, d +.0216       m=0: d +.036               d +.036
# 10  1   -      D .018, d -.036 (undo)          D .0108, d -.0108            4.5<5 fell: d 0            d 0
EXPECTED_CHANGES = {
    "rprop/rprop+": [-0.1, -0.12, -0.144, 0.144, -0.072, 0, -0.072, 0.072, 0.036, -0.036],
    "rprop/rprop-": [-0.1, -0.12, -0.144, 0.072, -0.036, 0, -0.036, 0.018, 0.0216, -0.0108],
    "rprop/irprop+": [-0.1, -0.12, -0.144, 0.144, -0.072, 0, -0.072, 0.072, 0.036, 0],
    "rprop/irprop-": [-0.1, -0.12, -0.144, 0, -0.072, 0, -0.072, 0, 0.036, 0],
    # torch is iRprop- with clamping; Delta_0 = lr = 0.1 lies inside [1e-6, 50], so the clamp never shows.
    "rprop/torch": [-0.1, -0.12, -0.144, 0, -0.072, 0, -0.072, 0, 0.036, 0],
    # Two-way switch: m <= 0 shrinks, then moves. Step 1: m = 0 -> D .05, d -.05; t2,t3 grow .06, .072;
    # t4 shrink .036, d +.036; t5 m<0 .018, d -.018; t6 g=0: m=0 shrinks to .009, d 0; t7 m=0: .0045, d -.0045;
    # t8 m<0: .00225, d +.00225; t9 m>0: .0027, d +.0027; t10 m<0: .00135, d -.00135.
    "rprop/keras-answer": [-0.05, -0.06, -0.072, 0.036, -0.018, 0, -0.0045, 0.00225, 0.0027, -0.00135],
}
DELTA0 = {"rprop/torch": {"lr": 0.1}, "rprop/keras-answer": {"init_alpha": 0.1}}


@pytest.mark.parametrize("dialect", sorted(EXPECTED_CHANGES))
def test_rprop_paper_sequence(dialect):
    got, _ = changes(dialect, DELTA0.get(dialect, {}))
    for t, (d, want) in enumerate(zip(got, EXPECTED_CHANGES[dialect], strict=True), start=1):
        assert math.isclose(d, want, rel_tol=1e-12, abs_tol=1e-15), f"{dialect} step {t}: d={d!r}, hand-worked {want}"


def test_irprop_plus_tie_does_not_backtrack():
    # E equal to E_prev is not a rise (strict >): the sign change at t=2 then moves nothing.
    got, _ = changes("rprop/irprop+", {}, grads=[1, -1], losses=[5, 5])
    assert got == [-0.1, 0.0]


def test_rprop_plus_state_after_backtrack():
    # After t4's backtrack, p is frozen to 0 and the stored change is the undo step itself (+0.144).
    _, steps = changes("rprop/rprop+", {})
    s4 = steps[3].state
    assert s4["prev_grad"][0][0] == 0.0
    assert math.isclose(float(s4["prev_update"][0][0]), 0.144, rel_tol=1e-12)
    assert math.isclose(float(s4["delta"][0][0]), 0.072, rel_tol=1e-12)


def test_torch_clamps_initial_step():
    # torch clamps in the m = 0 branch, so lr = 60 first moves by step_max = 50; the paper keeps Delta_0 = 60.
    got, _ = changes("rprop/torch", {"lr": 60.0}, grads=[1], losses=None)
    assert got == [-50.0]
    got, _ = changes("rprop/irprop-", {"delta_0": 60.0}, grads=[1], losses=None)
    assert got == [-60.0]


def adagrad(dialect, hparams, params, grads):
    steps = run(dialect, hparams, "float64", [params], [[g] for g in grads])
    return [[float(x) for x in s.params[0]] for s in steps], steps


def test_adagrad_eps_outside_worked_example():
    # A0 = 0, lr 0.1, eps 0, g = 3 then 4: A = 9, theta = 1 - 0.1*3/3 = 0.9; A = 25, theta = 0.9 - 0.1*4/5 = 0.82.
    thetas, steps = adagrad("adagrad/torch", {"lr": 0.1, "eps": 0.0}, [1.0], [[3.0], [4.0]])
    assert thetas == [[0.9], [pytest.approx(0.82, rel=1e-15)]]
    assert [float(s.state["sum"][0][0]) for s in steps] == [9.0, 25.0]


def test_adagrad_eps_inside_worked_example():
    # keras3, eps 16, A0 0: A = 9, sqrt(9 + 16) = 5, theta = 1 - 0.1*3/5 = 0.94 (lr is f32(0.1) in Keras 3).
    thetas, _ = adagrad(
        "adagrad/keras3", {"learning_rate": 0.125, "epsilon": 16.0, "initial_accumulator_value": 0.0}, [1.0], [[3.0]]
    )
    # lr 0.125 is exact in float32, so: 1 - 0.125*3/5 = 0.925.
    assert thetas == [[0.925]]


def test_adagrad_masked_zero_accumulator_moves_nothing():
    # optax: A = 0 and g = 0 with eps 0 gives an update of 0, where the unmasked rule gives 0/0 = NaN.
    thetas, _ = adagrad(
        "adagrad/optax", {"learning_rate": 0.1, "eps": 0.0, "initial_accumulator_value": 0.0}, [1.0], [[0.0]]
    )
    assert thetas == [[1.0]]
    thetas, _ = adagrad("adagrad/torch", {"lr": 0.1, "eps": 0.0}, [1.0], [[0.0]])
    assert math.isnan(thetas[0][0])


def test_adagrad_no_eps_tf1():
    # ApplyAdagrad: A0 0.1, lr 0.5 (exact in f32), g = 0.3: A = 0.1 + 0.09 = 0.19, theta = 1 - 0.5*0.3/sqrt(0.19).
    thetas, _ = adagrad("adagrad/tf1", {"learning_rate": 0.5}, [1.0], [[0.3]])
    assert thetas[0][0] == pytest.approx(1 - 0.15 / math.sqrt(0.19), rel=1e-15)


def test_adagrad_inverse_time_decay_counts_completed_steps():
    # decay 0.5: step 1 uses t = 0 (lr 0.1), step 2 uses t = 1 (lr 0.1/1.5).
    # theta1 = 0.9 as above; theta2 = 0.9 - (0.1/1.5)*4/5 = 0.9 - 0.053333... = 0.846666...
    thetas, _ = adagrad("adagrad/torch", {"lr": 0.1, "eps": 0.0, "lr_decay": 0.5}, [1.0], [[3.0], [4.0]])
    assert thetas[1][0] == pytest.approx(0.9 - (0.1 / 1.5) * 0.8, rel=1e-15)


def test_adagrad_coupled_weight_decay():
    # torch wd 0.1, theta 1, g 3: g' = 3 + 0.1*1 = 3.1 feeds A = 9.61 and the step 0.1*3.1/3.1 = 0.1.
    thetas, steps = adagrad("adagrad/torch", {"lr": 0.1, "eps": 0.0, "weight_decay": 0.1}, [1.0], [[3.0]])
    assert thetas == [[pytest.approx(0.9, rel=1e-15)]]
    assert float(steps[0].state["sum"][0][0]) == pytest.approx(9.61, rel=1e-15)


def test_adagrad_decoupled_weight_decay():
    # keras3 wd 0.5, lr 0.125, theta 1, g 3, A0 0, eps 0: theta <- 1 - 1*0.5*0.125 = 0.9375, then A = 9 and
    # theta <- 0.9375 - 0.125*3/3 = 0.8125.
    hp = {"learning_rate": 0.125, "weight_decay": 0.5, "initial_accumulator_value": 0.0, "epsilon": 0.0}
    thetas, _ = adagrad("adagrad/keras3", hp, [1.0], [[3.0]])
    assert thetas == [[0.8125]]


def test_adagrad_maximize():
    # torch maximize: g = 3 becomes -3, A = 9, theta = 1 + 0.1 = 1.1.
    thetas, _ = adagrad("adagrad/torch", {"lr": 0.1, "eps": 0.0, "maximize": True}, [1.0], [[3.0]])
    assert thetas == [[pytest.approx(1.1, rel=1e-15)]]


def test_clipnorm_is_per_tensor_and_global_clipnorm_is_joint():
    # Tensors [3] and [4]: per-tensor clipnorm 2.5 gives [2.5], [2.5]; global clipnorm 2.5 scales both by
    # 2.5/5: [1.5], [2]. With A0 0 and eps ~0 each element then moves by about lr either way, so read A.
    hp = {"learning_rate": 0.5, "initial_accumulator_value": 0.0}
    per = run("adagrad/tf-keras-v2", hp | {"clipnorm": 2.5}, "float64", [[1.0], [1.0]], [[[3.0], [4.0]]])
    joint = run("adagrad/tf-keras-v2", hp | {"global_clipnorm": 2.5}, "float64", [[1.0], [1.0]], [[[3.0], [4.0]]])
    assert [float(a[0]) for a in per[0].state["accumulator"]] == [6.25, 6.25]
    assert [float(a[0]) for a in joint[0].state["accumulator"]] == [pytest.approx(2.25), pytest.approx(4.0)]


def test_clip_order_value_then_norm():
    # tf.keras v2 clips by value first (OptimizerV2._transform_gradients applies clipvalue, then clipnorm):
    # g = [3, 0.1], clipvalue 0.5 -> [0.5, 0.1]; clipnorm 0.6 leaves it (norm 0.5099 < 0.6), so A = [0.25, 0.01]
    # with A0 0.
    hp = {"learning_rate": 1.0, "initial_accumulator_value": 0.0, "clipvalue": 0.5, "clipnorm": 0.6}
    steps = run("adagrad/tf-keras-v2", hp, "float64", [[1.0, 1.0]], [[[3.0, 0.1]]])
    assert [float(x) for x in steps[0].state["accumulator"][0]] == [0.25, pytest.approx(0.01, rel=1e-15)]


def test_tf_rounds_learning_rate_to_float32_for_float64_variables():
    # lr 0.1 becomes f32(0.1) = 0.100000001490116119384765625; A0 0.1 stays exact: A = 1.1,
    # theta = 1 - f32(0.1) * 1 / (sqrt(1.1) + 1e-7).
    thetas, _ = adagrad("adagrad/tf-keras-v2", {"learning_rate": 0.1}, [1.0], [[1.0]])
    assert thetas[0][0] == pytest.approx(1 - 0.100000001490116119384765625 / (math.sqrt(1.1) + 1e-7), rel=1e-15)


def test_tf_keras_v2_rewrites_zero_epsilon():
    # OptimizerV2 evaluates `epsilon or 1e-7`: epsilon=0 behaves as 1e-7, A0 0: theta = 1 - 0.5*3/(3 + 1e-7).
    thetas, _ = adagrad(
        "adagrad/tf-keras-v2", {"learning_rate": 0.5, "epsilon": 0.0, "initial_accumulator_value": 0.0}, [1.0], [[3.0]]
    )
    assert thetas[0][0] == pytest.approx(1 - 1.5 / (3 + 1e-7), rel=1e-15)
    assert thetas[0][0] != 0.5


def test_sparse_duplicates_summed_or_sequential():
    # One sparse gradient that names row 1 twice: indices [1, 1], g = [1, 2], A0 = 0.1, eps = 0, lr = 1, theta = 2.
    # Summed (torch): g_row = 3, A = 0.1 + 9 = 9.1, theta = 2 - 3/sqrt(9.1); untouched rows keep A0 and theta.
    # Sequential (raw sparse op, eps 0): A = 1.1 then 5.1, theta = 2 - 1/sqrt(1.1) - 2/sqrt(5.1).
    rows = SparseGrad((1, 1), np.array([1.0, 2.0]))
    summed = run(
        "adagrad/torch", {"lr": 1.0, "initial_accumulator_value": 0.1, "eps": 0.0}, "float64", [[2.0] * 3], [[rows]]
    )
    assert summed[0].state["sum"][0].tolist() == [0.1, 9.1, 0.1]
    assert summed[0].params[0].tolist() == [2.0, pytest.approx(2 - 3 / math.sqrt(9.1), rel=1e-15), 2.0]
    sequential = run(
        "adagrad/tf-raw-v2",
        {"lr": 1.0, "initial_accumulator_value": 0.1, "epsilon": 0.0},
        "float64",
        [[2.0] * 3],
        [[rows]],
    )
    assert sequential[0].state["accum"][0].tolist() == [0.1, pytest.approx(5.1, rel=1e-15), 0.1]
    assert sequential[0].params[0][1] == pytest.approx(2 - 1 / math.sqrt(1.1) - 2 / math.sqrt(5.1), rel=1e-15)
    assert sequential[0].count == 1


def test_decay_reads_the_counter_it_starts_from():
    # torch lr_decay 0.01 at step 10**6: lr_t = 0.1 / (1 + 0.01 * 10**6) = 0.1 / 10001; A0 0, eps 0, g 3:
    # theta = 1 - (0.1 / 10001) * 3 / 3.
    steps = run(
        "adagrad/torch", {"lr": 0.1, "lr_decay": 0.01, "eps": 0.0}, "float64", [[1.0]], [[[3.0]]], initial_count=10**6
    )
    assert steps[0].params[0][0] == pytest.approx(1 - 0.1 / 10001, rel=1e-15)
    assert steps[0].count == 10**6 + 1


def test_adagrad_momentum_on_the_preconditioned_gradient():
    # jax-example, step size 0.5, beta 0.5 (1 - beta = 0.5 exactly), A0 0, g = 3, 4, 0:
    # t1: A = 9, u = 3/3 = 1, m = 0.5*1 = 0.5, theta = 1 - 0.5*0.5 = 0.75
    # t2: A = 25, u = 4/5 = 0.8, m = 0.5*0.8 + 0.5*0.5 = 0.65, theta = 0.75 - 0.325 = 0.425
    # t3: A = 25, u = 0, m = 0.325, theta = 0.425 - 0.1625 = 0.2625 (a zero gradient still moves theta)
    thetas, steps = adagrad("adagrad/jax-example", {"step_size": 0.5, "momentum": 0.5}, [1.0], [[3.0], [4.0], [0.0]])
    assert thetas == [[0.75], [pytest.approx(0.425, rel=1e-15)], [pytest.approx(0.2625, rel=1e-15)]]
    assert [float(s.state["m"][0][0]) for s in steps] == [0.5, pytest.approx(0.65, rel=1e-15), 0.325]
    assert [float(s.state["g_sq"][0][0]) for s in steps] == [9.0, 25.0, 25.0]
    # A = 0 is masked, not 0/0: nothing moves and m stays 0.
    thetas, steps = adagrad("adagrad/jax-example", {"step_size": 0.5}, [1.0], [[0.0]])
    assert thetas == [[1.0]] and float(steps[0].state["m"][0][0]) == 0.0


def test_mlx_rounds_the_learning_rate_to_float32_and_refuses_zero_eps():
    # lr 0.1 becomes f32(0.1) = 0.100000001490116119384765625 even for float64; A0 0, eps 1e-8 exact in float64:
    # theta = 1 - f32(0.1) * 3 / (3 + 1e-8).
    thetas, _ = adagrad("adagrad/mlx", {"learning_rate": 0.1}, [1.0], [[3.0]])
    assert thetas[0][0] == pytest.approx(1 - 0.100000001490116119384765625 * 3 / (3 + 1e-8), rel=1e-15)
    with pytest.raises(ValueError, match="eps > 0"):
        adagrad("adagrad/mlx", {"learning_rate": 0.1, "eps": 0.0}, [1.0], [[3.0]])


def test_momentum_complement_is_rounded_from_binary64():
    # float32, beta 0.9: Python computes 1 - 0.9 = 0.09999999999999998 in binary64, which rounds to f32(0.1); the
    # difference of the rounded beta, 1 - f32(0.9) = 0.10000002384185791, would be another float32 number.
    steps = run("adagrad/jax-example", {"step_size": 1.0, "momentum": 0.9}, "float32", [[1.0]], [[[1.0]]])
    assert steps[0].state["m"][0][0] == np.float32(0.1) != np.float32(1 - float(np.float32(0.9)))
