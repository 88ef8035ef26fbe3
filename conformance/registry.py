"""The built-in implementations, in one table: what `--impl=NAME` loads, what installs it, how to tell it is
installed, its known-failure manifest, and the runs `optconf matrix` makes of it.

Adding a built-in framework is one adapter module (with `subjects()`), one manifest, and one line here.
"""

from __future__ import annotations

import importlib.util
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["BUILT_INS", "BuiltIn", "MatrixRun", "built_in", "manifest_path", "matrix_runs"]

MANIFESTS = pathlib.Path(__file__).resolve().parent / "manifests"


@dataclass(frozen=True)
class MatrixRun:
    """One process of `optconf matrix`: a built-in under an environment (Keras 3 picks its backend per process)."""

    name: str  # how the matrix names the run: the built-in's name, or NAME@VARIANT
    impl: str  # the --impl it passes
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    requires: tuple[str, ...] = ()  # the modules whose presence means the run can be made

    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


@dataclass(frozen=True)
class BuiltIn:
    name: str  # the --impl name
    module: str  # the adapter module; its subjects() returns the adapters
    requires: str  # the module whose presence means the framework is installed
    extra: str | None  # the pip extra of optconf that installs it (None: always installed)
    manifest: str | None  # its known-failure manifest in conformance/manifests/, applied unless told not to
    # Further matrix runs under another environment: variant name -> (environment, also required module).
    variants: Mapping[str, tuple[Mapping[str, str], str]] = field(default_factory=lambda: MappingProxyType({}))

    def runs(self) -> list[MatrixRun]:
        own = MatrixRun(self.name, self.name, requires=(self.requires,))
        return [own] + [
            MatrixRun(f"{self.name}@{variant}", self.name, MappingProxyType(dict(env)), (self.requires, module))
            for variant, (env, module) in self.variants.items()
        ]


BUILT_INS: tuple[BuiltIn, ...] = (
    BuiltIn("reference", "conformance.adapters.reference", "numpy", None, None),
    BuiltIn("torch", "conformance.adapters.torch", "torch", "torch", "torch"),
    BuiltIn(
        "keras",
        "conformance.adapters.keras",
        "keras",
        "tensorflow",
        "keras",
        MappingProxyType(
            {
                "jax": ({"KERAS_BACKEND": "jax", "JAX_ENABLE_X64": "1"}, "jax"),
                "torch": ({"KERAS_BACKEND": "torch"}, "torch"),
            }
        ),
    ),
    BuiltIn("tf_keras", "conformance.adapters.tf_keras", "tf_keras", "tensorflow", "tf_keras"),
    BuiltIn("tf_raw", "conformance.adapters.tf_raw", "tensorflow", "tensorflow", "tf_raw"),
    BuiltIn("optax", "conformance.adapters.optax", "optax", "jax", "optax"),
    BuiltIn("onnx", "conformance.adapters.onnx", "onnx", "onnx", "onnx"),
    BuiltIn("paddle", "conformance.adapters.paddle", "paddle", "paddle", "paddle"),
    BuiltIn("mindspore", "conformance.adapters.mindspore", "mindspore", "mindspore", "mindspore"),
    BuiltIn("community", "conformance.community", "keras", "tensorflow", "community"),
    BuiltIn("jax_example", "conformance.adapters.jax_example", "jax", "jax", "jax_example"),
    BuiltIn("mlx", "conformance.adapters.mlx", "mlx", "mlx", "mlx"),
)


def built_in(name: str) -> BuiltIn | None:
    return next((b for b in BUILT_INS if b.name == name), None)


def manifest_path(stem: str) -> pathlib.Path:
    return MANIFESTS / f"{stem}.toml"


def matrix_runs() -> list[MatrixRun]:
    """Every run of `optconf matrix`, in the matrix's order: each built-in, then its variants."""
    own = [b.runs()[0] for b in BUILT_INS]
    variants = [run for b in BUILT_INS for run in b.runs()[1:]]
    return own + variants
