"""Adapters for TensorFlow's Adagrad kernels called directly: ResourceApplyAdagradV2 and ResourceApplyAdagrad.

Each parameter tensor is a `tf.Variable` with an accumulator `tf.Variable` beside it, updated by one op call per
step. A `reference.sparse.SparseGrad` goes to the op's sparse twin (`ResourceSparseApplyAdagradV2`,
`ResourceSparseApplyAdagrad`) with its indices as given, repeats included: the ops apply a repeated row once per
occurrence, in order. The ops keep no counter and have no configuration object, so there is no `config`
capability; `update_slots` is an input of every op, set from the dialect's hyperparameter.

- `set_state` assigns the parameters and accumulators.
- `save` writes a `tf.train.Checkpoint` of the parameter and accumulator variables; `load` restores it into fresh
  variables and insists that every saved value found its variable (`assert_consumed`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.adapter import Capabilities, LiveOptimizer
from conformance.registry import manifest_path
from reference import get as get_dialect

from ..kit import check_dialect
from ._tf_common import TF_DTYPES, VariablesLive, import_tensorflow, tf_gradient, variable_name

__all__ = ["CHECKPOINT", "TFRawAdapter", "subjects"]

CHECKPOINT = "checkpoint"  # tf.train.Checkpoint's prefix inside the save directory


@dataclass(frozen=True)
class _Op:
    name: str
    sparse_name: str
    takes_epsilon: bool
    # TF1's AdagradOptimizer turns a Python-float lr into a float32 tensor and casts that to the variable dtype;
    # the V2 op has no optimizer in front of it, so it is fed the lr in the variable dtype directly.
    lr_via_float32: bool


_OPS = {
    "adagrad/tf-raw-v2": _Op(
        "ResourceApplyAdagradV2", "ResourceSparseApplyAdagradV2", takes_epsilon=True, lr_via_float32=False
    ),
    "adagrad/tf1": _Op("ResourceApplyAdagrad", "ResourceSparseApplyAdagrad", takes_epsilon=False, lr_via_float32=True),
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
        self._accumulators = list(accumulators)
        self._accumulator = {id(v): a for v, a in zip(variables, accumulators, strict=True)}
        self._apply = apply

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        del loss  # Adagrad takes no loss
        self._check_grads(grads)
        shapes = [tuple(v.shape) for v in self._variables]
        tensors = [tf_gradient(self._tf, g, d, s) for g, d, s in zip(grads, self._dtypes, shapes, strict=True)]
        for v, g in zip(self._variables, tensors, strict=True):
            self._apply(v, self._accumulator[id(v)], g)
        self._held = tensors

    def count(self) -> int | None:
        return None  # the ops keep no step counter

    def _slot(self, index: int, slot: str) -> Any:
        return self._accumulators[index]

    def _checkpoint(self) -> Any:
        return self._tf.train.Checkpoint(params=list(self._variables), accumulators=self._accumulators)

    def save(self, directory: pathlib.Path) -> None:
        self._checkpoint().write(str(pathlib.Path(directory) / CHECKPOINT))

    def restore(self, directory: pathlib.Path) -> None:
        self._checkpoint().read(str(pathlib.Path(directory) / CHECKPOINT)).assert_consumed()


class TFRawAdapter:
    """A raw training op as an optimizer: the op's inputs come from the dialect's hyperparameters.

    The ops have no defaults of their own, so the dialect's defaults (and names) fill in what is not given.
    `sparse` overrides whether row-sparse gradients are claimed (default: yes, through the op's sparse twin).
    `manifest` names the adapter's own known-failure manifest, applied unless `--no-default-manifest`.
    """

    def __init__(
        self, *, dialect: str, name: str | None = None, sparse: bool = True, manifest: pathlib.Path | None = None
    ) -> None:
        if dialect not in _OPS:
            raise ValueError(f"no raw TF op implements {dialect}; known: {', '.join(_OPS)}")
        self.dialect = dialect
        self.manifest = manifest
        self._op = _OPS[dialect]
        self.name = name or f"tf.raw_ops.{self._op.name}"
        self.capabilities = Capabilities(
            dialects=(dialect,), dtypes=TF_DTYPES, set_state=True, serialize=True, sparse=sparse
        )

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, self.dialect, dialect)
        return self._create(hparams, params)

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        """Fresh variables (the op's inputs from `hparams`), then the saved parameters and accumulators."""
        check_dialect(self.name, self.dialect, dialect)
        live = self._create(hparams, params)
        live.restore(pathlib.Path(directory))
        return live

    def versions(self) -> dict[str, str]:
        return {"tensorflow": str(import_tensorflow().__version__)}

    def _create(self, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> _RawOpLive:
        spec = get_dialect(self.dialect)
        hp = spec.hparams(hparams, validate=False)  # the ops themselves check nothing; neither does their adapter
        tf = import_tensorflow()
        params = [np.array(p, copy=True) for p in params]
        variables = [tf.Variable(p, name=variable_name(i)) for i, p in enumerate(params)]
        accumulators = [tf.Variable(np.full(p.shape, hp.initial_accumulator, dtype=p.dtype)) for p in params]
        dense, sparse = getattr(tf.raw_ops, self._op.name), getattr(tf.raw_ops, self._op.sparse_name)

        def apply(var: Any, accum: Any, grad: Any) -> None:
            inputs = {"lr": self._lr(tf, hp.lr, var.dtype), "update_slots": hp.update_slots}
            if self._op.takes_epsilon:
                inputs["epsilon"] = tf.constant(hp.eps, dtype=var.dtype)
            if isinstance(grad, tf.IndexedSlices):
                sparse(var=var.handle, accum=accum.handle, grad=grad.values, indices=grad.indices, **inputs)
            else:
                dense(var=var.handle, accum=accum.handle, grad=grad, **inputs)

        return _RawOpLive(tf, variables, accumulators, spec.slots["accumulator"], apply)

    def _lr(self, tf: Any, lr: float, dtype: Any) -> Any:
        if self._op.lr_via_float32:
            return tf.cast(tf.constant(lr, dtype=tf.float32), dtype)
        return tf.constant(lr, dtype=dtype)

    def __repr__(self) -> str:
        return f"TFRawAdapter({self.name!r}, dialect={self.dialect!r})"


def subjects() -> list[TFRawAdapter]:
    """Both raw Adagrad ops: ApplyAdagradV2 (epsilon outside the sqrt) and ApplyAdagrad (no epsilon, TF1), with
    the known-failure manifest `manifests/tf_raw.toml`."""
    return [TFRawAdapter(dialect=dialect, manifest=manifest_path("tf_raw")) for dialect in _OPS]
