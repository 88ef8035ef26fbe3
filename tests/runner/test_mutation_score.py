"""Prove the suite catches bugs: the mutation score of the runner over the broken-optimizer corpus.

Every broken subject of `conformance.selftest` is run alone through the real runner (in-process), at level 1,
restricted to its own dialect and to the formats its record names, with `-x`. The checks are collected in a fixed
order (the node ids are given explicitly, in the runner's order, and `-p no:randomly`), so the first
failure is the first check that catches the defect. It must be a `CheckFailure` of the check that the subject's
record and docstring name, and the run must exit 1 (not crash, not fail to collect). The controls, the correct
classes, must exit 0. The score, caught / total, must be 100 %.

The known gaps (`conformance.selftest.GAPS`) are real defects that the level-1 corpus does not catch yet; each is a
strict xfail that names the missing edge, so that the corpus change that catches it fails here until it moves
into SUBJECTS.

The runs are `pytest.main` calls in this process, each with its own config and session, like pytester's
`inline_run` but without its `sys.modules` snapshot: restoring that would drop torch and TensorFlow after a run,
and neither can be imported twice in one process. The golden corpus is loaded (and validated) once, for all runs.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import time
from dataclasses import dataclass, field

import pytest

import conformance
from conformance.checks import CHECKS
from conformance.selftest import CHECK_ORDER, GAPS, SUBJECTS, Subject

CONFORMANCE_TESTS = pathlib.Path(conformance.__file__).resolve().parent / "test_conformance.py"
NODES = [f"{CONFORMANCE_TESTS}::test_{check}" for check in CHECK_ORDER]
BROKEN = [s for s in SUBJECTS if not s.is_control]
CONTROLS = [s for s in SUBJECTS if s.is_control]
FRAMEWORK_MODULES = {"torch": "torch", "keras": "keras"}


@dataclass
class Outcome:
    """What one run of a subject through the runner said."""

    exit_code: int
    failures: list[tuple[str, str, bool]] = field(default_factory=list)  # (check, message, a CheckFailure?)
    passed: int = 0
    seconds: float = 0.0

    @property
    def first_check(self) -> str | None:
        return self.failures[0][0] if self.failures else None

    def caught_by(self, expected: str | None) -> bool:
        """Exit 1, and the first failure is a CheckFailure of the expected check."""
        return self.exit_code == 1 and bool(self.failures) and self.failures[0][2] and self.first_check == expected


_OUTCOMES: dict[tuple[str, int], Outcome] = {}


def _installed(framework: str) -> bool:
    return importlib.util.find_spec(FRAMEWORK_MODULES[framework]) is not None


def _skip_unless_installed(subject: Subject) -> None:
    if not _installed(subject.framework):
        pytest.skip(f"{subject.framework} is not installed")


def _check_of(nodeid: str) -> str:
    name = nodeid.split("::")[-1].split("[")[0]
    return name.removeprefix("test_")


class _Reports:
    """A plugin for the inner run: keeps its test reports, in order."""

    def __init__(self) -> None:
        self.reports: list[pytest.TestReport] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reports.append(report)


@pytest.fixture(scope="module")
def corpus_loaded_once():
    """Every inner run reads the same golden corpus; load and validate it once per dialect set."""
    import conformance.session as session_module

    original = session_module.load
    loaded = {}

    def load_once(vectors=None, dialects=None):
        key = (str(vectors), None if dialects is None else tuple(sorted(dialects)))
        if key not in loaded:
            loaded[key] = original(vectors, dialects)
        return loaded[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(session_module, "load", load_once, raising=False)  # a runner refactor only costs time
        for name in [n for n in os.environ if n.startswith("OPTCONF_")]:  # no manifest, level or corpus from outside
            patch.delenv(name)
        yield


def run_subject(subject: Subject, level: int = 1) -> Outcome:
    """The subject alone through the runner, once per session (the outcome is shared by the tests below)."""
    key = (subject.name, level)
    if key in _OUTCOMES:
        return _OUTCOMES[key]
    selection = " or ".join(f"{subject.dialect}-{dtype}" for dtype in subject.dtypes)
    args = [
        f"--impl=conformance.selftest:{subject.name}",
        f"--optconf-level={level}",
        "--no-default-manifest",
        *NODES,
        "-k",
        selection,
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-q",
        "--tb=short",
    ]
    if not subject.is_control:
        args.append("-x")
    recorder = _Reports()
    start = time.perf_counter()
    exit_code = pytest.main(args, plugins=[recorder])
    outcome = Outcome(int(exit_code), seconds=time.perf_counter() - start)
    for report in recorder.reports:
        if report.passed and report.when == "call":
            outcome.passed += 1
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr)
            is_check_failure = report.when == "call" and "CheckFailure" in message
            outcome.failures.append((_check_of(report.nodeid), message, is_check_failure))
    _OUTCOMES[key] = outcome
    return outcome


def test_check_order_is_the_runners():
    assert CHECK_ORDER == (*CHECKS, "invalid_hparams")
    source = CONFORMANCE_TESTS.read_text(encoding="utf-8")
    defined = re.findall(r"^def test_(\w+)\(", source, flags=re.MULTILINE)
    assert [c for c in defined if c in CHECK_ORDER] == list(CHECK_ORDER)


def test_the_corpus_is_what_the_issue_asks_for():
    names = [s.name for s in (*SUBJECTS, *GAPS)]
    assert len(names) == len(set(names))
    assert len(BROKEN) >= 24
    assert {(s.family, s.framework) for s in BROKEN} == {
        ("adagrad", "torch"),
        ("adagrad", "keras"),
        ("rprop", "torch"),
        ("rprop", "keras"),
    }
    assert {s.dialect for s in CONTROLS} >= {s.dialect for s in BROKEN}  # a correct class for every dialect used
    assert all(s.expected_check in CHECK_ORDER for s in (*BROKEN, *GAPS))
    assert all(s.expected_check is None for s in CONTROLS)
    assert all(s.gap for s in GAPS) and not any(s.gap for s in SUBJECTS)


@pytest.mark.parametrize("subject", [*SUBJECTS, *GAPS], ids=lambda s: s.name)
def test_each_subject_is_a_real_optimizer_class_with_its_defect_documented(subject):
    _skip_unless_installed(subject)
    cls = subject.optimizer_class
    if subject.framework == "torch":
        import torch

        assert issubclass(cls, torch.optim.Optimizer)
    else:
        import keras

        assert issubclass(cls, keras.optimizers.Optimizer)
    doc = " ".join((cls.__doc__ or "").split())
    if subject.is_control:
        assert "correct" in doc and "Defect" not in doc
    else:
        assert doc.startswith("Defect"), f"{cls.__qualname__}'s docstring must name its defect first"
        named = re.search(r"Expected to be caught first by: `(\w+)`", doc)
        assert named is not None and named.group(1) == subject.expected_check


@pytest.mark.parametrize("subject", BROKEN, ids=lambda s: s.name)
def test_broken_subject_fails_the_check_it_names_first(corpus_loaded_once, subject):
    _skip_unless_installed(subject)
    outcome = run_subject(subject)
    assert outcome.exit_code == pytest.ExitCode.TESTS_FAILED, (outcome.exit_code, outcome.failures)
    assert len(outcome.failures) == 1, outcome.failures  # -x: the run stopped at its first failure
    check, message, is_check_failure = outcome.failures[0]
    assert is_check_failure, f"the runner crashed instead of failing a check: {message}"
    assert check == subject.expected_check, f"caught first by {check}, not {subject.expected_check}: {message}"


@pytest.mark.parametrize("subject", CONTROLS, ids=lambda s: s.name)
def test_control_passes(corpus_loaded_once, subject):
    _skip_unless_installed(subject)
    outcome = run_subject(subject)
    assert outcome.exit_code == pytest.ExitCode.OK, outcome.failures
    assert not outcome.failures and outcome.passed > 50


@pytest.mark.parametrize(
    "subject",
    [pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=f"corpus gap: {s.gap}")) for s in GAPS],
    ids=lambda s: s.name,
)
def test_known_gap_is_still_missed_at_level_1(corpus_loaded_once, subject):
    _skip_unless_installed(subject)
    outcome = run_subject(subject)
    assert outcome.exit_code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), outcome.failures  # no crash
    assert outcome.caught_by(subject.expected_check), "escaped the level-1 corpus"


def test_mutation_score(corpus_loaded_once, capsys):
    """Every broken subject caught, first, by the check it names: caught / total = 100 %; every control passes."""
    subjects = [s for s in SUBJECTS if _installed(s.framework)]
    missing = sorted({s.framework for s in SUBJECTS} - {s.framework for s in subjects})
    if not subjects:
        pytest.skip(f"not installed: {', '.join(missing)}")
    rows = []
    for subject in subjects:
        outcome = run_subject(subject)
        if subject.is_control:
            verdict = "pass" if outcome.exit_code == 0 and not outcome.failures else "FAILS"
        else:
            verdict = "caught" if outcome.caught_by(subject.expected_check) else "ESCAPED"
        rows.append((subject, outcome, verdict))
    caught = sum(1 for s, _, v in rows if not s.is_control and v == "caught")
    total = sum(1 for s in subjects if not s.is_control)
    score = caught / total
    lines = [
        "",
        f"{'subject':44} {'family':7} {'framework':9} {'expected':18} {'first failing':18} {'verdict':7} {'s':>5}",
    ]
    for subject, outcome, verdict in rows:
        lines.append(
            f"{subject.name:44} {subject.family:7} {subject.framework:9} {subject.expected_check or '(control)':18} "
            f"{outcome.first_check or '-':18} {verdict:7} {outcome.seconds:5.1f}"
        )
    lines.append(
        f"mutation score: {caught}/{total} = {score:.1%} (level 1); controls passing: "
        f"{sum(1 for s, _, v in rows if s.is_control and v == 'pass')}/{sum(1 for s in subjects if s.is_control)}"
    )
    if missing:
        lines.append(f"not run (not installed): the {', '.join(missing)} subjects")
    for gap in GAPS:
        lines.append(f"known gap, not counted: {gap.name}: {gap.gap}")
    report = "\n".join(lines)
    with capsys.disabled():
        print(report)
    assert all(v == "pass" for s, _, v in rows if s.is_control), report
    assert score == 1.0, report
