"""What the runner's self-tests share: the broken adapters' file, manifests written for a run, literal patterns."""

import pathlib
import textwrap

BROKEN = pathlib.Path(__file__).resolve().parent / "broken_adapters.py"


def write_manifest(pytester, body, name="known.toml"):
    """A manifest file in the pytester folder, from an indented TOML snippet."""
    path = pytester.path / name
    path.write_text(textwrap.dedent(body))
    return path


def literal(text):
    """`text` as an fnmatch pattern that matches it literally (only * stays a wildcard)."""
    return "".join({"[": "[[]", "]": "[]]"}.get(c, c) for c in text)
