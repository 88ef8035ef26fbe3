"""The Keras 2 Adagrad that the question "How does Adagrad work in Keras? What does self.weights mean in a Keras
Optimizer?" quotes, ported to the Keras 3 optimizer API. It is meant to pass `adagrad/keras2`.

The quoted class (Keras 2.0's `keras/optimizers.py`) is, per element, with t the iterations done so far:

    lr_t = lr / (1 + decay·t)       only if the constructor's decay > 0; t is read before its increment
    a    ← a + g²                    accumulators start at zeros and are the optimizer's `weights`
    θ    ← θ − lr_t·g / (√a + ε)

`lr` and `decay` were `K.variable`s, so float32, and so were the accumulators and `iterations` (`K.variable(0.)`);
ε was a Python float that TensorFlow rounds to float32 when it adds it to √a. Keras 2's base optimizer clipped the
gradients before `get_updates` saw them: `clipnorm` rescales all gradients by their joint norm (only when that norm
is at least clipnorm), then `clipvalue` clips each element.

What the port changes, and why none of it shows in a float32 step:
- Keras 3 keeps the counter (`iterations`, int64) and increments it after every variable's update, so the step
  reads it before the increment, as the quoted class's update list did. It is cast to float32 for the decay, as
  the quoted counter was float32 to begin with (the two part only past 2**24 steps, where a float32 counter stops).
- Keras 3 refuses clipnorm and clipvalue together, and its `clipnorm` is per tensor; Keras 2's were a joint norm
  and both could be set. So this class clips in `apply`, as Keras 2's `get_gradients` did, and passes Keras 3 none.
- Keras 3 requires a `learning_rate`; it is `lr`. The accumulators are optimizer variables named
  `<variable path>_accumulator` (Keras 3's `variables`, the successor of Keras 2's `weights`).
- The quoted default epsilon is Keras 2.0's 1e-8; the `adagrad/keras2` dialect models Keras 2.2.5, whose default is
  `K.epsilon()` = 1e-7. The runner passes every hyperparameter explicitly, so the default is never measured.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["KerasSeedAdagrad"]


class KerasSeedAdagrad(keras.optimizers.Optimizer):
    """The quoted Keras 2 Adagrad on Keras 3: float32 state, `decay` as inverse-time decay, Keras 2's clipping."""

    def __init__(
        self,
        lr: float = 0.01,
        epsilon: float = 1e-8,
        decay: float = 0.0,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        name: str = "keras_seed_adagrad",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=lr, name=name, **kwargs)
        self.epsilon = epsilon
        self.initial_decay = decay
        self.keras2_clipnorm = clipnorm
        self.keras2_clipvalue = clipvalue

    def build(self, variables: list[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        self._accumulators = [self.add_variable_from_reference(v, "accumulator") for v in variables]

    def apply(self, grads: list[Any], trainable_variables: list[Any] | None = None) -> Any:
        return super().apply(self._keras2_clipped(list(grads)), trainable_variables)

    def _keras2_clipped(self, grads: list[Any]) -> list[Any]:
        """Keras 2's `Optimizer.get_gradients`: the joint-norm rescale (when norm >= clipnorm), then clipvalue."""
        if self.keras2_clipnorm is not None and self.keras2_clipnorm > 0:
            norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads if g is not None))
            scale = ops.divide(ops.cast(self.keras2_clipnorm, norm.dtype), norm)
            grads = [None if g is None else ops.where(norm >= self.keras2_clipnorm, g * scale, g) for g in grads]
        if self.keras2_clipvalue is not None and self.keras2_clipvalue > 0:
            grads = [None if g is None else ops.clip(g, -self.keras2_clipvalue, self.keras2_clipvalue) for g in grads]
        return grads

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        if self.initial_decay > 0:
            decay = ops.cast(self.initial_decay, "float32")
            lr = lr * (1.0 / (1.0 + decay * ops.cast(self.iterations, "float32")))
        g = ops.cast(gradient, dtype)
        accumulator = self._accumulators[self._get_variable_index(variable)]
        new_a = accumulator + ops.square(g)
        self.assign(accumulator, new_a)
        self.assign(variable, variable - lr * g / (ops.sqrt(new_a) + ops.cast(self.epsilon, dtype)))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("learning_rate", None)  # it is `lr`
        config.update(
            lr=float(ops.convert_to_numpy(self.learning_rate)),
            epsilon=self.epsilon,
            decay=self.initial_decay,
            clipnorm=self.keras2_clipnorm,
            clipvalue=self.keras2_clipvalue,
        )
        return config
