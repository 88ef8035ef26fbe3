"""Two Keras 3 RProp optimizers from the Stack Overflow question "Keras - implementing Rprop algorithm".

- `KerasAnswerRProp` implements the accepted answer's semantics as the `rprop/keras-answer` dialect defines them.
  It is the project's own code, written from the dialect and not copied from the answer. It is meant to pass.
- `KerasQuestionRProp` renders the question's class with every one of its bugs kept. It is meant to fail.

Each class keeps its per-variable state in optimizer variables named `<variable path>_<slot>`, which is where
`conformance.adapters.KerasAdapter` looks for a dialect's slots.

Importing this module imports Keras, which imports the configured backend (TensorFlow by default). Both classes use
only `keras.ops`, but they are measured on the TensorFlow backend (tests/adapters/test_community.py).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from .keras_exact import constant, fill, product_is_positive, scaled

__all__ = ["KerasAnswerRProp", "KerasQuestionRProp"]


class KerasAnswerRProp(keras.optimizers.Optimizer):
    """RProp as the `rprop/keras-answer` dialect defines it: the accepted Stack Overflow answer's rule.

    Per element, with p the stored previous gradient (0 at the start) and α the step size (`init_alpha` at start):

        α ← min(scale_up·α, max_alpha)    if fl(g·p) > 0
        α ← max(scale_down·α, min_alpha)  otherwise (a sign change, and also g·p = 0: a two-way switch)
        θ ← θ − sign(g)·α;   p ← g

    There is no backtracking and no freezing. Because p starts at 0, the first step moves init_alpha·scale_down.
    The product g·p is rounded to the variable's format before its sign is tested. `min_alpha` and `max_alpha`
    are rounded to that format. `scale_up` and `scale_down` are not rounded: on float32 variables the product
    α·scale is computed in float64 and rounded once.

    State slots: `alphas` (step sizes) and `old_grads`. The counter is Keras' `iterations`.
    """

    def __init__(
        self,
        init_alpha: float = 1e-3,
        scale_up: float = 1.2,
        scale_down: float = 0.5,
        min_alpha: float = 1e-6,
        max_alpha: float = 50.0,
        name: str = "keras_answer_rprop",
        **kwargs: Any,
    ) -> None:
        settings = {
            "init_alpha": float(init_alpha),
            "scale_up": float(scale_up),
            "scale_down": float(scale_down),
            "min_alpha": float(min_alpha),
            "max_alpha": float(max_alpha),
        }
        _refuse_out_of_range(settings)
        # Keras requires a learning rate, and RProp has none. The initial step size stands in and is never read.
        super().__init__(learning_rate=settings["init_alpha"], name=name, **kwargs)
        self.init_alpha = settings["init_alpha"]
        self.scale_up = settings["scale_up"]
        self.scale_down = settings["scale_down"]
        self.min_alpha = settings["min_alpha"]
        self.max_alpha = settings["max_alpha"]

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self._alphas = [
            self.add_variable_from_reference(v, "alphas", initializer=fill(self.init_alpha)) for v in variables
        ]
        self._old_grads = [self.add_variable_from_reference(v, "old_grads") for v in variables]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        del learning_rate  # RProp has none
        index = self._get_variable_index(variable)
        alpha, old_grad = self._alphas[index], self._old_grads[index]
        dtype = variable.dtype
        grad = ops.cast(gradient, dtype)
        same_sign = product_is_positive(grad, old_grad)
        grown = ops.minimum(scaled(alpha, self.scale_up), constant(self.max_alpha, dtype))
        shrunk = ops.maximum(scaled(alpha, self.scale_down), constant(self.min_alpha, dtype))
        new_alpha = ops.where(same_sign, grown, shrunk)
        self.assign(variable, ops.subtract(variable, ops.multiply(ops.sign(grad), new_alpha)))
        self.assign(alpha, new_alpha)
        self.assign(old_grad, grad)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("learning_rate", None)  # a stand-in, not a setting: __init__ derives it from init_alpha
        config.update(
            init_alpha=self.init_alpha,
            scale_up=self.scale_up,
            scale_down=self.scale_down,
            min_alpha=self.min_alpha,
            max_alpha=self.max_alpha,
        )
        return config


def _refuse_out_of_range(settings: dict[str, float]) -> None:
    checks = [
        ("init_alpha", settings["init_alpha"] >= 0, "init_alpha >= 0"),
        ("scale_down", 0 < settings["scale_down"] < 1, "0 < scale_down < 1"),
        ("scale_up", settings["scale_up"] > 1, "scale_up > 1"),
        ("min_alpha", settings["min_alpha"] >= 0, "min_alpha >= 0"),
        (
            "max_alpha",
            settings["max_alpha"] >= settings["min_alpha"],
            f"max_alpha >= min_alpha ({settings['min_alpha']!r})",
        ),
    ]
    for name, ok, rule in checks:
        if not ok:
            raise ValueError(f"invalid {name}={settings[name]!r}: must satisfy {rule}")


class KerasQuestionRProp(keras.optimizers.Optimizer):
    """The question's `Rprop` class, changed only as much as it takes to run on Keras 3. Every bug is kept.

    The question wanted Rprop+ (`rprop/rprop+`). Per element, with change = sign(g·g_old), where g_old starts at 0:

        change > 0:  step ← min(posStep·step, maxStep);  wChange = step·sign(g);  g_old ← g
        change < 0:  step ← max(posStep·step, maxStep);  wChange = −wChangeOld;   g_old ← 0
        otherwise:   step unchanged;                     wChange = step·sign(g);  g_old ← θ
        θ ← θ − wChange;  wChangeOld ← wChange

    Every right-hand side reads the values from before the step, as simultaneous `K.update`s do.

    The bugs that are kept:
    - **Max step.** On a sign change the step grows by posStep (η⁺) and then takes the *maximum* with maxStep, so
      it jumps to 50. It should shrink by negStep (η⁻) and take the maximum with minStep. negStep and minStep are
      never used.
    - **Old gradient is the parameter.** In the change = 0 branch the stored previous gradient becomes the
      parameter θ instead of g. This branch is always taken on the first step.
    - **Counter.** The question creates its own `iterations` and adds 1 to it in a list of updates, then replaces
      that list with `[]`, so the counter stays 0. Keras 3 increments its counter in `apply`. This class writes the
      value from before the step back afterwards, so `iterations` reads 0 after every step, as the question's did.
    - **No validation.** No hyperparameter is checked.

    The changes that make it run:
    - Python's `if change > 0: ... elif change < 0: ... else: ...` on a tensor raises. Here the three branches are
      element-wise `ops.where`s, and their contents are unchanged.
    - The step sizes were tensors (`K.ones(shape) * init_step`), and `K.update` needs variables. Here they are
      variables.
    - `get_updates(params, constraints, loss)` is Keras 3's `build` plus `update_step`.

    Two more changes are adapter-level mappings, so that `conformance.adapters.KerasAdapter` can drive the class
    under `rprop/rprop+` and compare its state. They do not claim that the class is correct:
    - The keywords are the dialect's: `delta_0` (the question's `init_step`), `eta_plus` (posStep), `eta_minus`
      (negStep, unused), `delta_min` (minStep, unused) and `delta_max` (maxStep). The question hard-codes the
      last four. The defaults are the question's.
    - The state variables are named after the dialect's slots. The step sizes are `delta` and g_old is `prev_grad`.
      wChangeOld is kept negated in `prev_update`, as the change actually applied (θ ← θ + d). The question's
      arithmetic reads wChangeOld back as −prev_update, so negating it changes no result.
    """

    def __init__(
        self,
        delta_0: float = 0.01,
        eta_minus: float = 0.5,
        eta_plus: float = 1.2,
        delta_min: float = 1e-6,
        delta_max: float = 50.0,
        name: str = "Rprop",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=float(delta_0), name=name, **kwargs)  # Keras requires one; never read
        self.init_step = float(delta_0)
        self.posStep = float(eta_plus)
        self.negStep = float(eta_minus)
        self.minStep = float(delta_min)
        self.maxStep = float(delta_max)

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self._steps = [
            self.add_variable_from_reference(v, "delta", initializer=fill(self.init_step)) for v in variables
        ]
        self._grads_old = [self.add_variable_from_reference(v, "prev_grad") for v in variables]
        self._negated_w_change_old = [self.add_variable_from_reference(v, "prev_update") for v in variables]

    def apply(self, grads: Any, trainable_variables: Any = None) -> None:
        before = ops.copy(self._iterations)  # the value (ops.convert_to_tensor would hand back the variable)
        super().apply(grads, trainable_variables)
        self._iterations.assign(before)  # the question's increment never happened

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        del learning_rate
        index = self._get_variable_index(variable)
        s, g_old = self._steps[index], self._grads_old[index]
        negated = self._negated_w_change_old[index]
        p = variable
        g = ops.cast(gradient, variable.dtype)
        w_change_old = ops.negative(negated)

        change = ops.sign(g * g_old)
        positive, negative = ops.greater(change, 0), ops.less(change, 0)
        # if change > 0:
        s_pos = ops.minimum(s * self.posStep, self.maxStep)
        w_pos = s_pos * ops.sign(g)
        g_pos = g
        # elif change < 0:
        s_neg = ops.maximum(s * self.posStep, self.maxStep)
        w_neg = -w_change_old
        g_neg = ops.zeros_like(g)
        # else:
        s_zero = s
        w_zero = s_zero * ops.sign(g)
        g_zero = p

        s_new = ops.where(positive, s_pos, ops.where(negative, s_neg, s_zero))
        w_change = ops.where(positive, w_pos, ops.where(negative, w_neg, w_zero))
        g_new = ops.where(positive, g_pos, ops.where(negative, g_neg, g_zero))

        self.assign(g_old, g_new)
        self.assign(negated, ops.negative(w_change))
        self.assign(s, s_new)
        self.assign(variable, p - w_change)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("learning_rate", None)
        config.update(
            delta_0=self.init_step,
            eta_minus=self.negStep,
            eta_plus=self.posStep,
            delta_min=self.minStep,
            delta_max=self.maxStep,
        )
        return config
