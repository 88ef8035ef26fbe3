"""Hyperparameter plumbing shared by the families: type and range checks, and the dialect's rounding of scalars."""

from __future__ import annotations

import functools
import numbers
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import mpmath
import numpy as np

from ._arith import Ops
from ._numerics import DTYPES, FloatFormat, round_mpf

__all__ = ["HparamRounding", "check_range", "check_type", "refuse"]


def refuse(name: str, value: Any, requirement: str) -> NoReturn:
    """Raise the one error every refusal uses: the parameter, the value, what it must be."""
    raise ValueError(f"invalid {name}={value!r}: {requirement}")


def check_range(name: str, value: Any, rule: str, ok: bool) -> None:
    if not ok:
        refuse(name, value, f"must satisfy {rule}")


def check_type(name: str, value: Any, hint: Any) -> Any:
    """`value` as its hyperparameter's annotated type (`float` or `bool`, either possibly `| None`), or refused.

    A framework given a learning rate of "0.1" or maximize="no" crashes or, worse, takes "no" as true; the
    reference refuses the value by name instead. Any real number (a NumPy scalar, an int) becomes a Python float.
    """
    allowed = typing.get_args(hint) or (hint,)
    optional = type(None) in allowed
    if value is None and optional:
        return None
    if bool in allowed:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        refuse(name, value, "must be true or false" + (" or None" if optional else ""))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            refuse(name, value, "must be a number within the range of a float")
    refuse(name, value, "must be a number" + (" or None" if optional else ""))


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
        return ops.hyperparameter(self.exact_value(ops, name, x))

    def stored_at_once(self, ops: Ops, name: str, x: float) -> Any:
        """A hyperparameter that becomes a slot's first value (A0, Delta0): a plain constant, because storing it
        counts its one rounding into the format; as a `value` the rounding would be counted twice."""
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
