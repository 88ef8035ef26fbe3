"""Editing a scratch copy of the corpus, for the tests that check what the loader refuses."""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
from collections.abc import Callable
from typing import Any

from conformance.corpus import default_root
from reference.vectors.generate import manifest

ROOT = default_root()


def copy_corpus(tmp_path: pathlib.Path) -> pathlib.Path:
    target = tmp_path / "vectors"
    shutil.copytree(ROOT, target)
    return target


def rehash_manifest(root: pathlib.Path) -> None:
    """A careless regeneration: MANIFEST.json agrees with the files as they are, so content checks must fire."""
    files = {k: (root / k).read_bytes() for k in json.loads((root / "MANIFEST.json").read_text())["files"]}
    (root / "MANIFEST.json").write_text(json.dumps(json.loads(manifest(files))))


def pin(root: pathlib.Path, relative: str) -> None:
    """Only the SHA-256 of one file brought up to date: for a file that no longer parses, which the manifest
    generator cannot read."""
    digest = hashlib.sha256((root / relative).read_bytes()).hexdigest()

    def edit(doc: Any) -> Any:
        doc["files"][relative]["sha256"] = digest
        return doc

    edit_manifest(root, edit)


def edit_manifest(root: pathlib.Path, edit: Callable[[Any], Any]) -> None:
    """MANIFEST.json replaced by what `edit` makes of its parsed JSON."""
    path = root / "MANIFEST.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def rewrite(root: pathlib.Path, relative: str, edit: Callable[[str], str], rehash: bool) -> None:
    path = root / relative
    path.write_text(edit(path.read_text()))
    if rehash:
        rehash_manifest(root)


def edit_json(root: pathlib.Path, relative: str, edit: Callable[[Any], None]) -> None:
    """A file's parsed JSON edited in place by `edit`, written back, and the manifest rehashed."""

    def apply(text: str) -> str:
        doc = json.loads(text)
        edit(doc)
        return json.dumps(doc)

    rewrite(root, relative, apply, rehash=True)


def flip_hex(text: str) -> str:
    marker = '"hex": ["0x'
    at = text.index(marker) + len(marker)
    return text[:at] + ("1" if text[at] != "1" else "2") + text[at + 1 :]
