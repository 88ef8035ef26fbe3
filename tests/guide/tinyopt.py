"""tinyopt: a very small NumPy optimizer library with its own API, as a framework that optconf does not ship.

docs/writing-an-adapter.md tests it with an adapter written against optconf's public API. Nothing here knows
about optconf: the names, the defaults, the state layout and the file format are tinyopt's own.

- `Adagrad(params, learning_rate=0.01, epsilon=1e-6, ...)` keeps the parameter arrays it is given and updates
  them in place, as a framework updates a model's weights.
- Arithmetic is in float64; each stored value (accumulator, parameter) is rounded once to the parameter's dtype.
- `step` takes one gradient per parameter: a dense array, or `RowSparse(rows, values)`, whose repeated rows are
  summed before the update, which then touches only those rows.
- The state is `accumulators` (one array per parameter) and `iterations`, the number of steps taken.
- `save`/`load` write and read the state with `np.savez` (never pickle).

A documented deviation: `lr_decay` is not range-checked, so a negative value is accepted (the learning rate then
grows each step). The other hyperparameters refuse negative values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Adagrad", "RowSparse"]


@dataclass(frozen=True)
class RowSparse:
    """A gradient for some rows (the first axis) of a parameter; `rows` may repeat, `values` has one row each."""

    rows: np.ndarray
    values: np.ndarray


class Adagrad:
    """Adagrad with inverse-time learning-rate decay and coupled weight decay (added to the gradient)."""

    def __init__(
        self,
        params: Sequence[np.ndarray],
        learning_rate: float = 0.01,
        epsilon: float = 1e-6,
        initial_accumulator: float = 0.0,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        for name, value in (
            ("learning_rate", learning_rate),
            ("epsilon", epsilon),
            ("initial_accumulator", initial_accumulator),
            ("weight_decay", weight_decay),
        ):
            if not value >= 0:
                raise ValueError(f"tinyopt.Adagrad: {name} must be >= 0, got {value!r}")
        self.params = list(params)
        self.learning_rate = learning_rate
        self.epsilon = epsilon
        self.initial_accumulator = initial_accumulator
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.accumulators = [np.full_like(p, initial_accumulator) for p in self.params]
        self.iterations = 0

    def get_config(self) -> dict[str, float]:
        return {
            "learning_rate": self.learning_rate,
            "epsilon": self.epsilon,
            "initial_accumulator": self.initial_accumulator,
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
        }

    @classmethod
    def from_config(cls, params: Sequence[np.ndarray], config: Mapping[str, Any]) -> Adagrad:
        return cls(params, **config)

    def step(self, grads: Sequence[np.ndarray | RowSparse]) -> None:
        if len(grads) != len(self.params):
            raise ValueError(f"tinyopt.Adagrad: {len(grads)} gradients for {len(self.params)} parameters")
        lr = self.learning_rate / (1 + self.lr_decay * self.iterations)
        with np.errstate(all="ignore"):  # inf and NaN gradients propagate, as IEEE arithmetic says
            for index, grad in enumerate(grads):
                if isinstance(grad, RowSparse):
                    self._step_rows(index, grad, lr)
                else:
                    param, acc = self.params[index], self.accumulators[index]
                    param[...], acc[...] = self._update(param, acc, np.asarray(grad), lr)
        self.iterations += 1

    def _step_rows(self, index: int, grad: RowSparse, lr: float) -> None:
        param, acc = self.params[index], self.accumulators[index]
        rows, inverse = np.unique(np.asarray(grad.rows, dtype=np.int64), return_inverse=True)
        summed = np.zeros((len(rows), *param.shape[1:]), dtype=np.float64)
        np.add.at(summed, inverse, np.asarray(grad.values, dtype=np.float64))
        param[rows], acc[rows] = self._update(param[rows], acc[rows], summed, lr)

    def _update(self, param: np.ndarray, acc: np.ndarray, grad: np.ndarray, lr: float) -> tuple[np.ndarray, ...]:
        """The new parameter and accumulator, each computed in float64 and rounded once to the parameter's dtype."""
        p, g = param.astype(np.float64), grad.astype(np.float64)
        if self.weight_decay:
            g = g + self.weight_decay * p
        new_acc = (acc.astype(np.float64) + g * g).astype(param.dtype)
        # The step divides by the accumulator as stored, so an accumulator that overflows to inf stops the update.
        return (p - lr * g / self._denominator(new_acc.astype(np.float64))).astype(param.dtype), new_acc

    def _denominator(self, acc: np.ndarray) -> np.ndarray:
        return np.sqrt(acc) + self.epsilon

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {f"accumulator_{i}": acc.copy() for i, acc in enumerate(self.accumulators)}
        return state | {"iterations": np.array(self.iterations, dtype=np.int64)}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        for i, acc in enumerate(self.accumulators):
            saved = np.asarray(state[f"accumulator_{i}"])
            if saved.dtype.kind == "V" and saved.dtype.itemsize == acc.dtype.itemsize:
                saved = saved.view(acc.dtype)  # np.savez keeps bfloat16 as raw 2-byte records
            if saved.shape != acc.shape or saved.dtype != acc.dtype:
                raise ValueError(f"tinyopt.Adagrad: accumulator {i} is {saved.dtype}{saved.shape}, not {acc.dtype}")
            acc[...] = saved
        self.iterations = int(state["iterations"])

    def save(self, path: str | os.PathLike[str]) -> None:
        np.savez(path, **self.state_dict())

    def load(self, path: str | os.PathLike[str]) -> None:
        with np.load(path, allow_pickle=False) as saved:
            self.load_state_dict({name: saved[name] for name in saved.files})
