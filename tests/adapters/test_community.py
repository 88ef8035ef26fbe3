"""The community Keras RProp subjects (`conformance.community`): the answer conforms, the question's bugs are caught.

`KerasAnswerRProp` must reproduce a ten-step hand trace and pass the runner. `KerasQuestionRProp` must fail the
runner without its manifest, with a diagnostic for each bug, and pass it (as xfails) with the manifest.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.config.backend() != "tensorflow":
    pytest.skip(f"measured on the TF backend, not {keras.config.backend()}", allow_module_level=True)

import numpy as np  # noqa: E402

from conformance import cli  # noqa: E402
from conformance.adapters import KerasAdapter  # noqa: E402
from conformance.checks import CHECKS, CheckFailure, Context, Outcome  # noqa: E402
from conformance.community import (  # noqa: E402
    ANSWER,
    IMPLEMENTATIONS,
    MANIFEST,
    QUESTION,
    SEED_ADAGRAD,
    KerasQuestionRProp,
)
from conformance.corpus import load  # noqa: E402

pytest_plugins = ["pytester"]

SPEC = "conformance.community"


def literal(text):
    """`text` as an fnmatch pattern that matches it literally (only * stays a wildcard)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(c, c) for c in text)


@pytest.fixture(scope="module")
def corpus():
    return load(None)  # loading checks schema and hashes, which takes seconds: once per module


def test_the_spec_module_has_both_subjects_with_the_manifest():
    assert [a.name for a in IMPLEMENTATIONS] == ["KerasSeedAdagrad", "KerasAnswerRProp", "KerasQuestionRProp"]
    assert SEED_ADAGRAD.capabilities.dialects == ("adagrad/keras2",)
    assert ANSWER.capabilities.dialects == ("rprop/keras-answer",)
    assert QUESTION.capabilities.dialects == ("rprop/rprop+",)
    assert all(a.manifest == MANIFEST and MANIFEST.is_file() for a in IMPLEMENTATIONS)


def test_the_answer_reproduces_the_hand_trace():
    # From init_alpha 0.1 and theta 0: the parameter's change at each step, worked out by hand from the answer's code.
    grads = [1, 1, 1, -1, 1, 0, 1, -1, -1, 1]
    changes = [-0.05, -0.06, -0.072, 0.036, -0.018, 0, -0.0045, 0.00225, 0.0027, -0.00135]
    live = ANSWER.create("rprop/keras-answer", {"init_alpha": 0.1}, [np.zeros(1)])
    got, before = [], 0.0
    for g in grads:
        live.step([np.array([float(g)])])
        now = float(live.params()[0][0])
        got.append(now - before)
        before = now
    np.testing.assert_allclose(got, changes, rtol=1e-12, atol=0)
    assert live.count() == len(grads)
    assert live.state()["alphas"][0][0] == pytest.approx(0.00135, rel=1e-12)
    assert live.state()["old_grads"][0].tolist() == [1.0]


def test_the_seed_adagrad_reproduces_the_hand_trace():
    """lr = 0.1, decay = 0.5, epsilon = 0, θ = 1, g = 2 twice. Step 1 reads t = 0: a = 4, θ = 1 − 0.1·2/2 = 0.9.
    Step 2 reads t = 1, so lr_t = 0.1/1.5: a = 8, θ = 0.9 − (0.1/1.5)·2/√8 = 0.9 − 0.0471404520791…"""
    live = SEED_ADAGRAD.create("adagrad/keras2", {"lr": 0.1, "decay": 0.5, "epsilon": 0.0}, [np.ones(1, np.float32)])
    live.step([np.full(1, 2.0, np.float32)])
    assert live.params()[0].tolist() == [np.float32(0.9)] and live.state()["accumulator"][0].tolist() == [4.0]
    live.step([np.full(1, 2.0, np.float32)])
    # 4u of float32: the exact value against a float32 evaluation of a handful of rounded operations.
    np.testing.assert_allclose(live.params()[0], [0.9 - 0.1 / 1.5 * 2 / 8**0.5], rtol=2**-22, atol=0)
    assert live.state()["accumulator"][0].tolist() == [8.0] and live.count() == 2


def test_without_the_manifest_the_question_fails_with_a_diagnostic_for_each_bug(pytester):
    result = pytester.runpytest_inprocess(
        f"--impl={SPEC}", "--no-default-manifest", "-k", "rprop/rprop+-float32", "-p", "no:cacheprovider", "-q", "-ra"
    )
    assert result.ret == 1
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 14 + 14 + 14 + 4 and "xfailed" not in outcomes
    result.stdout.fnmatch_lines_random(
        [
            # the old-gradient bug: the parameter (0) is stored where the gradient (1) should be
            literal(
                "*rprop/rprop+-float32-tc0041: prev_grad[0] at step 1, element [0]: got 0x00000000 (0.0), "
                "expected 0x3f800000 (1.00000000000000000000); *; the reference took the keep (m = 0) branch*"
            ),
            # the counter bug
            literal("*rprop/rprop+-float32-tc0041: counter `t` after step 1 = 0, but should be 1*"),
            # no validation
            literal("*KerasQuestionRProp accepted {'delta_0': -0.1} for rprop/rprop+ and stepped*"),
        ]
    )
    # The max-step bug never reaches a failure message: the old-gradient bug fails step 1 first, in every case.
    # The manifest's repro for it (test_each_manifest_repro_shows_its_bug) and the isolated run below show it.


class QuestionWithOnlyTheMaxStepBug(KerasQuestionRProp):
    """The question with its counter and old-gradient bugs repaired, so that the max-step bug diverges first."""

    def apply(self, grads, trainable_variables=None):
        keras.optimizers.Optimizer.apply(self, grads, trainable_variables)  # counts, as Keras does

    def update_step(self, gradient, variable, learning_rate):
        stored = self._grads_old[self._get_variable_index(variable)]
        g = keras.ops.cast(gradient, variable.dtype)
        change = keras.ops.sign(g * stored)
        keep_branch = keras.ops.logical_not(keras.ops.logical_or(change > 0, change < 0))
        super().update_step(gradient, variable, learning_rate)
        self.assign(stored, keras.ops.where(keep_branch, g, stored))  # g, not the parameter


def test_once_isolated_the_max_step_bug_is_the_first_divergence(corpus):
    adapter = KerasAdapter(QuestionWithOnlyTheMaxStepBug, dialect="rprop/rprop+", name="only-max-step")
    case = next(c for c in corpus if c.test_id == "rprop/rprop+-float32-tc0052")
    with pytest.raises(CheckFailure) as failure:
        CHECKS["trajectory"](Context(adapter, case, "(repro)"), Outcome(), {})
    assert (
        "delta[1] at step 2, element [0]: got 0x42480000 (50.0000000000000000000), "
        "expected 0x3d4ccccd (0.0500000007450580596924)"
    ) in str(failure.value)
    assert str(failure.value).split("\n")[0].endswith("the reference took the shrink (m < 0) branch")


def manifest_entries():
    return tomllib.loads(MANIFEST.read_text(encoding="utf-8"))["entry"]


# What each explain repro in the manifest must show, in its order.
REPRO_SHOWS = [
    # max step: at step 2 the shrink branch expects 0.05 and the question holds 50
    r"^\s+2\s+delta\[1\]\[0\]\s+0x3d4ccccd \S+\s+0x42480000 50\.0+\s",
    # old gradient: at step 1 the parameter 0 is stored where the gradient 1 should be
    r"^\s+1\s+prev_grad\[0\]\[0\]\s+0x3f800000 1\.0+\s+0x00000000 0\.0\s.*first divergence",
    # counter
    r"^\s+1\s+counter: got 0, expected 1",
]


@pytest.mark.parametrize("index", range(len(REPRO_SHOWS)))
def test_each_manifest_repro_shows_its_bug(index, corpus, capsys, monkeypatch):
    reason = manifest_entries()[index]["reason"]
    (command,) = re.findall(r"Repro[^:]*: (optconf explain .*)$", reason)
    argv = shlex.split(command)
    assert argv[:2] == ["optconf", "explain"]
    monkeypatch.setattr("conformance.explain.load", lambda vectors: corpus)
    assert cli.main(argv[1:]) == 1  # it diverges
    assert re.search(REPRO_SHOWS[index], capsys.readouterr().out, flags=re.MULTILINE)


def test_the_max_step_entry_lists_exactly_the_cases_where_the_question_flips(corpus):
    """The first two trajectory entries split the cases by whether the question's sign-change branch ever runs."""
    flips, keeps = set(), set()
    for case in corpus:
        if case.dialect != "rprop/rprop+" or case.dtype not in QUESTION.capabilities.dtypes:
            continue
        live = QUESTION.create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])
        flipped = False
        for row in case.grads:
            stored = live.state()["prev_grad"]
            with np.errstate(invalid="ignore"):  # inf·0
                flipped |= any(bool((np.sign(g * s) < 0).any()) for g, s in zip(row, stored, strict=True))
            live.step([g.copy() for g in row])
        (flips if flipped else keeps).add(f"tc{case.tc_id:04d}")
    max_step, old_grad = manifest_entries()[:2]
    assert set(max_step["tcid"]) == flips and set(old_grad["tcid"]) == keeps


def test_with_the_manifest_the_run_passes_and_keeps_the_bugs_visible(pytester, tmp_path):
    evidence = tmp_path / "evidence.json"
    result = pytester.runpytest_inprocess(
        f"--impl={SPEC}", "-p", "no:cacheprovider", "-q", f"--optconf-json={evidence}"
    )
    assert result.ret == 0
    records = json.loads(evidence.read_text())["results"]
    answer = {r["status"] for r in records if r["impl"] == "KerasAnswerRProp"}
    assert answer == {"passed", "skipped"}
    seed = [r for r in records if r["impl"] == "KerasSeedAdagrad"]
    assert {r["check"] for r in seed if r["status"] == "xfailed"} == {"invalid_hparams"}
    assert {r["status"] for r in seed if r["check"] != "invalid_hparams"} == {"passed", "skipped"}
    question = [r for r in records if r["impl"] == "KerasQuestionRProp"]
    assert {r["status"] for r in question} == {"passed", "skipped", "xfailed"}
    used = {re.search(r"\[community\.toml entry (\d+)\]", r["reason"])[1] for r in question if r["status"] == "xfailed"}
    assert used == {"1", "2", "3", "4"}
    failing_checks = {r["check"] for r in question if r["status"] == "xfailed"}
    assert failing_checks == {"trajectory", "teacher_forced", "counter_and_slots", "invalid_hparams"}
