"""The generated sections of CONFORMANCE.md and docs/guide.md match the code, and each lives in one document."""

import pathlib

from conformance.docs import DOCUMENTS, GENERATED, stale

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_generated_sections_are_current():
    assert stale(ROOT) == [], "run `optconf docs`"


def test_every_generated_section_has_one_document():
    placed = [name for names in DOCUMENTS.values() for name in names]
    assert sorted(placed) == sorted(GENERATED)
