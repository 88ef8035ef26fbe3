"""The Adagrad family: one step, every framework difference a knob.

For each element, with t the number of completed updates (0 on the first step):

    g  <- -g                                   if maximize
    g  <- clip(g)                              clipvalue / clipnorm / global_clipnorm, in the dialect's order
    g  <- g + lambda * theta                   coupled weight decay
    eta_t = eta / (1 + kappa * t)              inverse-time decay (Keras `decay`, torch `lr_decay`)
    A  <- A + g^2                              unless update_slots is False
    theta <- theta - theta * lambda * eta_t    decoupled weight decay
    theta <- theta - eta_t * g / D(A)          D(A) = sqrt(A) + eps | sqrt(A + eps) | sqrt(A), without momentum
    m  <- (1 - beta) * g / D(A) + beta * m     with momentum on the preconditioned gradient
    theta <- theta - eta_t * m

The masked placements make g / D(A) 0 where A == 0.

Every assignment stores into a variable of the parameter's format; right-hand sides are exact (see _arith).

References:
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization",
    JMLR 12, 2011.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, NamedTuple

from ._arith import Ops
from ._hparams import HparamRounding, check_range
from .sparse import SparseRule

__all__ = [
    "AdagradHparams",
    "AdagradKnobs",
    "AdagradState",
    "ClipKind",
    "ClipPolicy",
    "EpsPlacement",
    "LrDecay",
    "Momentum",
    "WeightDecay",
    "init",
    "step",
]


class EpsPlacement(Enum):
    """Where epsilon enters the denominator."""

    OUTSIDE = "outside"  # sqrt(A) + eps: keras2, tf-keras-v2, torch, tf-raw-v2
    INSIDE = "inside"  # sqrt(A + eps): keras3, tf-keras-new
    INSIDE_MASKED = "inside-masked"  # sqrt(A + eps), but the update is 0 where A == 0: optax
    NONE = "none"  # sqrt(A): tf1 (ApplyAdagrad)
    NONE_MASKED = "none-masked"  # sqrt(A), but the update is 0 where A == 0: jax.example_libraries


class LrDecay(Enum):
    """Learning-rate decay built into the optimizer."""

    NONE = "none"
    # eta / (1 + kappa * t), t = completed updates (the counter read before its increment). Keras' legacy
    # `decay` and torch's `lr_decay` are this same rule; they differ only in how kappa is rounded.
    INVERSE_TIME = "inverse-time"


class WeightDecay(Enum):
    NONE = "none"
    COUPLED = "coupled"  # added to g before the accumulator sees it, where lambda != 0: torch
    # Added to g at every step whenever lambda is set, even to 0, so 0*theta makes g NaN where theta is NaN or
    # +-inf: ONNX's Adagrad operator computes G + norm_coefficient * X unconditionally, and Paddle adds an L2Decay
    # term for any float weight_decay (only None, no regularizer at all, adds nothing).
    COUPLED_ALWAYS = "coupled-always"
    DECOUPLED = "decoupled"  # theta shrinks by theta * lambda * eta before the update: keras3, tf-keras-new


class Momentum(Enum):
    """A moving average of the step, kept as one more slot."""

    NONE = "none"
    # m <- (1 - beta) * g / D(A) + beta * m, and theta moves by eta_t * m: the average is taken of the
    # preconditioned gradient, so the step size multiplies it afterwards (jax.example_libraries.optimizers.adagrad).
    PRECONDITIONED = "preconditioned"


class ClipKind(Enum):
    VALUE = "clipvalue"  # clip each element to [-v, v]
    NORM = "clipnorm"  # rescale each tensor to norm <= c
    GLOBAL_NORM = "global_clipnorm"  # rescale all tensors together to joint norm <= c


class ClipPolicy(Enum):
    """How several clipping hyperparameters combine."""

    ALL_IN_ORDER = "all-in-order"  # apply every one that is set, in `clip_order`: tf-keras-v2, keras2
    FIRST_SET_ONLY = "first-set-only"  # apply only the first one set in `clip_order`


@dataclass(frozen=True)
class AdagradKnobs:
    eps_placement: EpsPlacement = EpsPlacement.OUTSIDE
    lr_decay: LrDecay = LrDecay.NONE
    momentum: Momentum = Momentum.NONE
    weight_decay: WeightDecay = WeightDecay.NONE
    clip_order: tuple[ClipKind, ...] = ()
    clip_policy: ClipPolicy = ClipPolicy.ALL_IN_ORDER
    # At most one of these may be set at once, else ValueError (keras3: all three; tf-keras-v2: the norms).
    exclusive_clips: frozenset[ClipKind] = frozenset()
    rounding: HparamRounding = field(default_factory=HparamRounding)
    # tf.keras OptimizerV2 evaluates `epsilon or 1e-7`, so 0 and None silently become 1e-7.
    eps_if_falsy: float | None = None
    # ApplyAdagrad / TF1 AdagradOptimizer reject a zero initial accumulator (it would divide 0 by 0).
    initial_accumulator_positive: bool = False
    # MLX refuses eps = 0 (every other dialect with an epsilon takes it, and divides 0 by 0 where A = 0).
    eps_positive: bool = False
    # How row-sparse gradients with repeated indices apply; None: the framework takes no sparse gradients.
    sparse: SparseRule | None = None


@dataclass(frozen=True)
class AdagradHparams:
    """Canonical hyperparameters; each dialect maps its framework's own names onto these."""

    lr: float
    eps: float | None = 0.0  # None: tf.keras's "no epsilon", which `eps_if_falsy` replaces; refused elsewhere
    initial_accumulator: float = 0.0
    decay: float = 0.0
    weight_decay: float | None = 0.0  # None: not given (decoupled decay then never runs, not even as θ·0)
    clipvalue: float | None = None
    clipnorm: float | None = None
    global_clipnorm: float | None = None
    maximize: bool = False
    update_slots: bool = True
    momentum: float = 0.0  # beta; read only by the momentum knob


class AdagradState(NamedTuple):
    count: int  # type: ignore[assignment]  # the step counter; it shadows tuple.count, which nothing calls
    accumulator: tuple[Any, ...]
    momentum: tuple[Any, ...]  # m, a slot only of dialects with momentum; zeros that never change elsewhere


def validate(hp: AdagradHparams, knobs: AdagradKnobs) -> AdagradHparams:
    """Refuse what no dialect accepts; apply the dialect's silent rewrites. Returns the hparams to use."""
    check_range("lr", hp.lr, "lr >= 0", hp.lr >= 0)
    if knobs.eps_if_falsy is not None and not hp.eps:
        hp = replace(hp, eps=knobs.eps_if_falsy)
    check_range("eps", hp.eps, "eps >= 0", hp.eps is not None and hp.eps >= 0)
    if knobs.eps_positive:
        check_range("eps", hp.eps, "eps > 0", hp.eps is not None and hp.eps > 0)
    if knobs.initial_accumulator_positive:
        check_range("initial_accumulator", hp.initial_accumulator, "> 0", hp.initial_accumulator > 0)
    check_range("initial_accumulator", hp.initial_accumulator, ">= 0", hp.initial_accumulator >= 0)
    check_range("decay", hp.decay, "decay >= 0", hp.decay >= 0)
    check_range("momentum", hp.momentum, "0 <= momentum < 1", 0 <= hp.momentum < 1)
    if hp.weight_decay is not None:
        check_range("weight_decay", hp.weight_decay, "weight_decay >= 0", hp.weight_decay >= 0)
    active = _set_clips(hp, knobs)
    for kind in active:
        value = getattr(hp, kind.value)
        check_range(kind.value, value, "> 0", value > 0)
    clashing = sorted(k.value for k in active if k in knobs.exclusive_clips)
    if len(clashing) > 1:
        allowed = ", ".join(sorted(k.value for k in knobs.exclusive_clips))
        raise ValueError(f"at most one of {allowed} may be set; got {', '.join(clashing)}")
    return hp


def _set_clips(hp: AdagradHparams, knobs: AdagradKnobs) -> tuple[ClipKind, ...]:
    unsupported = [k.value for k in ClipKind if getattr(hp, k.value) is not None and k not in knobs.clip_order]
    if unsupported:
        raise ValueError(f"this dialect has no {', '.join(unsupported)}")
    return tuple(k for k in knobs.clip_order if getattr(hp, k.value) is not None)


def _applied_clips(hp: AdagradHparams, knobs: AdagradKnobs) -> tuple[ClipKind, ...]:
    active = _set_clips(hp, knobs)
    return active[:1] if knobs.clip_policy is ClipPolicy.FIRST_SET_ONLY else active


def init(ops: Ops, hp: AdagradHparams, knobs: AdagradKnobs, params: list[Any]) -> AdagradState:
    a0 = knobs.rounding.stored_at_once(ops, "initial_accumulator", hp.initial_accumulator)
    accumulators = tuple(ops.store(ops.full_like(p, a0)) for p in params)
    return AdagradState(0, accumulators, tuple(ops.full_like(p, 0.0) for p in params))


def step(
    ops: Ops,
    hp: AdagradHparams,
    knobs: AdagradKnobs,
    state: AdagradState,
    params: list[Any],
    grads: list[Any],
    loss: float | None = None,
) -> tuple[list[Any], AdagradState]:
    del loss  # Adagrad takes no loss
    hparam = knobs.rounding.bind(ops)
    lr = hparam("lr", hp.lr)
    if knobs.lr_decay is LrDecay.INVERSE_TIME and hp.decay:
        lr = lr / (1 + hparam("decay", hp.decay) * ops.const(state.count))
    if hp.maximize:
        grads = [-g for g in grads]
    grads = _clip(ops, hp, knobs, grads)
    wd = hparam("weight_decay", hp.weight_decay or 0.0)
    coupled = knobs.weight_decay is WeightDecay.COUPLED and hp.weight_decay
    if coupled or (knobs.weight_decay is WeightDecay.COUPLED_ALWAYS and hp.weight_decay is not None):
        grads = [g + wd * p for g, p in zip(grads, params, strict=True)]
    if hp.update_slots:
        accumulators = tuple(ops.store(a + g * g) for a, g in zip(state.accumulator, grads, strict=True))
    else:
        accumulators = state.accumulator
    if hp.eps is None:  # `validate` gives every dialect an epsilon; the unvalidated None has no value to round
        raise TypeError("eps is None: Adagrad steps only with validated hyperparameters")
    eps = hparam("eps", hp.eps)
    with_momentum = knobs.momentum is Momentum.PRECONDITIONED
    if with_momentum:
        beta = hparam("momentum", hp.momentum)
        # Note: the framework evaluates 1 - beta in Python (binary64) and rounds that, not 1 - round(beta).
        complement = hparam("momentum", 1.0 - hp.momentum)
    new_params, momenta = [], []
    for p, g, a, m in zip(params, grads, accumulators, state.momentum, strict=True):
        # Note: Keras applies decoupled decay whenever weight_decay is given, so an explicit 0 still computes
        # θ - θ·0·η, which turns -0 into +0.
        if knobs.weight_decay is WeightDecay.DECOUPLED and hp.weight_decay is not None:
            p = ops.store(p - p * wd * lr)
        if with_momentum:
            m = ops.store(complement * _scaled_step(ops, knobs.eps_placement, None, g, a, eps) + beta * m)
            new_params.append(ops.store(p - lr * m))
        else:
            new_params.append(ops.store(p - _scaled_step(ops, knobs.eps_placement, lr, g, a, eps)))
        momenta.append(m)
    return new_params, AdagradState(state.count + 1, accumulators, tuple(momenta))


def _scaled_step(ops: Ops, placement: EpsPlacement, lr: Any | None, g: Any, a: Any, eps: Any) -> Any:
    """lr * g / D(A), or the preconditioned gradient g / D(A) alone where `lr` is None (momentum scales later)."""
    numerator = g if lr is None else lr * g
    if placement is EpsPlacement.OUTSIDE:
        return numerator / (ops.sqrt(a) + eps)
    if placement is EpsPlacement.INSIDE:
        return numerator / ops.sqrt(a + eps)
    if placement is EpsPlacement.INSIDE_MASKED:
        # Note: optax multiplies by rsqrt(A + eps) only where A > 0, so A == 0 moves nothing, even for eps = 0.
        return ops.where(a > 0, numerator / ops.sqrt(a + eps), g * 0)
    if placement is EpsPlacement.NONE_MASKED:
        # Note: jax.example_libraries multiplies by where(A > 0, 1/sqrt(A), 0), so A == 0 moves nothing. The
        # reciprocal is written out because it is rounded on its own: the error scale then counts that rounding.
        return ops.where(a > 0, numerator * (1 / ops.sqrt(a)), g * 0)
    return numerator / ops.sqrt(a)


def _clip(ops: Ops, hp: AdagradHparams, knobs: AdagradKnobs, grads: list[Any]) -> list[Any]:
    for kind in _applied_clips(hp, knobs):
        c = knobs.rounding.value(ops, kind.value, getattr(hp, kind.value))
        if kind is ClipKind.VALUE:
            grads = [ops.minimum(ops.maximum(g, -c), c) for g in grads]
        elif kind is ClipKind.NORM:
            grads = [_rescale(ops, [g], c)[0] for g in grads]
        else:
            grads = _rescale(ops, grads, c)
    return grads


def _rescale(ops: Ops, tensors: list[Any], c: Any) -> list[Any]:
    """g * c / max(||G||, c): the tensors keep their direction and get a joint norm of at most c.

    Computed unconditionally, as the frameworks do, so a NaN in any element makes the whole group NaN.
    """
    scale_down = ops.maximum(ops.sqrt(ops.sum_of_squares(tensors)), c)
    return [g * c / scale_down for g in tensors]
