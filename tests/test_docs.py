"""CONFORMANCE.md's generated sections match the code."""

import pathlib

from conformance.docs import stale_sections

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_generated_sections_are_current():
    assert stale_sections(ROOT / "CONFORMANCE.md") == [], "run `optconf docs`"
