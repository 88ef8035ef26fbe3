"""Differential tests: TensorFlow's Adagrads, stepped through their adapters, against the mpmath oracle.

Subjects: tf_keras OptimizerV2 (`legacy.Adagrad`, with and without `decay`), tf_keras's new `Adagrad`, and the
raw ops ResourceApplyAdagradV2 (also with update_slots=False) and ResourceApplyAdagrad. Every step compares the
parameters, every state slot and the counter.

How errors are measured (the machinery is in support/differential.py):
- Accumulators are sums of squares, so they never cancel: ulp distance is a fair measure on every element.
- Parameters cancel where theta - step passes near zero; there a few absolute ulps of the step become thousands
  of ulps of theta. So parameters are held to `scaled_error` k = |got - exact| / (u * S) everywhere, S being the
  oracle's per-element error scale, and to an ulp bound only where S <= CANCELLATION * |exact|.

test_differential_keras.py draws its cases with this file's SEED, CASES and keras3_hparams.
Calibrate with `python tests/support/differential.py tests/adapters/test_differential_tf.py [cases]`: it prints the
worst errors over that many cases.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from support.differential import (
    Case,
    Hparams,
    Sampler,
    Subject,
    adagrad_bound,
    assert_bit_exact,
    assert_refuses,
    check,
    deviation,
    log_uniform,
    refusal,
    subject_params,
    subject_sweep,
    without_norm_clipping,
)

from conformance.adapter import Adapter
from conformance.adapters import tf_keras, tf_raw
from conformance.adapters.tf_keras import TFKerasAdapter
from conformance.adapters.tf_raw import TFRawAdapter

SEED = 20240917
CASES = 4  # per (subject, dtype); TF's per-step eager overhead, not the oracle, dominates the run time


# ---------------------------------------------------------------- hyperparameter draws


def _adagrad_core(rng: np.random.Generator, *, positive_accumulator: bool = False) -> tuple[float, float, float]:
    """lr, initial accumulator, epsilon; a zero accumulator one time in four where the dialect allows it."""
    lr = log_uniform(rng, 1e-3, 0.5)
    a0 = log_uniform(rng, 1e-3, 1.0)
    if not positive_accumulator and rng.random() < 0.25:
        a0 = 0.0
    return lr, a0, log_uniform(rng, 1e-8, 1e-3)


def _clips(kinds: Sequence[str], rng: np.random.Generator, scale: float, shapes: Sequence[tuple[int, ...]]) -> Hparams:
    """Thresholds near the gradients' own size, so that some steps clip and some do not."""
    sizes = [int(np.prod(s)) for s in shapes]
    typical = {
        "clipvalue": scale,
        "clipnorm": scale * np.sqrt(min(sizes)),
        "global_clipnorm": scale * np.sqrt(sum(sizes)),
    }
    return {kind: float(typical[kind] * rng.uniform(0.5, 1.5)) for kind in kinds}


# One clip set per case index. tf.keras v2 applies clipvalue, then one of the norms; keras3 allows one clip only.
V2_CLIPS = ((), ("clipvalue",), ("clipnorm",), ("clipvalue", "global_clipnorm"))
KERAS3_CLIPS = ((), ("clipvalue",), ("clipnorm",), ("global_clipnorm",))


def tf_keras_v2_hparams(*, decay: bool) -> Sampler:
    def sample(rng: np.random.Generator, case: int, scale: float, shapes: Sequence[tuple[int, ...]]) -> Hparams:
        lr, a0, eps = _adagrad_core(rng)
        hparams = {"learning_rate": lr, "initial_accumulator_value": a0, "epsilon": eps}
        if decay:
            hparams["decay"] = log_uniform(rng, 1e-3, 0.3)
        return hparams | _clips(V2_CLIPS[case % len(V2_CLIPS)], rng, scale, shapes)

    return sample


def keras3_hparams(rng: np.random.Generator, case: int, scale: float, shapes: Sequence[tuple[int, ...]]) -> Hparams:
    lr, a0, eps = _adagrad_core(rng)
    hparams = {"learning_rate": lr, "initial_accumulator_value": a0, "epsilon": eps}
    if case % 2 == 0:  # with and without decoupled weight decay
        hparams["weight_decay"] = log_uniform(rng, 1e-4, 0.1)
    return hparams | _clips(KERAS3_CLIPS[case % len(KERAS3_CLIPS)], rng, scale, shapes)


def raw_v2_hparams(*, update_slots: bool) -> Sampler:
    def sample(rng: np.random.Generator, case: int, scale: float, shapes: Sequence[tuple[int, ...]]) -> Hparams:
        lr, a0, eps = _adagrad_core(rng)
        return {"lr": lr, "initial_accumulator_value": a0, "epsilon": eps, "update_slots": update_slots}

    return sample


def tf1_hparams(rng: np.random.Generator, case: int, scale: float, shapes: Sequence[tuple[int, ...]]) -> Hparams:
    lr, a0, _ = _adagrad_core(rng, positive_accumulator=True)  # no epsilon: A0 = 0 would divide 0 by 0
    return {"learning_rate": lr, "initial_accumulator_value": a0}


# ---------------------------------------------------------------- the subjects and their bounds


def _tf_keras(dialect: str) -> Callable[[], Adapter]:
    def make() -> Adapter:
        pytest.importorskip("tf_keras")
        return TFKerasAdapter(dialect=dialect)

    return make


LEGACY, NEW = "adagrad/tf-keras-v2", "adagrad/keras3"
RAW_V2, RAW_V1 = "adagrad/tf-raw-v2", "adagrad/tf1"


def _raw(dialect: str) -> Callable[[], Adapter]:
    return lambda: TFRawAdapter(dialect=dialect)


SUBJECTS_TF = (
    Subject("tf_keras.legacy", _tf_keras(LEGACY), LEGACY, tf_keras_v2_hparams(decay=False)),
    Subject("tf_keras.legacy+decay", _tf_keras(LEGACY), LEGACY, tf_keras_v2_hparams(decay=True)),
    Subject("tf_keras.new", _tf_keras(NEW), NEW, keras3_hparams, float32_drawn=frozenset({"weight_decay"})),
    Subject("tf_raw.ApplyAdagradV2", _raw(RAW_V2), RAW_V2, raw_v2_hparams(update_slots=True)),
    Subject("tf_raw.ApplyAdagradV2-frozen", _raw(RAW_V2), RAW_V2, raw_v2_hparams(update_slots=False)),
    Subject("tf_raw.ApplyAdagrad", _raw(RAW_V1), RAW_V1, tf1_hparams),
)

# Why the subjects differ from the once-rounded oracle at all:
V2_OP = "ApplyAdagradV2: rnd(A + rnd(g*g)), theta - rnd(rnd(g*lr) / rnd(rnd(sqrt A) + eps)), no FMA"
CLIPPED = V2_OP + "; clipnorm's norm (a reduction) adds a few ulp to g, hence to A"
FROZEN = V2_OP + "; update_slots=False: A is read, never written, so it stays bit-identical"
V1_OP = "ApplyAdagrad: theta - rnd(rnd(g*lr) * rsqrt(A)); f32's vectorised Eigen rsqrt is off by <= 2 ulp"
NEW_OP = "EPS-IN as separate ops (lr*g, A+eps, sqrt, /, -), decay as theta*wd*lr; clipnorm adds a few ulp to g"

# The allowed worst error per (subject, dtype): params ulp (no cancellation) / params k / slot ulp.
# Comments give the measured worst over this file's 4 cases | over a 160-case sweep (same seeds, cases 0-159).
# Each bound is the sweep's worst plus 1 ulp; k is 1.25 throughout (worst seen: 0.98).
BOUNDS = {
    ("tf_keras.legacy", "float32"): adagrad_bound(LEGACY, 5, 1.25, 6, CLIPPED),  # 3/.55/3 | 4/.93/5
    ("tf_keras.legacy", "float64"): adagrad_bound(LEGACY, 4, 1.25, 6, CLIPPED),  # 2/.56/4 | 3/.87/5
    ("tf_keras.legacy+decay", "float32"): adagrad_bound(LEGACY, 5, 1.25, 7, CLIPPED),  # 2/.23/3 | 4/.82/6
    ("tf_keras.legacy+decay", "float64"): adagrad_bound(LEGACY, 4, 1.25, 7, CLIPPED),  # 2/.31/3 | 3/.87/6
    ("tf_keras.new", "float32"): adagrad_bound(NEW, 5, 1.25, 7, NEW_OP),  # 2/.35/3 | 4/.90/6
    ("tf_keras.new", "float64"): adagrad_bound(NEW, 5, 1.25, 6, NEW_OP),  # 3/.57/3 | 4/.91/5
    ("tf_raw.ApplyAdagradV2", "float32"): adagrad_bound(RAW_V2, 5, 1.25, 4, V2_OP),  # 4/.56/2 | 4/.89/3
    ("tf_raw.ApplyAdagradV2", "float64"): adagrad_bound(RAW_V2, 5, 1.25, 4, V2_OP),  # 4/.56/2 | 4/.92/3
    ("tf_raw.ApplyAdagradV2-frozen", "float32"): adagrad_bound(RAW_V2, 5, 1.25, 0, FROZEN),  # 3/.88/0 | 4/.92/0
    ("tf_raw.ApplyAdagradV2-frozen", "float64"): adagrad_bound(RAW_V2, 6, 1.25, 0, FROZEN),  # 3/.62/0 | 5/.98/0
    ("tf_raw.ApplyAdagrad", "float32"): adagrad_bound(RAW_V1, 5, 1.25, 4, V1_OP),  # 4/.64/2 | 4/.92/3
    ("tf_raw.ApplyAdagrad", "float64"): adagrad_bound(RAW_V1, 5, 1.25, 4, V1_OP),  # 3/.77/2 | 4/.93/3
}
# For `python tests/support/differential.py tests/adapters/test_differential_tf.py`:
sweep_cases = subject_sweep(SUBJECTS_TF, SEED, CASES)


@pytest.mark.parametrize(("subject", "dtype", "case"), subject_params(SUBJECTS_TF, SEED, CASES))
def test_trajectory(subject: Subject, dtype: str, case: Case) -> None:
    check(subject.make(), [case], dtype, BOUNDS[subject.id, dtype], f"{subject.id} {dtype}")


# ApplyAdagrad multiplies by rsqrt(A) where the formula (and so the NumPy evaluator) divides by sqrt(A).
BIT_EXACT_TF = tuple(s for s in SUBJECTS_TF if s.dialect != RAW_V1)


@pytest.mark.parametrize(("subject", "dtype", "case"), subject_params(BIT_EXACT_TF, SEED, CASES, without_norm_clipping))
def test_bit_exact_with_numpy_evaluator(subject: Subject, dtype: str, case: Case) -> None:
    assert_bit_exact(subject.make(), case, dtype)


def test_legacy_epsilon_zero_becomes_1e7() -> None:
    """OptimizerV2 evaluates `epsilon or 1e-7`, and the dialect models it (a known quirk, not a deviation).

    A0 = 0 and g = 0 in element 0 make a true epsilon of 0 give 0/0 = NaN, which no bound admits.
    """
    pytest.importorskip("tf_keras")
    hparams = {"learning_rate": 0.1, "epsilon": 0.0, "initial_accumulator_value": 0.0}
    params, grads = (np.array([1.0, -2.0]),), ((np.array([0.0, 0.5]),), (np.array([0.25, 0.0]),))
    case = Case("legacy-epsilon-0", LEGACY, hparams, params, grads)
    check(TFKerasAdapter(dialect=LEGACY), [case], "float32", BOUNDS["tf_keras.legacy", "float32"], case.name)


@deviation(
    "tf_keras's new optimizer casts the Python-float weight_decay through "
    "float32 for float64 variables (tf.cast(0.1, float64) == 0.10000000149011612); adagrad/keras3 "
    "keeps it exact, as Keras 3 on JAX does (tf.cast makes a float32 tensor of a Python float first)",
)
def test_new_optimizer_float64_weight_decay_is_exact() -> None:
    # One step with g = 0 isolates the decay: theta = 1 - 1 * 0.1 * 0.5 = 0.95; TF gives 0.9499999992549419.
    pytest.importorskip("tf_keras")
    hparams = {"learning_rate": 0.5, "initial_accumulator_value": 0.5, "weight_decay": 0.1}
    case = Case("new-weight_decay", NEW, hparams, (np.array([1.0]),), ((np.array([0.0]),),))
    check(TFKerasAdapter(dialect=NEW), [case], "float64", BOUNDS["tf_keras.new", "float64"], case.name)


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
