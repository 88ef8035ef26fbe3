"""Sections of CONFORMANCE.md that are generated from code, between BEGIN/END markers."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

from reference.describe import dialects_section

__all__ = ["GENERATED", "SCHEMA_VALIDATOR", "render", "schema_validator_source", "stale_sections"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEMA_VALIDATOR = pathlib.Path(__file__).with_name("_vector_schema.py")

GENERATED: dict[str, Callable[[], str]] = {"dialects": dialects_section}


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN GENERATED: {name} (optconf docs) -->\n", f"<!-- END GENERATED: {name} -->"


def render(text: str) -> str:
    """`text` with every generated section replaced by its current rendering."""
    for name, produce in GENERATED.items():
        begin, end = _markers(name)
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"CONFORMANCE.md lacks the markers of the generated section {name!r}")
        text = text[: start + len(begin)] + produce() + text[stop:]
    return text


def stale_sections(path: pathlib.Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    fresh = render(text)
    stale = []
    for name in GENERATED:
        begin, end = _markers(name)
        if text[text.find(begin) : text.find(end)] != fresh[fresh.find(begin) : fresh.find(end)]:
            stale.append(name)
    return stale


def schema_validator_source(schema_path: pathlib.Path = ROOT / "vectors" / "schema.json") -> str:
    """The corpus validator compiled from vectors/schema.json to plain Python, so loading never execs code."""
    import fastjsonschema

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    header = "# Generated from vectors/schema.json by `optconf docs` (fastjsonschema); do not edit.\n"
    return header + "# ruff: noqa\n" + fastjsonschema.compile_to_code(schema)
