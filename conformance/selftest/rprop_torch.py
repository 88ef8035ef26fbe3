"""RProp written against `torch.optim.Optimizer`: correct classes for `rprop/torch`, `rprop/irprop-` and
`rprop/rprop-`, and classes that each carry exactly one defect.

Each broken class subclasses a correct one and overrides one small method (or flips one class attribute), so that
the defect is the whole difference. Its docstring names the defect and the check expected to catch it first, in
the runner's order: trajectory, teacher_forced, counter_and_slots, config_round_trip, checkpoint,
inputs_not_mutated, replicas, invalid_hparams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "CounterNotExposed",
    "GrowsOnZeroProduct",
    "IRpropMinusWithoutFreeze",
    "MovesOnSignChange",
    "MutatesGradient",
    "NoClampWhenKept",
    "RpropMinusTwoWaySwitch",
    "SelftestIRpropMinus",
    "SelftestRprop",
    "SelftestRpropMinus",
    "SignsInsteadOfProduct",
    "StepSizesNotRestored",
    "UnvalidatedEtas",
]


# ---------------------------------------------------------------------------------------------------------------
# rprop/torch


class SelftestRprop(torch.optim.Optimizer):
    """A correct RProp in the `rprop/torch` dialect (the control: it must pass every check).

    A re-implementation of torch's single-tensor Rprop: m = sign(fl(g·p)) with sign(NaN) = 0; Δ ← clamp(Δ·f)
    with f = η⁺, η⁻ or 1 for m > 0, < 0, = 0 (η± rounded to the parameter format, the clamp applied in every
    branch); on m < 0 the gradient is frozen to 0, so θ does not move and p ← 0; θ ← θ − sign(g)·Δ; p ← g.
    State as torch keeps it, created on the first step: `prev`, `step_size` and the counter `step`.
    Unlike torch 2.13 (see conformance/manifests/torch.toml), it also refuses step_sizes with min > max.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50.0),
        maximize: bool = False,
    ) -> None:
        etas = (float(etas[0]), float(etas[1]))
        step_sizes = (float(step_sizes[0]), float(step_sizes[1]))
        self._validate(lr, etas, step_sizes)
        super().__init__(params, {"lr": lr, "etas": etas, "step_sizes": step_sizes, "maximize": maximize})

    def _validate(self, lr: float, etas: tuple[float, float], step_sizes: tuple[float, float]) -> None:
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr!r} (must be >= 0)")
        self._validate_etas(etas)
        if not 0.0 <= step_sizes[0] <= step_sizes[1]:
            raise ValueError(f"Invalid step_sizes: {step_sizes!r} (need 0 <= min <= max)")

    def _validate_etas(self, etas: tuple[float, float]) -> None:
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid etas: {etas!r} (need 0 < eta_minus < 1 < eta_plus)")

    def _init_state(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        state["step"] = torch.tensor(0.0)
        state["prev"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step_size"] = torch.full_like(grad, group["lr"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Rprop does not support sparse gradients")
                state = self.state[p]
                if len(state) == 0:
                    self._init_state(p, p.grad, state, group)
                self._advance(state)
                self._update(p, p.grad, state, group)
        return loss

    def _advance(self, state: dict[str, Any]) -> None:
        state["step"] += 1

    def _working_copy(self, grad: Tensor) -> Tensor:
        """The gradient that the update may freeze in place: a copy, never the caller's `p.grad`."""
        return grad.clone(memory_format=torch.preserve_format)

    def _product_sign(self, grad: Tensor, prev: Tensor) -> Tensor:
        return grad.mul(prev).sign()

    def _factors(self, sign: Tensor, eta_minus: float, eta_plus: float) -> Tensor:
        """In place: m > 0 → η⁺, m < 0 → η⁻, m = 0 (and NaN, whose torch sign is 0) → 1."""
        sign[sign.gt(0)] = eta_plus
        sign[sign.lt(0)] = eta_minus
        sign[sign.eq(0)] = 1
        return sign

    def _adapt(self, step_size: Tensor, factors: Tensor, low: float, high: float) -> None:
        step_size.mul_(factors).clamp_(low, high)

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        eta_minus, eta_plus = group["etas"]
        low, high = group["step_sizes"]
        grad = -grad if group["maximize"] else self._working_copy(grad)
        prev, step_size = state["prev"], state["step_size"]
        factors = self._factors(self._product_sign(grad, prev), eta_minus, eta_plus)
        self._adapt(step_size, factors, low, high)
        shrunk = factors.eq(eta_minus)
        direction = self._direction(grad, shrunk)
        grad[shrunk] = 0  # the freeze: no move, and p ← 0
        p.addcmul_(direction, step_size, value=-1)
        prev.copy_(grad)

    def _direction(self, grad: Tensor, shrunk: Tensor) -> Tensor:
        """sign(g), 0 where the step just shrank (the torch dialect does not move on a sign change)."""
        return torch.where(shrunk, torch.zeros_like(grad), grad.sign())


class MovesOnSignChange(SelftestRprop):
    """Defect: moves −sign(g)·Δ on the sign-change step (Rprop−'s move) although it freezes p like torch; the
    torch dialect does not move on that step.

    Expected to be caught first by: `trajectory` (the SIGN_FLIPS edge).
    """

    def _direction(self, grad: Tensor, shrunk: Tensor) -> Tensor:
        return grad.sign()  # DEFECT: no zero where the step shrank


class GrowsOnZeroProduct(SelftestRprop):
    """Defect: the switch tests m ≥ 0 for growing, so a zero product (the first step, a zero gradient, an
    underflowing product) grows the step instead of keeping it.

    Expected to be caught first by: `trajectory` (already the first step, where p = 0).
    """

    def _factors(self, sign: Tensor, eta_minus: float, eta_plus: float) -> Tensor:
        negative = sign.lt(0)
        sign[sign.ge(0)] = eta_plus  # DEFECT: ≥ instead of >
        sign[negative] = eta_minus
        return sign


class NoClampWhenKept(SelftestRprop):
    """Defect: clamps the step size only where it changed, as the papers do, not in the m = 0 branch as torch
    does; visible only when the initial step lies outside [Δmin, Δmax].

    Expected to be caught first by: `trajectory` (the INITIAL_STEP_OUTSIDE edges, lr = 60 and 1e-9).
    """

    def _adapt(self, step_size: Tensor, factors: Tensor, low: float, high: float) -> None:
        changed = step_size.mul(factors).clamp_(low, high)
        step_size.copy_(torch.where(factors.eq(1), step_size, changed))  # DEFECT: the kept Δ is not clamped


class SignsInsteadOfProduct(SelftestRprop):
    """Defect: tests sign(g)·sign(p) instead of the sign of the product fl(g·p) in the parameter format, so a
    product that underflows to 0 still counts as a sign agreement and grows the step.

    Expected to be caught first by: `trajectory` (the PRODUCT_UNDERFLOW edge).
    """

    def _product_sign(self, grad: Tensor, prev: Tensor) -> Tensor:
        return grad.sign().mul(prev.sign())  # DEFECT


class StepSizesNotRestored(SelftestRprop):
    """Defect: `load_state_dict` resets every step size to the group's lr after loading ("so that a changed lr
    takes effect on resume"), so a resumed run forgets the adapted step sizes.

    Expected to be caught first by: `checkpoint`.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if "step_size" in state:
                    state["step_size"].fill_(group["lr"])  # DEFECT


class UnvalidatedEtas(SelftestRprop):
    """Defect: the eta range is not validated (η⁻ ≥ 1 or η⁺ ≤ 1 is accepted silently).

    Expected to be caught first by: `invalid_hparams`.
    """

    def _validate_etas(self, etas: tuple[float, float]) -> None:
        pass  # DEFECT


class MutatesGradient(SelftestRprop):
    """Defect: freezes the caller's gradient in place (`p.grad[m < 0] = 0`) instead of a copy, as torch's Rprop
    would without its `grad.clone()`.

    Expected to be caught first by: `inputs_not_mutated` (the parameters and state are still right).
    """

    def _working_copy(self, grad: Tensor) -> Tensor:
        return grad  # DEFECT: no copy


class CounterNotExposed(SelftestRprop):
    """Defect: counts steps in an attribute of the optimizer (`self.steps_taken`), not in `state[p]["step"]`,
    so the counter is never exposed where torch keeps it (and is not saved with the state).

    Expected to be caught first by: `counter_and_slots` (the counter's own check; the numbers are right).
    """

    steps_taken = 0

    def _init_state(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        state["prev"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step_size"] = torch.full_like(grad, group["lr"])

    def _advance(self, state: dict[str, Any]) -> None:
        self.steps_taken += 1  # DEFECT


# ---------------------------------------------------------------------------------------------------------------
# rprop/irprop- and rprop/rprop- (the papers' rules)


def _nan_sign(x: Tensor) -> Tensor:
    """IEEE sign: sign(NaN) = NaN (torch.sign gives 0)."""
    return torch.where(x.isnan(), x, x.sign())


class _PaperRprop(torch.optim.Optimizer):
    """The papers' RProp, parametrised by three class attributes (the dialect knobs):

    - `FREEZE`: after a sign change, store p ← 0;
    - `MOVE_ON_SIGN_CHANGE`: on a sign change, move −sign(g)·Δ (else do not move);
    - `TWO_WAY`: shrink whenever m is not > 0 (else: grow on m > 0, shrink on m < 0, keep on m = 0).

    m = sign(fl(g·p)) with the product in the parameter format; sign(NaN) = NaN (IEEE), so NaN reaches θ.
    Δ ← min(η⁺·Δ, Δmax) or max(η⁻·Δ, Δmin) with η± unrounded (the product is formed in float64 and rounded once
    to the format); the bounds are rounded to the format; a kept Δ is not clamped. State: `delta`, `prev_grad`
    and the counter `t`.
    """

    FREEZE: bool
    MOVE_ON_SIGN_CHANGE: bool
    TWO_WAY: bool = False

    def __init__(
        self,
        params: Iterable[Any],
        delta_0: float = 0.1,
        eta_minus: float = 0.5,
        eta_plus: float = 1.2,
        delta_min: float = 1e-6,
        delta_max: float = 50.0,
    ) -> None:
        if not delta_0 >= 0.0:
            raise ValueError(f"Invalid delta_0: {delta_0!r} (must be >= 0)")
        if not 0.0 < eta_minus < 1.0:
            raise ValueError(f"Invalid eta_minus: {eta_minus!r} (need 0 < eta_minus < 1)")
        if not eta_plus > 1.0:
            raise ValueError(f"Invalid eta_plus: {eta_plus!r} (need eta_plus > 1)")
        if not 0.0 <= delta_min <= delta_max:
            raise ValueError(f"Invalid delta_min/delta_max: {delta_min!r}/{delta_max!r} (need 0 <= min <= max)")
        defaults = {
            "delta_0": delta_0,
            "eta_minus": eta_minus,
            "eta_plus": eta_plus,
            "delta_min": delta_min,
            "delta_max": delta_max,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["t"] = torch.tensor(0.0)
                    state["delta"] = torch.full_like(p, group["delta_0"])
                    state["prev_grad"] = torch.zeros_like(p)
                state["t"] += 1
                self._update(p, p.grad, state, group)
        return loss

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        delta, prev = state["delta"], state["prev_grad"]
        m = _nan_sign(grad * prev)  # the product in the parameter format
        grow = m > 0
        shrink = ~grow if self.TWO_WAY else m < 0
        wide = delta.to(torch.float64)
        grown = (wide * group["eta_plus"]).to(p.dtype).clamp_max(group["delta_max"])
        shrunk = (wide * group["eta_minus"]).to(p.dtype).clamp_min(group["delta_min"])
        delta.copy_(torch.where(grow, grown, torch.where(shrink, shrunk, delta)))
        move = -_nan_sign(grad) * delta
        if not self.MOVE_ON_SIGN_CHANGE:
            move = torch.where(shrink, torch.zeros_like(move), move)
        p.add_(move)
        prev.copy_(torch.where(shrink, torch.zeros_like(grad), grad) if self.FREEZE else grad)


class SelftestIRpropMinus(_PaperRprop):
    """A correct iRprop− (`rprop/irprop-`, Igel & Hüsken 2000): on a sign change, shrink, do not move, p ← 0.
    The control: it must pass every check."""

    FREEZE = True
    MOVE_ON_SIGN_CHANGE = False


class SelftestRpropMinus(_PaperRprop):
    """A correct Rprop− (`rprop/rprop-`, Riedmiller 1994): on a sign change, shrink and move −sign(g)·Δ with the
    shrunk Δ; p ← g always. The control: it must pass every check."""

    FREEZE = False
    MOVE_ON_SIGN_CHANGE = True


class IRpropMinusWithoutFreeze(SelftestIRpropMinus):
    """Defect: claims iRprop− but stores p ← g after a sign change instead of 0 (no freezing), which is Rprop−'s
    bookkeeping; the next step then sees a second sign change and shrinks again.

    Expected to be caught first by: `trajectory` (the SIGN_FLIPS edge; `prev_grad` differs at once).
    """

    FREEZE = False  # DEFECT


class RpropMinusTwoWaySwitch(SelftestRpropMinus):
    """Defect: claims Rprop− (a three-way switch) but shrinks whenever m ≤ 0, the community Keras answer's two-way
    switch, so the first step (p = 0) already moves Δ₀·η⁻.

    Expected to be caught first by: `trajectory`.
    """

    TWO_WAY = True  # DEFECT
