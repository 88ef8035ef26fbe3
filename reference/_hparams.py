"""Hyperparameter plumbing shared by the families: range checks and the dialect's rounding of scalars."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath

from ._arith import Ops
from ._numerics import DTYPES, FloatFormat, round_mpf

__all__ = ["HparamRounding", "check_range"]


def check_range(name: str, value: Any, rule: str, ok: bool) -> None:
    """Raise the one error every refusal uses: the parameter, the accepted range, the value."""
    if not ok:
        raise ValueError(f"invalid {name}={value!r}: must satisfy {rule}")


@dataclass(frozen=True)
class HparamRounding:
    """Which scalars the framework rounds before use, by canonical name.

    `to_float32`: rounded to float32 even for float64 variables (TF keeps Python floats in float32 tensors).
    `to_param_format`: then rounded to the parameter's format (TF casts to the variable dtype; torch rounds
    Rprop's etas to the parameter dtype).
    """

    to_float32: frozenset[str] = frozenset()
    to_param_format: frozenset[str] = frozenset()

    def exact_value(self, ops: Ops, name: str, x: float) -> mpmath.mpf:
        return _rounded(self, name, float(x), ops.fmt)

    def value(self, ops: Ops, name: str, x: float) -> Any:
        return ops.const(self.exact_value(ops, name, x))

    def bind(self, ops: Ops) -> Callable[[str, float], Any]:
        return lambda name, x: self.value(ops, name, x)


@functools.cache
def _rounded(rounding: HparamRounding, name: str, x: float, fmt: FloatFormat) -> mpmath.mpf:
    # Cached: every step rounds the same few hyperparameters, and the rounding is integer arithmetic on the
    # float's exact value, so it does not depend on the ambient mpmath precision.
    value = mpmath.mpf(x)
    if name in rounding.to_float32:
        value = round_mpf(value, DTYPES["float32"])
    if name in rounding.to_param_format:
        value = round_mpf(value, fmt)
    return value
