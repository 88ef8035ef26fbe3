"""Exact arithmetic helpers for Keras 3 optimizers: one rounding per value, whatever the backend does.

Shared by the community RProp classes and the broken-optimizer corpus, so that their correct parts agree.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["constant", "fill", "product_is_positive", "scaled"]


def constant(value: float, dtype: Any) -> Any:
    """`value` rounded once to `dtype`.

    Not `ops.cast(value, dtype)`: on TensorFlow that goes through float32 first, so float64 0.3 would become
    0.30000001192092896.
    """
    return ops.convert_to_tensor(value, dtype=dtype)


def fill(value: float) -> Any:
    """An initializer that fills a variable with `value`, rounded once to the variable's dtype."""

    def initializer(shape: Any, dtype: Any = None) -> np.ndarray:
        return np.full(shape, value, dtype=keras.backend.standardize_dtype(dtype))

    return initializer


def scaled(step: Any, factor: float) -> Any:
    """fl(step·factor) with `factor` unrounded: float64 arithmetic, then one rounding to the step's format.

    (On float32 this is a double rounding, which differs from a single one only when the float64 product
    lands exactly halfway between two float32 values.)
    """
    wide = ops.multiply(ops.cast(step, "float64"), constant(factor, "float64"))
    return ops.cast(wide, step.dtype)


# Half the smallest subnormal of each format: fl(x) > 0 exactly when x > this (a tie rounds to even, i.e. to 0).
_HALF_TINY = {"float16": 2.0**-25, "bfloat16": 2.0**-134, "float32": 2.0**-150}


def product_is_positive(a: Any, b: Any) -> Any:
    """Whether fl(a·b) > 0 in a's format, with gradual underflow, on a backend that flushes subnormals to zero.

    TensorFlow on CPU flushes subnormal results to zero, so float32 1e-19·1e-19 gives 0, while the format holds
    1e-38. So the sign is never taken from a possibly-subnormal product:
    - float32 and narrower: the float64 product of two such values is exact and normal, and it is compared with
      half the format's smallest subnormal.
    - float64: both factors are scaled by 2^538, so the threshold 2^-1075 becomes 2. This is exact unless the
      exact product lies within one ulp above the threshold. A factor that overflows to ±inf keeps the right sign,
      and inf·0 = NaN correctly compares false.
    Subnormal inputs are still read as 0 where the backend treats subnormal inputs as zero.
    """
    dtype = keras.backend.standardize_dtype(a.dtype)
    if dtype == "float64":
        scale = constant(2.0**538, "float64")
        return ops.greater(ops.multiply(ops.multiply(a, scale), ops.multiply(b, scale)), constant(2.0, "float64"))
    wide = ops.multiply(ops.cast(a, "float64"), ops.cast(b, "float64"))
    return ops.greater(wide, constant(_HALF_TINY[dtype], "float64"))
