"""Sections of CONFORMANCE.md that are generated from code, between BEGIN/END markers."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from reference.describe import dialects_section

__all__ = ["GENERATED", "render", "stale_sections"]

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
