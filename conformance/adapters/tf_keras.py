"""Adapters for tf_keras (Keras 2): OptimizerV2 `optimizers.legacy.Adagrad` and the "new" `optimizers.Adagrad`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._tf_common import KerasStyleAdapter, find_by_name, import_tensorflow

__all__ = ["TFKerasAdapter", "subjects"]

# The built-in class for each dialect, as an attribute path under tf_keras.optimizers.
_BUILT_IN = {"adagrad/tf-keras-v2": "legacy.Adagrad", "adagrad/keras3": "Adagrad"}


def _import_tf_keras() -> Any:
    import_tensorflow()
    import tf_keras

    return tf_keras


class TFKerasAdapter(KerasStyleAdapter):
    """tf_keras's Adagrad, or a user's tf_keras optimizer class taking the same keywords.

    Works with both tf_keras optimizer APIs: OptimizerV2 (`legacy`, slots via `get_slot`) and the new one (slots
    are variables named `<slot>/<variable>`). Parameters are `tf.Variable`s of the parameter dtype.
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
            raise ValueError(f"tf_keras has no built-in optimizer for {dialect}; pass optimizer_class")
        super().__init__(optimizer_class, dialect=dialect, name=name, slots=slots)

    def _default_name(self) -> str:
        if self._optimizer_class is not None:
            return f"{self._optimizer_class.__module__}.{self._optimizer_class.__qualname__}"
        return f"tf_keras.optimizers.{_BUILT_IN[self.dialect]}"

    def _default_class(self) -> Any:
        namespace = _import_tf_keras().optimizers
        for attribute in _BUILT_IN[self.dialect].split("."):
            namespace = getattr(namespace, attribute)
        return namespace

    def _variable(self, value: np.ndarray, name: str) -> Any:
        return import_tensorflow().Variable(value, name=name)

    def _to_tensor(self, value: np.ndarray) -> Any:
        return import_tensorflow().convert_to_tensor(value)

    def _build(self, optimizer: Any, variables: list[Any]) -> None:
        if _is_legacy(optimizer):
            # Note: OptimizerV2 has no public `build`; this is what its `apply_gradients` calls first.
            optimizer._create_all_weights(variables)
        else:
            optimizer.build(variables)

    def _find_slot(self, optimizer: Any, variable: Any, own_name: str) -> Any:
        if _is_legacy(optimizer):
            return optimizer.get_slot(variable, own_name)
        return find_by_name(optimizer, f"{own_name}/{variable.name.split(':')[0]}")


def _is_legacy(optimizer: Any) -> bool:
    return isinstance(optimizer, _import_tf_keras().optimizers.legacy.Optimizer)


def subjects() -> list[TFKerasAdapter]:
    """The built-in tf_keras Adagrads, one per API generation."""
    return [TFKerasAdapter(dialect=dialect) for dialect in _BUILT_IN]
