"""One place for each family: its record under reference/families/. No other module asks which family it holds."""

import ast
import json
import pathlib
import re
import tomllib

import pytest

from reference import DIALECTS
from reference.dialects import LOSS_SLOT
from reference.families import FAMILIES

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMES = frozenset(FAMILIES)

# Files that may name a family, and why: nothing else may.
EXEMPT = {
    # the records themselves
    "reference/families/adagrad.py": "the Adagrad record",
    "reference/families/rprop.py": "the RProp record",
    # generated from vectors/schema.json, whose family enum test_the_schema_names_every_family checks
    "conformance/_vector_schema.py": "generated from the schema",
}
# Single lines that may name a family, and why.
ALLOWED_LINES = {
    # which torch.optim class implements a family is the torch adapter's knowledge of torch, not of the family
    ("conformance/adapters/torch.py", '_DEFAULT_CLASSES = {"adagrad": "Adagrad", "rprop": "Rprop"}'),
}


def _named(node):
    """The family names among a node's string constants (a constant, or one inside a tuple, list or set)."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [n.value for n in items if isinstance(n, ast.Constant) and n.value in NAMES]


def dispatches(source):
    """(line, family) for each place that compares with a family name, keys a dict by one, or looks one up."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            names = [name for operand in (node.left, *node.comparators) for name in _named(operand)]
        elif isinstance(node, ast.Dict):
            names = [name for key in node.keys if key is not None for name in _named(key)]
        elif isinstance(node, ast.Subscript):
            names = _named(node.slice)
        elif isinstance(node, ast.Call):  # dict(adagrad=...), or .get("adagrad")
            names = [k.arg for k in node.keywords if k.arg in NAMES]
            if isinstance(node.func, ast.Attribute) and node.func.attr in {"get", "pop", "setdefault"} and node.args:
                names += _named(node.args[0])
        elif isinstance(node, ast.MatchValue):
            names = _named(node.value)
        else:
            continue
        found.extend((node.lineno, name) for name in names)
    return sorted(set(found))


def test_no_module_dispatches_on_a_family_name():
    offending = []
    for package in ("reference", "conformance"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in EXEMPT:
                continue
            source = path.read_text()
            lines = source.splitlines()
            for lineno, name in dispatches(source):
                line = lines[lineno - 1].strip()
                if (relative, line) not in ALLOWED_LINES:
                    offending.append(f"{relative}:{lineno}: dispatches on {name!r}: {line}")
    assert not offending, "read the family's record instead:\n" + "\n".join(offending)


@pytest.mark.parametrize(
    "source",
    [
        'if dialect.family.name == "rprop": pass',
        'x = 0.15 if family != "adagrad" else 0.05',
        'ok = name in ("adagrad", "rprop")',
        'TABLE = {"adagrad": 1}',
        'k = TABLE["rprop"]',
        'k = TABLE.get("rprop", 0)',
        "TABLE = dict(adagrad=1)",
        'match f:\n    case "rprop":\n        pass',
    ],
)
def test_the_scan_finds_a_planted_dispatch(source):
    assert dispatches(source), source


def test_the_scan_leaves_ids_and_plain_names_alone():
    source = 'x = {"adagrad/optax": 1}; doc["family"] = dialect.family.name; y = d.id.startswith(prefix)'
    assert dispatches(source) == []


def test_every_dialect_belongs_to_a_registered_family():
    for dialect_id, dialect in DIALECTS.items():
        assert dialect_id.split("/")[0] in FAMILIES, dialect_id
        assert set(dialect.slots) <= set(dialect.family.slots), dialect_id


def test_every_record_bounds_every_quantity_it_reports():
    for dialect in DIALECTS.values():
        canonical = {name: c for c, name in dialect.slots.items()}
        for quantity in ("params", *(canonical.get(s, s) for s in dialect.reported_slots)):
            assert quantity in dialect.family.tolerance, (dialect.id, quantity)
    assert all(slot != LOSS_SLOT for family in FAMILIES.values() for slot in family.slots)


def test_the_schema_names_every_family():
    """The schema keeps its own enum (it is read without optconf), so it is held to the records here."""
    properties = json.loads((ROOT / "vectors" / "schema.json").read_text())["properties"]
    assert sorted(properties["family"]["enum"]) == sorted(FAMILIES)
    pattern = re.compile(properties["dialect"]["pattern"])
    assert all(pattern.match(dialect_id) for dialect_id in DIALECTS)
    assert not pattern.match("nofamily/x")


def test_the_wheel_ships_every_familys_corpus():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert {f"optconf_vectors.{name}" for name in FAMILIES} <= set(packages)
    assert {f"optconf_vectors.{path.name}" for path in (ROOT / "vectors").iterdir() if path.is_dir()} <= set(packages)
