"""RProp written against `keras.optimizers.Optimizer` (Keras 3) in the `rprop/keras-answer` dialect: the accepted
answer to the Stack Overflow question "Keras - implementing Rprop algorithm" done right, and the question's class
with each of its bugs alone.

Each broken class subclasses the correct one and overrides one small method, so that the defect is the whole
difference. Its docstring names the defect and the check expected to catch it first, in the runner's order:
trajectory, teacher_forced, counter_and_slots, config_round_trip, checkpoint, inputs_not_mutated, replicas,
invalid_hparams.

Slots are optimizer variables made with `add_variable_from_reference(variable, "alphas" | "old_grads")`, which is
where `conformance.adapters.KerasAdapter` looks for them; the counter is Keras' own `iterations`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = [
    "EtaPlusOnSignChange",
    "LaggedStepSize",
    "MaxStepOnSignChange",
    "PreviousGradientIsParameter",
    "SelftestKerasRprop",
]


def _constant(value: float, dtype: Any) -> Any:
    """`value` rounded once to `dtype` (not `ops.cast`, which on TensorFlow goes through float32 first)."""
    return ops.convert_to_tensor(value, dtype=dtype)


def _fill(value: float) -> Any:
    def initializer(shape: Any, dtype: Any = None) -> np.ndarray:
        return np.full(shape, value, dtype=keras.backend.standardize_dtype(dtype))

    return initializer


def _scaled(step: Any, factor: float) -> Any:
    """fl(step·factor) with the factor unrounded: the product in float64, rounded once to the step's format."""
    wide = ops.multiply(ops.cast(step, "float64"), _constant(factor, "float64"))
    return ops.cast(wide, step.dtype)


# Half the smallest subnormal of float32: fl32(x) > 0 exactly when x > this (a tie rounds to even, i.e. to 0).
_HALF_TINY_FLOAT32 = 2.0**-150


def _product_is_positive(a: Any, b: Any) -> Any:
    """Whether fl(a·b) > 0 in a's format, with gradual underflow, also on a backend that flushes subnormals.

    TensorFlow on CPU flushes subnormal results to zero (float32 1e-19·1e-19 gives 0, not 1e-38), so the sign
    is not taken from a product that may be subnormal:
    - float32: the float64 product of two float32 values is exact and normal; compare it with 2⁻¹⁵⁰.
    - float64: scale both factors by 2⁵³⁸, so that the threshold 2⁻¹⁰⁷⁵ becomes 2 (a factor that overflows to
      ±inf keeps its sign; inf·0 = NaN compares false, as fl(g·0) = 0 is not > 0).
    """
    if keras.backend.standardize_dtype(a.dtype) == "float64":
        scale = _constant(2.0**538, "float64")
        return ops.greater(ops.multiply(ops.multiply(a, scale), ops.multiply(b, scale)), _constant(2.0, "float64"))
    wide = ops.multiply(ops.cast(a, "float64"), ops.cast(b, "float64"))
    return ops.greater(wide, _constant(_HALF_TINY_FLOAT32, "float64"))


class SelftestKerasRprop(keras.optimizers.Optimizer):
    """A correct RProp in the `rprop/keras-answer` dialect (the control: it must pass every check).

    Per element, with p the stored previous gradient (0 at the start) and α the step size (`init_alpha`):

        α ← min(scale_up·α, max_alpha)    if fl(g·p) > 0
        α ← max(scale_down·α, min_alpha)  otherwise (a two-way switch: a zero product shrinks too)
        θ ← θ − sign(g)·α;   p ← g

    No backtracking, no freezing. The scales are unrounded; the bounds are rounded to the variable's format.
    Hyperparameters out of range are refused.
    """

    def __init__(
        self,
        init_alpha: float = 1e-3,
        scale_up: float = 1.2,
        scale_down: float = 0.5,
        min_alpha: float = 1e-6,
        max_alpha: float = 50.0,
        name: str = "selftest_rprop",
        **kwargs: Any,
    ) -> None:
        rules = [
            ("init_alpha", init_alpha, "init_alpha >= 0", init_alpha >= 0),
            ("scale_down", scale_down, "0 < scale_down < 1", 0 < scale_down < 1),
            ("scale_up", scale_up, "scale_up > 1", scale_up > 1),
            ("min_alpha", min_alpha, "min_alpha >= 0", min_alpha >= 0),
            ("max_alpha", max_alpha, f"max_alpha >= min_alpha ({min_alpha!r})", max_alpha >= min_alpha),
        ]
        for setting, value, rule, ok in rules:
            if not ok:
                raise ValueError(f"invalid {setting}={value!r}: must satisfy {rule}")
        # Keras requires a learning rate; RProp has none. init_alpha stands in and is never read from it.
        super().__init__(learning_rate=float(init_alpha), name=name, **kwargs)
        self.init_alpha = float(init_alpha)
        self.scale_up = float(scale_up)
        self.scale_down = float(scale_down)
        self.min_alpha = float(min_alpha)
        self.max_alpha = float(max_alpha)

    def build(self, variables: Sequence[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self._alphas = [
            self.add_variable_from_reference(v, "alphas", initializer=_fill(self.init_alpha)) for v in variables
        ]
        self._old_grads = [self.add_variable_from_reference(v, "old_grads") for v in variables]

    def _shrunk(self, alpha: Any) -> Any:
        """The step size after a sign change (or a zero product)."""
        return ops.maximum(_scaled(alpha, self.scale_down), _constant(self.min_alpha, alpha.dtype))

    def _move_size(self, old_alpha: Any, new_alpha: Any) -> Any:
        """The step size the parameter moves by: this step's adapted one."""
        return new_alpha

    def _stored_gradient(self, grad: Any, variable: Any) -> Any:
        """What is kept as p for the next step."""
        return grad

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        del learning_rate  # RProp has none
        index = self._get_variable_index(variable)
        alpha, old_grad = self._alphas[index], self._old_grads[index]
        dtype = variable.dtype
        grad = ops.cast(gradient, dtype)
        grown = ops.minimum(_scaled(alpha, self.scale_up), _constant(self.max_alpha, dtype))
        new_alpha = ops.where(_product_is_positive(grad, old_grad), grown, self._shrunk(alpha))
        # Values read now (ops.copy, not the variables themselves, which the assignments below change).
        move = ops.multiply(ops.sign(grad), self._move_size(ops.copy(alpha), new_alpha))
        stored = self._stored_gradient(grad, ops.copy(variable))
        self.assign(variable, ops.subtract(variable, move))
        self.assign(alpha, new_alpha)
        self.assign(old_grad, stored)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("learning_rate", None)  # a stand-in, derived from init_alpha
        config.update(
            init_alpha=self.init_alpha,
            scale_up=self.scale_up,
            scale_down=self.scale_down,
            min_alpha=self.min_alpha,
            max_alpha=self.max_alpha,
        )
        return config


class MaxStepOnSignChange(SelftestKerasRprop):
    """Defect (the question's): on a sign change the step takes the maximum with the *max* step, where the min
    step belongs, so it jumps to max_alpha instead of shrinking.

    Expected to be caught first by: `trajectory`.
    """

    def _shrunk(self, alpha: Any) -> Any:
        return ops.maximum(_scaled(alpha, self.scale_down), _constant(self.max_alpha, alpha.dtype))  # DEFECT


class EtaPlusOnSignChange(SelftestKerasRprop):
    """Defect (the question's): on a sign change the step is multiplied by scale_up (η⁺) instead of scale_down.

    Expected to be caught first by: `trajectory`.
    """

    def _shrunk(self, alpha: Any) -> Any:
        return ops.maximum(_scaled(alpha, self.scale_up), _constant(self.min_alpha, alpha.dtype))  # DEFECT


class PreviousGradientIsParameter(SelftestKerasRprop):
    """Defect (the question's): the stored previous gradient is set to the parameter θ (before this step's
    move) instead of g. The question does so in its m = 0 branch, which every first step takes; here on every step.

    Expected to be caught first by: `trajectory` (the `old_grads` slot differs after the first step).
    """

    def _stored_gradient(self, grad: Any, variable: Any) -> Any:
        return variable  # DEFECT


class LaggedStepSize(SelftestKerasRprop):
    """Defect: a one-step-lagged update, as simultaneous graph-mode `K.update`s give: the parameter moves by the
    step size from before this step's adaptation.

    Expected to be caught first by: `trajectory` (already the first step, which shrinks α).
    """

    def _move_size(self, old_alpha: Any, new_alpha: Any) -> Any:
        return old_alpha  # DEFECT
