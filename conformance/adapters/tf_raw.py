"""Adapters for TensorFlow's Adagrad kernels called directly: ResourceApplyAdagradV2 and ResourceApplyAdagrad."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.adapter import Capabilities, LiveOptimizer
from reference import get as get_dialect

from ._tf_common import TF_DTYPES, VariablesLive, check_dialect, import_tensorflow, variable_name

__all__ = ["TFRawAdapter", "subjects"]


@dataclass(frozen=True)
class _Op:
    name: str
    takes_epsilon: bool
    # TF1's AdagradOptimizer turns a Python-float lr into a float32 tensor and casts that to the variable dtype;
    # the V2 op has no optimizer in front of it, so it is fed the lr in the variable dtype directly.
    lr_via_float32: bool


_OPS = {
    "adagrad/tf-raw-v2": _Op("ResourceApplyAdagradV2", takes_epsilon=True, lr_via_float32=False),
    "adagrad/tf1": _Op("ResourceApplyAdagrad", takes_epsilon=False, lr_via_float32=True),
}


class _RawOpLive(VariablesLive):
    """One tf.Variable and one accumulator variable per parameter tensor, updated by one op call each."""

    def __init__(
        self,
        tf: Any,
        variables: Sequence[Any],
        accumulators: Sequence[Any],
        slot: str,
        apply: Callable[[Any, Any, Any], None],
    ) -> None:
        super().__init__(variables, {slot: slot})
        self._tf = tf
        self._accumulator = {id(v): a for v, a in zip(variables, accumulators, strict=True)}
        self._apply = apply

    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None:
        del loss  # Adagrad takes no loss
        for v, g in zip(self._variables, grads, strict=True):
            self._apply(v, self._accumulator[id(v)], self._tf.constant(g, dtype=v.dtype))

    def count(self) -> int | None:
        return None  # the ops keep no step counter

    def _slot(self, variable: Any, own_name: str) -> Any:
        return self._accumulator[id(variable)]


class TFRawAdapter:
    """A raw training op as an optimizer: the op's inputs come from the dialect's hyperparameters.

    The ops have no defaults of their own, so the dialect's defaults (and names) fill in what is not given.
    """

    def __init__(self, *, dialect: str, name: str | None = None) -> None:
        if dialect not in _OPS:
            raise ValueError(f"no raw TF op implements {dialect}; known: {', '.join(_OPS)}")
        self.dialect = dialect
        self._op = _OPS[dialect]
        self.name = name or f"tf.raw_ops.{self._op.name}"
        self.capabilities = Capabilities(dialects=(dialect,), dtypes=TF_DTYPES)

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, self.dialect, dialect)
        spec = get_dialect(dialect)
        hp = spec.hparams(hparams)
        tf = import_tensorflow()
        params = [np.array(p, copy=True) for p in params]
        variables = [tf.Variable(p, name=variable_name(i)) for i, p in enumerate(params)]
        accumulators = [tf.Variable(np.full(p.shape, hp.initial_accumulator, dtype=p.dtype)) for p in params]
        op = getattr(tf.raw_ops, self._op.name)

        def apply(var: Any, accum: Any, grad: Any) -> None:
            inputs = {"lr": self._lr(tf, hp.lr, var.dtype), "update_slots": hp.update_slots}
            if self._op.takes_epsilon:
                inputs["epsilon"] = tf.constant(hp.eps, dtype=var.dtype)
            op(var=var.handle, accum=accum.handle, grad=grad, **inputs)

        return _RawOpLive(tf, variables, accumulators, spec.slots["accumulator"], apply)

    def _lr(self, tf: Any, lr: float, dtype: Any) -> Any:
        if self._op.lr_via_float32:
            return tf.cast(tf.constant(lr, dtype=tf.float32), dtype)
        return tf.constant(lr, dtype=dtype)


def subjects() -> list[TFRawAdapter]:
    """Both raw Adagrad ops: ApplyAdagradV2 (epsilon outside the sqrt) and ApplyAdagrad (no epsilon, TF1)."""
    return [TFRawAdapter(dialect=dialect) for dialect in _OPS]
