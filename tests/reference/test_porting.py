"""`optconf diff`: the settings two dialects differ in, which of them change the numbers, and the seeded fit."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import reference
from conformance import porting
from conformance.cli import main
from conformance.porting import Matters


def _matters(result: porting.Porting) -> dict[str, Matters]:
    return {f"{d.aspect} {d.name}": d.matters for d in result.differences}


def test_the_seed_adagrad_against_torch_parts_at_the_first_step_because_of_eps() -> None:
    result = porting.compare("adagrad/keras2", "adagrad/torch", {})
    matters = _matters(result)
    assert matters["default eps"] is Matters.YES  # 1e-7 against 1e-10, both outside the root
    assert matters["knob weight_decay"] is Matters.NO  # coupled decay at its default 0 adds nothing
    assert matters["slot accumulator"] is Matters.NAMING and matters["keyword decay"] is Matters.NAMING
    assert "knob eps_placement" not in matters  # both put eps outside the root
    assert result.first_differing_step == 1
    # Given the same eps, nothing left differs in the numbers on this problem.
    same_eps = porting.compare("adagrad/keras2", "adagrad/torch", {"eps": 1e-7})
    assert same_eps.first_differing_step is None and not same_eps.relative_gap.any()


def test_whether_a_setting_matters_depends_on_the_hyperparameters() -> None:
    """tf-keras-v2 rounds lr to float32 before the float64 step: 0.1 changes, 0.5 is exact in float32."""
    shared = {"eps": 1e-7, "initial_accumulator": 0.1}
    inexact = porting.compare("adagrad/torch", "adagrad/tf-keras-v2", shared | {"lr": 0.1}, dtype="float64")
    exact = porting.compare("adagrad/torch", "adagrad/tf-keras-v2", shared | {"lr": 0.5}, dtype="float64")
    assert _matters(inexact)["knob rounding"] is Matters.YES
    assert _matters(exact)["knob rounding"] is Matters.NO
    assert exact.first_differing_step is None and inexact.first_differing_step == 1


def test_the_trajectories_are_the_reference_on_the_generated_problem() -> None:
    result = porting.compare("rprop/torch", "rprop/irprop+", {}, steps=20, seed=3)
    problem = porting.least_squares(3)
    for dialect, trajectory in (("rprop/torch", result.trajectory_a), ("rprop/irprop+", result.trajectory_b)):
        w = np.zeros(problem.features.shape[1], dtype=np.float32)
        live = reference.get(dialect)
        stepped = porting.fit(live, {}, problem, 20, "float32")
        assert np.array_equal(stepped.params, trajectory.params)
        assert trajectory.losses[0] == problem.loss(w.astype(np.float64))
        assert trajectory.losses[-1] == problem.loss(trajectory.params[-1])
    la, lb = result.trajectory_a.losses, result.trajectory_b.losses
    assert np.allclose(result.relative_gap, np.abs(la - lb) / np.maximum(np.abs(la), np.abs(lb)), rtol=0, atol=0)
    # irprop+ starts with steps of 0.1 where torch starts with 0.01; its backtracking alone changes nothing here,
    # since the loss torch's run passes to its steps never rises (the last loss, which does, reaches no step).
    assert _matters(result)["default lr"] is Matters.YES
    assert _matters(result)["knob backtrack"] is Matters.NO and np.all(np.diff(la[:-1]) <= 0)


def test_a_dialect_against_itself_has_nothing_to_say() -> None:
    result = porting.compare("adagrad/optax", "adagrad/optax", {"lr": 0.1}, steps=5)
    assert result.differences == [] and result.first_differing_step is None
    assert "bit-identical" in porting.render(result)


def test_the_plot_draws_both_curves_and_the_gap(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("matplotlib")
    from conformance import porting_plot

    result = porting.compare("adagrad/keras2", "adagrad/torch", {}, steps=30)
    figure = porting_plot.figure(result)
    losses, gap = figure.axes
    assert [line.get_label() for line in losses.lines] == ["adagrad/keras2", "adagrad/torch"]
    assert np.array_equal(losses.lines[0].get_ydata(), result.trajectory_a.losses)
    assert np.array_equal(losses.lines[1].get_ydata(), result.trajectory_b.losses)
    drawn = np.asarray(gap.lines[0].get_ydata())
    assert np.array_equal(np.nan_to_num(drawn), result.relative_gap)
    for name, magic in (("out.png", b"\x89PNG\r\n\x1a\n"), ("out.svg", b"<?xml")):
        assert main(["diff", "adagrad/keras2", "adagrad/torch", "--steps", "30", "--plot", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_bytes().startswith(magic)


def test_the_command_explains_and_refuses_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    assert main(["diff", "adagrad/keras2", "adagrad/torch", "--steps", "10"]) == 0
    out = capsys.readouterr().out
    assert "default eps" in out and "The weights first differ after step 1." in out
    for argv, message in (
        (["adagrad/keras2", "rprop/torch"], "are dialects of different families"),
        (["adagrad/keras2", "adagrad/torch", "--dtype", "float64"], "adagrad/keras2 does not support float64"),
        (["adagrad/torch", "adagrad/optax", "--hparams", '{"learning_rate": 1}'], "canonical names"),
        (["adagrad/torch", "adagrad/optax", "--steps", "0"], "--steps must be between 1 and"),
        (["adagrad/torch", "adagrad/optax", "--plot", str(tmp_path / "x.jpg")], "--plot writes .png or .svg"),
    ):
        assert main(["diff", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "x.jpg").exists()
