"""Bring your own optimizer: a user's class, written against its framework's API, plugs in with one line.

Each user class here is real framework code (no mocks), run through the real runner with `--impl=my_file.py`:
- correct, it passes (exit 0);
- with a one-line defect, it fails with a check's diagnosis (a `CheckFailure` naming the first divergence), not
  with an adapter error.

The runs are restricted to float32 and a few cases to stay fast.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pytest

pytest_plugins = ["pytester"]

QUIET = ["-p", "no:cacheprovider", "-q", "-rs"]

# The defect that the failing runs must show instead: an adapter error, or the framework's own traceback.
NOT_A_VERDICT = ["*LookupError*", "*NotImplementedError*", "*Traceback*", "*conformance/adapters/*"]


def one_liner(pytester: pytest.Pytester, name: str, source: str, *args: str) -> pytest.RunResult:
    module = pytester.makepyfile(**{name: textwrap.dedent(source)})
    return pytester.runpytest_inprocess(f"--impl={module}", *QUIET, *args)


def assert_passes(result: pytest.RunResult) -> dict[str, int]:
    assert result.ret == 0, result.stdout.str()[-3000:]
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] > 0 and "failed" not in outcomes and "error" not in outcomes
    return outcomes


def assert_fails_with_a_diagnosis(result: pytest.RunResult, diagnosis: str) -> None:
    assert result.ret == 1, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines([f"*CheckFailure: *{diagnosis}*"])
    for line in NOT_A_VERDICT:
        result.stdout.no_fnmatch_line(line)


def assert_misplaced_eps_fails(pytester: pytest.Pytester, name: str, source: str, tc_id: str) -> None:
    """A class with ε on the wrong side of the square root fails case `tc_id`'s float32 trajectory at once."""
    result = one_liner(pytester, name, source, "-k", f"float32 and trajectory and {tc_id}")
    assert_fails_with_a_diagnosis(result, "params[[]0[]] at step 1")


# ---------------------------------------------------------------------------------------------------------------
# torch: a dense-only Adagrad


TORCH_ADAGRAD = """
    import torch
    from conformance.adapters import TorchAdapter

    class MyDenseAdagrad(torch.optim.Adagrad):
        '''torch's Adagrad rule, stepped by its own dense code: it refuses row-sparse gradients.'''

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.is_sparse:
                        raise RuntimeError("MyDenseAdagrad takes dense gradients only")
                    state = self.state[p]
                    state["step"] += 1
                    grad = -p.grad if group["maximize"] else p.grad
                    if group["weight_decay"] != 0:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    clr = group["lr"] / (1 + (state["step"].item() - 1) * group["lr_decay"])
                    state["sum"].addcmul_(grad, grad, value=1)
                    p.addcdiv_(grad, DENOMINATOR, value=-clr)

    IMPLEMENTATIONS = [TorchAdapter(MyDenseAdagrad, dialect="adagrad/torch")]
"""
TORCH_RIGHT = 'state["sum"].sqrt().add_(group["eps"])'
TORCH_EPS_INSIDE = 'state["sum"].add(group["eps"]).sqrt()'  # the defect: ε inside the square root


def test_a_dense_only_torch_class_passes_and_skips_sparse_cases_saying_why(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    source = TORCH_ADAGRAD.replace("DENOMINATOR", TORCH_RIGHT)
    result = one_liner(pytester, "my_torch_adagrad", source, "-k", "float32")
    outcomes = assert_passes(result)
    assert outcomes["skipped"] >= 4  # the SPARSE_DUPLICATES case, in each check that runs it
    result.stdout.fnmatch_lines(
        [
            "*MyDenseAdagrad*adagrad/torch*float32*",
            "*capability 'sparse' not declared*; pass sparse=True to TorchAdapter if the class takes row-sparse*",
        ]
    )
    result.stdout.no_fnmatch_line("*takes dense gradients only*")


def test_a_torch_class_with_eps_inside_the_sqrt_fails_the_trajectory(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    source = TORCH_ADAGRAD.replace("DENOMINATOR", TORCH_EPS_INSIDE)
    assert_misplaced_eps_fails(pytester, "my_torch_defect", source, "tc0044")


TORCH_IGNORES_A0 = """
    import torch
    from conformance.adapters import TorchAdapter

    class IgnoresInitialAccumulator(torch.optim.Adagrad):
        '''torch's Adagrad, except that initial_accumulator_value is taken and dropped: the sum starts at 0.'''

        def __init__(self, params, initial_accumulator_value=0.0, **kwargs):
            super().__init__(params, initial_accumulator_value=0.0, **kwargs)

    IMPLEMENTATIONS = [TorchAdapter(IgnoresInitialAccumulator, dialect="adagrad/torch")]
"""


def test_a_torch_class_that_ignores_the_initial_accumulator_fails_the_release_gate(pytester: pytest.Pytester) -> None:
    """The default A0 of adagrad/torch is 0, so only the INITIAL_ACCUMULATOR case (tc0088 in float32) tells."""
    pytest.importorskip("torch")
    result = one_liner(pytester, "my_torch_a0", TORCH_IGNORES_A0, "--optconf-level=1", "-k", "float32 and trajectory")
    assert_fails_with_a_diagnosis(result, "float32-tc0088: ")
    assert result.parseoutcomes()["failed"] == 1


# ---------------------------------------------------------------------------------------------------------------
# Keras 3: slots made with add_variable

# EPS_DECIDES, MULTI_TENSOR (a zero-size tensor among them), SPARSE_DUPLICATES, RANDOM, RANDOM + CHECKPOINT.
KERAS_CASES = "float32 and (tc0045 or tc0055 or tc0054 or tc0056 or tc0057)"

KERAS_ADAGRAD = """
    import keras
    from keras import ops
    from conformance.adapters import KerasAdapter

    class MyKerasAdagrad(keras.optimizers.Optimizer):
        '''adagrad/keras3: A <- A + g*g; theta <- theta - lr*g / sqrt(A + eps), A starting at 0.1.'''

        def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name="mine", **kw):
            super().__init__(learning_rate=learning_rate, name=name, **kw)
            self.initial_accumulator_value = initial_accumulator_value
            self.epsilon = epsilon

        def build(self, variables):
            if self.built:
                return
            super().build(variables)
            start = keras.initializers.Constant(self.initial_accumulator_value)
            self.my_accumulators = [
                self.add_variable(shape=v.shape, dtype=v.dtype, initializer=start, name=SLOT_NAME)
                for v in variables
            ]

        def update_step(self, gradient, variable, learning_rate):
            lr = ops.cast(learning_rate, variable.dtype)
            accumulator = self.my_accumulators[self._get_variable_index(variable)]
            self.assign_add(accumulator, ops.square(gradient))
            self.assign_sub(variable, ops.divide(ops.multiply(lr, gradient), DENOMINATOR))

        def get_config(self):
            config = super().get_config()
            config.update(initial_accumulator_value=self.initial_accumulator_value, epsilon=self.epsilon)
            return config

    IMPLEMENTATIONS = [KerasAdapter(MyKerasAdagrad, dialect="adagrad/keras3"KEYWORDS)]
"""
KERAS_RIGHT = "ops.sqrt(ops.add(accumulator, self.epsilon))"
KERAS_EPS_OUTSIDE = "ops.add(ops.sqrt(accumulator), self.epsilon)"  # the defect: ε outside the square root


def keras_source(denominator: str = KERAS_RIGHT, slot_name: str = "accumulator", keywords: str = "") -> str:
    return (
        KERAS_ADAGRAD.replace("DENOMINATOR", denominator)
        .replace("SLOT_NAME", repr(slot_name))
        .replace("KEYWORDS", keywords)
    )


@pytest.fixture
def on_tensorflow() -> None:
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.config.backend() != "tensorflow":
        pytest.skip("the Keras user classes are run on the TensorFlow backend")


def test_a_keras_class_with_add_variable_slots_passes(pytester: pytest.Pytester, on_tensorflow: None) -> None:
    result = one_liner(pytester, "my_keras_adagrad", keras_source(), "-k", KERAS_CASES)
    outcomes = assert_passes(result)
    assert outcomes["skipped"] >= 1  # the sparse case: a user's class claims dense gradients only
    result.stdout.fnmatch_lines(["*MyKerasAdagrad*adagrad/keras3*float32*ok*"])


def test_a_keras_class_with_eps_outside_the_sqrt_fails_the_trajectory(
    pytester: pytest.Pytester, on_tensorflow: None
) -> None:
    source = keras_source(KERAS_EPS_OUTSIDE)
    assert_misplaced_eps_fails(pytester, "my_keras_defect", source, "tc0045")


def test_keras_slots_elsewhere_are_named_with_one_keyword(pytester: pytest.Pytester, on_tensorflow: None) -> None:
    """Slots under another name: one line of error saying what exists and what to pass; then `slots=` works."""
    renamed = keras_source(slot_name="acc")
    result = one_liner(pytester, "my_keras_renamed", renamed, "-k", "float32 and trajectory and tc0056")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "E *LookupError: MyKerasAdagrad keeps no slot 'accumulator' for parameter 0 (shape [[]*[]]) where "
            "KerasAdapter looks: *its variables are [[]'iteration', 'learning_rate', 'acc'[]]. "
            "Pass slots={'accumulator': NAME} to KerasAdapter, *"
        ]
    )
    keyword = keras_source(slot_name="acc", keywords=', slots={"accumulator": "my_accumulators"}')
    assert_passes(one_liner(pytester, "my_keras_keyword", keyword, "-k", KERAS_CASES))


def test_tf_keras_classes_find_add_variable_slots_and_take_a_callable(on_tensorflow: None) -> None:
    """tf_keras, both APIs: the new optimizer's `add_variable` slots are found by name, order and shape; a legacy
    (OptimizerV2) class keeping its accumulators in a list is read through a `slots=` callable."""
    pytest.importorskip("tf_keras")
    import tensorflow as tf
    import tf_keras

    from conformance.adapters.tf_keras import TFKerasAdapter

    class NewStyle(tf_keras.optimizers.Adagrad):
        """tf_keras's Adagrad with its accumulators made by `add_variable`, all named alike."""

        def build(self, var_list: Any) -> None:
            tf_keras.optimizers.Optimizer.build(self, var_list)
            if getattr(self, "_built", False):
                return
            self._built = True
            self._accumulators = [self.add_variable(shape=v.shape, dtype=v.dtype, name="accumulator") for v in var_list]
            for v, a in zip(var_list, self._accumulators, strict=True):
                a.assign(tf.fill(v.shape, tf.cast(self.initial_accumulator_value, v.dtype)))

    params = [np.ones((2, 3), np.float32), np.ones((4,), np.float32)]
    grads = [np.full((2, 3), 0.5, np.float32), np.full((4,), 0.25, np.float32)]
    want = TFKerasAdapter(dialect="adagrad/keras3").create("adagrad/keras3", {"learning_rate": 0.1}, params)
    mine = TFKerasAdapter(NewStyle, dialect="adagrad/keras3")
    live = mine.create("adagrad/keras3", {"learning_rate": 0.1}, params)
    for optimizer in (want, live):
        optimizer.step(grads)
    for got, expected in zip(live.state()["accumulator"], want.state()["accumulator"], strict=True):
        np.testing.assert_array_equal(got, expected)

    legacy = TFKerasAdapter(
        tf_keras.optimizers.legacy.Adagrad,
        dialect="adagrad/tf-keras-v2",
        slots={"accumulator": lambda optimizer, variable, index: optimizer.get_slot(variable, "accumulator")},
    )
    live = legacy.create("adagrad/tf-keras-v2", {"learning_rate": 0.1}, params)
    live.step(grads)
    np.testing.assert_allclose(live.state()["accumulator"][0], np.full((2, 3), 0.35, np.float32))
    with pytest.raises(LookupError, match=r"^Adagrad keeps no slot 'nothing' .* Pass slots=\{'accumulator': NAME"):
        TFKerasAdapter(
            tf_keras.optimizers.legacy.Adagrad, dialect="adagrad/tf-keras-v2", slots={"accumulator": "nothing"}
        ).create("adagrad/tf-keras-v2", {"learning_rate": 0.1}, params).state()


# ---------------------------------------------------------------------------------------------------------------
# optax: a transformation with its own NamedTuple state

OPTAX_ADAGRAD = """
    from typing import Any, NamedTuple

    import jax
    import jax.numpy as jnp
    import optax
    from conformance.adapters import OptaxAdapter

    class Slot(NamedTuple):
        sum_sq: Any

    class MyAdagradState(NamedTuple):
        count: Any
        per_param: Any  # one Slot per parameter

    def my_adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7):
        '''optax's adagrad: A <- A + g*g; step -lr*g/sqrt(A + eps), 0 where A = 0.'''

        def init(params):
            return MyAdagradState(
                jnp.zeros([], jnp.int32), [Slot(jnp.full_like(p, initial_accumulator_value)) for p in params]
            )

        def update(grads, state, params=None):
            sums = [g * g + s.sum_sq for g, s in zip(grads, state.per_param)]
            scales = [jnp.where(a > 0, SCALE, 0.0) for a in sums]
            updates = [-learning_rate * (s * g) for s, g in zip(scales, grads)]
            return updates, MyAdagradState(state.count + 1, [Slot(a) for a in sums])

        return optax.GradientTransformation(init, update)

    IMPLEMENTATIONS = [OptaxAdapter(my_adagrad, dialect="adagrad/optax"KEYWORDS)]
"""
OPTAX_RIGHT = "jax.lax.rsqrt(a + eps)"
OPTAX_EPS_OUTSIDE = "1 / (jnp.sqrt(a) + eps)"  # the defect: ε outside the square root
OPTAX_KEYWORD = ', slots={"sum_of_squares": "sum_sq"}'
# EPS_DECIDES, MULTI_TENSOR with a zero-size tensor, RANDOM, RANDOM + CHECKPOINT.
OPTAX_CASES = "float32 and (tc0035 or tc0040 or tc0041 or tc0042)"


@pytest.fixture
def with_optax() -> None:
    pytest.importorskip("jax")
    pytest.importorskip("optax")


def optax_source(scale: str = OPTAX_RIGHT, keywords: str = OPTAX_KEYWORD) -> str:
    return OPTAX_ADAGRAD.replace("SCALE", scale).replace("KEYWORDS", keywords)


def test_an_optax_transformation_with_its_own_state_passes(pytester: pytest.Pytester, with_optax: None) -> None:
    result = one_liner(pytester, "my_optax_adagrad", optax_source(), "-k", OPTAX_CASES)
    assert_passes(result)
    result.stdout.fnmatch_lines(["*my_adagrad*adagrad/optax*float32*ok*"])


def test_an_optax_transformation_with_eps_outside_fails_the_trajectory(
    pytester: pytest.Pytester, with_optax: None
) -> None:
    source = optax_source(OPTAX_EPS_OUTSIDE)
    assert_misplaced_eps_fails(pytester, "my_optax_defect", source, "tc0035")


def test_an_unmapped_optax_field_is_named_by_the_checks(pytester: pytest.Pytester, with_optax: None) -> None:
    """Without `slots=`, the state is reported as it is: the slot check names the fields the state holds."""
    source = optax_source(keywords="")
    result = one_liner(pytester, "my_optax_unmapped", source, "-k", "float32 and trajectory and tc0041")
    assert_fails_with_a_diagnosis(result, "no state slot 'sum_of_squares' to compare*reports [[]'sum_sq'[]]")


def test_an_optax_field_path_that_matches_nothing_is_one_clear_error(with_optax: None) -> None:
    import jax.numpy as jnp
    import optax

    from conformance.adapters.optax import OptaxAdapter, per_param_fields

    chain = optax.chain(optax.scale_by_rss(), optax.scale_by_rss())
    params = [np.ones((2,), np.float32), np.ones((3,), np.float32)]
    state = chain.init([jnp.asarray(p) for p in params])
    shapes = [(2,), (3,)]
    fields = per_param_fields(state, shapes, {}, {"sum_of_squares": "1.sum_of_squares"})
    assert [(f.name, f.where) for f in fields] == [
        ("sum_of_squares#2", "0.sum_of_squares"),
        ("sum_of_squares", "1.sum_of_squares"),
    ]
    with pytest.raises(LookupError, match=r"2 fields .* its per-parameter fields are \['0.sum_of_squares', '1.sum"):
        per_param_fields(state, shapes, {}, {"sum_of_squares": "sum_of_squares"})
    adapter = OptaxAdapter(lambda learning_rate: chain, dialect="adagrad/optax", slots={"sum_of_squares": "acc"})
    with pytest.raises(LookupError, match=r"^slots=\{'sum_of_squares': 'acc'\}: the state has no per-parameter field"):
        adapter.create("adagrad/optax", {"learning_rate": 0.1}, params)
    with pytest.raises(ValueError, match="adagrad/optax has no slot acc; slots= maps the dialect's slots"):
        OptaxAdapter(lambda learning_rate: chain, dialect="adagrad/optax", slots={"acc": "sum_of_squares"})
