"""Adapter for Keras 3 `keras.optimizers.Adagrad`, on whichever backend KERAS_BACKEND selects (default TF)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._tf_common import KerasStyleAdapter, find_by_name, quiet_tf_logging

__all__ = ["KerasAdapter", "subjects"]

_BUILT_IN = {"adagrad/keras3": "Adagrad"}


def _import_keras() -> Any:
    quiet_tf_logging()  # harmless on the JAX and torch backends
    import keras

    return keras


class KerasAdapter(KerasStyleAdapter):
    """Keras 3's Adagrad, or a user's Keras 3 optimizer class taking the same keywords.

    Parameters are `keras.Variable`s of the parameter dtype; slots are the optimizer variables that
    `add_variable_from_reference(var, "<slot>")` creates, named `<variable path>_<slot>`.
    Note: on the JAX backend float64 needs `jax_enable_x64`, or JAX silently computes in float32.
    """

    def __init__(
        self,
        optimizer_class: Any = None,
        *,
        dialect: str,
        name: str | None = None,
        slots: Mapping[str, str] | None = None,
    ) -> None:
        if optimizer_class is None and dialect not in _BUILT_IN:
            raise ValueError(f"Keras 3 has no built-in optimizer for {dialect}; pass optimizer_class")
        super().__init__(optimizer_class, dialect=dialect, name=name, slots=slots)

    def _default_name(self) -> str:
        if self._optimizer_class is not None:
            return f"{self._optimizer_class.__module__}.{self._optimizer_class.__qualname__}"
        return f"keras.optimizers.{_BUILT_IN[self.dialect]}"

    def _default_class(self) -> Any:
        return getattr(_import_keras().optimizers, _BUILT_IN[self.dialect])

    def _variable(self, value: np.ndarray, name: str) -> Any:
        return _import_keras().Variable(value, dtype=value.dtype.name, name=name)

    def _to_tensor(self, value: np.ndarray) -> Any:
        return _import_keras().ops.convert_to_tensor(value)

    def _find_slot(self, optimizer: Any, variable: Any, own_name: str) -> Any:
        return find_by_name(optimizer, f"{variable.path.replace('/', '_')}_{own_name}")


def subjects() -> list[KerasAdapter]:
    """The built-in Keras 3 Adagrad on the configured backend."""
    return [KerasAdapter(dialect=dialect) for dialect in _BUILT_IN]
