"""The tolerance model: |got - expected| <= k * u * S + tiny, with k from the family's record, exact classes exact.

S is the element's error scale from the corpus (CONFORMANCE.md, "Tolerance"); u and tiny are the compared
format's unit roundoff and smallest subnormal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference import Dialect
from reference._numerics import FloatFormat
from reference.families import FAMILIES
from reference.family import Bound

__all__ = [
    "K_TABLE",
    "Bound",
    "Judged",
    "bound_for",
    "bound_of",
    "exact_class_mismatch",
    "judge",
    "ordered_bits",
    "scaled_error",
    "ulp_distance",
]


# (family, canonical quantity) -> k, the same for every format: S already scales with the format's u. Each family's
# record declares its own; this is their union, for lookups by name and the documentation's table.
K_TABLE: dict[tuple[str, str], Bound] = {
    (family.name, quantity): bound for family in FAMILIES.values() for quantity, bound in family.tolerance.items()
}


def bound_for(family: str, quantity: str) -> Bound:
    try:
        return K_TABLE[family, quantity]
    except KeyError:
        raise ValueError(f"no tolerance for {family} {quantity}") from None


def bound_of(dialect: Dialect, quantity: str) -> Bound:
    """The bound of a quantity as a trajectory reports it: 'params', or a slot by the dialect's own name."""
    canonical = {name: c for c, name in dialect.slots.items()}.get(quantity, quantity)
    return bound_for(dialect.family.name, canonical)


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


def exact_class_mismatch(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Where the special-value class differs: NaN vs not, +inf/-inf, and the sign of a zero."""
    g = np.asarray(got, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    nan = np.isnan(g) != np.isnan(e)
    inf = (np.isinf(g) | np.isinf(e)) & ~(np.isnan(g) | np.isnan(e)) & (g != e)
    zero = (e == 0) & (g == 0) & (np.signbit(g) != np.signbit(e))
    return nan | inf | zero


@dataclass(frozen=True)
class Judged:
    """The tolerance test of one tensor, element by element."""

    needed: np.ndarray  # the k each element needs (`scaled_error`)
    special: np.ndarray  # where the special-value class differs, which no k allows
    outside: np.ndarray  # where the element fails: its class differs, or it needs more than the bound's k


def judge(got: np.ndarray, expected: np.ndarray, scale: np.ndarray, fmt: FloatFormat, k: float) -> Judged:
    """The one pass/fail test of the tolerance model: within k·u·S + tiny, and NaN, inf and the sign of zero exact.

    The checks, `optconf explain` and the project's tests all judge values here, so they cannot disagree.
    """
    special = exact_class_mismatch(got, expected)
    needed = scaled_error(got, expected, scale, fmt)
    return Judged(needed, special, special | (needed > k))
