"""The torch adapter's full protocol on real corpus cases: set_state, config, save/load, sparse gradients,
gradients(), versions, and a user's own classes through the same one-line adapter.

Agreement with the corpus is held to k = |got - expected| / (u * S) <= 2 (torch's sqrt and FMAs: see
test_differential_torch); everything that compares torch with torch (config, save/load, a user's class against
torch's own) must be bit-identical.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from support.adapter_protocol import Snapshot, assert_identical, assert_within_k, cases, run, snapshot

from conformance import corpus
from conformance.adapters.torch import TorchAdapter, TorchLive, subjects
from reference import format_of
from reference.sparse import SparseGrad

torch = pytest.importorskip("torch")

SUBJECTS = {s.name: s for s in subjects()}
SPARSE_SUBJECTS = ("torch.optim.Adagrad[single]", "torch.optim.Adagrad[foreach]")


def forcing_cases(dialect: str) -> list[corpus.Case]:
    """Random float32 trajectories: the checkpointed ones (Adagrad: one with lr_decay) and a two-tensor one."""
    multi = [c for c in cases(dialect, "float32", "MULTI_TENSOR") if "RANDOM" in c.flags]
    return cases(dialect, "float32", "CHECKPOINT") + multi[:1]


def checkpoint_case(dialect: str) -> corpus.Case:
    return cases(dialect, "float32", "CHECKPOINT")[0]


def start(adapter: TorchAdapter, case: corpus.Case) -> Any:
    """A fresh optimizer at the case's initial state, as the runner starts it (set_state where the case gives it)."""
    live = adapter.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])
    count, slots = case.initial_state
    if case.state_given:
        live.set_state(case.initial_params, slots, count)
    return live


# ---------------------------------------------------------------- capabilities and versions


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_capabilities(name: str) -> None:
    caps = SUBJECTS[name].capabilities
    assert caps.set_state and caps.config and caps.serialize
    assert not caps.loss and not caps.replicas
    assert caps.dtypes == ("float16", "bfloat16", "float32", "float64")
    # Measured in test_sparse_refused: fused Adagrad and Rprop raise on a sparse gradient.
    assert caps.sparse == (name in SPARSE_SUBJECTS)


def test_a_users_class_claims_dense_gradients_unless_it_says_more() -> None:
    class MyAdagrad(torch.optim.Adagrad):
        pass

    dense = TorchAdapter(MyAdagrad, dialect="adagrad/torch")
    assert not dense.capabilities.sparse  # all that torch.optim.Optimizer guarantees
    assert dense.how_to_claim == {"sparse": "pass sparse=True to TorchAdapter if the class takes row-sparse gradients"}
    claimed = TorchAdapter(MyAdagrad, dialect="adagrad/torch", sparse=True)
    assert claimed.capabilities.sparse and claimed.how_to_claim == {}
    # Claimed only where the dialect has them and the flavour can take them.
    assert not TorchAdapter(MyAdagrad, dialect="adagrad/torch", sparse=True, fused=True).capabilities.sparse
    assert not TorchAdapter(MyAdagrad, dialect="rprop/torch", sparse=True).capabilities.sparse
    assert not TorchAdapter(dialect="rprop/torch").capabilities.sparse
    assert all(not s.how_to_claim for s in SUBJECTS.values())  # what a built-in does not claim, it does not take


def test_versions() -> None:
    assert SUBJECTS["torch.optim.Adagrad[single]"].versions() == {"torch": str(torch.__version__)}


# ---------------------------------------------------------------- set_state


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_set_state_at_each_step_then_step_gives_the_next(name: str) -> None:
    """Teacher forcing: a fresh optimizer set to expected step t, stepped once, lands on expected step t + 1."""
    adapter = SUBJECTS[name]
    for case in forcing_cases(adapter.dialect.id):
        fmt = format_of(case.dtype)
        count, slots = case.initial_state
        params = case.initial_params
        for index, want in enumerate(case.expected):
            live = adapter.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])
            live.set_state(params, slots, count)
            live.step(case.grads[index])
            assert_within_k(snapshot(live), want, fmt, f"{name} {case.test_id} step {index + 1}", forced=True)
            params, slots, count = want.params, want.state, want.count


@pytest.mark.parametrize("name", [n for n in sorted(SUBJECTS) if "Adagrad" in n])
def test_a_counter_that_starts_at_a_million(name: str) -> None:
    for case in cases("adagrad/torch", "float32", "DECAY_LARGE_STEP"):
        assert case.initial_state[0] == 10**6
        live = start(SUBJECTS[name], case)
        step = live.optimizer.state[live.optimizer.param_groups[0]["params"][0]]["step"]
        assert step.dtype == torch.float32 and step.shape == () and step.item() == 10**6
        for index, (got, want) in enumerate(zip(run(live, case), case.expected, strict=True), start=1):
            assert_within_k(got, want, format_of(case.dtype), f"{name} {case.test_id} step {index}")


@pytest.mark.parametrize("name", [n for n in sorted(SUBJECTS) if "Rprop" in n])
def test_set_state_creates_rprops_lazy_state_as_torch_does(name: str) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case("rprop/torch")
    count, slots = case.initial_state
    forced = adapter.create(case.dialect, case.hparams, case.initial_params)
    assert forced.state() == {}, "torch's Rprop creates its state on the first step"
    forced.set_state(case.initial_params, slots, count)
    plain = adapter.create(case.dialect, case.hparams, case.initial_params)
    plain.step(case.grads[0])
    ours, torchs = (next(iter(live.optimizer.state.values())) for live in (forced, plain))
    assert set(ours) == set(torchs)
    for key in ours:
        assert (ours[key].dtype, ours[key].device, ours[key].shape) == (
            torchs[key].dtype,
            torchs[key].device,
            torchs[key].shape,
        )
    again = adapter.create(case.dialect, case.hparams, case.initial_params)
    assert_identical(run(forced, case), run(again, case), f"{name} {case.test_id}")


def test_set_state_refuses_a_counter_that_torch_cannot_hold() -> None:
    case = checkpoint_case("adagrad/torch")
    live = SUBJECTS["torch.optim.Adagrad[single]"].create(case.dialect, case.hparams, case.initial_params)
    with pytest.raises(ValueError, match="cannot hold"):
        live.set_state(case.initial_params, case.initial_state[1], 2**24 + 1)
    with pytest.raises(ValueError, match="needs slots"):
        live.set_state(case.initial_params, {}, 0)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_config_round_trip_gives_an_identical_trajectory(name: str) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case(adapter.dialect.id)
    original = start(adapter, case)
    config = json.loads(json.dumps(original.config()))
    assert "params" not in config and config["lr"] == case.hparams["lr"]
    rebuilt = adapter.from_config(case.dialect, config, [p.copy() for p in case.initial_params])
    assert rebuilt.config() == config
    assert_identical(run(rebuilt, case), run(original, case), f"{name} {case.test_id}")


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_save_and_load_at_the_checkpoint_continue_bit_identically(name: str, tmp_path: Any) -> None:
    adapter = SUBJECTS[name]
    case = checkpoint_case(adapter.dialect.id)
    assert case.checkpoint is not None
    uninterrupted = run(start(adapter, case), case)
    before = start(adapter, case)
    run(before, case, stop=case.checkpoint)
    before.save(tmp_path)
    assert (tmp_path / "optimizer.pt").is_file()
    after = adapter.load(case.dialect, case.hparams, before.params(), tmp_path)
    assert after is not before and after.optimizer is not before.optimizer
    assert after.count() == case.checkpoint
    assert_identical([snapshot(after)], [snapshot(before)], f"{name} {case.test_id} loaded")
    continued = run(after, case, start=case.checkpoint)
    assert_identical(continued, uninterrupted[case.checkpoint :], f"{name} {case.test_id}")
    for index, got in enumerate(continued, start=case.checkpoint):
        assert_within_k(got, case.expected[index], format_of(case.dtype), f"{name} {case.test_id} step {index + 1}")


# ---------------------------------------------------------------- sparse gradients and gradients()


@pytest.mark.parametrize("name", SPARSE_SUBJECTS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_sparse_duplicates_match_expected(name: str, dtype: str) -> None:
    for case in cases("adagrad/torch", dtype, "SPARSE_DUPLICATES"):
        live = start(SUBJECTS[name], case)
        for index, want in enumerate(case.expected):
            live.step(case.grads[index])
            assert_within_k(snapshot(live), want, format_of(dtype), f"{name} {case.test_id} step {index + 1}")
            held = live.gradients()
            given = case.grads[index][0]
            assert isinstance(given, SparseGrad) and isinstance(held[0], SparseGrad)
            assert held[0].indices == given.indices  # torch coalesces a copy, not p.grad
            np.testing.assert_array_equal(held[0].values, given.values.astype(format_of(dtype).np_dtype))


@pytest.mark.parametrize("name", ["torch.optim.Adagrad[fused]", "torch.optim.Rprop[single]"])
def test_sparse_refused_where_not_claimed(name: str) -> None:
    case = cases("adagrad/torch", "float32", "SPARSE_DUPLICATES")[0]
    hparams = {"lr": 0.1}
    live = SUBJECTS[name].create(SUBJECTS[name].dialect.id, hparams, case.initial_params)
    with pytest.raises(RuntimeError, match="sparse"):
        live.step(case.grads[0])


def test_gradients_catch_an_optimizer_that_mutates_its_input() -> None:
    class Honest(torch.optim.Adagrad):
        pass

    class Negates(torch.optim.Adagrad):
        def step(self, closure: Any = None) -> Any:
            for group in self.param_groups:
                for p in group["params"]:
                    p.grad.neg_()
            return super().step(closure)

    case = checkpoint_case("adagrad/torch")
    for cls, mutated in ((Honest, False), (Negates, True)):
        live = TorchAdapter(cls, dialect="adagrad/torch").create(case.dialect, case.hparams, case.initial_params)
        assert live.gradients() is None  # before the first step torch holds none
        live.step(case.grads[0])
        held = live.gradients()
        assert held is not None and held[0].dtype == case.grads[0][0].dtype
        assert (held[0].tobytes() != case.grads[0][0].tobytes()) == mutated


# ---------------------------------------------------------------- a user's own classes


class ScratchAdagrad(torch.optim.Optimizer):
    """torch's single-tensor Adagrad written from scratch, with its state created lazily on the first step."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
                state["step"] += 1
                grad = -p.grad if group["maximize"] else p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                clr = group["lr"] / (1 + (state["step"].item() - 1) * group["lr_decay"])
                state["sum"].addcmul_(grad, grad, value=1)
                p.addcdiv_(grad, state["sum"].sqrt().add_(group["eps"]), value=-clr)


def forced_from_checkpoint(adapter: TorchAdapter, case: corpus.Case) -> list[Snapshot]:
    live = adapter.create(case.dialect, case.hparams, case.initial_params)
    at = case.expected[case.checkpoint - 1]
    live.set_state(at.params, at.state, at.count)
    return run(live, case, start=case.checkpoint)


def test_a_users_classes_go_through_the_whole_protocol(tmp_path: Any) -> None:
    class MyAdagrad(torch.optim.Adagrad):
        pass

    torchs = SUBJECTS["torch.optim.Adagrad[single]"]
    case = checkpoint_case("adagrad/torch")
    want = run(start(torchs, case), case)
    for cls in (MyAdagrad, ScratchAdagrad):
        mine = TorchAdapter(cls, dialect="adagrad/torch")
        label = f"{cls.__name__} {case.test_id}"
        assert_identical(run(start(mine, case), case), want, label)
        # set_state on a fresh instance (ScratchAdagrad has no state yet: the adapter creates it), from the
        # expected state at the checkpoint, against torch's own Adagrad set to the same state
        forced = [forced_from_checkpoint(adapter, case) for adapter in (mine, torchs)]
        assert_identical(forced[0], forced[1], f"{label} set_state")
        # config
        original = mine.create(case.dialect, case.hparams, case.initial_params)
        config = json.loads(json.dumps(original.config()))
        assert_identical(
            run(mine.from_config(case.dialect, config, case.initial_params), case), want, f"{label} config"
        )
        # save / load
        before = start(mine, case)
        run(before, case, stop=case.checkpoint)
        before.save(tmp_path)
        after = mine.load(case.dialect, case.hparams, before.params(), tmp_path)
        assert isinstance(after, TorchLive)
        assert_identical(run(after, case, start=case.checkpoint), want[case.checkpoint :], f"{label} load")
    # Claimed with sparse=True, the one-line class takes sparse gradients exactly as torch's own.
    sparse = cases("adagrad/torch", "float32", "SPARSE_DUPLICATES")[0]
    mine = TorchAdapter(MyAdagrad, dialect="adagrad/torch", sparse=True)
    assert_identical(run(start(mine, sparse), sparse), run(start(torchs, sparse), sparse), "MyAdagrad sparse")
