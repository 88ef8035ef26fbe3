"""The runner itself: the reference passes, each broken adapter fails the check it should, manifests, bad SPECs."""

import json

import pytest
from support.corpus_copy import ROOT as CORPUS
from support.runner_helpers import BROKEN, literal, write_manifest

from reference import DIALECTS

pytest_plugins = ["pytester"]


def subset(more=None):
    """rprop/torch in float32 only (and `more`, a -k expression), to keep these runs short."""
    expression = "rprop/torch-float32" + (f" and ({more})" if more else "")
    return ["-k", expression, "-p", "no:cacheprovider"]


def run(pytester, *args):
    return pytester.runpytest_inprocess(*args)


def test_reference_passes_every_check(pytester):
    result = run(pytester, "--impl=reference", "-q", "-p", "no:cacheprovider")
    assert result.ret == 0
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] > 2000 and "failed" not in outcomes
    result.stdout.fnmatch_lines(["*optconf conformance matrix*", "*reference*rprop/irprop+*float16*ok*"])


BROKEN_CASES = [
    ("drifting", "test_trajectory", "params[0] at step 1, element [0]: got 0x*, expected 0x*; * ulp; |error|*"),
    (
        "drifting",
        "test_teacher_forced",
        "params[0] at step 1*(S = * of this step alone; k = 1: S counts each rounding*",
    ),
    ("renamed", "test_counter_and_slots", "state slots ['prev', 'steps'], but the dialect's are ['prev', 'step_size']"),
    ("frozen", "test_counter_and_slots", "counter `step` after step 1 = 0, but should be 1"),
    ("mutates", "test_inputs_not_mutated", "step 1 changed the gradient passed in for tensor 0: element [0]"),
    ("forgetful", "test_config_round_trip", "from_config(get_config()) changed the configuration: hparams"),
    ("loses_state", "test_checkpoint", "the optimizer loaded after step 5: counter 0 at step 5, but the uninterrupted"),
    ("accepts", "test_invalid_hparams", "accepted {'lr': -0.1} for rprop/torch and stepped"),
]


@pytest.mark.parametrize(("name", "check", "message"), BROKEN_CASES, ids=[f"{n}-{c}" for n, c, _ in BROKEN_CASES])
def test_broken_adapter_fails_the_right_check(pytester, name, check, message):
    result = run(pytester, f"--impl={BROKEN}:{name}", *subset(check), "-q", "-x", "--tb=short")
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"*{literal(message)}*", "*repro: *--impl*"])


def test_a_divergence_is_reported_by_its_diagnosis_not_the_checkers_stack(pytester):
    result = run(pytester, f"--impl={BROKEN}:drifting", *subset("test_trajectory"), "-q", "-x")
    assert result.ret == 1
    diagnosis = "CheckFailure: rprop/torch-float32-tc*" + literal(": params[0] at step 1, element [0]: got*")
    result.stdout.fnmatch_lines([diagnosis])
    result.stdout.no_fnmatch_line("*conformance/checks.py*")


def test_a_broken_adapter_passes_the_checks_its_defect_does_not_touch(pytester):
    result = run(pytester, f"--impl={BROKEN}:frozen", *subset("test_trajectory"), "-q")
    assert result.ret == 0  # the counter is the counter check's concern alone
    result = run(pytester, f"--impl={BROKEN}:renamed", *subset("test_invalid_hparams"), "-q")
    assert result.ret == 0


def test_manifest_xfail_skip_and_tolerance(pytester):
    manifest = write_manifest(
        pytester,
        """
        [[entry]]
        dialect = "rprop/torch"
        dtype = "float32"
        check = "trajectory"
        mode = "xfail"
        reason = "drifts by design"
        link = "https://example.org/issue/1"

        [[entry]]
        check = "teacher_forced"
        mode = "tolerance"
        k = 1e9
        reason = "a measured override"

        [[entry]]
        check = "counter_and_slots"
        flag = "SIGN_*"
        mode = "skip"
        reason = "not today"
    """,
    )
    result = run(
        pytester,
        f"--impl={BROKEN}:drifting",
        *subset("trajectory or teacher_forced or counter_and_slots"),
        "-q",
        f"--manifest={manifest}",
        "-rxs",
    )
    assert result.ret == 0
    outcomes = result.parseoutcomes()
    assert outcomes["xfailed"] > 10 and outcomes["skipped"] >= 1 and "failed" not in outcomes
    result.stdout.fnmatch_lines(
        [literal("*XFAIL*drifts by design (https://example.org/issue/1) [known.toml entry 1]*")]
    )


def test_manifest_xpass_fails_and_stale_entries_are_reported(pytester):
    manifest = write_manifest(
        pytester,
        """
        [[entry]]
        tcid = "tc0050"
        dialect = "rprop/torch"
        check = "trajectory"
        mode = "xfail"
        reason = "expected to fail, but the reference passes"
        expect = "params"

        [[entry]]
        dialect = "adagrad/nope"
        mode = "skip"
        reason = "matches nothing"
    """,
    )
    result = run(pytester, "--impl=reference", *subset("test_trajectory"), "-q", f"--manifest={manifest}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*XPASS(strict)*", "*manifest entry matches nothing (stale): known.toml entry 2*"])
    strict = run(pytester, "--impl=reference", *subset(), "-q", f"--manifest={manifest}", "--strict-manifest")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    strict.stderr.fnmatch_lines(["*--strict-manifest: entries that match nothing: known.toml entry 2*"])


def test_bad_manifest_is_one_clear_error(pytester):
    manifest = write_manifest(pytester, '[[entry]]\ndialect = "rprop/torch"\nmode = "xfail"\n')
    result = run(pytester, "--impl=reference", f"--manifest={manifest}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: known.toml entry 1: every entry needs a reason"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torhc", "ERROR: --impl=torhc: no module named 'torhc' (built-in names: reference, torch, *"),
        ("json", "ERROR: --impl=json: module 'json' defines no IMPLEMENTATIONS list*"),
        ("json:nothing", "ERROR: --impl=json:nothing: module 'json' has no attribute 'nothing'"),
        ("missing.py", "ERROR: --impl=missing.py: no such file"),
        (f"{BROKEN}:Broken", "ERROR: --impl=*:Broken: <class *Broken'> is not an adapter (needs name, capabilities*"),
    ],
)
def test_bad_spec_is_one_clear_error(pytester, spec, message):
    result = run(pytester, f"--impl={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_adapter_that_raises_on_import_is_one_clear_error(pytester):
    module = pytester.makepyfile(raising="raise RuntimeError('no GPU here')")
    result = run(pytester, f"--impl={module}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --impl=*raising.py: importing it raised RuntimeError: no GPU here"])


def test_environment_variable_and_json_evidence(pytester, monkeypatch):
    monkeypatch.setenv("OPTCONF_IMPL", "reference")
    evidence = pytester.path / "evidence.json"
    result = run(pytester, *subset("test_trajectory"), "-q", f"--optconf-json={evidence}")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*evidence written to*"])
    doc = json.loads(evidence.read_text())
    assert doc["impl"] == "reference" and len(doc["corpus"]["sha256"]) == 64
    assert doc["adapters"][0]["capabilities"]["set_state"] is True
    first = doc["results"][0]
    assert first["status"] == "passed" and first["check"] == "trajectory" and "worst_ulp" in first


def test_header_names_the_implementation_corpus_and_environment(pytester, monkeypatch):
    monkeypatch.setenv("OPTCONF_LEVEL", "1")
    result = run(pytester, "--impl=reference", "--collect-only")
    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    version, cases = manifest["vectorSetVersion"], sum(f["numberOfTests"] for f in manifest["files"].values())
    result.stdout.fnmatch_lines(
        [
            f"optconf: --impl=reference, level 1, corpus {version} sha256:* ({cases} cases of the claimed dialects)",
            "  reference: adagrad/keras2, *",
            "  environment: OPTCONF_LEVEL=1",
        ]
    )


def test_without_impl_the_checks_refuse_to_run(pytester):
    result = run(pytester, "--pyargs", "conformance", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "need an implementation: --impl=SPEC or OPTCONF_IMPL" in result.stdout.str() + result.stderr.str()


def test_xdist(pytester):
    pytest.importorskip("xdist")
    result = pytester.runpytest_subprocess("--impl=reference", *subset(), "-q", "-n", "2")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*optconf conformance matrix*", "*reference*rprop/torch*float32*ok*"])


def test_user_torch_class_plugs_in_with_one_line(pytester):
    pytest.importorskip("torch")
    user = pytester.makepyfile(
        my_optimizers="""
        import torch
        from conformance.adapters import TorchAdapter

        class MyAdagrad(torch.optim.Adagrad):
            pass

        IMPLEMENTATIONS = [TorchAdapter(MyAdagrad, dialect="adagrad/torch")]
    """
    )
    result = run(pytester, f"--impl={user}", "-q", "-p", "no:cacheprovider", "-k", "float32 or float64")
    assert result.ret == 0, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*my_optimizers.MyAdagrad*adagrad/torch*float32*ok*"])


def test_fuzz_mode_catches_a_broken_adapter_and_saves_a_replayable_case(pytester, monkeypatch):
    monkeypatch.setenv("CI", "1")  # derandomized, as in CI
    result = run(pytester, f"--impl={BROKEN}:drifting", "--fuzz=40", "-k", "fuzz", "-p", "no:cacheprovider", "-q")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*fuzzing rprop/torch (seed 20261121) found a minimal failing case: params[[]0[]] at step 1*",
            "*replay: optconf explain --case-json .optconf-fuzz/*.json --impl *broken_adapters.py:drifting",
        ]
    )
    (saved,) = (pytester.path / ".optconf-fuzz").glob("*.json")
    from conformance.cli import main

    monkeypatch.chdir(pytester.path)
    assert main(["explain", "--case-json", str(saved), "--impl", f"{BROKEN}:drifting"]) == 1
    assert main(["explain", "--case-json", str(saved), "--impl", "reference"]) == 0


def test_fuzz_mode_passes_the_reference(pytester, monkeypatch):
    monkeypatch.setenv("CI", "1")
    result = run(pytester, "--impl=reference", "--fuzz=15", "-k", "fuzz", "-p", "no:cacheprovider", "-q")
    assert result.ret == 0
    assert result.parseoutcomes()["passed"] == len(DIALECTS)  # one fuzz test per dialect


def test_the_test_functions_are_the_check_registry_one_to_one():
    """Each check is one record of `conformance.checks.REGISTRY`; pytest needs a `test_<name>` function for each,
    so they are written out, and must be exactly the registry's, in its order (the order the checks run in)."""
    import conformance.test_conformance as module
    from conformance.checks import CHECKS, REGISTRY
    from conformance.report import ALL_CHECKS
    from conformance.session import CASE_FILTERS

    defined = [name.removeprefix("test_") for name in vars(module) if name.startswith("test_")]
    names = [check.name for check in REGISTRY]
    assert defined == names
    assert list(ALL_CHECKS) == names
    on_cases = [check.name for check in REGISTRY if check.subjects == "cases"]
    assert list(CHECKS) == list(CASE_FILTERS) == on_cases


def test_a_case_whose_state_is_an_input_is_skipped_with_the_reason_without_set_state(pytester):
    """A given per-element state or a late counter is set through set_state; an adapter without it skips the case
    (never runs it from the state its hyperparameters build) and says which input needed it."""
    pytester.makepyfile(
        no_state="""
from dataclasses import replace

from conformance.adapters.reference import ReferenceAdapter

ADAPTER = ReferenceAdapter(["adagrad/onnx"], name="no-set-state")
ADAPTER.capabilities = replace(ADAPTER.capabilities, set_state=False)
"""
    )
    result = run(
        pytester, "--impl=no_state.py:ADAPTER", "-k", "float32 and test_trajectory", "-rs", "-p", "no:cacheprovider"
    )
    assert result.ret == 0
    assert result.parseoutcomes()["skipped"] == 3
    result.stdout.fnmatch_lines_random(
        [
            "*the initial state given per element needs*",
            "*starting the counter at 1000000 needs*",
            "*the initial state given per element and starting the counter at 5 needs*",
        ]
    )
