"""A verdict is earned: adversarial adapters (tests/support/broken_adapters.py, second half) cannot pass without being
compared, a known failure absorbs only the failure it names, checks cannot change each other's outcome, and a run
that compared nothing does not exit 0."""

import io
import json

import numpy as np
import pytest
from support.broken_adapters import SlipsLate, slips_late
from support.runner_helpers import BROKEN, write_manifest

from conformance.context import Context
from conformance.corpus import load as load_corpus
from conformance.driving import forced_run
from conformance.explain import explain
from conformance.tolerance import judge

pytest_plugins = ["pytester"]


def run(pytester, *args):
    return pytester.runpytest_inprocess(*args, "-p", "no:cacheprovider")


def only(expression):
    return ["-k", expression]


# --- each check judges one concern --------------------------------------------------------------------------------


def test_a_counterless_but_correct_implementation_fails_only_the_counter_check(pytester):
    numbers = run(pytester, f"--impl={BROKEN}:counterless", *only("rprop/torch-float32 and not counter_and_slots"))
    assert numbers.ret == 0, numbers.stdout.str()[-3000:]
    outcomes = numbers.parseoutcomes()
    assert outcomes["passed"] > 30 and "failed" not in outcomes
    counter = run(pytester, f"--impl={BROKEN}:counterless", *only("rprop/torch-float32 and counter_and_slots"), "-q")
    assert counter.ret == 1
    outcomes = counter.parseoutcomes()
    assert outcomes["failed"] > 10 and "passed" not in outcomes
    counter.stdout.fnmatch_lines(["*the implementation keeps no step counter, but the dialect counts `step`*"])


def test_a_wrong_counter_never_hides_the_numbers(pytester):
    """The frozen counter (0 at every step) passes the numeric checks and fails the counter check."""
    result = run(pytester, f"--impl={BROKEN}:frozen", *only("rprop/torch-float32 and (trajectory or teacher_forced)"))
    assert result.ret == 0


def test_a_missing_slot_is_a_numeric_divergence(pytester):
    result = run(pytester, f"--impl={BROKEN}:renamed", *only("rprop/torch-float32 and trajectory"), "-q", "-x")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*step 1: no state slot 'step_size' to compare (the implementation reports*"])


# --- a refusal is a refusal ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        ("never_steps", "*optconf: the control failed: never-steps could not create and step rprop/torch*"),
        ("no_keywords", "*optconf: the control failed: no-keywords could not create and step*"),
        ("unsupported_values", "*not a refusal of lr=-0.1: NotImplementedError says the setting is unsupported*"),
        ("validates_in_the_adapter", "*not a refusal of *: raised by the adapter's own code (broken_adapters.py:*"),
        ("borrows_the_spec", "*not a refusal of *: raised by optconf's reference validation (*.py:*"),
    ],
)
def test_only_the_optimizers_own_refusal_passes_invalid_hparams(pytester, adapter, message):
    result = run(pytester, f"--impl={BROKEN}:{adapter}", *only("invalid_hparams and float32"), "-q")
    assert result.ret == 1
    # no_keywords and unsupported_values refuse lr=-0.1 through the reference itself, which is a real refusal.
    assert result.parseoutcomes()["failed"] >= {"unsupported_values": 1, "no_keywords": 3}.get(adapter, 4)
    result.stdout.fnmatch_lines([message, "*repro: pytest --impl=*"])
    result.stdout.fnmatch_lines(["*.py:*: *Error"])  # the error keeps its traceback


def test_the_references_own_refusals_pass(pytester):
    result = run(pytester, "--impl=reference", *only("invalid_hparams"), "-q")
    assert result.ret == 0
    assert result.parseoutcomes()["passed"] >= 50


# --- known failures carry their signature -------------------------------------------------------------------------

XFAIL_TRAJECTORY = """
    [[entry]]
    dialect = "rprop/torch"
    dtype = "float32"
    check = "trajectory"
    mode = "xfail"
    reason = "drifts by design"
    {expect}
"""


def test_a_matching_expect_is_an_xfail(pytester):
    manifest = write_manifest(pytester, XFAIL_TRAJECTORY.format(expect="expect = 'params\\[\\d\\] at step 1, '"))
    result = run(pytester, f"--impl={BROKEN}:drifting", f"--manifest={manifest}", *only("float32 and trajectory"))
    assert result.ret == 0
    outcomes = result.parseoutcomes()
    assert outcomes["xfailed"] > 10 and "failed" not in outcomes and "warnings" not in outcomes


def test_a_failure_that_escapes_its_entry_fails_and_names_the_entry(pytester):
    manifest = write_manifest(pytester, XFAIL_TRAJECTORY.format(expect="expect = 'special-value class differs'"))
    result = run(pytester, f"--impl={BROKEN}:drifting", f"--manifest={manifest}", *only("float32 and trajectory"))
    assert result.ret == 1
    assert "xfailed" not in result.parseoutcomes()
    result.stdout.fnmatch_lines(
        [
            "*CheckFailure: rprop/torch-float32-tc*: params[[]0[]] at step 1*",
            "*optconf: this failure is not the one the manifest records (known.toml entry 1 expects "
            "/special-value class differs/)*",
        ]
    )


def test_an_implementation_error_escapes_an_entry_that_expects_a_divergence(pytester):
    manifest = write_manifest(pytester, XFAIL_TRAJECTORY.format(expect="expect = 'params\\[\\d\\] at step 1, '"))
    result = run(pytester, f"--impl={BROKEN}:never_steps", f"--manifest={manifest}", *only("float32 and trajectory"))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*RuntimeError: this optimizer cannot step*", "*not the one the manifest records*"])


def test_an_xfail_without_expect_warns_and_is_an_error_under_strict(pytester):
    manifest = write_manifest(pytester, XFAIL_TRAJECTORY.format(expect=""))
    args = (f"--impl={BROKEN}:drifting", f"--manifest={manifest}", *only("float32 and trajectory"))
    loose = run(pytester, *args)
    assert loose.ret == 0
    loose.stdout.fnmatch_lines(["*ManifestWarning: known.toml entry 1 * has no `expect`: it absorbs any failure*"])
    strict = run(pytester, *args, "--strict-manifest")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    strict.stderr.fnmatch_lines(["ERROR: --strict-manifest: xfail entries without `expect` would absorb any failure*"])


def test_an_xpass_still_fails(pytester):
    manifest = write_manifest(pytester, XFAIL_TRAJECTORY.format(expect="expect = 'anything'"))
    result = run(pytester, "--impl=reference", f"--manifest={manifest}", *only("rprop/torch-float32 and trajectory"))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*XPASS(strict)*"])


def test_fuzzing_goes_on_past_a_recorded_failure_and_stops_at_an_unrecorded_one(pytester, monkeypatch):
    monkeypatch.setenv("CI", "1")
    recorded = write_manifest(
        pytester,
        """
        [[entry]]
        dialect = "rprop/torch"
        check = "fuzz"
        mode = "xfail"
        reason = "drifts by design"
        expect = "params\\\\[0\\\\] at step"
        """,
    )
    args = (f"--impl={BROKEN}:drifting", "--fuzz=20", *only("fuzz"))
    result = run(pytester, *args, f"--manifest={recorded}", "-rx")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*XFAIL*fuzzing found only recorded failures: known.toml entry 1 (* cases)*"])
    other = write_manifest(pytester, recorded.read_text().replace("params", "step_size"), name="other.toml")
    result = run(pytester, *args, f"--manifest={other}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*fuzzing rprop/torch (seed 20261121) found a minimal failing case: params*"])


# --- isolation ----------------------------------------------------------------------------------------------------


def test_the_decoded_corpus_is_read_only():
    from conformance.corpus import load
    from reference.sparse import SparseGrad

    cases = load(None, ["adagrad/torch"]).cases
    sparse = next(c for c in cases if any(isinstance(g, SparseGrad) for row in c.grads for g in row))
    arrays = [
        *sparse.initial_params,
        *(a for arrays in sparse.initial_state[1].values() for a in arrays),
        *(g.values if isinstance(g, SparseGrad) else g for row in sparse.grads for g in row),
        *(a for step in sparse.expected for a in [*step.params, *(x for xs in step.state.values() for x in xs)]),
        *(a for step in sparse.expected for xs in step.scales.values() for a in xs),
    ]
    assert arrays and not any(a.flags.writeable for a in arrays)
    with pytest.raises(ValueError, match="read-only"):
        arrays[0][...] = 0
    with pytest.raises(TypeError):
        sparse.hparams["lr"] = 1.0  # type: ignore[index]


def test_what_is_handed_over_is_a_fresh_writable_copy():
    from conformance.adapter import handed
    from reference.sparse import SparseGrad

    frozen = np.arange(3.0)
    frozen.flags.writeable = False
    given = handed([frozen, SparseGrad((0, 0), frozen.reshape(3, 1)), {"slot": [frozen]}])
    assert given[0].flags.writeable and not np.shares_memory(given[0], frozen)
    assert given[1].values.flags.writeable and not np.shares_memory(given[1].values, frozen)
    assert given[2]["slot"][0].flags.writeable


def test_a_check_gives_the_same_verdicts_whichever_checks_ran_before(pytester):
    """An implementation that writes into everything it was given changes nothing another check expects."""
    subset = "adagrad/torch-float32-tc00 or rprop/torch-float32-tc00"
    together = run(pytester, f"--impl={BROKEN}:keeps_and_writes", *only(subset), "-q", "-rA")
    alone = run(pytester, f"--impl={BROKEN}:keeps_and_writes", *only(f"({subset}) and trajectory"), "-q", "-rA")
    verdicts = {}
    for name, result in (("together", together), ("alone", alone)):
        verdicts[name] = {
            line.split(" ", 1)[1]
            for line in result.outlines
            if line.startswith(("PASSED", "FAILED")) and "trajectory" in line
        }
    assert verdicts["together"] and verdicts["together"] == verdicts["alone"]
    assert together.parseoutcomes()["passed"] > 50 and alone.ret == 0


def test_a_mutated_sparse_gradient_is_caught(pytester):
    result = run(pytester, f"--impl={BROKEN}:mutates_sparse", *only("inputs_not_mutated and float32"), "-q")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*step 1 changed the gradient passed in for tensor 0: row values, element*"])


# --- teacher forcing is judged by the step alone ------------------------------------------------------------------

LATE_CASES = ("adagrad/torch-float64-tc0074", "adagrad/torch-float64-tc0075")  # the level-1 random trajectories


def test_a_late_steps_error_fails_teacher_forcing_at_that_step(pytester):
    """Handed the expected state of step 5, slips-late's sixth step is 5 ulp off in the accumulator: more than the
    step alone allows, and the diagnosis names the step and the scale it used."""
    result = run(pytester, f"--impl={BROKEN}:slips_late", *only(f"teacher_forced and {LATE_CASES[0]}"), "-q")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*: sum?0? at step 6, element *(S = * of this step alone; k = 2: *",
            f"*repro: optconf explain {LATE_CASES[0]} --impl *broken_adapters.py:slips_late --forced",
        ]
    )


def test_the_teacher_forced_repro_shows_the_same_step():
    """`optconf explain --forced` drives and judges as the check does, so it names step 6 where the free-running
    view, whose S has accumulated, first diverges later."""
    case = next(c for c in load_corpus().cases if c.test_id == LATE_CASES[0])
    first = {}
    for forced in (True, False):
        out = io.StringIO()
        assert explain(case, f"{BROKEN}:slips_late", None, out, forced=forced) == 1
        first[forced] = int(next(line for line in out.getvalue().splitlines() if "first divergence" in line).split()[0])
    assert first[True] == SlipsLate.SLIP_FROM < first[False]


@pytest.mark.parametrize("test_id", LATE_CASES)
def test_the_slip_fits_the_trajectorys_scale_but_not_the_steps(test_id):
    """What the per-step scale adds: judged by the S accumulated over the trajectory (the teacher-forced bound of
    vector set 1.1.0), every slipped step passes; judged by the step's own S, the slipped steps fail."""
    case = next(c for c in load_corpus().cases if c.test_id == test_id)
    ctx = Context(slips_late, case, repro="")
    k = ctx.bound("sum").k
    failing_steps = []
    for step, (got, want) in enumerate(zip(forced_run(ctx), case.expected, strict=True), start=1):
        slipped, expected = got.state["sum"][0], want.state["sum"][0]
        assert not judge(slipped, expected, want.scales["sum"][0], ctx.fmt, k).outside.any(), step
        if judge(slipped, expected, want.step_scales["sum"][0], ctx.fmt, k).outside.any():
            failing_steps.append(step)
    assert failing_steps and min(failing_steps) == SlipsLate.SLIP_FROM, failing_steps


# --- nothing checked is not a pass --------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["--impl=", "--impl=  "])
def test_an_empty_impl_is_a_usage_error(pytester, given):
    pytester.makepyfile(test_other="def test_unrelated():\n    pass\n")
    result = run(pytester, given)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --impl (or OPTCONF_IMPL) is empty; name the implementation*"])


def test_an_empty_environment_variable_is_a_usage_error(pytester, monkeypatch):
    pytester.makepyfile(test_other="def test_unrelated():\n    pass\n")
    monkeypatch.setenv("OPTCONF_IMPL", "")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_misspelt_claim_is_a_usage_error(pytester):
    result = run(pytester, f"--impl={BROKEN}:misspelt_dtype")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --impl=*: misspelt-dtype claims unknown dtype 'flaot32'; did you mean*"])


def test_a_run_where_everything_was_skipped_exits_5(pytester):
    manifest = write_manifest(
        pytester, '[[entry]]\nimpl = "*"\nmode = "skip"\nreason = "skip everything"\n', name="skips.toml"
    )
    result = run(pytester, "--impl=reference", f"--manifest={manifest}", *only("rprop/torch-float32"))
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["optconf: --impl=reference was checked by nothing: * checks skipped, * none ran*"])


def test_a_run_that_deselected_everything_exits_5(pytester):
    result = run(pytester, "--impl=reference", *only("no-such-test"))
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"OPTCONF_LEVEL": "3"}, "--optconf-level (or OPTCONF_LEVEL) must be an integer from 1 to 2; got 3"),
        ((), {"OPTCONF_LEVEL": "two"}, "--optconf-level (or OPTCONF_LEVEL) must be an integer from 1 to 2; got 'two'"),
        (("--optconf-level=0",), {}, "--optconf-level (or OPTCONF_LEVEL) must be an integer from 1 to 2; got 0"),
        (("--fuzz=-1",), {}, "--fuzz (or OPTCONF_FUZZ) must be an integer from 0 to 1000000; got -1"),
        ((), {"OPTCONF_FUZZ": "many"}, "--fuzz (or OPTCONF_FUZZ) must be an integer from 0 to 1000000; got 'many'"),
        (("--fuzz-seed=x",), {}, "--fuzz-seed (or OPTCONF_FUZZ_SEED) must be an integer from 0 to 4294967295*"),
        (("--optconf-json=missing/e.json",), {}, "--optconf-json (or OPTCONF_JSON): the folder 'missing' does not*"),
    ],
)
def test_options_are_validated_before_anything_runs(pytester, monkeypatch, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run(pytester, "--impl=reference", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('mode = "tolerance"\nk = inf', "known.toml entry 1: mode 'tolerance' needs k, a finite number > 0*got inf"),
        ('mode = "tolerance"\nk = true', "known.toml entry 1: mode 'tolerance' needs k, a finite number > 0*got True"),
        ('mode = "tolerance"\nk = -1', "known.toml entry 1: mode 'tolerance' needs k*got -1"),
        ('mode = "xfail"\nexpect = "("', "known.toml entry 1: expect is not a valid regular expression*"),
        ('mode = "skip"\nexpect = "x"', "known.toml entry 1: expect is only for mode 'xfail'*"),
        ('mode = "xfail"\nexpect = 3', "known.toml entry 1: expect must be a non-empty string; got 3"),
        ('mode = "xfail"\nlink = 3', "known.toml entry 1: link must be a non-empty string; got 3"),
        ('mode = "xfail"\ntcid = true', "known.toml entry 1: tcid must be a non-empty string or a list of them*"),
        ('mode = ["xfail"]', "known.toml entry 1: mode must be one of xfail, skip, tolerance; got ['xfail']"),
    ],
)
def test_manifest_values_are_typed(pytester, body, message):
    manifest = write_manifest(pytester, f'[[entry]]\ndialect = "rprop/torch"\nreason = "r"\n{body}\n')
    result = run(pytester, "--impl=reference", f"--manifest={manifest}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('entry = "everything"\n', "*known.toml: `entry` must be an array of tables, written *entry*"),
        ("entry = [1, 2]\n", "*known.toml: `entry` must be an array of tables, written *entry*"),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_one_line(pytester, text, message):
    manifest = write_manifest(pytester, text)
    result = run(pytester, "--impl=reference", f"--manifest={manifest}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


# --- what an implementation does to the run -----------------------------------------------------------------------


def test_a_hanging_check_fails_on_its_time_limit_and_the_run_goes_on(pytester):
    evidence = pytester.path / "evidence.json"
    result = run(
        pytester,
        f"--impl={BROKEN}:hangs",
        "--optconf-timeout=1",
        f"--optconf-json={evidence}",
        *only("(rprop/torch-float32-tc0043 or rprop/torch-float32-tc0044) and trajectory"),
        "-q",
    )
    assert result.ret == 1
    assert result.parseoutcomes()["failed"] == 2
    result.stdout.fnmatch_lines(["*Timeout (>1.0s) from pytest-timeout*", "*evidence written to*"])
    assert evidence.is_file()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import sys\nsys.exit(3)\n", "*: importing it called sys.exit(3); an implementation module must not run*"),
        (
            # a script reading its own command line at import: under pytest it sees pytest's, without `--data`
            "import argparse\nparser = argparse.ArgumentParser()\nparser.add_argument('--data', required=True)\n"
            "parser.parse_args()\n",
            "*: importing it called sys.exit(2); an implementation module must not run*",
        ),
    ],
)
def test_a_module_that_exits_at_import_is_one_line(pytester, source, message):
    module = pytester.makepyfile(exits=source)
    result = run(pytester, f"--impl={module}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --impl={message}"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_under_xdist_a_crash_costs_its_check_and_is_in_the_evidence(pytester):
    pytest.importorskip("xdist")
    evidence = pytester.path / "evidence.json"
    result = pytester.runpytest_subprocess(
        f"--impl={BROKEN}:aborts",
        "-n",
        "1",
        f"--optconf-json={evidence}",
        *only("(rprop/torch-float32-tc0043 or rprop/torch-float32-tc0044) and trajectory"),
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 1
    assert result.parseoutcomes()["failed"] == 2
    result.stdout.fnmatch_lines(["*aborts*rprop/torch*float32*FAIL 2*", "*evidence written to*"])
    records = json.loads(evidence.read_text())["results"]
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert all(r["diagnosis"].startswith("WorkerCrash: worker 'gw") and r["check"] == "trajectory" for r in records)


# --- a plain `pytest --impl=X` is protected: the checks run in a forked process --------------------------------

TWO_CHECKS = only("(rprop/torch-float32-tc0043 or rprop/torch-float32-tc0044) and trajectory")


def run_apart(pytester, *args):
    # A crash must not take the test session with it: these runs are always a process of their own.
    return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")


@pytest.mark.parametrize(("adapter", "signal_name"), [("aborts", "SIGABRT"), ("segfaults", "SIGSEGV")])
def test_by_default_a_crash_costs_its_check_and_the_run_writes_its_evidence(pytester, adapter, signal_name):
    evidence = pytester.path / "evidence.json"
    result = run_apart(pytester, f"--impl={BROKEN}:{adapter}", f"--optconf-json={evidence}", *TWO_CHECKS)
    assert result.ret == 1
    assert result.parseoutcomes()["failed"] == 2
    result.stdout.fnmatch_lines(
        [
            f"*Crash: the check's process died of {signal_name} while running *tc0043*",
            "*optconf: 2 check(s) crashed their process; each failed, and the run went on*",
            "*evidence written to*",
        ]
    )
    records = json.loads(evidence.read_text())["results"]
    assert [(r["tcid"], r["status"]) for r in records] == [("tc0043", "failed"), ("tc0044", "failed")]
    assert {r["diagnosis"] for r in records} == {f"Crash: the check's process died of {signal_name}"}


def test_a_native_hang_is_killed_at_its_time_limit_and_the_run_goes_on(pytester):
    evidence = pytester.path / "evidence.json"
    result = run_apart(
        pytester, f"--impl={BROKEN}:hangs_natively", "--optconf-timeout=1", f"--optconf-json={evidence}", *TWO_CHECKS
    )
    assert result.ret == 1
    assert result.parseoutcomes()["failed"] == 2
    result.stdout.fnmatch_lines(["*Crash: the check did not finish within 1 s and could not be interrupted*"])
    assert [r["status"] for r in json.loads(evidence.read_text())["results"]] == ["failed", "failed"]


def test_a_forked_run_reports_as_an_in_process_one(pytester):
    """Same outcomes, the checks' warnings in the summary, and -x still stops at the first failure."""
    args = [f"--impl={BROKEN}:warns", *only("rprop/torch-float32 and (trajectory or teacher_forced)")]
    forked = run_apart(pytester, *args)
    in_process = run_apart(pytester, *args, "--optconf-isolation=off")
    assert forked.ret == in_process.ret == 0
    assert forked.parseoutcomes() == in_process.parseoutcomes()
    for result in (forked, in_process):
        result.stdout.fnmatch_lines(["*warnings summary*", "*DeprecationWarning: this optimizer is deprecated*"])
    stopped = run_apart(pytester, f"--impl={BROKEN}:aborts", "-x", *TWO_CHECKS)
    assert stopped.ret == 1
    assert stopped.parseoutcomes()["failed"] == 1


def test_isolation_takes_fork_or_off(pytester):
    result = run(pytester, "--impl=reference", "--optconf-isolation=thread")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --optconf-isolation (or OPTCONF_ISOLATION) must be fork or off; got 'thread'"])
