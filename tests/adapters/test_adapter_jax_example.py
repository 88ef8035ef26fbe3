"""The jax.example_libraries adapter on the real library: `optimizers.adagrad` eager and jitted against
adagrad/jax-example, its state pytree (x, g_sq, m), the step index the caller passes, set_state, save/load and the
scoped 64-bit mode.

Agreement with the corpus is held to the tolerance table's k (XLA flushes subnormals, which the SUBNORMAL case
absorbs within k); everything that compares the library with itself must be bit-identical.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from support.adapter_protocol import assert_identical, assert_within_k, cases, run, snapshot

from conformance import corpus
from conformance.adapters.jax_example import DIALECT, JaxExampleAdapter, subjects
from conformance.manifest import load_manifest
from conformance.registry import manifest_path
from conformance.tolerance import bound_for
from reference import get

jax = pytest.importorskip("jax")
optimizers = pytest.importorskip("jax.example_libraries.optimizers")

pytestmark = pytest.mark.framework("jax")

SUBJECTS = {s.name: s for s in subjects()}
DTYPES = ("float16", "bfloat16", "float32", "float64")


def start(adapter: JaxExampleAdapter, case: corpus.Case) -> Any:
    return adapter.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])


def checkpoint_case(dtype: str = "float32") -> corpus.Case:
    return cases(DIALECT, dtype, "CHECKPOINT")[0]


def test_subjects_capabilities_manifest_and_versions() -> None:
    assert sorted(SUBJECTS) == [
        "jax.example_libraries.optimizers.adagrad[eager]",
        "jax.example_libraries.optimizers.adagrad[jit]",
    ]
    for adapter in SUBJECTS.values():
        caps = adapter.capabilities
        assert caps.dialects == (DIALECT,) and caps.dtypes == DTYPES
        assert caps.set_state and caps.serialize
        assert not (caps.config or caps.sparse or caps.loss or caps.replicas)  # the library has none of these
        assert adapter.manifest == manifest_path("jax_example")
        assert adapter.versions()["jax"] == jax.__version__
    entries = load_manifest(manifest_path("jax_example"))
    assert entries and all(e.mode == "xfail" and e.expect and "Repro:" in e.reason for e in entries)


def test_the_dialect_has_the_librarys_names_defaults_and_no_counter() -> None:
    dialect = get(DIALECT)
    assert dict(dialect.names) == {"step_size": "lr", "momentum": "momentum"}
    assert dialect.defaults["momentum"] == 0.9  # optimizers.adagrad(step_size, momentum=0.9)
    assert dict(dialect.slots) == {"accumulator": "g_sq", "momentum": "m"} and dialect.counter is None
    assert bound_for("adagrad", "momentum").k == bound_for("adagrad", "params").k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_the_level_2_cases_within_the_tolerance(name: str, dtype: str) -> None:
    """The full grid's random trajectories, which `pytest --impl=jax_example` (level 1) does not run."""
    adapter = SUBJECTS[name]
    for case in cases(DIALECT, dtype, level=2):
        got = run(start(adapter, case), case)
        for step, (snap, want) in enumerate(zip(got, case.expected, strict=True), start=1):
            assert snap[2] is None  # the state keeps no counter
            assert_within_k(snap, want, dtype, f"{name} {case.test_id} step {step}", counter=False)


def test_the_state_is_the_librarys_pytree_per_parameter() -> None:
    case = checkpoint_case()
    live = start(SUBJECTS["jax.example_libraries.optimizers.adagrad[eager]"], case)
    assert isinstance(live.opt_state, optimizers.OptimizerState)
    live.step(case.grads[0])
    x, g_sq, m = live.opt_state.packed_state[0]
    np.testing.assert_array_equal(np.asarray(x), live.params()[0])
    np.testing.assert_array_equal(np.asarray(g_sq), live.state()["g_sq"][0])
    np.testing.assert_array_equal(np.asarray(m), live.state()["m"][0])


def test_momentum_keeps_the_parameters_moving_on_zero_gradients() -> None:
    case = cases(DIALECT, "float32", "MOMENTUM")[0]
    live = start(SUBJECTS["jax.example_libraries.optimizers.adagrad[eager]"], case)
    trajectory = run(live, case)
    second = [p[0][1] for p, _, _ in trajectory]
    assert second[2] != second[1] and second[3] != second[2]  # steps 3 and 4 have g = 0 and still move
    assert all(p[0][0] == case.initial_params[0][0] for p, _, _ in trajectory)  # A stays 0: masked, never moves


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_set_state_at_the_checkpoint_continues_bit_identically(name: str) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case("float64")
    k = case.checkpoint
    assert k is not None
    uninterrupted = run(start(adapter, case), case)
    params, state, count = uninterrupted[k - 1]
    forced = start(adapter, case)
    forced.set_state(params, state, k)  # the index the caller passes next
    assert_identical([snapshot(forced)], [uninterrupted[k - 1]], f"{name} set")
    assert_identical(run(forced, case, start=k), uninterrupted[k:], f"{name} continued")
    assert count is None


def test_set_state_refuses_a_missing_slot_or_a_wrong_shape() -> None:
    case = checkpoint_case()
    live = start(SUBJECTS["jax.example_libraries.optimizers.adagrad[eager]"], case)
    slots = case.initial_state[1]
    with pytest.raises(ValueError, match=r"needs slots \['m'\]"):
        live.set_state(case.initial_params, {"g_sq": slots["g_sq"]}, None)
    with pytest.raises(ValueError, match="does not match"):
        live.set_state([np.zeros(7, np.float32)], slots, None)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_save_and_load_continue_bit_identically(name: str, dtype: str, tmp_path: Any) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case(dtype)
    k = case.checkpoint
    assert k is not None
    uninterrupted = run(start(adapter, case), case)
    before = start(adapter, case)
    run(before, case, stop=k)
    before.save(tmp_path)
    layout = json.loads((tmp_path / "jax_example_state.json").read_text())
    assert layout["i"] == k and layout["dtype"] == dtype  # the caller's step index travels with the state
    with np.load(tmp_path / "jax_example_state.npz", allow_pickle=False) as saved:  # raw bits, no objects
        assert len(saved.files) == 3 * len(case.initial_params)  # (x, g_sq, m) per tensor
    after = adapter.load(case.dialect, case.hparams, uninterrupted[k - 1][0], tmp_path)
    assert_identical(run(after, case, start=k), uninterrupted[k:], f"{name} loaded")


def test_float64_runs_in_a_scoped_x64_mode() -> None:
    assert not jax.config.jax_enable_x64
    case = checkpoint_case("float64")
    live = start(SUBJECTS["jax.example_libraries.optimizers.adagrad[jit]"], case)
    run(live, case)
    assert live.params()[0].dtype == np.float64 and live.state()["m"][0].dtype == np.float64
    assert not jax.config.jax_enable_x64


def test_hyperparameters_reach_the_library_as_given() -> None:
    """The dialect's default momentum is passed explicitly; a bad value is the library's to judge (it takes it)."""
    case = checkpoint_case()
    adapter = JaxExampleAdapter()
    live = adapter.create(DIALECT, {"step_size": 0.1, "momentum": 0.0}, case.initial_params)
    live.step(case.grads[0])
    with_zero = live.params()[0]
    plain = adapter.create(DIALECT, {"step_size": 0.1}, case.initial_params)
    plain.step(case.grads[0])
    assert not np.array_equal(with_zero, plain.params()[0])  # beta 0 moves by the whole step, 0.9 by a tenth
