"""The RProp family: Rprop+, Rprop-, iRprop+, iRprop- and the framework variants as knob settings.

For each element, with p the stored previous gradient (0 at start), Delta the step size (Delta_0 = lr),
d_prev the previous change (0) and E_prev the previous loss (+inf):

    g <- -g                                       if maximize
    g <- g + fl(lambda * theta)                   coupled weight decay (MindSpore), where a dialect exposes it
    m = g * p                                     (or sign(g) * sign(p)); m is tested by sign only
    m > 0:  Delta <- min(eta+ * Delta, Delta_max);  d = -sign(g) * Delta
    m < 0:  Delta <- max(eta- * Delta, Delta_min)
            d = -d_prev                           backtrack: always (Rprop+), or if E > E_prev (iRprop+)
            d = -sign(g) * Delta                  move on a sign change (Rprop-)
            d = 0                                 otherwise (iRprop-, iRprop+ when E did not rise)
            g <- 0                                if freeze (Rprop+, iRprop+, iRprop-)
    m = 0:  Delta unchanged (clamped to [Delta_min, Delta_max] if clamp_zero_branch)
            d = -sign(g) * Delta
    theta <- theta + d;  p <- g;  d_prev <- d;  E_prev <- E

A two-way switch (the community Keras answer) treats m = 0 like m < 0: the step shrinks, then it moves.

References:
    Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP
    Algorithm", ICNN 1993 (Rprop+).
    Riedmiller, "Advanced Supervised Learning in Multi-layer Perceptrons", CSI 16(5), 1994 (Rprop-).
    Igel & Husken, "Improving the Rprop Learning Algorithm", NC 2000; Neurocomputing 50, 2003 (iRprop+/-).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

import mpmath

from ._arith import Ops
from ._hparams import HparamRounding, check_range

__all__ = [
    "STEP_BOUNDS",
    "Backtrack",
    "NanPolicy",
    "RpropHparams",
    "RpropKnobs",
    "RpropState",
    "SignTest",
    "Switch",
    "init",
    "step",
]


STEP_BOUNDS = frozenset({"step_min", "step_max"})


class Backtrack(Enum):
    """Whether a sign change undoes the previous change."""

    NEVER = "never"
    ALWAYS = "always"  # Rprop+
    IF_LOSS_ROSE = "if-loss-rose"  # iRprop+: only where the loss rose, E > E_prev strictly; E_0 = +inf


class SignTest(Enum):
    PRODUCT = "product"  # sign(fl(g * p)) in the parameter's format: a product can underflow to 0
    SIGNS = "signs"  # sign(g) * sign(p): never underflows


class Switch(Enum):
    THREE_WAY = "three-way"  # m > 0 grows, m < 0 shrinks, m = 0 keeps
    TWO_WAY = "two-way"  # m > 0 grows, otherwise shrinks (the community Keras answer)


class NanPolicy(Enum):
    PROPAGATE = "propagate"  # IEEE: sign(NaN) is NaN, so NaN reaches theta
    SIGN_ZERO = "sign-zero"  # torch: sign(NaN) is 0, so a NaN gradient moves nothing and is stored as p


@dataclass(frozen=True)
class RpropKnobs:
    backtrack: Backtrack = Backtrack.NEVER
    freeze: bool = True  # store 0 as p after a sign change
    move_on_sign_change: bool = False  # when not backtracking, move -sign(g) * Delta on a sign change
    clamp_zero_branch: bool = False  # torch clamps Delta in the m = 0 branch too, so also at step 1
    sign_test: SignTest = SignTest.PRODUCT
    switch: Switch = Switch.THREE_WAY
    nan_policy: NanPolicy = NanPolicy.PROPAGATE
    # Paddle refuses an initial step outside the bounds, and a lower bound of 0: 0 < Delta_min <= Delta_0 <= Delta_max.
    initial_step_within_bounds: bool = False
    # The bounds are rounded to the parameter format: a stored step can only be compared with representable
    # bounds, and since rounding is monotone, clamping then rounding equals clamping to the rounded bounds.
    rounding: HparamRounding = field(default_factory=lambda: HparamRounding(to_param_format=STEP_BOUNDS))

    def __post_init__(self) -> None:
        if self.backtrack is Backtrack.ALWAYS and self.move_on_sign_change:
            raise ValueError("backtrack=always already decides the sign-change move; move_on_sign_change is unused")


@dataclass(frozen=True)
class RpropHparams:
    lr: float  # the initial step size Delta_0
    eta_minus: float = 0.5
    eta_plus: float = 1.2
    step_min: float = 1e-6
    step_max: float = 50.0
    maximize: bool = False
    weight_decay: float = 0.0  # coupled (added to g); only a dialect that names it can set it


class RpropState(NamedTuple):
    count: int  # type: ignore[assignment]  # the step counter; it shadows tuple.count, which nothing calls
    step_size: tuple[Any, ...]
    prev_grad: tuple[Any, ...]
    prev_update: tuple[Any, ...]
    prev_loss: Any
    # Not a framework slot: which branch each element took in the last step (1 grow, -1 shrink, 0 keep),
    # so that a mismatch can be reported as the branch decision it is.
    branch: tuple[Any, ...] = ()


def validate(hp: RpropHparams, knobs: RpropKnobs) -> RpropHparams:
    check_range("lr", hp.lr, "lr >= 0", hp.lr >= 0)
    check_range("eta_minus", hp.eta_minus, "0 < eta_minus < 1", 0 < hp.eta_minus < 1)
    check_range("eta_plus", hp.eta_plus, "eta_plus > 1", hp.eta_plus > 1)
    check_range("step_min", hp.step_min, "step_min >= 0", hp.step_min >= 0)
    check_range("step_max", hp.step_max, f"step_max >= step_min ({hp.step_min!r})", hp.step_max >= hp.step_min)
    if knobs.initial_step_within_bounds:
        check_range("step_min", hp.step_min, "step_min > 0", hp.step_min > 0)
        rule = f"step_min ({hp.step_min!r}) <= lr <= step_max ({hp.step_max!r})"
        check_range("lr", hp.lr, rule, hp.step_min <= hp.lr <= hp.step_max)
    check_range("weight_decay", hp.weight_decay, "weight_decay >= 0", hp.weight_decay >= 0)
    return hp


def init(ops: Ops, hp: RpropHparams, knobs: RpropKnobs, params: list[Any]) -> RpropState:
    # MindSpore keeps the learning rate, hence the initial step, as a float32 tensor; a dialect says so in `rounding`.
    delta0 = knobs.rounding.stored_at_once(ops, "lr", hp.lr)
    return RpropState(
        count=0,
        step_size=tuple(ops.store(ops.full_like(p, delta0)) for p in params),
        prev_grad=tuple(ops.full_like(p, 0.0) for p in params),
        prev_update=tuple(ops.full_like(p, 0.0) for p in params),
        prev_loss=ops.store(ops.const(mpmath.inf)),
    )


def step(
    ops: Ops,
    hp: RpropHparams,
    knobs: RpropKnobs,
    state: RpropState,
    params: list[Any],
    grads: list[Any],
    loss: float | None = None,
) -> tuple[list[Any], RpropState]:
    if knobs.backtrack is Backtrack.IF_LOSS_ROSE and loss is None:
        raise ValueError("iRprop+ needs the loss at every step: pass loss=")
    hparam = knobs.rounding.bind(ops)
    eta_minus, eta_plus = hparam("eta_minus", hp.eta_minus), hparam("eta_plus", hp.eta_plus)
    lo, hi = hparam("step_min", hp.step_min), hparam("step_max", hp.step_max)
    wd = hparam("weight_decay", hp.weight_decay)
    current_loss = ops.store(ops.const(loss)) if loss is not None else state.prev_loss
    loss_rose = loss is not None and bool(current_loss > state.prev_loss)

    new_params, step_sizes, prev_grads, prev_updates, branches = [], [], [], [], []
    for theta, g, delta, p, d_prev in zip(
        params, grads, state.step_size, state.prev_grad, state.prev_update, strict=True
    ):
        if hp.maximize:
            g = -g
        if hp.weight_decay:
            # Two stored operations, as MindSpore's decay_weight runs them: the term, then the sum. The sum is
            # kept as p, which is compared exactly, so the extra rounding of the term is part of the dialect.
            g = ops.store(g + ops.store(wd * theta))
        m = _sign_of_product(ops, knobs, g, p)
        grow = ops.mask(m > 0)
        shrink = ops.mask(m < 0) if knobs.switch is Switch.THREE_WAY else ~grow
        kept = ops.minimum(ops.maximum(delta, lo), hi) if knobs.clamp_zero_branch else delta
        grown, shrunk = ops.minimum(delta * eta_plus, hi), ops.maximum(delta * eta_minus, lo)
        delta = ops.store(ops.where(grow, grown, ops.where(shrink, shrunk, kept)))
        move = -_sign(ops, knobs, g) * delta
        d = ops.where(shrink, _sign_change_move(ops, knobs, loss_rose, move, d_prev), move)
        new_params.append(ops.store(theta + d))
        prev_grads.append(ops.where(shrink, ops.full_like(g, 0.0), g) if knobs.freeze else g)
        # Only the backtracking variants read the previous update (and only they expose it as a slot).
        prev_updates.append(ops.store(d) if knobs.backtrack is not Backtrack.NEVER else d_prev)
        step_sizes.append(delta)
        branches.append(grow.astype("int8") - shrink.astype("int8"))
    state = RpropState(
        state.count + 1, tuple(step_sizes), tuple(prev_grads), tuple(prev_updates), current_loss, tuple(branches)
    )
    return new_params, state


def _sign_of_product(ops: Ops, knobs: RpropKnobs, g: Any, p: Any) -> Any:
    if knobs.sign_test is SignTest.PRODUCT:
        return _sign(ops, knobs, ops.round_to_format(g * p))
    return _sign(ops, knobs, g) * _sign(ops, knobs, p)


def _sign(ops: Ops, knobs: RpropKnobs, x: Any) -> Any:
    s = ops.sign(x)
    if knobs.nan_policy is NanPolicy.SIGN_ZERO:
        s = ops.where(ops.isnan(s), ops.full_like(s, 0.0), s)
    return s


def _sign_change_move(ops: Ops, knobs: RpropKnobs, loss_rose: bool, move: Any, d_prev: Any) -> Any:
    if knobs.backtrack is Backtrack.ALWAYS or (knobs.backtrack is Backtrack.IF_LOSS_ROSE and loss_rose):
        return -d_prev
    return move if knobs.move_on_sign_change else ops.full_like(move, 0.0)
