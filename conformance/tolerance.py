"""Distances between floats: ulps along the format's number line, and the error in units of u * S."""

from __future__ import annotations

import numpy as np

from reference._numerics import FloatFormat

__all__ = ["ordered_bits", "scaled_error", "ulp_distance"]


def ordered_bits(values: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Map floats to integers that are adjacent for adjacent floats (-0 and +0 both map to 0)."""
    raw = np.asarray(values, dtype=fmt.np_dtype).view(fmt.uint_dtype).astype(np.uint64)
    magnitude = (raw & np.uint64((1 << (fmt.bits - 1)) - 1)).astype(np.int64)
    negative = (raw >> np.uint64(fmt.bits - 1)).astype(bool)
    return np.where(negative, -magnitude, magnitude)


def ulp_distance(got: np.ndarray, expected: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """How many representable values lie between got and expected; 0 where both are NaN, huge for a lone NaN."""
    got_nan, exp_nan = np.isnan(np.asarray(got, dtype=np.float64)), np.isnan(np.asarray(expected, dtype=np.float64))
    distance = np.abs(ordered_bits(got, fmt) - ordered_bits(expected, fmt))
    distance = np.where(got_nan | exp_nan, np.iinfo(np.int64).max, distance)
    return np.where(got_nan & exp_nan, 0, distance)


def scaled_error(got: np.ndarray, expected: np.ndarray, scale: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """|got - expected| / (u * S + tiny): the k that this element needs (special values: 0 if identical)."""
    g = np.asarray(got, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.abs(g - e)
    same_special = (np.isnan(g) & np.isnan(e)) | (np.isinf(g) & (g == e))
    diff = np.where(same_special, 0.0, np.where(np.isnan(diff), np.inf, diff))
    return diff / (fmt.unit_roundoff * np.asarray(scale, dtype=np.float64) + fmt.smallest_subnormal)
