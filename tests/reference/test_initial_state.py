"""The initial state as an input: `reference.run(initial_state=..., initial_count=...)` for every family, and the
family records' cases that use it.

A run resumed from any step's state (its parameters, every slot and the counter given as inputs) must continue
bit for bit as the uninterrupted run did: that is what makes a state that is an input (ONNX's H and T) checkable
against the same trajectories as a state the optimizer keeps.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import DIALECTS, format_of, run
from reference.dialects import LOSS_SLOT
from reference.vectors.cases import catalogue, given_state_catalogue

STATEFUL = ["adagrad/torch", "adagrad/onnx", "adagrad/keras3", "rprop/irprop+", "rprop/torch", "rprop/rprop+"]


def _bits(arrays: list[np.ndarray]) -> list[bytes]:
    return [np.ascontiguousarray(a).tobytes() for a in arrays]


@pytest.mark.parametrize("evaluator", ["oracle", "numpy"])
@pytest.mark.parametrize("dialect_id", STATEFUL)
def test_a_run_resumed_from_any_steps_state_continues_bit_for_bit(dialect_id: str, evaluator: str) -> None:
    spec = next(s for s in catalogue(dialect_id, "float32") if "RANDOM" in s.flags)
    steps = run(
        dialect_id,
        spec.hparams,
        "float32",
        spec.params,
        spec.grads,
        spec.losses,
        evaluator=evaluator,
        include_initial=True,
    )
    for k in (1, 4):
        at = steps[k]
        resumed = run(
            dialect_id,
            spec.hparams,
            "float32",
            at.params,
            spec.grads[k:],
            None if spec.losses is None else spec.losses[k:],
            evaluator=evaluator,
            initial_count=at.count,
            initial_state=at.state,
        )
        for got, want in zip(resumed, steps[k + 1 :], strict=True):
            assert got.count == want.count
            assert _bits(got.params) == _bits(want.params)
            assert {n: _bits(a) for n, a in got.state.items()} == {n: _bits(a) for n, a in want.state.items()}


def test_a_uniform_given_accumulator_is_the_initial_accumulator_hyperparameter() -> None:
    params, grads = [[1.0, -2.0], [0.5]], [[[0.5, 0.25], [-1.0]], [[1.0, -1.0], [0.5]]]
    built = run("adagrad/torch", {"lr": 0.1, "initial_accumulator_value": 0.3}, "float64", params, grads)
    given = run("adagrad/torch", {"lr": 0.1}, "float64", params, grads, initial_state={"sum": [[0.3, 0.3], [0.3]]})
    for a, b in zip(built, given, strict=True):
        assert _bits(a.params) == _bits(b.params) and _bits(a.state["sum"]) == _bits(b.state["sum"])


def test_slots_not_given_start_as_the_family_builds_them() -> None:
    """irprop+ given only its step sizes and E⁻: prev_grad and prev_update start at 0, as init builds them."""
    delta, loss = [[0.25, 0.5]], [3.0]
    steps = run(
        "rprop/irprop+",
        {},
        "float64",
        [[1.0, -1.0]],
        [[[0.5, 0.5]]],
        [1.0],
        include_initial=True,
        initial_state={"delta": delta, LOSS_SLOT: loss},
    )
    start = steps[0].state
    assert start["delta"][0].tolist() == [0.25, 0.5] and float(start[LOSS_SLOT][0]) == 3.0
    assert start["prev_grad"][0].tolist() == [0.0, 0.0] and start["prev_update"][0].tolist() == [0.0, 0.0]


def test_given_slots_are_rounded_to_the_format_like_every_input() -> None:
    (start,) = run(
        "adagrad/onnx", {"R": 0.1}, "float32", [[1.0]], [], include_initial=True, initial_state={"H": [[0.1]]}
    )
    assert start.state["H"][0].dtype == np.float32 and start.state["H"][0][0] == np.float32(0.1)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"sum": [[1.0]]}, "adagrad/onnx keeps no slot 'sum'; its slots are H"),
        ({"H": [[1.0, 2.0]]}, r"initial slot 'H': shapes \[\[2\]\], but \[\[1\]\] expected"),
        ({"H": [[1.0], [2.0]]}, r"initial slot 'H': shapes \[\[1\], \[1\]\], but \[\[1\]\] expected"),
    ],
)
def test_a_given_state_that_does_not_fit_is_refused(given: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run("adagrad/onnx", {"R": 0.1}, "float32", [[1.0]], [[[1.0]]], initial_state=given)


@pytest.mark.parametrize("dialect_id", sorted(DIALECTS))
def test_every_familys_given_state_cases_run_in_every_format(dialect_id: str) -> None:
    """The family records' cases run for every dialect (whether or not its corpus holds them), and give what they
    say: a state other than the one the hyperparameters build."""
    d = DIALECTS[dialect_id]
    for dtype in d.dtypes:
        specs = list(d.family.given_state_cases(d, format_of(dtype)))
        assert specs, dialect_id
        for spec in specs:
            assert "INITIAL_STATE" in spec.flags and spec.initial_state and spec.level == 1
            inputs = (dialect_id, spec.hparams, dtype, spec.params, spec.grads, spec.losses)
            given = run(*inputs, initial_count=spec.initial_count, initial_state=spec.initial_state, evaluator="numpy")
            built = run(*inputs, initial_count=spec.initial_count, evaluator="numpy")
            assert _bits(given[0].params) != _bits(built[0].params)


def test_the_corpus_holds_the_given_state_cases_only_where_a_dialect_asks() -> None:
    holding = {d for d, dialect in DIALECTS.items() if dialect.given_state}
    assert holding == {"adagrad/onnx", "adagrad/torch"}
    assert DIALECTS["adagrad/onnx"].given_state == DIALECTS["adagrad/onnx"].dtypes  # its state is an input
    for d, dialect in DIALECTS.items():
        for dtype in dialect.dtypes:
            assert bool(given_state_catalogue(d, dtype)) == (dtype in dialect.given_state), (d, dtype)
