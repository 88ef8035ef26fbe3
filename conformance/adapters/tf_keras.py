"""Adapters for tf_keras (Keras 2): OptimizerV2 `optimizers.legacy.Adagrad` and the "new" `optimizers.Adagrad`."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from ._tf_common import KerasStyleAdapter, find_by_name, import_tensorflow

__all__ = ["TFKerasAdapter", "subjects"]


def _import_tf_keras() -> Any:
    import_tensorflow()
    import tf_keras

    return tf_keras


class TFKerasAdapter(KerasStyleAdapter):
    """tf_keras's Adagrad, or a user's tf_keras optimizer class taking the same keywords.

    Works with both tf_keras optimizer APIs: OptimizerV2 (`legacy`, slots via `get_slot`) and the new one (slots
    are variables named `<slot>/<variable>`). Parameters are `tf.Variable`s of the parameter dtype.
    """

    framework = "tf_keras.optimizers"
    built_in = MappingProxyType({"adagrad/tf-keras-v2": "legacy.Adagrad", "adagrad/keras3": "Adagrad"})

    def _optimizers_module(self) -> Any:
        return _import_tf_keras().optimizers

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
    return [TFKerasAdapter(dialect=dialect) for dialect in TFKerasAdapter.built_in]
