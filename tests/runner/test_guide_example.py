"""The guide's example (tests/guide): its adapter passes the real runner, a real defect fails a check with its
diagnosis, and the guide quotes the example's files verbatim."""

import json
import pathlib
import re
import textwrap

import numpy as np
import pytest

from conformance.manifest import load_manifest

pytest_plugins = ["pytester"]

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "guide"
ADAPTER_SPEC = f"{EXAMPLE / 'tinyopt_adapter.py'}:ADAPTER"
MANIFEST = EXAMPLE / "tinyopt.toml"
GUIDE = ROOT / "docs" / "writing-an-adapter.md"
UNSUPPORTED = "the implementation has no 'maximize'; the case sets maximize=True"


@pytest.fixture
def tinyopt_installed(monkeypatch):
    """tinyopt importable, as an installed framework would be."""
    monkeypatch.syspath_prepend(str(EXAMPLE))


def run_runner(pytester, spec, *args):
    """The runner on `spec` in this process; its outcome and the JSON evidence's results."""
    evidence = pytester.path / "evidence.json"
    result = pytester.runpytest_inprocess(
        f"--impl={spec}", f"--optconf-json={evidence}", "--optconf-level=1", "-p", "no:cacheprovider", *args
    )
    return result, json.loads(evidence.read_text())


def cases(predicate):
    """The adagrad/torch cases (tcNNNN) whose hyperparameters satisfy `predicate`, read from the corpus."""
    corpus = json.loads((ROOT / "vectors" / "adagrad" / "torch.json").read_text())
    return {
        f"tc{case['tcId']:04d}"
        for group in corpus["testGroups"]
        for case in group["tests"]
        if predicate(case["hparams"])
    }


def maximizing(hparams):
    return hparams.get("maximize") is True


def test_the_example_adapter_passes_with_its_manifest(pytester, tinyopt_installed):
    result, evidence = run_runner(pytester, ADAPTER_SPEC, f"--manifest={MANIFEST}", "--strict-manifest", "-q")
    assert result.ret == 0
    results = evidence["results"]
    assert {r["dtype"] for r in results} == {"float16", "bfloat16", "float32", "float64"}
    assert evidence["manifest"]["stale"] == []

    maximize = cases(maximizing)
    assert maximize
    numeric = [r for r in results if r["check"] != "replicas"]  # replicas: a capability it does not claim
    for r in numeric:
        if r["tcid"] in maximize:
            assert (r["status"], r.get("reason")) == ("skipped", UNSUPPORTED), r["id"]
    unsupported = [r for r in results if r.get("reason") == UNSUPPORTED]
    assert {r["tcid"] for r in unsupported} <= maximize

    (known,) = [r for r in results if r["status"] == "xfailed"]
    assert known["check"] == "invalid_hparams"
    assert known["tcid"].startswith("lr_decay=-")
    assert known["diagnosis"].startswith("CheckFailure: tinyopt.Adagrad accepted {'lr': 0.01, 'lr_decay': -")
    assert known["reason"].endswith("[tinyopt.toml entry 1]")

    rest = [r for r in numeric if r["tcid"] not in maximize and r is not known]
    assert len(rest) > 150
    assert {r["status"] for r in rest} == {"passed"}
    checks = {r["check"] for r in rest}
    assert {"trajectory", "teacher_forced", "config_round_trip", "checkpoint", "invalid_hparams"} <= checks
    assert any("SPARSE_DUPLICATES" in r["flags"] for r in rest)


def test_without_the_manifest_the_deviation_fails_the_run(pytester, tinyopt_installed):
    result, evidence = run_runner(pytester, ADAPTER_SPEC, "-q", "-k", "invalid_hparams")
    assert result.ret == 1
    (failed,) = [r for r in evidence["results"] if r["status"] == "failed"]
    (entry,) = load_manifest(MANIFEST)
    assert entry.expects(failed["diagnosis"])  # the entry records exactly this failure


VARIANTS = """
    import numpy as np
    import tinyopt
    from conformance.kit import common_dtype
    from tinyopt_adapter import RENAME, TinyoptAdapter, TinyoptLive


    class EpsInsideSqrt(tinyopt.Adagrad):
        # A real defect: sqrt(A + eps) where adagrad/torch divides by sqrt(A) + eps.
        def _denominator(self, acc):
            return np.sqrt(acc + self.epsilon)


    class WithoutDefaults(TinyoptAdapter):
        # Passes only what the case sets, so tinyopt's own epsilon (1e-6) stands in for the dialect's (1e-10).
        def _build(self, hparams, params):
            kwargs = {RENAME.get(name, name): value for name, value in hparams.items()}
            return TinyoptLive(self.optimizer_class(list(params), **kwargs), common_dtype(params))


    EPS_INSIDE = TinyoptAdapter(EpsInsideSqrt, name="EpsInsideSqrt")
    WITHOUT_DEFAULTS = WithoutDefaults(name="tinyopt.Adagrad[no defaults]")
"""


@pytest.fixture
def variants(pytester, tinyopt_installed):
    path = pytester.path / "variants.py"
    path.write_text(textwrap.dedent(VARIANTS))
    return path


def test_a_real_defect_fails_with_the_checks_diagnosis(pytester, variants):
    result, evidence = run_runner(pytester, f"{variants}:EPS_INSIDE", "-k", "trajectory or teacher_forced")
    assert result.ret == 1
    failed = [r for r in evidence["results"] if r["status"] == "failed"]
    # EPS_DECIDES exists to catch this placement; in float16 the difference is within the format's error.
    eps_decides = {
        r["id"] for r in evidence["results"] if "EPS_DECIDES" in r["flags"] and r["dtype"] in ("float32", "float64")
    }
    assert eps_decides
    assert eps_decides <= {r["id"] for r in failed}
    for r in failed:
        assert re.match(r"CheckFailure: adagrad/torch-\w+-tc\d{4}: (params|sum)\[\d+\] at step \d+", r["diagnosis"])
    result.stdout.fnmatch_lines(["CheckFailure: adagrad/torch-*-tc*: params[[]0] at step *, element *", "*repro: *"])
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*tinyopt.py:*")


def test_the_dialects_defaults_matter(pytester, variants):
    """Without framework_kwargs, tinyopt runs with its own epsilon and fails cases that leave eps at the default."""
    result, evidence = run_runner(pytester, f"{variants}:WITHOUT_DEFAULTS", "-k", "trajectory")
    assert result.ret == 1
    # A case setting maximize fails here too: tinyopt has no such keyword, and this adapter does not say so.
    failed = {r["tcid"] for r in evidence["results"] if r["status"] == "failed"} - cases(maximizing)
    assert failed
    assert not failed & cases(lambda hparams: "eps" in hparams)
    _, evidence = run_runner(pytester, ADAPTER_SPEC, "-k", "trajectory")
    assert {r["status"] for r in evidence["results"] if r["tcid"] in failed} == {"passed"}


def test_tinyopt_saves_without_pickle(tmp_path, tinyopt_installed):
    import ml_dtypes
    import tinyopt

    for dtype in (np.float32, ml_dtypes.bfloat16):
        first = tinyopt.Adagrad([np.array([1.0, 2.0], dtype=dtype)], learning_rate=0.1)
        first.step([np.array([0.5, -1.0], dtype=dtype)])
        first.save(tmp_path / "state.npz")
        second = tinyopt.Adagrad([np.array([1.0, 2.0], dtype=dtype)], learning_rate=0.1)
        second.load(tmp_path / "state.npz")  # np.load(allow_pickle=False): an object array would be refused
        assert second.iterations == 1
        assert second.accumulators[0].dtype == np.dtype(dtype)
        assert second.accumulators[0].tobytes() == first.accumulators[0].tobytes()


# ---------------------------------------------------------------------------------------------------------------
# The guide quotes the example verbatim: a fenced block whose first line is `# tests/guide/FILE` is a piece of FILE.


def quoted_blocks():
    text = GUIDE.read_text(encoding="utf-8")
    for match in re.finditer(r"^```(\w+)\n(.*?)^```", text, re.S | re.M):
        first, _, body = match.group(2).partition("\n")
        source = re.fullmatch(r"# (tests/guide/[\w./-]+)", first.strip())
        if source:
            yield source.group(1), body


def test_the_guide_quotes_the_example_verbatim():
    blocks = list(quoted_blocks())
    assert {path for path, _ in blocks} == {
        "tests/guide/tinyopt.py",
        "tests/guide/tinyopt_adapter.py",
        "tests/guide/tinyopt.toml",
    }
    for path, body in blocks:
        assert body.strip(), path
        assert body in (ROOT / path).read_text(encoding="utf-8"), f"the guide's excerpt of {path} has drifted"


def test_the_guide_is_linked():
    assert "docs/writing-an-adapter.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/writing-an-adapter.md" in (ROOT / "CONFORMANCE.md").read_text(encoding="utf-8")
