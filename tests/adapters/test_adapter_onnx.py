"""The ONNX adapter on real corpus cases and on ONNX's own backend test: the one-node model, the state as inputs
(H and T), set_state, config, save/load, and the differences that make adagrad/onnx a dialect of its own.

Agreement with the corpus is held to the tolerance table's k; everything that compares ONNX with ONNX (save/load,
config, set_state) must be bit-identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support.adapter_protocol import assert_identical, assert_within_k, cases, run, snapshot

from conformance import corpus
from conformance.adapter import own_manifest
from conformance.adapters.onnx import DIALECT, DOMAIN, OnnxAdagradAdapter, build_model, subjects
from conformance.kit import framework_kwargs
from conformance.manifest import load_manifest
from reference import run as reference_run

onnx = pytest.importorskip("onnx")
from onnx.backend.test.case.node import adagrad as backend  # noqa: E402 - only once onnx is known to be there
from onnx.reference import ReferenceEvaluator  # noqa: E402

ADAPTER = subjects()[0]


def start(case: corpus.Case, adapter: OnnxAdagradAdapter = ADAPTER) -> Any:
    """A live optimizer in the case's initial state, as the runner starts it (the state set where it is given)."""
    live = adapter.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])
    count, slots = case.initial_state
    if case.state_given:
        live.set_state([p.copy() for p in case.initial_params], slots, count)
    return live


# ---------------------------------------------------------------- subject, capabilities, manifest


def test_subject_capabilities_and_manifest() -> None:
    caps = ADAPTER.capabilities
    assert caps.dialects == (DIALECT,) and caps.dtypes == ("float32", "float64")
    assert caps.set_state and caps.config and caps.serialize
    assert not (caps.sparse or caps.loss or caps.replicas)
    manifest = own_manifest(ADAPTER)
    assert manifest is not None and manifest.name == "onnx.toml"
    entries = load_manifest(manifest)
    assert [(e.selector["check"], e.mode) for e in entries] == [(("invalid_hparams",), "xfail")]
    assert ADAPTER.versions()["onnx"] == onnx.__version__


def test_the_model_is_one_checked_node_of_the_training_domain() -> None:
    params = [np.ones((2, 3), np.float32), np.zeros((), np.float32)]
    model = build_model({"epsilon": 1e-5}, params, "float32")
    onnx.checker.check_model(model)
    (node,) = model.graph.node
    assert (node.op_type, node.domain) == ("Adagrad", DOMAIN)
    assert list(node.input) == ["R", "T", "X0", "X1", "G0", "G1", "H0", "H1"]
    assert list(node.output) == ["X0_new", "X1_new", "H0_new", "H1_new"]
    assert [(o.domain, o.version) for o in model.opset_import] == [(DOMAIN, 1)]


def test_attributes_are_float32_and_take_the_dialects_defaults() -> None:
    live = ADAPTER.create(DIALECT, {"R": 0.1}, [np.ones((2,), np.float64)])
    config = live.config()
    # The dialect's defaults are passed explicitly; ONNX keeps each FLOAT attribute as a float32 number.
    assert config == {
        "R": 0.1,
        "epsilon": float(np.float32(1e-6)),
        "decay_factor": 0.0,
        "norm_coefficient": 0.0,
    }
    assert framework_kwargs(DIALECT, {"R": 0.1}) == {
        "R": 0.1,
        "epsilon": 1e-6,
        "decay_factor": 0.0,
        "norm_coefficient": 0.0,
    }


# ---------------------------------------------------------------- ONNX's own backend test


@pytest.mark.parametrize("export", ["export_adagrad", "export_adagrad_multiple"])
def test_onnxs_backend_test_the_adapter_and_the_dialect_agree_bit_for_bit(export: str, monkeypatch) -> None:
    """ONNX's backend test builds its node and computes its expected outputs with `apply_adagrad`; the adapter
    (fed the same X, G, H and T = 0) and the reference give the same float32 bits."""
    seen: dict[str, Any] = {}

    def capture(node: Any, inputs: list[np.ndarray], outputs: list[np.ndarray], name: str, **_: Any) -> None:
        seen.update(node=node, inputs=inputs, outputs=outputs)

    monkeypatch.setattr(backend, "expect", capture)
    getattr(backend.Adagrad, export)()
    node, inputs, outputs = seen["node"], seen["inputs"], seen["outputs"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    r, t, rest = inputs[0], inputs[1], inputs[2:]
    n = len(rest) // 3
    xs, gs, hs = rest[:n], rest[n : 2 * n], rest[2 * n :]
    assert int(t) == 0  # ONNX's own test counts the first update as T = 0, as the dialect does
    hparams = {"R": float(r), **attributes}
    live = ADAPTER.create(DIALECT, hparams, [x.copy() for x in xs])
    live.set_state([x.copy() for x in xs], {"H": [h.copy() for h in hs]}, 0)
    live.step([g.copy() for g in gs])
    got = live.params() + live.state()["H"]
    assert [a.tobytes() for a in got] == [b.tobytes() for b in outputs]
    (expected,) = reference_run(DIALECT, hparams, "float32", xs, [gs], initial_state={"H": hs})
    assert [a.tobytes() for a in expected.params + expected.state["H"]] == [b.tobytes() for b in outputs]


# ---------------------------------------------------------------- the corpus, and what sets adagrad/onnx apart


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_level_1_case_within_k(dtype: str) -> None:
    for case in cases(DIALECT, dtype, level=1):
        got = run(start(case), case)
        for step, (snap, want) in enumerate(zip(got, case.expected, strict=True), start=1):
            assert_within_k(snap, want, dtype, f"{case.test_id} step {step}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_given_state_case_fails_from_the_state_the_hyperparameters_build(dtype: str) -> None:
    """The INITIAL_STATE case is earned: from zeros (what an adapter ignoring the given H would start from) the
    first step already differs."""
    case = cases(DIALECT, dtype, "INITIAL_STATE")[0]
    assert case.state_given and case.record["initialState"]["given"] is True
    ignoring = ADAPTER.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])
    (first,) = run(ignoring, case, stop=1)
    with pytest.raises(AssertionError, match="k = "):
        assert_within_k(first, case.expected[0], dtype, case.test_id)


def test_weight_decay_is_computed_at_every_step_even_at_zero() -> None:
    """G + 0·X is NaN where X is NaN: ONNX's H turns NaN where torch's, which skips the term, stays 0."""
    x = np.array([np.nan, 1.0], np.float32)
    g = np.array([0.0, 0.5], np.float32)
    session = ReferenceEvaluator(build_model({"norm_coefficient": 0.0}, [x], "float32"))
    _, h_new = session.run(None, {"R": np.float32(0.1), "T": np.int64(0), "X0": x, "G0": g, "H0": np.zeros(2, "f")})
    assert np.isnan(h_new[0]) and h_new[1] == 0.25
    onnx_step = reference_run(DIALECT, {"R": 0.1}, "float32", [x], [[g]])[0]
    torch_step = reference_run("adagrad/torch", {"lr": 0.1}, "float32", [x], [[g]])[0]
    assert np.isnan(onnx_step.state["H"][0][0]) and torch_step.state["sum"][0][0] == 0.0


def test_the_counter_is_the_next_calls_t_and_set_state_moves_it() -> None:
    case = cases(DIALECT, "float32", "DECAY_LARGE_STEP")[0]
    live = start(case)
    assert live.count() == 10**6
    got = run(live, case)
    assert [snap[2] for snap in got] == [e.count for e in case.expected]


# ---------------------------------------------------------------- set_state, config, save/load: bit-identical


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_and_config_continue_bit_identically(dtype: str, tmp_path) -> None:
    case = cases(DIALECT, dtype, "CHECKPOINT")[0]
    k = case.checkpoint
    assert k is not None
    uninterrupted = run(start(case), case)
    first = start(case)
    before = run(first, case, stop=k)
    first.save(tmp_path)
    resumed = ADAPTER.load(DIALECT, case.hparams, before[-1][0], tmp_path)
    assert_identical([snapshot(resumed)], [before[-1]], "loaded")
    assert_identical(run(resumed, case, start=k), uninterrupted[k:], "resumed")
    rebuilt = ADAPTER.from_config(DIALECT, start(case).config(), [p.copy() for p in case.initial_params])
    assert rebuilt.config() == start(case).config()
    assert_identical(run(rebuilt, case), uninterrupted, "rebuilt from config")


def test_set_state_refuses_what_does_not_fit() -> None:
    live = ADAPTER.create(DIALECT, {"R": 0.1}, [np.ones((2,), np.float32)])
    with pytest.raises(ValueError, match="slots"):
        live.set_state([np.ones((2,), np.float32)], {}, 0)
    with pytest.raises(ValueError, match="shapes"):
        live.set_state([np.ones((3,), np.float32)], {"H": [np.ones((3,), np.float32)]}, 0)
    with pytest.raises(ValueError, match="1 parameter arrays for 2"):
        ADAPTER.create(DIALECT, {"R": 0.1}, [np.ones(1, "f"), np.ones(1, "f")]).set_state(
            [np.ones(1, "f")], {"H": [np.ones(1, "f")]}, 0
        )


def test_a_missing_learning_rate_is_refused_and_another_dialect_too() -> None:
    with pytest.raises(TypeError, match="input R"):
        ADAPTER.create(DIALECT, {}, [np.ones((2,), np.float32)])
    with pytest.raises(ValueError, match="implements adagrad/onnx"):
        ADAPTER.create("adagrad/torch", {"lr": 0.1}, [np.ones((2,), np.float32)])
