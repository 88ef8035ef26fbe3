"""Hyperparameter plumbing shared by the families: range checks and the dialect's rounding of scalars."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath

from ._arith import Ops
from ._numerics import DTYPES, round_mpf

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
        value = mpmath.mpf(float(x))
        if name in self.to_float32:
            value = round_mpf(value, DTYPES["float32"])
        if name in self.to_param_format:
            value = round_mpf(value, ops.fmt)
        return value

    def value(self, ops: Ops, name: str, x: float) -> Any:
        return ops.const(self.exact_value(ops, name, x))

    def bind(self, ops: Ops) -> Callable[[str, float], Any]:
        return lambda name, x: self.value(ops, name, x)
