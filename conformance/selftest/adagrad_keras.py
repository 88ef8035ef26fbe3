"""Adagrad written against `keras.optimizers.Optimizer` (Keras 3): correct classes for `adagrad/keras3` and
`adagrad/tf-keras-v2`, and classes that each carry exactly one defect.

Each broken class subclasses a correct one and overrides one small method (or one class attribute), so that the
defect is the whole difference. Its docstring names the defect and the check expected to catch it first, in the
runner's order: trajectory, teacher_forced, counter_and_slots, config_round_trip, checkpoint, inputs_not_mutated,
replicas, invalid_hparams.

Slots are optimizer variables made with `add_variable_from_reference(variable, "accumulator")`, which is where
`conformance.adapters.KerasAdapter` looks for them; the counter is Keras' own `iterations`.

Constants are made with `ops.convert_to_tensor(value, dtype=...)`, never `ops.cast(value, ...)`: on TensorFlow a
cast of a Python float goes through float32 first, which would round a float64 variable's hyperparameter twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from conformance.community.keras_exact import constant, fill

__all__ = [
    "AccumulatorRecreated",
    "ClipNormBeforeValue",
    "ConfigDropsEpsilon",
    "DecayAfterIncrement",
    "EpsOutsideSqrt",
    "EpsZeroKept",
    "IgnoresInitialAccumulator",
    "SelftestKerasAdagrad",
    "SelftestKerasV2Adagrad",
]


def _dense(gradient: Any, variable: Any) -> Any:
    """The gradient as a dense tensor in the variable's dtype. A row-sparse one (a tf.IndexedSlices, which Keras
    hands over as it is) is scattered into zeros, which sums repeated rows; untouched rows get g = 0 and so
    move nothing."""
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        gradient = ops.scatter(ops.expand_dims(gradient.indices, -1), gradient.values, tuple(variable.shape))
    return ops.cast(gradient, variable.dtype)


def _refuse(name: str, value: Any, rule: str, ok: bool) -> None:
    if not ok:
        raise ValueError(f"invalid {name}={value!r}: must satisfy {rule}")


# ---------------------------------------------------------------------------------------------------------------
# adagrad/keras3


class SelftestKerasAdagrad(keras.optimizers.Optimizer):
    """A correct Adagrad in the `adagrad/keras3` dialect (the control: it must pass every check).

        θ ← θ − θ·λ·η (decoupled weight decay);  A ← A + g·g;  θ ← θ − η·g / √(A + ε)

    η is Keras' float32 learning-rate variable cast to the variable's format; ε and λ are rounded once to it; the
    accumulator starts at `initial_accumulator_value` rounded once. At most one of clipnorm, global_clipnorm and
    clipvalue (Keras' own clipping). The legacy keywords `decay` and `lr` are refused, not ignored.
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str = "selftest_adagrad",
        **kwargs: Any,
    ) -> None:
        for legacy in ("decay", "lr"):
            if legacy in kwargs:
                raise ValueError(f"{legacy}= is not a Keras 3 Adagrad argument (it would be silently ignored)")
        _refuse("learning_rate", learning_rate, ">= 0", learning_rate >= 0)
        _refuse("initial_accumulator_value", initial_accumulator_value, ">= 0", initial_accumulator_value >= 0)
        _refuse("epsilon", epsilon, ">= 0", epsilon >= 0)
        if weight_decay is not None:
            _refuse("weight_decay", weight_decay, ">= 0", weight_decay >= 0)
        for clip_name, clip in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm)):
            if clip is not None:
                _refuse(clip_name, clip, "> 0", clip > 0)
        super().__init__(
            learning_rate=learning_rate,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            name=name,
            **kwargs,
        )
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)
        # Kept apart from Keras' `weight_decay`, whose TF path rounds λ through float32 for float64 variables.
        self.decoupled_weight_decay = None if weight_decay is None else float(weight_decay)

    def _initial_accumulator(self) -> float:
        return self.initial_accumulator_value

    def build(self, variables: Sequence[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        start = fill(self._initial_accumulator())
        self._accumulators = [self.add_variable_from_reference(v, "accumulator", initializer=start) for v in variables]

    def _accumulator_before(self, accumulator: Any) -> Any:
        """A before this step's g² is added."""
        return accumulator

    def _denominator(self, accumulator: Any, eps: Any) -> Any:
        return ops.sqrt(ops.add(accumulator, eps))

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        grad = _dense(gradient, variable)
        accumulator = self._accumulators[self._get_variable_index(variable)]
        if self.decoupled_weight_decay:
            decay = constant(self.decoupled_weight_decay, dtype)
            self.assign(variable, ops.subtract(variable, ops.multiply(ops.multiply(variable, decay), lr)))
        self.assign(accumulator, ops.add(self._accumulator_before(accumulator), ops.square(grad)))
        step = ops.divide(ops.multiply(lr, grad), self._denominator(accumulator, constant(self.epsilon, dtype)))
        self.assign(variable, ops.subtract(variable, step))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            initial_accumulator_value=self.initial_accumulator_value,
            epsilon=self.epsilon,
            weight_decay=self.decoupled_weight_decay,
        )
        return config


class AccumulatorRecreated(SelftestKerasAdagrad):
    """Defect: the accumulator is re-created at every step (A ← A₀ + g·g), the misreading of the classic Keras
    question in which the accumulators appear to be made anew on each call.

    Expected to be caught first by: `trajectory`.
    """

    def _accumulator_before(self, accumulator: Any) -> Any:
        return fill(self.initial_accumulator_value)(accumulator.shape, accumulator.dtype)  # DEFECT


class EpsOutsideSqrt(SelftestKerasAdagrad):
    """Defect: ε outside the square root, √A + ε, where the Keras 3 dialect puts it inside, √(A + ε).

    Expected to be caught first by: `trajectory` (at the latest the EPS_DECIDES edge).
    """

    def _denominator(self, accumulator: Any, eps: Any) -> Any:
        return ops.add(ops.sqrt(accumulator), eps)  # DEFECT


class IgnoresInitialAccumulator(SelftestKerasAdagrad):
    """Defect: `initial_accumulator_value` is accepted and stored but ignored: the accumulator starts at 0.

    Expected to be caught first by: `trajectory` (every case that keeps the default 0.1).
    """

    def _initial_accumulator(self) -> float:
        return 0.0  # DEFECT


class ConfigDropsEpsilon(SelftestKerasAdagrad):
    """Defect: `get_config()` leaves `epsilon` out, so `from_config(get_config())` (and a model loaded from a
    .keras file) silently runs with the default 1e-7.

    Expected to be caught first by: `config_round_trip` (the RANDOM+CHECKPOINT case uses ε = 0.001).
    """

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["epsilon"]  # DEFECT
        return config


# ---------------------------------------------------------------------------------------------------------------
# adagrad/tf-keras-v2


def _rescaled(tensors: list[Any], c: float) -> list[Any]:
    """g·c/max(‖G‖, c), as tf.clip_by_norm computes it (a NaN anywhere makes every element NaN)."""
    dtype = tensors[0].dtype
    norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in tensors))
    limit = constant(c, dtype)
    return [ops.divide(ops.multiply(g, limit), ops.maximum(norm, limit)) for g in tensors]


class SelftestKerasV2Adagrad(keras.optimizers.Optimizer):
    """A correct Adagrad in the `adagrad/tf-keras-v2` dialect (tf.keras OptimizerV2), written on Keras 3 (the
    control: it must pass every check).

        clip: clipvalue, then clipnorm (per tensor), then global_clipnorm, each one that is set
        η_t = η / (1 + κ·t) with t the completed updates (`iterations` before its increment)
        A ← A + g·g;  θ ← θ − η_t·g / (√A + ε)

    As OptimizerV2: `epsilon or 1e-7` (0 and None become 1e-7); `lr=` is an alias of `learning_rate`; clipnorm and
    global_clipnorm together are refused. η and κ are rounded to float32, then to the variable's format; ε and the
    clip thresholds once to the variable's format.
    """

    CLIP_ORDER: ClassVar[tuple[str, ...]] = ("clipvalue", "clipnorm", "global_clipnorm")

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float | None = 1e-7,
        decay: float = 0.0,
        clipvalue: float | None = None,
        clipnorm: float | None = None,
        global_clipnorm: float | None = None,
        name: str = "selftest_v2_adagrad",
        lr: float | None = None,
        **kwargs: Any,
    ) -> None:
        if lr is not None:
            learning_rate = lr
        epsilon = self._effective_epsilon(epsilon)
        _refuse("learning_rate", learning_rate, ">= 0", learning_rate >= 0)
        _refuse("initial_accumulator_value", initial_accumulator_value, ">= 0", initial_accumulator_value >= 0)
        _refuse("epsilon", epsilon, ">= 0", epsilon >= 0)
        _refuse("decay", decay, ">= 0", decay >= 0)
        clips = {"clipvalue": clipvalue, "clipnorm": clipnorm, "global_clipnorm": global_clipnorm}
        for clip_name, clip in clips.items():
            if clip is not None:
                _refuse(clip_name, clip, "> 0", clip > 0)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError("at most one of clipnorm, global_clipnorm may be set")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)  # Keras' own clipping stays off
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)
        self.decay = float(decay)
        self.v2_clips = {k: None if v is None else float(v) for k, v in clips.items()}

    def _effective_epsilon(self, epsilon: float | None) -> float:
        return epsilon or 1e-7  # OptimizerV2's `epsilon or backend_config.epsilon()`

    def build(self, variables: Sequence[Any]) -> None:
        if self.built:
            return
        super().build(variables)
        start = fill(self.initial_accumulator_value)
        self._accumulators = [self.add_variable_from_reference(v, "accumulator", initializer=start) for v in variables]

    def _clip(self, grads: list[Any]) -> list[Any]:
        for kind in self.CLIP_ORDER:
            c = self.v2_clips[kind]
            if c is None:
                continue
            if kind == "clipvalue":
                grads = [ops.clip(g, constant(-c, g.dtype), constant(c, g.dtype)) for g in grads]
            elif kind == "clipnorm":
                grads = [_rescaled([g], c)[0] for g in grads]
            else:
                grads = _rescaled(grads, c)
        return grads

    def apply(self, grads: Any, trainable_variables: Any = None) -> None:
        if any(c is not None for c in self.v2_clips.values()):
            variables = self._trainable_variables if trainable_variables is None else list(trainable_variables)
            grads = self._clip([_dense(g, v) for g, v in zip(grads, variables, strict=True)])
        super().apply(grads, trainable_variables)

    def _decay_count(self) -> Any:
        """t: the updates completed before this one."""
        return self.iterations

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)  # Keras holds it in float32
        if self.decay:
            kappa = constant(float(np.float32(self.decay)), dtype)
            t = ops.cast(self._decay_count(), dtype)
            lr = ops.divide(lr, ops.add(constant(1.0, dtype), ops.multiply(kappa, t)))
        grad = _dense(gradient, variable)
        accumulator = self._accumulators[self._get_variable_index(variable)]
        self.assign(accumulator, ops.add(accumulator, ops.square(grad)))
        denominator = ops.add(ops.sqrt(accumulator), constant(self.epsilon, dtype))
        self.assign(variable, ops.subtract(variable, ops.divide(ops.multiply(lr, grad), denominator)))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            initial_accumulator_value=self.initial_accumulator_value,
            epsilon=self.epsilon,
            decay=self.decay,
            **self.v2_clips,
        )
        return config


class DecayAfterIncrement(SelftestKerasV2Adagrad):
    """Defect: the legacy `decay` reads the counter after its increment, η / (1 + κ·(t + 1)), instead of before.

    Expected to be caught first by: `trajectory` (the DECAY_LARGE_STEP edge and the random cases with decay).
    """

    def _decay_count(self) -> Any:
        return ops.add(self.iterations, 1)  # DEFECT


class ClipNormBeforeValue(SelftestKerasV2Adagrad):
    """Defect: clips in the wrong order, the per-tensor norm before the value clip; tf.keras v2 clips the value
    first.

    Expected to be caught first by: `trajectory` (the clipvalue+clipnorm edge).
    """

    CLIP_ORDER = ("clipnorm", "clipvalue", "global_clipnorm")  # DEFECT


class EpsZeroKept(SelftestKerasV2Adagrad):
    """Defect: `epsilon=0` is kept as 0; tf.keras v2 evaluates `epsilon or 1e-7`, so with A = 0 and g = 0 the
    dialect moves nothing where this class computes 0/0 = NaN.

    Expected to be caught first by: `trajectory` (the EPS_ZERO_REWRITE edge).
    """

    def _effective_epsilon(self, epsilon: float | None) -> float:
        return 1e-7 if epsilon is None else epsilon  # DEFECT: 0 is not rewritten
