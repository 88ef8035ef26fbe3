"""Adagrad written against `torch.optim.Optimizer`, claiming the `adagrad/torch` dialect: one correct class and
eight classes that each carry exactly one defect.

`SelftestAdagrad` is a plain re-implementation of torch's single-tensor Adagrad. Each broken class subclasses it
and overrides one small method (or one constructor detail), so that the defect is the whole difference. The
docstring of each broken class names the defect and the check expected to catch it first, in the runner's
order: trajectory, teacher_forced, counter_and_slots, config_round_trip, checkpoint, inputs_not_mutated,
replicas, invalid_hparams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "AcceptsInvalidHparams",
    "CounterNeverIncremented",
    "EpsInsideSqrt",
    "EpsZeroReplaced",
    "Float32Accumulator",
    "IgnoresInitialAccumulator",
    "MaximizeInPlace",
    "SelftestAdagrad",
    "StaleAccumulator",
    "StateLostOnLoad",
    "WeightDecayInPlace",
    "WeightDecayNotAccumulated",
]


def _dense(grad: Tensor) -> Tensor:
    """A row-sparse gradient as a dense one (coalescing sums repeated rows, as torch's own Adagrad does).

    Untouched rows get g = 0, which leaves their accumulator and parameter unchanged (0/(√A + ε) = 0 for ε > 0).
    """
    return grad.to_dense() if grad.is_sparse else grad


class SelftestAdagrad(torch.optim.Optimizer):
    """A correct Adagrad in the `adagrad/torch` dialect (the control: it must pass every check).

        g ← −g (maximize);  g ← g + λ·θ;  η_t = η / (1 + κ·(t − 1));  A ← A + g·g;  θ ← θ − η_t·g / (√A + ε)

    with t counted from 1 after the increment. State as torch keeps it: `state[p]["sum"]` (created in
    `__init__`, filled with `initial_accumulator_value`) and `state[p]["step"]`, a 0-d float tensor.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ) -> None:
        self._validate(
            {
                "lr": lr,
                "lr_decay": lr_decay,
                "weight_decay": weight_decay,
                "initial_accumulator_value": initial_accumulator_value,
                "eps": eps,
            }
        )
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _validate(self, settings: Mapping[str, float]) -> None:
        for name, value in settings.items():
            if not value >= 0.0:  # also refuses NaN
                raise ValueError(f"Invalid {name}: {value!r} (must be >= 0)")

    def _init_state(self, p: Tensor, group: Mapping[str, Any]) -> None:
        state = self.state[p]
        state["step"] = torch.tensor(0.0)
        state["sum"] = torch.full_like(p, group["initial_accumulator_value"], memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, self.state[p], group)
        return loss

    def _advance(self, state: dict[str, Any]) -> float:
        """Increment the counter; return t, the number of this update (1 on the first)."""
        state["step"] += 1
        return float(state["step"].item())

    def _denominator(self, accumulator: Tensor, eps: float) -> Tensor:
        return accumulator.sqrt().add_(eps)

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        t = self._advance(state)
        grad = _dense(grad)
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        accumulator = state["sum"]
        accumulator.addcmul_(grad, grad, value=1)
        p.addcdiv_(grad, self._denominator(accumulator, group["eps"]), value=-lr_t)


class EpsInsideSqrt(SelftestAdagrad):
    """Defect: ε inside the square root, √(A + ε), where the dialect puts it outside, √A + ε.

    Expected to be caught first by: `trajectory` (the EPS_DECIDES edge, where tiny gradients make the placement
    decide the step).
    """

    def _denominator(self, accumulator: Tensor, eps: float) -> Tensor:
        return accumulator.add(eps).sqrt_()


class EpsZeroReplaced(SelftestAdagrad):
    """Defect: `eps=0` silently replaced by the default (`eps or 1e-10`), as tf.keras v2 does; the torch dialect
    takes ε = 0 literally, so A = 0 with g = 0 gives 0/0 = NaN.

    Expected to be caught first by: `trajectory` (the ZERO_ACCUMULATOR_EPS0 edge expects NaN).
    """

    def _denominator(self, accumulator: Tensor, eps: float) -> Tensor:
        return accumulator.sqrt().add_(eps or 1e-10)


class StaleAccumulator(SelftestAdagrad):
    """Defect: divides by the accumulator from before this step's g² (the denominator is taken, then A grows).

    Expected to be caught first by: `trajectory`.
    """

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        t = self._advance(state)
        grad = _dense(grad)
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        accumulator = state["sum"]
        denominator = self._denominator(accumulator, group["eps"])  # DEFECT: before A ← A + g·g
        accumulator.addcmul_(grad, grad, value=1)
        p.addcdiv_(grad, denominator, value=-lr_t)


class WeightDecayNotAccumulated(SelftestAdagrad):
    """Defect: the coupled weight decay λ·θ enters the update but not the accumulator (A grows by the raw g²).

    Expected to be caught first by: `trajectory` (the WEIGHT_DECAY edge).
    """

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        t = self._advance(state)
        grad = _dense(grad)
        if group["maximize"]:
            grad = -grad
        raw = grad
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        accumulator = state["sum"]
        accumulator.addcmul_(raw, raw, value=1)  # DEFECT: should accumulate the decayed gradient
        p.addcdiv_(grad, self._denominator(accumulator, group["eps"]), value=-lr_t)


class CounterNeverIncremented(SelftestAdagrad):
    """Defect: the step counter `state["step"]` is read but never incremented (so it stays at its start value,
    and `lr_decay` reads it as if every step were the first).

    Expected to be caught first by: `trajectory` (the decayed learning rate is wrong from step 2 on).
    """

    def _advance(self, state: dict[str, Any]) -> float:
        return float(state["step"].item()) + 1  # DEFECT: state["step"] itself is never incremented


class StateLostOnLoad(SelftestAdagrad):
    """Defect: `load_state_dict` restores only the hyperparameters (param groups), not the per-parameter state,
    so a resumed run starts again from the initial accumulator and counter.

    Expected to be caught first by: `checkpoint`.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for group, saved in zip(self.param_groups, state_dict["param_groups"], strict=True):
            group.update({k: v for k, v in saved.items() if k != "params"})  # DEFECT: state_dict["state"] dropped


class Float32Accumulator(SelftestAdagrad):
    """Defect: the accumulator is always kept in float32, also for a float64 parameter.

    Expected to be caught first by: `trajectory` (slot dtypes are exact; only float64 cases show it).
    """

    def _init_state(self, p: Tensor, group: Mapping[str, Any]) -> None:
        state = self.state[p]
        state["step"] = torch.tensor(0.0)
        state["sum"] = torch.full_like(p, group["initial_accumulator_value"], dtype=torch.float32)  # DEFECT


class AcceptsInvalidHparams(SelftestAdagrad):
    """Defect: no hyperparameter is validated; a negative lr, ε, initial accumulator, lr_decay or weight decay
    is accepted silently.

    Expected to be caught first by: `invalid_hparams`.
    """

    def _validate(self, settings: Mapping[str, float]) -> None:
        pass  # DEFECT


class WeightDecayInPlace(SelftestAdagrad):
    """Defect: adds the weight decay to the caller's gradient in place (`grad.add_(p, alpha=λ)`), so `p.grad`
    holds g + λ·θ after the step.

    Expected to be caught first by: `inputs_not_mutated` (the WEIGHT_DECAY edge).
    """

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        t = self._advance(state)
        grad = _dense(grad)
        if group["maximize"]:
            grad = -grad
        if group["weight_decay"] != 0:
            grad = grad.add_(p, alpha=group["weight_decay"])  # DEFECT: in place
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        state["sum"].addcmul_(grad, grad, value=1)
        p.addcdiv_(grad, self._denominator(state["sum"], group["eps"]), value=-lr_t)


class MaximizeInPlace(SelftestAdagrad):
    """Defect: negates the caller's gradient in place for `maximize=True` (`grad.neg_()`).

    Expected to be caught first by: `inputs_not_mutated` (the MAXIMIZE edge).
    """

    def _update(self, p: Tensor, grad: Tensor, state: dict[str, Any], group: Mapping[str, Any]) -> None:
        t = self._advance(state)
        grad = _dense(grad)
        if group["maximize"]:
            grad = grad.neg_()  # DEFECT: in place
        if group["weight_decay"] != 0:
            grad = grad.add(p, alpha=group["weight_decay"])
        lr_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        state["sum"].addcmul_(grad, grad, value=1)
        p.addcdiv_(grad, self._denominator(state["sum"], group["eps"]), value=-lr_t)


# ---------------------------------------------------------------------------------------------------------------
# Once a known gap (conformance.selftest.GAPS): corpus 1.1.0's INITIAL_ACCUMULATOR case catches it at level 1.


class IgnoresInitialAccumulator(SelftestAdagrad):
    """Defect: `initial_accumulator_value` is accepted but ignored: the accumulator starts at 0.

    Expected to be caught first by: `trajectory` (the level-1 INITIAL_ACCUMULATOR case).
    """

    def _init_state(self, p: Tensor, group: Mapping[str, Any]) -> None:
        state = self.state[p]
        state["step"] = torch.tensor(0.0)
        state["sum"] = torch.zeros_like(p, memory_format=torch.preserve_format)  # DEFECT
