"""Sections of the documents (CONFORMANCE.md, docs/guide.md) that are generated from code, between BEGIN/END markers."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

from reference.describe import dialects_section

__all__ = ["DOCUMENTS", "GENERATED", "render", "stale", "stale_sections", "write"]

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _type_of(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return f"[{spec['$ref'].rsplit('/', 1)[-1]}](#{spec['$ref'].rsplit('/', 1)[-1].lower()})"
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "oneOf" in spec:
        return " or ".join(_type_of(option) for option in spec["oneOf"])
    kind = spec.get("type", "any")
    kind = " \\| ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and "items" in spec:
        return f"array of {_type_of(spec['items'])}"
    if kind == "object" and isinstance(spec.get("additionalProperties"), dict):
        return f"object of {_type_of(spec['additionalProperties'])}"
    if "pattern" in spec:
        return f"{kind} `{spec['pattern'].replace('|', chr(92) + '|')}`"
    return kind


def _object_table(name: str, spec: dict[str, Any]) -> list[str]:
    lines = [f"#### {name}", ""]
    if spec.get("description"):
        lines += [spec["description"], ""]
    properties = spec.get("properties")
    if not properties:
        return [*lines, f"Type: {_type_of(spec)}.", ""]
    required = set(spec.get("required", ()))
    lines += ["| Field | Required | Type | Meaning |", "| --- | --- | --- | --- |"]
    for field_name, field_spec in properties.items():
        mark = "yes" if field_name in required else "no"
        meaning = field_spec.get("description", "")
        lines.append(f"| `{field_name}` | {mark} | {_type_of(field_spec)} | {meaning} |")
    return [*lines, ""]


def vector_format_section(schema_path: pathlib.Path | None = None) -> str:
    """The vector format, rendered from vectors/schema.json so the two cannot drift."""
    schema = json.loads((schema_path or ROOT / "vectors" / "schema.json").read_text(encoding="utf-8"))
    lines = _object_table("file", schema)
    for name, spec in schema["$defs"].items():
        lines += _object_table(name, spec)
    return "\n".join(lines).rstrip() + "\n"


def options_section() -> str:
    """The pytest options, from the plugin's own table."""
    from conformance.plugin import OPTIONS

    lines = ["| Option | Environment | Meaning |", "| --- | --- | --- |"]
    for name, env, kwargs in OPTIONS:
        metavar = f" {kwargs['metavar']}" if "metavar" in kwargs else ""
        lines.append(f"| `{name}{metavar}` | {f'`{env}`' if env else ''} | {kwargs['help']} |")
    return "\n".join(lines) + "\n"


def checks_section() -> str:
    """The checks, from the docstrings of the functions that run them."""
    from conformance.checks import REGISTRY

    lines = ["| Check | What it asserts |", "| --- | --- |"]
    for check in REGISTRY:
        if check.function is not None:
            doc = " ".join((check.function.__doc__ or "").split())
            lines.append(f"| `test_{check.name}` | {doc} |")
    return "\n".join(lines) + "\n"


def flags_section() -> str:
    """The case flags, from reference/vectors/flags.py, where each is defined."""
    from reference.vectors.flags import FLAGS

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| Flag | What the case tests | The defect it catches |", "| --- | --- | --- |"]
    for name, note in FLAGS.items():
        links = " ".join(f"<{link}>" for link in note.links)
        bug = " ".join(part for part in (cell(note.bug or ""), links) if part)
        lines.append(f"| `{name}` | {cell(note.description)} | {bug} |")
    return "\n".join(lines) + "\n"


def tolerance_section() -> str:
    """The k table: each family record's bounds (conformance/tolerance.py collects them)."""
    from conformance.tolerance import K_TABLE

    lines = ["| Family | Quantity | k | Why |", "| --- | --- | --- | --- |"]
    for (family, quantity), bound in K_TABLE.items():
        lines.append(f"| {family} | {quantity} | {bound.k:g} | {bound.source} |")
    return "\n".join(lines) + "\n"


def selftest_section() -> str:
    """The broken-optimizer corpus, from conformance.selftest."""
    from conformance.selftest import SUBJECTS

    lines = ["| Subject | Dialect | Defect | Caught first by |", "| --- | --- | --- | --- |"]
    for subject in SUBJECTS:
        check = f"`test_{subject.expected_check}`" if subject.expected_check else "passes (a correct control)"
        defect = subject.defect or "none"
        lines.append(f"| `{subject.name}` | `{subject.dialect}` | {defect} | {check} |")
    return "\n".join(lines) + "\n"


GENERATED: dict[str, Callable[[], str]] = {
    "selftest": selftest_section,
    "dialects": dialects_section,
    "vector-format": vector_format_section,
    "options": options_section,
    "checks": checks_section,
    "flags": flags_section,
    "tolerance-table": tolerance_section,
}


# Which document holds each generated section, relative to the checkout: each section lives in exactly one.
DOCUMENTS: dict[str, tuple[str, ...]] = {
    "CONFORMANCE.md": ("selftest", "dialects", "vector-format", "checks", "flags", "tolerance-table"),
    "docs/guide.md": ("options",),
}


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN GENERATED: {name} (optconf docs) -->\n", f"<!-- END GENERATED: {name} -->"


def render(text: str, names: Iterable[str], document: str = "the document") -> str:
    """`text` with each generated section of `names` replaced by its current rendering."""
    for name in names:
        begin, end = _markers(name)
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"{document} lacks the markers of the generated section {name!r}")
        text = text[: start + len(begin)] + GENERATED[name]() + text[stop:]
    return text


def stale_sections(path: pathlib.Path, names: Iterable[str]) -> list[str]:
    """The sections of `names` in the document at `path` that differ from their current rendering."""
    names = list(names)
    text = path.read_text(encoding="utf-8")
    fresh = render(text, names, str(path))
    found = []
    for name in names:
        begin, end = _markers(name)
        if text[text.find(begin) : text.find(end)] != fresh[fresh.find(begin) : fresh.find(end)]:
            found.append(name)
    return found


def stale(root: pathlib.Path = ROOT) -> list[str]:
    """Every out-of-date generated section of the checkout at `root`, as "DOCUMENT: section"."""
    return [f"{doc}: {name}" for doc, names in DOCUMENTS.items() for name in stale_sections(root / doc, names)]


def write(root: pathlib.Path = ROOT) -> None:
    """Rewrite every generated section of the checkout at `root`."""
    for doc, names in DOCUMENTS.items():
        path = root / doc
        path.write_text(render(path.read_text(encoding="utf-8"), names, doc), encoding="utf-8")
