"""A manifest entry for level-2 cases: applied at level 2, neither applied nor stale at level 1."""

from __future__ import annotations

import textwrap

import pytest

from conformance.manifest import ManifestError, load_manifest

pytest_plugins = ["pytester"]

# Every level-2 trajectory of the reference's adagrad/torch in float32 passes: an xfail entry on them XPASSes at
# level 2 (proof that the selector reaches them), and at level 1 it must select nothing and not count as stale.
ENTRY = """
[[entry]]
impl = "reference"
dialect = "adagrad/torch"
dtype = "float32"
check = "trajectory"
level = 2
mode = "xfail"
expect = "never"
reason = "an entry aimed at level-2 cases only"
"""


def run(pytester: pytest.Pytester, level: int) -> pytest.RunResult:
    manifest = pytester.makefile(".toml", manifest=textwrap.dedent(ENTRY))
    return pytester.runpytest_inprocess(
        "--pyargs",
        "conformance",
        "--impl=reference",
        f"--manifest={manifest}",
        "--strict-manifest",
        f"--optconf-level={level}",
        "-k",
        "adagrad/torch-float32 and trajectory",
        "-p",
        "no:cacheprovider",
        "-q",
    )


def test_at_level_1_the_entry_selects_nothing_and_is_not_stale(pytester: pytest.Pytester) -> None:
    result = run(pytester, 1)
    assert result.ret == 0, result.stdout.str()[-2000:]
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] > 0 and "xpassed" not in outcomes and "xfailed" not in outcomes


def test_at_level_2_the_entry_selects_the_level_2_cases(pytester: pytest.Pytester) -> None:
    result = run(pytester, 2)
    assert result.ret == 1  # strict xfails that pass: the entry reached exactly the level-2 cases
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] > 0 and outcomes["failed"] > 0


def test_a_level_must_be_1_or_2(tmp_path) -> None:
    path = tmp_path / "m.toml"
    for bad in ('"2"', "3", "[]", "true"):
        path.write_text(ENTRY.replace("level = 2", f"level = {bad}"))
        with pytest.raises(ManifestError, match="level must be 1, 2 or a list of them"):
            load_manifest(path)
