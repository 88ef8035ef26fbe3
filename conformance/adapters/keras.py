"""Adapter for Keras 3 `keras.optimizers.Adagrad`, on whichever backend KERAS_BACKEND selects (default TF)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from ._tf_common import KerasStyleAdapter, find_by_name, quiet_tf_logging

__all__ = ["KerasAdapter", "subjects"]


def _import_keras() -> Any:
    quiet_tf_logging()  # harmless on the JAX and torch backends
    import keras

    return keras


class KerasAdapter(KerasStyleAdapter):
    """Keras 3's Adagrad, or a user's Keras 3 optimizer class taking the same keywords.

    Parameters are `keras.Variable`s of the parameter dtype; slots are the optimizer variables that
    `add_variable_from_reference(var, "<slot>")` creates, named `<variable path>_<slot>`.
    Note: on the JAX backend float64 needs `jax_enable_x64`; without it `create` refuses float64 parameters.
    """

    framework = "keras.optimizers"
    built_in = MappingProxyType({"adagrad/keras3": "Adagrad"})

    def _optimizers_module(self) -> Any:
        return _import_keras().optimizers

    def _variable(self, value: np.ndarray, name: str) -> Any:
        return _import_keras().Variable(value, dtype=value.dtype.name, name=name)

    def _to_tensor(self, value: np.ndarray) -> Any:
        return _import_keras().ops.convert_to_tensor(value)

    def _find_slot(self, optimizer: Any, variable: Any, own_name: str) -> Any:
        return find_by_name(optimizer, f"{variable.path.replace('/', '_')}_{own_name}")


def subjects() -> list[KerasAdapter]:
    """The built-in Keras 3 Adagrad on the configured backend."""
    return [KerasAdapter(dialect=dialect) for dialect in KerasAdapter.built_in]
