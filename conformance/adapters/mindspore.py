"""The MindSpore adapter: `mindspore.nn.Adagrad` and `mindspore.nn.Rprop` in PyNative mode on the CPU.

Each optimizer is a `Cell` called with a tuple of gradients; its state lives in `Parameter`s that the optimizer
creates from the parameters it is given: `accum.NAME` (Adagrad), `prev.NAME` and `step_size.NAME` (Rprop), and the
`global_step` counter both keep. The adapter reads them back under those names (the dialects use MindSpore's own).

- `set_state` writes with `ops.assign`, the in-place operator the optimizers use themselves. `Parameter.set_data`
  replaces the tensor that the optimizer's compiled `construct` captured: the next step neither reads the value
  written nor updates the parameter that is read back (measured on Rprop: both stay as written).
- `save` is `mindspore.save_checkpoint(optimizer, ...)`, MindSpore's own protobuf `.ckpt` file of every parameter
  the optimizer holds (the parameters, its state, `global_step` and `learning_rate`); `load` builds a fresh optimizer
  and `load_param_into_net`s the file into it before its first step, so the compiled step captures the loaded
  values. Nothing is unpickled.
- Zero-size parameters cannot exist: MindSpore's initializer refuses a shape with a 0 ("the value of 'shape' must
  be positive integer"), so such a case is `Unsupported`, with that reason.
- bfloat16 is not claimed: MindSpore 2.10.0 refuses to make a bfloat16 Parameter here, from NumPy or cast from
  float32 ("The Numpy bfloat16 data type is not supported now"), so no bfloat16 case can be set up.
- MindSpore is imported when the first optimizer is built, not when this module is: its runtime threads then start
  in the runner's forked child, and the run keeps its crash isolation (conformance/isolation.py). A process that
  already ran MindSpore is refused the fork, and its checks run in-process, which the summary says.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import reference

from ..adapter import Capabilities, LiveOptimizer
from ..kit import Unsupported, check_arity, check_dialect, check_state, common_dtype, framework_kwargs, to_numpy
from ..registry import manifest_path

__all__ = ["MindSporeAdapter", "subjects"]

# The optimizer class (in mindspore.nn) and the prefix of its state parameters per slot, by dialect.
_CLASSES = {"adagrad/mindspore": "Adagrad", "rprop/mindspore": "Rprop"}
_STATE_PREFIXES = {"accum": "accum", "prev": "prev", "step_size": "step_size"}
_DTYPES = ("float16", "float32", "float64")
STATE_FILE = "optimizer.ckpt"


def _mindspore() -> Any:
    import mindspore

    if mindspore.get_context("mode") != mindspore.PYNATIVE_MODE:
        mindspore.set_context(mode=mindspore.PYNATIVE_MODE)
    if mindspore.get_context("device_target") != "CPU":
        mindspore.set_device("CPU")
    return mindspore


def _tensor(array: np.ndarray) -> Any:
    # A copy in C order that keeps a 0-d array 0-d (np.ascontiguousarray would make it 1-d).
    return _mindspore().Tensor(np.array(array, order="C", copy=True))


def _constructor_value(value: Any) -> Any:
    # Rprop takes its pairs (etas, step_sizes) only as tuples; JSON-born hyperparameters arrive as lists.
    return tuple(value) if isinstance(value, list) else value


class MindSporeLive:
    """One MindSpore optimizer, seen through the dialect's names; `dtype` is the format handed in."""

    def __init__(self, dialect: reference.Dialect, optimizer: Any, params: list[Any], dtype: str) -> None:
        self.dialect = dialect
        self.optimizer = optimizer
        self.held = params
        self.dtype = dtype

    def _slot(self, name: str) -> list[Any]:
        return list(getattr(self.optimizer, _STATE_PREFIXES[name]))

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        del loss  # neither optimizer takes one
        check_arity(grads, len(self.held), "gradient")
        self.optimizer(tuple(_tensor(np.asarray(g)) for g in grads))

    def params(self) -> list[np.ndarray]:
        return [to_numpy(p.asnumpy(), self.dtype) for p in self.held]

    def state(self) -> dict[str, list[np.ndarray]]:
        return {
            slot: [to_numpy(s.asnumpy(), self.dtype) for s in self._slot(slot)] for slot in self.dialect.slots.values()
        }

    def count(self) -> int | None:
        return int(self.optimizer.global_step.asnumpy()[0])

    def gradients(self) -> list[np.ndarray] | None:
        return None  # the optimizer is handed its gradients and keeps none

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        ms = _mindspore()
        slots = list(self.dialect.slots.values())
        check_arity(params, len(self.held), "parameter")
        check_state(slots, state, len(self.held))
        targets = [(self.held, params)] + [(self._slot(slot), state[slot]) for slot in slots]
        for held, values in targets:
            for variable, value in zip(held, values, strict=True):
                if tuple(np.shape(value)) != tuple(variable.shape):
                    raise ValueError(
                        f"a value of shape {np.shape(value)} for {variable.name} of {tuple(variable.shape)}"
                    )
                ms.ops.assign(variable, _tensor(np.asarray(value)))
        if count is not None:
            ms.ops.assign(self.optimizer.global_step, ms.Tensor(np.array([count], dtype=np.int32)))

    def save(self, directory: pathlib.Path) -> None:
        _mindspore().save_checkpoint(self.optimizer, str(pathlib.Path(directory) / STATE_FILE))


class MindSporeAdapter:
    """`mindspore.nn.Adagrad` (adagrad/mindspore) or `mindspore.nn.Rprop` (rprop/mindspore)."""

    def __init__(self, dialect: str, manifest: Any = None) -> None:
        if dialect not in _CLASSES:
            raise ValueError(f"no MindSpore optimizer for {dialect}; known: {', '.join(_CLASSES)}")
        self.dialect = dialect
        self.name = f"mindspore.nn.{_CLASSES[dialect]}"
        self.manifest = manifest
        self.capabilities = Capabilities(dialects=(dialect,), dtypes=_DTYPES, set_state=True, serialize=True)

    def versions(self) -> dict[str, str]:
        return {"mindspore": str(_mindspore().__version__)}

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        live = self._build(dialect, hparams, params)
        ms = _mindspore()
        saved = ms.load_checkpoint(str(pathlib.Path(directory) / STATE_FILE))
        # Every parameter of the new optimizer must come from the file: one left out would step from its initial value.
        not_loaded, _ = ms.load_param_into_net(live.optimizer, saved)
        if not_loaded:
            raise ValueError(f"the checkpoint holds no value for {', '.join(not_loaded)}")
        return live

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        return self._build(dialect, hparams, params)

    def _build(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> MindSporeLive:
        check_dialect(self.name, self.dialect, dialect)
        if any(np.size(p) == 0 for p in params):
            raise Unsupported("MindSpore cannot create a zero-size Parameter (its initializer refuses a 0 in a shape)")
        dtype = common_dtype(params)
        ms = _mindspore()
        kwargs = {k: _constructor_value(v) for k, v in framework_kwargs(dialect, hparams).items()}
        # Names without 'beta' or 'gamma': MindSpore exempts parameters so named from weight decay.
        held = [ms.Parameter(_tensor(np.asarray(p)), name=f"p{i}") for i, p in enumerate(params)]
        optimizer = getattr(ms.nn, _CLASSES[dialect])(held, **kwargs)
        return MindSporeLive(reference.get(dialect), optimizer, held, dtype)


def subjects() -> list[MindSporeAdapter]:
    """MindSpore's Adagrad and Rprop, with MindSpore's known-failure manifest."""
    manifest = manifest_path("mindspore")
    return [MindSporeAdapter(dialect, manifest=manifest) for dialect in _CLASSES]
