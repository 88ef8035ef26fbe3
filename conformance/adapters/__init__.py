"""Framework adapters. Each wrapper is imported on first use, so naming one never loads another framework."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["KerasAdapter", "OptaxAdapter", "TFKerasAdapter", "TFRawAdapter", "TorchAdapter"]

_HOME = {
    "TorchAdapter": "torch",
    "OptaxAdapter": "optax",
    "KerasAdapter": "keras",
    "TFKerasAdapter": "tf_keras",
    "TFRawAdapter": "tf_raw",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
