"""The MindSpore adapter on the real framework: subjects and claims, agreement with the corpus, set_state through
ops.assign, zero-size parameters, and the behaviours its manifest records, pinned where they come from.

Agreement with the corpus is held to the error model's k (assert_within_k); what compares MindSpore with MindSpore
(teacher forcing against a free run) must be bit-identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support.adapter_protocol import assert_identical, assert_within_k, cases, run, snapshot

from conformance import corpus
from conformance.adapter import own_manifest
from conformance.adapters.mindspore import MindSporeAdapter, subjects
from conformance.kit import Unsupported
from conformance.manifest import load_manifest
from conformance.registry import built_in, manifest_path

ms = pytest.importorskip("mindspore")

SUBJECTS = {s.name: s for s in subjects()}
ADAGRAD, RPROP = SUBJECTS["mindspore.nn.Adagrad"], SUBJECTS["mindspore.nn.Rprop"]


def start(adapter: MindSporeAdapter, case: corpus.Case) -> Any:
    return adapter.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])


def test_subjects_claims_and_registry() -> None:
    assert ADAGRAD.capabilities.dialects == ("adagrad/mindspore",)
    assert RPROP.capabilities.dialects == ("rprop/mindspore",)
    for adapter in SUBJECTS.values():
        caps = adapter.capabilities
        assert caps.set_state and caps.serialize and caps.dtypes == ("float16", "float32", "float64")
        assert not (caps.config or caps.sparse or caps.loss or caps.replicas)  # MindSpore has no get_config
        assert own_manifest(adapter) == manifest_path("mindspore")
        assert adapter.versions() == {"mindspore": "2.10.0"}
    entry = built_in("mindspore")
    assert entry is not None and entry.extra == "mindspore" and entry.manifest == "mindspore"
    assert load_manifest(manifest_path("mindspore"))  # parses, and every entry is signed


@pytest.mark.parametrize("dialect", ["adagrad/mindspore", "rprop/mindspore"])
def test_float32_random_trajectories_agree(dialect: str) -> None:
    adapter = ADAGRAD if dialect.startswith("adagrad") else RPROP
    for case in cases(dialect, "float32", "RANDOM", level=1):
        live = start(adapter, case)
        for t, (got, want) in enumerate(zip(run(live, case), case.expected, strict=True), 1):
            assert_within_k(got, want, "float32", f"{case.test_id} step {t}")


@pytest.mark.parametrize("dialect", ["adagrad/mindspore", "rprop/mindspore"])
def test_set_state_reaches_the_compiled_step(dialect: str) -> None:
    # Teacher forcing from a fresh optimizer, written with ops.assign, must continue exactly as the free run does.
    adapter = ADAGRAD if dialect.startswith("adagrad") else RPROP
    case = cases(dialect, "float32", "RANDOM", level=1)[0]
    free = run(start(adapter, case), case)
    params, state, count = free[0]
    replay = start(adapter, case)
    replay.step([g.copy() for g in case.grads[0]])  # a stepped instance, whose state the next write overwrites
    replay.set_state(params, state, count)
    assert_identical(run(replay, case, start=1), free[1:], f"{case.test_id} after set_state")


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("dialect", ["adagrad/mindspore", "rprop/mindspore"])
def test_checkpoint_continues_bit_identically(dialect: str, dtype: str, tmp_path: Any) -> None:
    adapter = ADAGRAD if dialect.startswith("adagrad") else RPROP
    case = cases(dialect, dtype, "CHECKPOINT")[0]
    k = case.checkpoint
    whole = run(start(adapter, case), case)
    first = start(adapter, case)
    run(first, case, stop=k)
    first.save(tmp_path)
    params = [p.copy() for p in first.params()]
    loaded = adapter.load(dialect, case.hparams, params, tmp_path)
    assert loaded.count() == k
    assert_identical(run(loaded, case, start=k), whole[k:], f"{case.test_id} after load")


def test_zero_size_parameters_are_unsupported() -> None:
    with pytest.raises(Unsupported, match="zero-size"):
        ADAGRAD.create("adagrad/mindspore", {}, [np.zeros((0,), np.float32), np.ones(2, np.float32)])


def test_state_names_and_counter_are_mindspores_own() -> None:
    live = RPROP.create("rprop/mindspore", {"learning_rate": 0.1}, [np.zeros(2, np.float32)])
    live.step([np.array([1.0, -1.0], np.float32)])
    params, state, count = snapshot(live)
    assert sorted(state) == ["prev", "step_size"] and count == 1
    np.testing.assert_array_equal(params[0], np.float32([-0.1, 0.1]))


def test_adagrad_epsilon_is_fixed_inside_the_root() -> None:
    # A0 = 0 and g = 1e-4 give A = 1e-8: lr * g / sqrt(A + 1e-8) = 1e-4 / sqrt(2e-8), which pins both the place and
    # the size of the kernel's epsilon (the dialect's eps = 1e-8, inside).
    live = ADAGRAD.create("adagrad/mindspore", {"learning_rate": 1.0, "accum": 0.0}, [np.zeros(1, np.float32)])
    live.step([np.array([1e-4], np.float32)])
    (theta,) = live.params()[0]
    # The kernel evaluates in float32 (a reciprocal, then products): within a few ulps of the exact value.
    assert theta == pytest.approx(-1e-4 / np.sqrt(2e-8), rel=4e-7)
    assert theta != pytest.approx(-1e-4 / np.sqrt(1e-8 + 1e-6), rel=1e-2)  # the older kernel's ε = 1e-6


def test_adagrad_update_slots_false_is_ignored() -> None:
    # manifests/mindspore.toml: the CPU kernel never reads update_slots.
    live = ADAGRAD.create("adagrad/mindspore", {"learning_rate": 0.1, "update_slots": False}, [np.ones(1, np.float32)])
    live.step([np.array([0.5], np.float32)])
    assert live.state()["accum"][0][0] == np.float32(0.35)


def test_float64_is_computed_in_float32() -> None:
    # manifests/mindspore.toml: both optimizers store float32 numbers into float64 parameters.
    for adapter, dialect in ((ADAGRAD, "adagrad/mindspore"), (RPROP, "rprop/mindspore")):
        live = adapter.create(dialect, {"learning_rate": 0.1}, [np.ones(1, np.float64)])
        live.step([np.array([0.5], np.float64)])
        (value,) = live.params()[0]
        assert live.params()[0].dtype == np.float64 and value == float(np.float32(value)) and value != 0.9


def test_rprop_weight_decay_is_coupled() -> None:
    # g = 0 + 0.25 * 1: p keeps the decayed gradient, and theta moves by -sign(g) * lr.
    live = RPROP.create("rprop/mindspore", {"learning_rate": 0.1, "weight_decay": 0.25}, [np.ones(1, np.float32)])
    live.step([np.zeros(1, np.float32)])
    assert live.state()["prev"][0][0] == np.float32(0.25)
    assert live.params()[0][0] == np.float32(0.9)


def test_rprop_refuses_bad_pairs_itself() -> None:
    with pytest.raises(ValueError, match="etaminus"):
        RPROP.create("rprop/mindspore", {"etas": [1.5, 1.2]}, [np.ones(1, np.float32)])
    with pytest.raises(ValueError, match="maximal step size"):
        RPROP.create("rprop/mindspore", {"step_sizes": [2.0, 1.0]}, [np.ones(1, np.float32)])


def test_scalar_parameters_stay_scalar() -> None:
    live = ADAGRAD.create("adagrad/mindspore", {"learning_rate": 0.1}, [np.array(1.0, np.float32)])
    live.step([np.array(0.5, np.float32)])
    assert live.params()[0].shape == () and live.state()["accum"][0].shape == ()
