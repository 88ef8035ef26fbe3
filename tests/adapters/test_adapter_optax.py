"""The optax adapter's protocol on real corpus cases: the state as optax holds it, set_state, save/load, the
scoped 64-bit mode, gradients(), versions, and a user's own transformations through the same adapter.

Agreement with the corpus is held to k = |got - expected| / (u * S) <= 2 (XLA's rsqrt and FMAs: see
test_differential_optax); everything that compares optax with optax (save/load, set_state, x64 on or off) must be
bit-identical. optax.rprop's deviations from rprop/irprop- are the manifest's (conformance/manifests/optax.toml);
here they are pinned where the adapter must report them as they are.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np
import pytest
from support.adapter_protocol import assert_identical, assert_within_k, cases, run, snapshot

from conformance import checks, corpus
from conformance.adapter import own_manifest
from conformance.adapters.optax import (
    MANIFEST,
    OptaxAdapter,
    optax_kwargs,
    per_param_fields,
    subjects,
    to_array,
)
from conformance.manifest import load_manifest
from reference import get

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jnp = jax.numpy

SUBJECTS = {s.name: s for s in subjects()}
ADAGRAD = ("optax.adagrad[eager]", "optax.adagrad[jit]")
RPROP = ("optax.rprop[eager]", "optax.rprop[jit]")


def checkpoint_case(dialect: str, dtype: str = "float32") -> corpus.Case:
    return cases(dialect, dtype, "CHECKPOINT")[0]


def start(adapter: OptaxAdapter, case: corpus.Case) -> Any:
    return adapter.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])


# ---------------------------------------------------------------- subjects, capabilities, manifest, versions


def test_subjects_and_capabilities() -> None:
    assert sorted(SUBJECTS) == sorted(ADAGRAD + RPROP)
    for name, adapter in SUBJECTS.items():
        caps = adapter.capabilities
        assert caps.dialects == (("adagrad/optax",) if "adagrad" in name else ("rprop/irprop-",))
        assert caps.set_state and caps.serialize
        assert not (caps.config or caps.sparse or caps.loss or caps.replicas)  # optax has no get_config
        assert caps.dtypes == ("float16", "bfloat16", "float32", "float64")
        assert adapter.jit == name.endswith("[jit]")


def test_the_built_in_subjects_carry_the_manifest_and_a_users_adapter_does_not() -> None:
    assert MANIFEST.is_file() and MANIFEST.name == "optax.toml"
    assert all(adapter.manifest == MANIFEST for adapter in SUBJECTS.values())
    assert own_manifest(OptaxAdapter(dialect="adagrad/optax")) is None
    assert own_manifest(OptaxAdapter(optax.adagrad, dialect="adagrad/optax")) is None
    entries = load_manifest(MANIFEST)
    assert entries and all(e.mode == "xfail" and "Repro:" in e.reason for e in entries)


def test_versions() -> None:
    import jaxlib

    want = {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "optax": optax.__version__}
    assert all(adapter.versions() == want for adapter in SUBJECTS.values())


def test_keywords_are_optaxs_own() -> None:
    assert optax_kwargs(get("rprop/irprop-"), {"delta_0": 0.1, "delta_min": 1e-3, "delta_max": 2.0}) == {
        "learning_rate": 0.1,
        "min_step_size": 1e-3,
        "max_step_size": 2.0,
    }
    assert optax_kwargs(get("adagrad/optax"), {"learning_rate": 0.1, "eps": 0.0}) == {"learning_rate": 0.1, "eps": 0.0}
    # Pairs are split; a keyword optax has no name for is passed on as it is (the factory then refuses it).
    assert optax_kwargs(get("rprop/torch"), {"etas": [0.4, 1.3], "maximize": True}) == {
        "eta_minus": 0.4,
        "eta_plus": 1.3,
        "maximize": True,
    }


# ---------------------------------------------------------------- the state, as optax holds it


def test_adagrad_reports_sum_of_squares_and_no_counter() -> None:
    case = checkpoint_case("adagrad/optax")
    live = start(SUBJECTS["optax.adagrad[eager]"], case)
    assert set(live.state()) == {"sum_of_squares"} and live.count() is None
    live.step(case.grads[0])
    assert_within_k(snapshot(live), case.expected[0], case.dtype, case.test_id, counter=False)


@pytest.mark.parametrize("name", RPROP)
def test_rprop_reports_its_own_state_and_its_lag(name: str) -> None:
    """step_sizes is the dialect's Δ (`delta`); prev_updates keeps its own name and is not passed off as prev_grad;
    there is no counter; and the first update is 0 (the lag the manifest records), reported as it is."""
    case = cases("rprop/irprop-", "float32", "SIGN_FLIPS")[0]
    live = start(SUBJECTS[name], case)
    assert set(live.state()) == {"delta", "prev_updates"} and live.count() is None
    live.step(case.grads[0])
    params, state, _ = snapshot(live)
    want = case.expected[0]
    np.testing.assert_array_equal(state["delta"][0], want.state["delta"][0])  # Δ agrees with the dialect
    g = case.grads[0][0]
    np.testing.assert_array_equal(state["prev_updates"][0], np.sign(g) * want.state["delta"][0])
    np.testing.assert_array_equal(params[0], case.initial_params[0])  # moved nothing; irprop- moves by -sign(g)·Δ₀
    assert not np.array_equal(want.params[0], case.initial_params[0])


def test_every_per_parameter_field_is_reported_wherever_it_sits() -> None:
    chain = optax.chain(
        optax.inject_hyperparams(optax.scale_by_rss)(initial_accumulator_value=0.1),  # scalars: not reported
        optax.scale_by_rss(),
        optax.scale_by_rprop(0.1),
    )
    params = [jnp.ones(3), jnp.ones((2, 2))]
    fields = per_param_fields(chain.init(params), [(3,), (2, 2)], {"step_sizes": "delta"})
    assert [f.name for f in fields] == ["sum_of_squares", "sum_of_squares#2", "delta", "prev_updates"]
    assert all(len(f.leaves) == 2 for f in fields)


# ---------------------------------------------------------------- set_state


@pytest.mark.parametrize("name", ADAGRAD)
def test_set_state_at_each_step_then_step_gives_the_next(name: str) -> None:
    """Teacher forcing: a fresh optimizer set to expected step t, stepped once, lands on expected step t + 1."""
    adapter = SUBJECTS[name]
    for case in [checkpoint_case("adagrad/optax", d) for d in ("bfloat16", "float32", "float64")]:
        params, slots = case.initial_params, case.initial_state[1]
        for index, want in enumerate(case.expected):
            live = start(adapter, case)
            live.set_state(params, slots, None)
            live.step(case.grads[index])
            label = f"{name} {case.test_id} step {index + 1}"
            assert_within_k(snapshot(live), want, case.dtype, label, counter=False, forced=True)
            params, slots = want.params, want.state


@pytest.mark.parametrize("name", RPROP)
def test_set_state_takes_its_own_state_and_continues_bit_identically(name: str) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case("rprop/irprop-")
    k = case.checkpoint
    assert k is not None
    uninterrupted = run(start(adapter, case), case)
    params, state, count = uninterrupted[k - 1]
    forced = start(adapter, case)
    forced.set_state(params, state, count)
    assert_identical([snapshot(forced)], [uninterrupted[k - 1]], f"{name} set")
    assert_identical(run(forced, case, start=k), uninterrupted[k:], f"{name} continued")


def test_set_state_refuses_the_dialects_rprop_state() -> None:
    """The dialect's {delta, prev_grad} has no prev_updates; the adapter does not invent one."""
    case = checkpoint_case("rprop/irprop-")
    live = start(SUBJECTS["optax.rprop[eager]"], case)
    count, slots = case.initial_state
    with pytest.raises(ValueError, match=r"missing \['prev_updates'\].*\['prev_grad'\] not held"):
        live.set_state(case.initial_params, slots, count)


def test_set_state_refuses_a_wrong_shape_or_an_inexact_value() -> None:
    case = checkpoint_case("adagrad/optax")
    live = start(SUBJECTS["optax.adagrad[eager]"], case)
    slots = case.initial_state[1]
    with pytest.raises(ValueError, match="does not match"):
        live.set_state([np.zeros(7, np.float32)], slots, None)
    with pytest.raises(ValueError, match="not exactly representable in float32"):
        live.set_state([p.astype(np.float64) + 1e-12 for p in case.initial_params], slots, None)


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_save_and_load_at_the_checkpoint_continue_bit_identically(name: str, dtype: str, tmp_path: Any) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case(adapter.dialect.id, dtype)
    k = case.checkpoint
    assert k is not None
    uninterrupted = run(start(adapter, case), case)
    before = start(adapter, case)
    run(before, case, stop=k)
    before.save(tmp_path)
    layout = json.loads((tmp_path / "optax_state.json").read_text())
    with np.load(tmp_path / "optax_state.npz", allow_pickle=False) as saved:  # raw bits, no pickled objects
        assert len(saved.files) == len(layout["leaves"]) and all(saved[f].dtype == np.uint8 for f in saved.files)
    after = adapter.load(case.dialect, case.hparams, before.params(), tmp_path)
    assert after is not before and after.opt_state is not before.opt_state
    assert_identical([snapshot(after)], [snapshot(before)], f"{name} {case.test_id} loaded")
    assert_identical(run(after, case, start=k), uninterrupted[k:], f"{name} {case.test_id} resumed")


def test_load_refuses_another_structure_or_format(tmp_path: Any) -> None:
    case = checkpoint_case("adagrad/optax")
    live = start(SUBJECTS["optax.adagrad[eager]"], case)
    live.step(case.grads[0])
    live.save(tmp_path)
    rprop = checkpoint_case("rprop/irprop-")
    with pytest.raises(ValueError, match="the saved state is"):
        SUBJECTS["optax.rprop[eager]"].load(rprop.dialect, rprop.hparams, rprop.initial_params, tmp_path)
    as64 = [p.astype(np.float64) for p in case.initial_params]
    with pytest.raises(ValueError, match="saved for float32"):
        SUBJECTS["optax.adagrad[eager]"].load(case.dialect, case.hparams, as64, tmp_path)


# ---------------------------------------------------------------- 64-bit mode


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_float64_runs_in_64_bit_mode_without_flipping_the_process_flag(name: str) -> None:
    adapter = SUBJECTS[name]
    before = bool(jax.config.jax_enable_x64)
    case = checkpoint_case(adapter.dialect.id, "float64")
    got = run(start(adapter, case), case)
    assert bool(jax.config.jax_enable_x64) == before
    for index, (snap, want) in enumerate(zip(got, case.expected, strict=True), start=1):
        assert all(a.dtype == np.float64 for a in snap[0])
        if adapter.dialect.id == "adagrad/optax":
            assert_within_k(snap, want, "float64", f"{name} step {index}", counter=False)
    assert any(float(np.float32(x)) != float(x) for x in got[-1][0][0].ravel())  # values only float64 holds


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_the_other_formats_do_not_depend_on_64_bit_mode(name: str) -> None:
    """float16/bfloat16/float32 run bit-identically with 64-bit mode on or off, before or after a float64 run."""
    adapter = SUBJECTS[name]
    for dtype in ("float16", "bfloat16", "float32"):
        case = checkpoint_case(adapter.dialect.id, dtype)
        plain = run(start(adapter, case), case)
        with jax.enable_x64(True):
            wide = run(start(adapter, case), case)
        assert_identical(wide, plain, f"{name} {case.test_id} under x64")


def test_to_array_refuses_a_silent_narrowing() -> None:
    # JAX turns the float64 array into float32 without a word; to_array says so.
    with jax.enable_x64(False), pytest.raises(RuntimeError, match=r"float64 needs jax\.enable_x64"):
        to_array(np.ones(2))


# ---------------------------------------------------------------- gradients()


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_gradients_are_what_the_transformation_was_given(name: str) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case(adapter.dialect.id, "bfloat16")
    live = start(adapter, case)
    assert live.gradients() is None
    live.step(case.grads[0])
    held = live.gradients()
    assert held is not None and [g.tobytes() for g in held] == [g.tobytes() for g in case.grads[0]]


# ---------------------------------------------------------------- a user's own transformations


def test_a_users_adagrad_chain_is_bit_identical_to_optaxs() -> None:
    def my_adagrad(learning_rate: float, initial_accumulator_value: float = 0.1, eps: float = 1e-7) -> Any:
        return optax.chain(optax.scale_by_rss(initial_accumulator_value, eps), optax.scale(-learning_rate))

    case = checkpoint_case("adagrad/optax")
    for jit in (False, True):
        mine = OptaxAdapter(my_adagrad, dialect="adagrad/optax", jit=jit)
        assert mine.name == f"{__name__}.{my_adagrad.__qualname__}[{'jit' if jit else 'eager'}]"
        theirs = SUBJECTS[f"optax.adagrad[{'jit' if jit else 'eager'}]"]
        assert_identical(run(start(mine, case), case), run(start(theirs, case), case), f"my_adagrad jit={jit}")


class AccState(NamedTuple):
    acc: Any


def my_masked_adagrad(learning_rate: float, initial_accumulator_value: float = 0.1, eps: float = 1e-7) -> Any:
    """optax's Adagrad rule written by hand, its accumulator in a field called `acc`."""

    def init(params: Any) -> AccState:
        return AccState(jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update(grads: Any, state: AccState, params: Any = None) -> tuple[Any, AccState]:
        del params
        acc = jax.tree.map(lambda g, a: g * g + a, grads, state.acc)
        scale = jax.tree.map(lambda a: jnp.where(a > 0, jax.lax.rsqrt(a + eps), 0.0), acc)
        return jax.tree.map(lambda s, g: -learning_rate * (s * g), scale, grads), AccState(acc)

    return optax.GradientTransformation(init, update)


def test_a_users_field_names_are_mapped_with_slots() -> None:
    case = checkpoint_case("adagrad/optax")
    plain = OptaxAdapter(my_masked_adagrad, dialect="adagrad/optax")
    assert set(start(plain, case).state()) == {"acc"}  # reported as it is: the slot check would fail
    named = OptaxAdapter(my_masked_adagrad, dialect="adagrad/optax", slots={"sum_of_squares": "acc"})
    live = start(named, case)
    for index, want in enumerate(case.expected):
        live.step(case.grads[index])
        assert_within_k(snapshot(live), want, case.dtype, f"my_masked_adagrad step {index + 1}", counter=False)


class IRpropMinusState(NamedTuple):
    step_sizes: Any
    prev_grad: Any
    t: Any


def irprop_minus(
    learning_rate: float,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    min_step_size: float = 1e-6,
    max_step_size: float = 50.0,
) -> Any:
    """iRprop- written as an optax transformation (optax's keywords), keeping the previous gradient and a counter."""

    def init(params: Any) -> IRpropMinusState:
        return IRpropMinusState(
            jax.tree.map(lambda p: jnp.full_like(p, learning_rate), params),
            jax.tree.map(jnp.zeros_like, params),
            jnp.zeros([], jnp.int32),
        )

    def one(g: Any, delta: Any, p: Any) -> tuple[Any, Any, Any]:
        m = jnp.sign(g * p)
        grow, shrink = m > 0, m < 0
        grown, shrunk = jnp.minimum(delta * eta_plus, max_step_size), jnp.maximum(delta * eta_minus, min_step_size)
        delta = jnp.where(grow, grown, jnp.where(shrink, shrunk, delta))
        update = jnp.where(shrink, jnp.zeros_like(g), -jnp.sign(g) * delta)
        return update, delta, jnp.where(shrink, jnp.zeros_like(g), g)

    def update(grads: Any, state: IRpropMinusState, params: Any = None) -> tuple[Any, IRpropMinusState]:
        del params
        out = [one(g, d, p) for g, d, p in zip(grads, state.step_sizes, state.prev_grad, strict=True)]
        updates, deltas, prev = (list(x) for x in zip(*out, strict=True))
        return updates, IRpropMinusState(deltas, prev, state.t + 1)

    return optax.GradientTransformation(init, update)


def test_a_users_irprop_minus_passes_the_runners_checks_in_float64() -> None:
    """The same adapter, given a transformation that keeps the dialect's state, reports it under the dialect's names
    (`step_sizes` -> `delta`, `prev_grad`, counter `t`) and conforms: trajectory, teacher forcing, checkpoint.

    Except where XLA's CPU flushes subnormals to zero: the PRODUCT_SUBNORMAL case's g·p = 1e-320 becomes 0, so Δ is
    kept where the dialect grows it, and the runner says so.
    """
    mine = OptaxAdapter(irprop_minus, dialect="rprop/irprop-")
    assert own_manifest(mine) is None
    level1 = cases("rprop/irprop-", "float64", level=1)
    flushed = [c for c in level1 if "PRODUCT_SUBNORMAL" in c.flags]
    assert len(level1) >= 10 and len(flushed) == 1
    for case in level1:
        for check in ("trajectory", "teacher_forced", "counter_and_slots", "checkpoint", "inputs_not_mutated"):
            ctx = checks.Context(mine, case, f"{check} {case.test_id}")
            if case in flushed and check in ("trajectory", "teacher_forced"):
                with pytest.raises(checks.CheckFailure, match=r"step 2.*the reference took the grow"):
                    checks.CHECKS[check](ctx, checks.Outcome(), {})
                continue
            try:
                checks.CHECKS[check](ctx, checks.Outcome(), {})
            except checks.CheckSkip:
                assert check == "checkpoint" and case.checkpoint is None
    with jax.enable_x64(True):
        tiny = jnp.asarray(np.array([1e-160]))
        assert float((tiny * tiny)[0]) == 0.0 and 1e-160 * 1e-160 > 0  # XLA:CPU flushes; IEEE gives 1e-320
