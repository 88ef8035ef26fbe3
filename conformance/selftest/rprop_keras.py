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
from keras import ops

from conformance.community.keras_exact import constant, fill, product_is_positive, scaled

__all__ = [
    "EtaPlusOnSignChange",
    "LaggedStepSize",
    "MaxStepOnSignChange",
    "PreviousGradientIsParameter",
    "SelftestKerasRprop",
]


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
            self.add_variable_from_reference(v, "alphas", initializer=fill(self.init_alpha)) for v in variables
        ]
        self._old_grads = [self.add_variable_from_reference(v, "old_grads") for v in variables]

    def _shrunk(self, alpha: Any) -> Any:
        """The step size after a sign change (or a zero product)."""
        return ops.maximum(scaled(alpha, self.scale_down), constant(self.min_alpha, alpha.dtype))

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
        grown = ops.minimum(scaled(alpha, self.scale_up), constant(self.max_alpha, dtype))
        new_alpha = ops.where(product_is_positive(grad, old_grad), grown, self._shrunk(alpha))
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
        return ops.maximum(scaled(alpha, self.scale_down), constant(self.max_alpha, alpha.dtype))  # DEFECT


class EtaPlusOnSignChange(SelftestKerasRprop):
    """Defect (the question's): on a sign change the step is multiplied by scale_up (η⁺) instead of scale_down.

    Expected to be caught first by: `trajectory`.
    """

    def _shrunk(self, alpha: Any) -> Any:
        return ops.maximum(scaled(alpha, self.scale_up), constant(self.min_alpha, alpha.dtype))  # DEFECT


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
