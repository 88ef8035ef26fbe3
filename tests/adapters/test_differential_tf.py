"""Differential tests: TensorFlow's Adagrads, stepped through their adapters, against the mpmath oracle.

Subjects: tf_keras OptimizerV2 (`legacy.Adagrad`), tf_keras's new `Adagrad`, and the raw ops ResourceApplyAdagradV2
(also with update_slots=False) and ResourceApplyAdagrad, on the generator's cases (decay, weight decay, clipping and
the other edges come from its draw). Every step compares the parameters and every state slot by the error model,
and the counter exactly; the machinery is in support/differential.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from support.differential import (
    Case,
    Hparams,
    Subject,
    assert_refuses,
    bit_exact_test,
    check_case,
    deviation,
    refusal,
    single_step,
    trajectory_test,
)

from conformance.adapter import Adapter
from conformance.adapters import tf_keras, tf_raw
from conformance.adapters.tf_keras import TFKerasAdapter
from conformance.adapters.tf_raw import TFRawAdapter

CASES = 4  # per (subject, dtype); TF's per-step eager overhead, not the oracle, dominates the run time


def _tf_keras(dialect: str) -> Callable[[], Adapter]:
    def make() -> Adapter:
        pytest.importorskip("tf_keras")
        return TFKerasAdapter(dialect=dialect)

    return make


LEGACY, NEW = "adagrad/tf-keras-v2", "adagrad/keras3"
RAW_V2, RAW_V1 = "adagrad/tf-raw-v2", "adagrad/tf1"


def _raw(dialect: str) -> Callable[[], Adapter]:
    return lambda: TFRawAdapter(dialect=dialect)


# Each op rounds once (ApplyAdagradV2: rnd(A + rnd(g*g)), theta - rnd(rnd(g*lr) / rnd(rnd(sqrt A) + eps)), no FMA;
# the Keras-style optimizers likewise, op by op; ApplyAdagrad multiplies by f32's approximate vectorised rsqrt),
# and clipnorm's norm is a reduction in TF's own order: the error model holds. With update_slots=False the
# accumulator is read, never written, so it stays bit-identical.
SUBJECTS = (
    Subject("tf_keras.legacy", _tf_keras(LEGACY), LEGACY),
    Subject("tf_keras.new", _tf_keras(NEW), NEW, float32_drawn=frozenset({"weight_decay"})),
    Subject("tf_raw.ApplyAdagradV2", _raw(RAW_V2), RAW_V2),
    Subject(
        "tf_raw.ApplyAdagradV2-frozen",
        _raw(RAW_V2),
        RAW_V2,
        fixed={"update_slots": False},
        exact=frozenset({"accumulator"}),
    ),
    Subject("tf_raw.ApplyAdagrad", _raw(RAW_V1), RAW_V1),
)

test_trajectory = trajectory_test(SUBJECTS, CASES)
# ApplyAdagrad multiplies by rsqrt(A) where the formula (and so the NumPy evaluator) divides by sqrt(A).
test_bit_exact_with_numpy_evaluator = bit_exact_test([s for s in SUBJECTS if s.dialect != RAW_V1], CASES)


def test_legacy_epsilon_zero_becomes_1e7() -> None:
    """OptimizerV2 evaluates `epsilon or 1e-7`, and the dialect models it (a known quirk, not a deviation).

    A0 = 0 and g = 0 in element 0 make a true epsilon of 0 give 0/0 = NaN, which no bound admits.
    """
    pytest.importorskip("tf_keras")
    hparams = {"learning_rate": 0.1, "epsilon": 0.0, "initial_accumulator_value": 0.0}
    params, grads = (np.array([1.0, -2.0]),), ((np.array([0.0, 0.5]),), (np.array([0.25, 0.0]),))
    case = Case("legacy-epsilon-0", LEGACY, hparams, params, grads)
    check_case(TFKerasAdapter(dialect=LEGACY), case, "float32", case.name)


@deviation(
    "tf_keras's new optimizer casts the Python-float weight_decay through "
    "float32 for float64 variables (tf.cast(0.1, float64) == 0.10000000149011612); adagrad/keras3 "
    "keeps it exact, as Keras 3 on JAX does (tf.cast makes a float32 tensor of a Python float first)",
)
def test_new_optimizer_float64_weight_decay_is_exact() -> None:
    # One step with g = 0 isolates the decay: theta = 1 - 1 * 0.1 * 0.5 = 0.95; TF gives 0.9499999992549419.
    pytest.importorskip("tf_keras")
    case = single_step(NEW, {"learning_rate": 0.5, "initial_accumulator_value": 0.5, "weight_decay": 0.1}, 1.0, 0.0)
    check_case(TFKerasAdapter(dialect=NEW), case, "float64", case.name)


def _refusal(subject: str, dialect: str, hparams: Hparams, accepted_because: str | None = None) -> Any:
    return refusal(
        _tf_keras(dialect), dialect, hparams, id=f"{subject}-{'-'.join(hparams)}", accepted_because=accepted_because
    )


@pytest.mark.parametrize(
    ("make", "dialect", "hparams"),
    [
        _refusal("legacy", LEGACY, {"initial_accumulator_value": -1.0}),
        _refusal("legacy", LEGACY, {"clipnorm": 1.0, "global_clipnorm": 1.0}),
        _refusal("legacy", LEGACY, {"learning_rate": -0.1}, "OptimizerV2 accepts a negative lr and ascends"),
        _refusal("legacy", LEGACY, {"epsilon": -1e-3}, "OptimizerV2 accepts a negative epsilon"),
        _refusal("new", NEW, {"decay": 0.1}),
        _refusal("new", NEW, {"clipnorm": 1.0, "global_clipnorm": 1.0}),
        _refusal(
            "new",
            NEW,
            {"lr": 0.5},
            "the new tf_keras optimizer pops lr=, logs a warning and trains at the "
            "default learning_rate 0.001 (tensorflow#58831, keras#17338)",
        ),
        _refusal(
            "new",
            NEW,
            {"clipnorm": 1.0, "clipvalue": 0.5},
            "the new tf_keras optimizer silently drops "
            "clipvalue when clipnorm is set; adagrad/keras3 (like Keras 3) allows one clip only",
        ),
        _refusal(
            "new",
            NEW,
            {"initial_accumulator_value": -1.0},
            "the new tf_keras optimizer accepts a negative "
            "initial accumulator (its docstring says it must be non-negative)",
        ),
        _refusal("new", NEW, {"learning_rate": -0.1}, "the new tf_keras optimizer accepts a negative lr"),
    ],
)
def test_refuses_what_the_dialect_refuses(make: Callable[[], Adapter], dialect: str, hparams: Hparams) -> None:
    assert_refuses(make(), dialect, hparams)


def test_subjects() -> None:
    adapters = tf_keras.subjects() + tf_raw.subjects()
    assert [(a.name, a.capabilities.dialects) for a in adapters] == [
        ("tf_keras.optimizers.legacy.Adagrad", (LEGACY,)),
        ("tf_keras.optimizers.Adagrad", (NEW,)),
        ("tf_keras.optimizers.legacy.Adagrad[as keras2]", ("adagrad/keras2",)),
        ("tf.raw_ops.ResourceApplyAdagradV2", (RAW_V2,)),
        ("tf.raw_ops.ResourceApplyAdagrad", (RAW_V1,)),
    ]
    with pytest.raises(ValueError, match="pass optimizer_class"):
        TFKerasAdapter(dialect="adagrad/torch")


def test_importing_the_adapters_imports_no_framework() -> None:
    code = (
        "import sys, conformance.adapters.tf_keras, conformance.adapters.keras, conformance.adapters.tf_raw\n"
        "loaded = {'tensorflow', 'keras', 'tf_keras'} & set(sys.modules)\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
