"""The TF-family adapters' shared protocol on real corpus cases, over every subject that has the feature: tf_keras
(legacy and new), the raw ops and Keras 3 (TF backend). set_state, config, save/load, sparse gradients with repeated
rows, replicas under MirroredStrategy, gradients(), versions, the default manifests, and each adapter without the
others' frameworks. What is Keras 3's alone (its model file, a user's Keras 3 class, the backend read from the
environment) is in test_adapter_keras.py; the setup both share is in support/tf_family.py.

Agreement with the corpus is held to k = |got - expected| / (u * S) <= 2 (the tolerance table's k for Adagrad);
everything that compares a framework with itself (config, save/load, replicas summed by the caller) is bit-exact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
pytest.importorskip("tensorflow")
pytest.importorskip("tf_keras")
keras = pytest.importorskip("keras")

from support.adapter_protocol import K, assert_identical, assert_within_k, cases, run, snapshot  # noqa: E402
from support.tf_family import (  # noqa: E402
    AS_KERAS2,
    KERAS,
    KERAS_STYLE,
    LEGACY,
    NEW,
    ON_TF,
    RAW_V1,
    RAW_V2,
    SUBJECTS,
    TF_SUBJECTS,
    checkpoint_case,
    dialect_of,
    python,
    start,
    tf,
)

import reference  # noqa: E402
from conformance import corpus  # noqa: E402
from conformance.adapter import own_manifest  # noqa: E402
from conformance.adapters import keras as keras_adapters  # noqa: E402
from conformance.adapters import tf_keras  # noqa: E402
from conformance.adapters._tf_common import as_numpy  # noqa: E402
from conformance.adapters.keras import KerasAdapter  # noqa: E402
from conformance.adapters.tf_keras import TFKerasAdapter, mirrored_strategy  # noqa: E402
from conformance.adapters.tf_raw import TFRawAdapter  # noqa: E402
from conformance.tolerance import judge  # noqa: E402
from reference import format_of  # noqa: E402
from reference.sparse import SparseGrad, SparseRule  # noqa: E402

# ---------------------------------------------------------------- capabilities, versions, manifests


def test_capabilities_and_manifests() -> None:
    expected = {  # name -> (config, sparse, replicas); every subject has set_state and serialize
        LEGACY: (True, True, True),
        NEW: (True, True, True),
        RAW_V2: (False, True, False),
        RAW_V1: (False, True, False),
        KERAS: (True, True, False),
    }
    for name in TF_SUBJECTS:
        adapter = SUBJECTS[name]
        caps = adapter.capabilities
        assert caps.set_state and caps.serialize and not caps.loss, name
        assert (caps.config, caps.sparse, caps.replicas) == expected[name], name
        assert caps.dtypes == ("float16", "bfloat16", "float32", "float64"), name
        spec = {LEGACY: "tf_keras", NEW: "tf_keras", RAW_V2: "tf_raw", RAW_V1: "tf_raw", KERAS: "keras"}[name]
        assert pathlib.Path(adapter.manifest) == _manifest_dir() / f"{spec}.toml", name
        assert pathlib.Path(adapter.manifest).is_file()
    # Adapters a user builds carry no manifest: the built-in known failures are not theirs.
    for mine in (TFKerasAdapter(dialect="adagrad/tf-keras-v2"), TFRawAdapter(dialect="adagrad/tf1")):
        assert own_manifest(mine) is None
    if ON_TF:
        assert own_manifest(KerasAdapter(dialect="adagrad/keras3")) is None


def test_the_legacy_adagrad_as_keras2_is_the_legacy_class_under_keras2_keywords() -> None:
    """Only keywords change: Keras 2's names, accumulators from 0, and Keras 2's joint-norm clipnorm as
    global_clipnorm. Its config round-trips through its own from_config."""
    adapter = SUBJECTS[AS_KERAS2]
    assert adapter.capabilities.dialects == ("adagrad/keras2",)
    assert pathlib.Path(adapter.manifest) == _manifest_dir() / "tf_keras.toml"
    cls = adapter.optimizer_class()
    optimizer = cls(lr=0.5, epsilon=1e-3, decay=0.1, clipnorm=2.0, clipvalue=1.0)
    assert type(optimizer).__mro__[1] is tf_keras._import_tf_keras().optimizers.legacy.Adagrad
    assert optimizer._initial_accumulator_value == 0.0
    assert (optimizer.global_clipnorm, optimizer.clipnorm, optimizer.clipvalue) == (2.0, None, 1.0)
    config = optimizer.get_config()
    assert {"lr", "epsilon", "decay", "clipnorm", "clipvalue"} <= set(config) and "learning_rate" not in config
    assert cls.from_config(config).get_config() == config


def test_the_legacy_api_surface_keeps_the_state_it_documents() -> None:
    """OptimizerV2's documented surface: `lr` and `learning_rate` are one hyperparameter, `decay` a hyperparameter,
    `get_weights()` is [iterations, accumulators...], `get_slot` reads an accumulator, and `set_weights` into a
    fresh optimizer continues bit-identically."""
    legacy = tf_keras._import_tf_keras().optimizers.legacy.Adagrad
    grads = [np.array([0.5, -2.0]), np.array([1.5, 0.25])]

    def fresh(**kwargs: Any) -> tuple[Any, Any]:
        variable = tf.Variable(np.array([1.0, -1.0]))
        optimizer = legacy(lr=0.3, decay=0.1, initial_accumulator_value=0.2, **kwargs)
        return optimizer, variable

    optimizer, variable = fresh()
    assert float(optimizer.lr) == float(optimizer.learning_rate) == np.float32(0.3)
    assert float(optimizer.decay) == np.float32(0.1)
    optimizer.apply_gradients([(tf.constant(grads[0]), variable)])
    iterations, accumulator = optimizer.get_weights()
    assert iterations == 1 and int(optimizer.iterations) == 1
    assert accumulator.tolist() == [0.2 + 0.25, 0.2 + 4.0]
    assert as_numpy(optimizer.get_slot(variable, "accumulator")).tolist() == accumulator.tolist()

    twin, twin_variable = fresh()
    twin._create_all_weights([twin_variable])
    twin.set_weights(optimizer.get_weights())
    twin_variable.assign(variable)
    for opt, var in ((optimizer, variable), (twin, twin_variable)):
        opt.apply_gradients([(tf.constant(grads[1]), var)])
    assert as_numpy(twin_variable).tolist() == as_numpy(variable).tolist()
    assert [w.tolist() for w in twin.get_weights()] == [w.tolist() for w in optimizer.get_weights()]


def _manifest_dir() -> pathlib.Path:
    return pathlib.Path(keras_adapters.__file__).resolve().parent.parent / "manifests"


def test_versions() -> None:
    tf_keras_version = tf_keras._import_tf_keras().__version__
    assert SUBJECTS[LEGACY].versions() == {"tf_keras": tf_keras_version, "tensorflow": tf.__version__}
    assert SUBJECTS[RAW_V2].versions() == {"tensorflow": tf.__version__}
    if ON_TF:
        assert SUBJECTS[KERAS].versions() == {
            "keras": keras.__version__,
            "backend": "tensorflow",
            "tensorflow": tf.__version__,
        }


# ---------------------------------------------------------------- set_state


@pytest.mark.parametrize("name", TF_SUBJECTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_set_state_at_each_step_then_step_gives_the_next(name: str, dtype: str) -> None:
    """Teacher forcing on the checkpointed random trajectory: one fresh optimizer, set to expected step t before
    each step, lands on expected step t + 1 (for Keras 3 on TF in float64 too: set_state replaces its float32-
    rounded initial accumulator)."""
    case = checkpoint_case(name, dtype)
    count, slots = case.initial_state
    params = case.initial_params
    live = SUBJECTS[name].create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])
    for index, want in enumerate(case.expected):
        live.set_state(params, slots, count)
        live.step(case.grads[index])
        assert_within_k(snapshot(live), want, dtype, f"{name} {case.test_id} step {index + 1}", forced=True)
        params, slots, count = want.params, want.state, want.count


def test_a_counter_that_starts_at_a_million() -> None:
    """tf.keras v2's inverse-time decay reads `iterations`: set_state must put 10**6 there."""
    for case in cases("adagrad/tf-keras-v2", "float64", "DECAY_LARGE_STEP", level=1):
        live = start(LEGACY, case)
        assert live.count() == 10**6 and live.optimizer.get_weights()[0] == 10**6
        for index, (got, want) in enumerate(zip(run(live, case), case.expected, strict=True), start=1):
            assert_within_k(got, want, case.dtype, f"{case.test_id} step {index}")


def test_lr_wins_over_learning_rate_as_the_dialect_says() -> None:
    """tf_keras's legacy Adagrad takes `lr` whenever it is given; the dialect resolves the pair the same way."""
    hparams = {"learning_rate": 0.1, "lr": 1.0}
    live = SUBJECTS[LEGACY].create("adagrad/tf-keras-v2", hparams, [np.array([1.0])])
    live.step([np.array([1.0])])
    (want,) = reference.run("adagrad/tf-keras-v2", hparams, "float64", [[1.0]], [[[1.0]]])
    judged = judge(live.params()[0], want.params[0], want.error_scale["params"][0], format_of("float64"), K)
    assert not judged.outside.any(), f"k = {judged.needed.max():.3g} > {K}"
    assert reference.get("adagrad/tf-keras-v2").hparams(hparams).lr == 1.0


@pytest.mark.parametrize("name", TF_SUBJECTS)
def test_set_state_refuses_what_does_not_fit(name: str) -> None:
    case = checkpoint_case(name)
    live = SUBJECTS[name].create(case.dialect, case.hparams, case.initial_params)
    _, slots = case.initial_state
    count = 0 if reference.get(case.dialect).counter else None
    with pytest.raises(ValueError, match="needs slots"):
        live.set_state(case.initial_params, {}, count)
    with pytest.raises(ValueError, match="shape"):
        live.set_state([np.zeros((7,), np.float32)], slots, count)
    with pytest.raises(ValueError, match="float64 value for a float32"):
        live.set_state([p.astype(np.float64) for p in case.initial_params], slots, count)
    if count is None:
        with pytest.raises(ValueError, match="keeps no counter"):
            live.set_state(case.initial_params, slots, 3)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("name", KERAS_STYLE)
def test_config_round_trip_gives_an_identical_trajectory(name: str) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case(name, "float64")
    original = start(name, case)
    config = original.config()
    assert json.loads(json.dumps(config)) == config  # JSON values: TF's float32 learning_rate became a float
    assert config["learning_rate"] == float(np.float32(case.hparams["learning_rate"]))
    rebuilt = adapter.from_config(case.dialect, config, [p.copy() for p in case.initial_params])
    assert rebuilt.config() == config
    assert_identical(run(rebuilt, case), run(original, case), f"{name} {case.test_id}")


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("name", TF_SUBJECTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_and_load_at_the_checkpoint_continue_bit_identically(name: str, dtype: str, tmp_path: Any) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case(name, dtype)
    assert case.checkpoint is not None
    uninterrupted = run(start(name, case), case)
    before = start(name, case)
    run(before, case, stop=case.checkpoint)
    before.save(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    if name == KERAS:
        assert {"model.keras", "optimizer_variables.npz"} <= files
    else:
        assert "checkpoint.index" in files
    after = adapter.load(case.dialect, case.hparams, before.params(), tmp_path)
    assert after is not before
    assert_identical([snapshot(after)], [snapshot(before)], f"{name} {case.test_id} loaded")
    assert_identical(run(after, case, start=case.checkpoint), uninterrupted[case.checkpoint :], f"{name} resumed")


# ---------------------------------------------------------------- sparse gradients with repeated rows


def _duplicates(dtype: str) -> tuple[np.ndarray, SparseGrad]:
    """Row 1 named twice, with g = 1 and then 2, on theta = 2, A0 = 0.1 (as in test_hand_traces.py)."""
    fmt = format_of(dtype).np_dtype
    return np.full((3, 2), 2.0, fmt), SparseGrad((1, 1), np.array([[1.0, 1.0], [2.0, 2.0]], fmt))


@pytest.mark.parametrize("name", [LEGACY, NEW, RAW_V2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse_duplicates_match_the_corpus(name: str, dtype: str) -> None:
    """tf_keras (both APIs) sums repeated rows, as its dialects say; the V2 op applies them in order, as its does."""
    for case in cases(dialect_of(name), dtype, "SPARSE_DUPLICATES", level=1):
        live = start(name, case)
        for index, want in enumerate(case.expected):
            live.step(case.grads[index])
            assert_within_k(snapshot(live), want, dtype, f"{name} {case.test_id} step {index + 1}")
            held, given = live.gradients()[0], case.grads[index][0]
            assert isinstance(held, SparseGrad) and held.indices == given.indices  # repeats reach the framework
            np.testing.assert_array_equal(held.values, given.values.astype(format_of(dtype).np_dtype))


def test_sparse_duplicates_by_rule() -> None:
    """The three rules side by side on one step: summed (tf_keras), in order (the raw ops), and Keras 3 on TF,
    which adds each g^2 and divides every g by the final sqrt(A + eps) (keras.toml records the deviation)."""
    theta, grad = _duplicates("float64")
    summed_a, summed_theta = 0.1 + 9.0, 2 - 3 / np.sqrt(9.1)
    for name, hparams in ((LEGACY, {"learning_rate": 1.0, "epsilon": 1e-300}), (NEW, {"learning_rate": 1.0})):
        live = SUBJECTS[name].create(dialect_of(name), hparams | {"initial_accumulator_value": 0.1}, [theta])
        live.step([grad])
        np.testing.assert_allclose(live.state()["accumulator"][0][1], summed_a, rtol=1e-15)
        np.testing.assert_allclose(live.params()[0][1], summed_theta, rtol=1e-7)  # new: sqrt(A + 1e-7)
    live = SUBJECTS[RAW_V2].create("adagrad/tf-raw-v2", {"lr": 1.0, "epsilon": 0.0}, [theta])
    live.step([grad])
    np.testing.assert_allclose(live.state()["accum"][0][1], 5.1, rtol=1e-15)
    np.testing.assert_allclose(live.params()[0][1], 2 - 1 / np.sqrt(1.1) - 2 / np.sqrt(5.1), rtol=1e-15)
    if ON_TF:
        live = SUBJECTS[KERAS].create("adagrad/keras3", {"learning_rate": 1.0, "epsilon": 0.0}, [theta])
        live.step([grad])
        a_keras = np.float64(np.float32(0.1)) + 1.0 + 4.0  # Keras 3 on TF: A0 through float32, then each g^2
        np.testing.assert_allclose(live.state()["accumulator"][0][1], a_keras, rtol=1e-15)
        np.testing.assert_allclose(live.params()[0][1], 2 - 3 / np.sqrt(a_keras), rtol=1e-14)
        np.testing.assert_array_equal(live.params()[0][[0, 2]], theta[[0, 2]])  # untouched rows stay


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_tf1_sparse_op_applies_duplicates_in_order(dtype: str) -> None:
    """Evidence for tf_raw.toml: ResourceSparseApplyAdagrad matches adagrad/tf1 with the sequential rule on the
    corpus case it xfails, so the only difference from the dialect is how repeated rows combine."""
    tf1 = reference.get("adagrad/tf1")
    sequential = dataclasses.replace(tf1, knobs=dataclasses.replace(tf1.knobs, sparse=SparseRule.SEQUENTIAL))
    for case in cases("adagrad/tf1", dtype, "SPARSE_DUPLICATES", level=1):
        steps = reference.run(sequential, case.hparams, dtype, case.initial_params, case.grads)
        got = run(start(RAW_V1, case), case)
        for index, (mine, want) in enumerate(zip(got, steps, strict=True), start=1):
            as_expected = corpus.ExpectedStep(
                params=want.params,
                state=want.state,
                count=None,
                scales=want.error_scale,
                step_scales={},
                branches=None,
            )
            assert_within_k(mine, as_expected, dtype, f"{case.test_id} step {index} (sequential)")
        assert any(  # and the corpus (summed) disagrees, so the xfail is about this rule alone
            a.tobytes() != b.tobytes() for a, b in zip(got[0][0], case.expected[0].params, strict=True)
        )


# ---------------------------------------------------------------- replicas (MirroredStrategy, two logical CPUs)


def _split(row: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """g = a + b exactly with a != b: a = fl(0.7 g), so g - a is exact (Sterbenz) and a + b rounds back to g."""
    first = [(g * g.dtype.type(0.7)).astype(g.dtype) for g in row]
    second = [g - a for g, a in zip(row, first, strict=True)]
    for g, a, b in zip(row, first, second, strict=True):
        assert (a + b).tobytes() == g.tobytes() and a.tobytes() != b.tobytes()
    return first, second


@pytest.mark.parametrize("name", [LEGACY, NEW])
def test_replicas_are_summed_by_the_optimizer(name: str) -> None:
    case = checkpoint_case(name, "float64")
    live = start(name, case)
    plain = run(start(name, case), case)
    for index, want in enumerate(case.expected):
        live.step_replicated(list(_split(case.grads[index])))
        assert_within_k(snapshot(live), want, case.dtype, f"{name} {case.test_id} step {index + 1}")
        for variable in live.variables:
            values = live.local_values(variable)
            assert len(values) == 2 and values[0].tobytes() == values[1].tobytes()
    assert live.strategy is mirrored_strategy() and live.strategy.num_replicas_in_sync == 2
    # The parts sum to g exactly, so the summed run is bit-identical to the single-device one.
    assert_identical([snapshot(live)], plain[-1:], f"{name} replicated vs plain")


@pytest.mark.parametrize("name", [LEGACY, NEW])
def test_experimental_aggregate_gradients_false_leaves_the_sum_to_the_caller(name: str) -> None:
    case = checkpoint_case(name, "float64")
    row = case.grads[0]
    h0, h1 = _split(row)
    # Unaggregated: each replica applies its own part, so the copies of one variable part ways.
    own = start(name, case)
    own.step_replicated([h0, h1], aggregate=False)
    for replica, part in enumerate((h0, h1)):
        alone = start(name, case)
        alone.step(part)
        got = [own.local_values(v)[replica] for v in own.variables]
        assert [g.tobytes() for g in got] == [p.tobytes() for p in alone.params()], f"replica {replica}"
    with pytest.raises(RuntimeError, match="replica 1 holds"):
        own.params()  # reading insists that the replicas agree
    # The caller's all-reduce (here: the sum, handed to both replicas) gives the aggregated step again.
    summed = start(name, case)
    summed.step_replicated([row, row], aggregate=False)
    aggregated = start(name, case)
    aggregated.step_replicated([h0, h1])
    assert_identical([snapshot(summed)], [snapshot(aggregated)], f"{name} caller-summed vs aggregated")
    # Once replicated, a plain step hands every replica the whole gradient, unaggregated.
    summed.step(case.grads[1])
    aggregated.step_replicated(list(_split(case.grads[1])))
    assert_identical([snapshot(summed)], [snapshot(aggregated)], f"{name} step after replication")


# ---------------------------------------------------------------- gradients() and isolation


@pytest.mark.parametrize("name", TF_SUBJECTS)
def test_gradients_are_what_was_passed(name: str) -> None:
    case = checkpoint_case(name)
    live = SUBJECTS[name].create(case.dialect, case.hparams, case.initial_params)
    assert live.gradients() is None
    live.step(case.grads[0])
    held = live.gradients()
    assert [h.tobytes() for h in held] == [g.tobytes() for g in case.grads[0]]


def test_each_adapter_runs_without_the_other_frameworks() -> None:
    """tf_raw and tf_keras never need Keras 3, and tf_raw and Keras 3 never need tf_keras: each runs with the
    others made unimportable (two processes: tf_raw, then tf_keras, without keras; Keras 3 without tf_keras)."""
    code = """
import sys
import numpy as np
sys.modules.update({{name: None for name in {blocked}}})
for module, hparams in {runs}:
    adapter = __import__(f"conformance.adapters.{{module}}", fromlist=["subjects"]).subjects()[0]
    live = adapter.create(adapter.capabilities.dialects[0], hparams, [np.ones(2, np.float32)])
    live.step([np.full(2, 0.5, np.float32)])
    print(module, float(live.params()[0][0]) < 1)
    sys.modules.pop("tf_keras")  # from here on, only keras stays blocked
"""
    runs = [("tf_raw", {"lr": 0.1}), ("tf_keras", {"learning_rate": 0.1})]
    out = python(code.format(blocked=["keras", "tf_keras"], runs=runs), KERAS_BACKEND="tensorflow")
    assert out.split() == ["tf_raw", "True", "tf_keras", "True"], out
    runs = [("keras", {"learning_rate": 0.1})]
    out = python(code.format(blocked=["tf_keras"], runs=runs), KERAS_BACKEND="tensorflow")
    assert out.split() == ["keras", "True"], out
