"""The MLX adapter on the real framework (mlx[cpu]): `mlx.optimizers.Adagrad` against adagrad/mlx, the roundings
the dialect models (the learning rate through float32, eps weakly typed), eps = 0 refused, the state dict with its
`step` counter, set_state, and save/load through `mx.savez` in all four formats.

Agreement with the corpus is held to the tolerance table's k; everything that compares MLX with itself must be
bit-identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from support.adapter_protocol import assert_identical, assert_within_k, cases, run, snapshot

from conformance import corpus
from conformance.adapters.mlx import DIALECT, STATE_FILE, MlxAdapter, subjects
from conformance.manifest import load_manifest
from conformance.registry import manifest_path
from reference import get
from reference import run as reference_run

mx = pytest.importorskip("mlx.core")
mlx_optimizers = pytest.importorskip("mlx.optimizers")

pytestmark = pytest.mark.framework("mlx")

ADAPTER = subjects()[0]
DTYPES = ("float16", "bfloat16", "float32", "float64")


def start(case: corpus.Case) -> Any:
    return ADAPTER.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])


def checkpoint_case(dtype: str = "float32") -> corpus.Case:
    return cases(DIALECT, dtype, "CHECKPOINT")[0]


def test_subject_capabilities_manifest_and_versions() -> None:
    assert ADAPTER.name == "mlx.optimizers.Adagrad"
    caps = ADAPTER.capabilities
    assert caps.dialects == (DIALECT,) and caps.dtypes == DTYPES and caps.set_state and caps.serialize
    assert not (caps.config or caps.sparse or caps.loss or caps.replicas)  # MLX optimizers have no get_config
    assert ADAPTER.manifest == manifest_path("mlx")
    assert ADAPTER.versions() == {"mlx": mx.__version__}
    entries = load_manifest(manifest_path("mlx"))
    assert entries and all(e.mode == "xfail" and e.expect and "Repro:" in e.reason for e in entries)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_level_2_cases_within_the_tolerance(dtype: str) -> None:
    """The full grid's random trajectories, which `pytest --impl=mlx` (level 1) does not run; the counter exact."""
    for case in cases(DIALECT, dtype, level=2):
        got = run(start(case), case)
        for step, (snap, want) in enumerate(zip(got, case.expected, strict=True), start=1):
            assert_within_k(snap, want, dtype, f"{case.test_id} step {step}")


def test_the_state_is_mlxs_own_dict() -> None:
    case = checkpoint_case()
    live = start(case)
    live.step(case.grads[0])
    state = live.optimizer.state
    assert state["step"].dtype == mx.uint64 and state["step"].item() == 1 == live.count()
    assert state["learning_rate"].dtype == mx.float32  # mx.array(python float): the rounding the dialect models
    np.testing.assert_array_equal(np.array(state["p0"]["v"]), live.state()["v"][0])


def test_the_learning_rate_goes_through_float32_and_eps_stays_exact_in_float64() -> None:
    """float64, lr = 0.1, eps = 1e-7, one step of g = 1e-4: lr is float32's 0.1 (cast to float64), eps is exact."""
    params = [np.array([1.0], np.float64)]
    grads = [np.array([1e-4], np.float64)]
    live = ADAPTER.create(DIALECT, {"learning_rate": 0.1, "eps": 1e-7}, params)
    live.step(grads)
    lr32 = float(np.float32(0.1))
    assert live.params()[0][0] == 1.0 - lr32 * 1e-4 / (1e-4 + 1e-7)
    expected = reference_run(DIALECT, {"learning_rate": 0.1, "eps": 1e-7}, "float64", params, [grads])
    assert expected[-1].params[0][0] == live.params()[0][0]


def first_float16_step(flag: str) -> tuple[float, float]:
    """MLX's first parameter after one step of the float16 case flagged `flag`, and the corpus's."""
    case = cases(DIALECT, "float16", flag)[0]
    live = start(case)
    live.step(case.grads[0])
    return float(live.params()[0][0]), float(case.expected[0].params[0][0])


def test_eps_takes_the_parameters_format_so_float16_divides_0_by_0() -> None:
    """eps = 1e-8 is weakly typed: 0 in float16, so A = g = 0 gives NaN, as the dialect (and its corpus) says."""
    got, expected = first_float16_step("EPS_BELOW_FORMAT")
    assert np.isnan(got) and np.isnan(expected)


def test_eps_zero_is_refused_by_mlx_and_by_the_dialect() -> None:
    with pytest.raises(ValueError, match="epsilon should be >0"):
        ADAPTER.create(DIALECT, {"learning_rate": 0.1, "eps": 0.0}, [np.ones(2, np.float32)])
    with pytest.raises(ValueError, match=r"invalid eps=0\.0: must satisfy eps > 0"):
        get(DIALECT).hparams({"learning_rate": 0.1, "eps": 0.0})


def test_the_manifests_float16_deviation_is_what_mlx_does() -> None:
    """lr * g rounds to 0 in float16 before the division: 0/0 where the exact step is (0.1 g) / 0 = inf."""
    got, expected = first_float16_step("SUBNORMAL")
    assert np.isnan(got) and np.isneginf(expected)


def test_set_state_at_the_checkpoint_continues_bit_identically() -> None:
    case = checkpoint_case("float64")
    k = case.checkpoint
    assert k is not None
    uninterrupted = run(start(case), case)
    params, state, count = uninterrupted[k - 1]
    forced = start(case)
    forced.set_state(params, state, count)
    assert_identical([snapshot(forced)], [uninterrupted[k - 1]], "set")
    assert_identical(run(forced, case, start=k), uninterrupted[k:], "continued")


def test_set_state_refuses_a_missing_slot_or_a_wrong_shape() -> None:
    case = checkpoint_case()
    live = start(case)
    with pytest.raises(ValueError, match=r"needs slots \['v'\]"):
        live.set_state(case.initial_params, {}, None)
    with pytest.raises(ValueError, match="does not match"):
        live.set_state([np.zeros(7, np.float32)], case.initial_state[1], None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_and_load_continue_bit_identically(dtype: str, tmp_path: Any) -> None:
    case = checkpoint_case(dtype)
    k = case.checkpoint
    assert k is not None
    uninterrupted = run(start(case), case)
    before = start(case)
    run(before, case, stop=k)
    before.save(tmp_path)
    saved = mx.load(str(tmp_path / STATE_FILE))
    assert saved["step"].item() == k and saved["p0.v"].dtype == getattr(mx, dtype)
    after = ADAPTER.load(case.dialect, case.hparams, uninterrupted[k - 1][0], tmp_path)
    assert_identical(run(after, case, start=k), uninterrupted[k:], f"{dtype} loaded")


def test_safetensors_refuses_float64_which_is_why_the_adapter_saves_npz(tmp_path: Any) -> None:
    with pytest.raises(RuntimeError, match="invalid dtype"):
        mx.save_safetensors(str(tmp_path / "s.safetensors"), {"v": mx.array(np.ones(1), dtype=mx.float64)})


def test_a_subclass_with_mlxs_api_is_driven_the_same_way() -> None:
    class Mine(mlx_optimizers.Adagrad):  # type: ignore[misc, name-defined]
        pass

    adapter = MlxAdapter(Mine)
    assert adapter.name.endswith("Mine") and adapter.manifest is None
    case = checkpoint_case()
    assert_identical(
        run(adapter.create(DIALECT, case.hparams, case.initial_params), case), run(start(case), case), "subclass"
    )
