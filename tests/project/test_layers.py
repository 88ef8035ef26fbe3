"""Import layering: reference is a leaf package; nothing imports a framework it does not need."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
FRAMEWORKS = ("torch", "tensorflow", "tf_keras", "keras", "jax", "optax", "mlx")


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_reference_never_imports_conformance_or_a_framework():
    for path in (ROOT / "reference").rglob("*.py"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            assert top != "conformance", f"{path.name} imports {module}"
            assert top not in FRAMEWORKS, f"{path.name} imports {module}"


def test_importing_reference_and_cli_loads_no_framework():
    code = (
        "import sys, reference, conformance.cli, conformance.adapter, conformance.tolerance;"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_plugin_and_a_spec_import_only_their_own_framework():
    code = (
        "import sys, conformance.plugin, conformance.spec as s; s.resolve('reference');"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules]);"
        "s.resolve('torch'); print(sorted(m for m in ('tensorflow', 'jax', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"]


def test_the_registry_is_the_one_place_for_built_ins():
    """Every built-in names an extra that pyproject.toml defines, an importable adapter module with subjects(), and
    a manifest that exists; every shipped manifest belongs to a built-in (or to one backend of Keras 3)."""
    import importlib.util
    import tomllib

    from conformance.registry import BUILT_INS, MANIFESTS, manifest_path

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for entry in BUILT_INS:
        assert entry.extra is None or entry.extra in extras, entry.name
        assert importlib.util.find_spec(entry.module) is not None, entry.module
        assert entry.manifest is None or manifest_path(entry.manifest).is_file(), entry.name
    stems = {entry.manifest for entry in BUILT_INS} | {f"keras-{v}" for v in BUILT_INS[2].variants}
    assert {path.stem for path in MANIFESTS.glob("*.toml")} <= stems
