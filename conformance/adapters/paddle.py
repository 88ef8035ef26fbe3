"""The PaddlePaddle adapter: `paddle.optimizer.Adagrad` as adagrad/paddle and `paddle.optimizer.Rprop` as
rprop/paddle, in dygraph mode on the CPU.

Each case's parameters become fresh `paddle` parameters; a step sets each `.grad` and calls `optimizer.step()`.
Paddle keeps its per-parameter state as *accumulators*, tensors named `<parameter name>_<accumulator>_<n>`
(`moment` for Adagrad; `prevs` and `learning_rates` for Rprop), created at the first step and listed by
`optimizer.state_dict()`; the dialects use those accumulator names as their slot names. Neither optimizer keeps a
step counter.

Beyond the core protocol:

- `set_state` writes the parameters with `set_value`, and the accumulators in place with `set_value` where they
  exist; before the first step it hands them to `optimizer.set_state_dict`, which is how Paddle itself restores
  an optimizer: the accumulators it then creates take those values instead of their initial fill.
- `save` writes the accumulators of `optimizer.state_dict()` to an `.npz` file, by parameter index and
  accumulator name (`paddle.save` pickles, and a checkpoint must not run code when it is read); `load` builds a
  fresh optimizer and restores them through `set_state_dict`.
- Configuration is not claimed: Paddle's optimizers have no configuration of their own to read back.
- A `reference.sparse.SparseGrad` becomes Paddle's own row-sparse gradient, a SelectedRows tensor, the one way
  dygraph makes one: the backward pass of a sparse embedding lookup of the rows (repeats kept, for the optimizer
  to merge), weighted by the values, which hands the values over exactly. An embedding table is 2-D, so only a
  2-D parameter takes them; Adagrad has a kernel for them, Rprop none (its dialect has no sparse rule).
- Formats are those of the CPU kernels (paddle/phi/kernels/cpu/adagrad_kernel.cc registers float and double;
  rprop_kernel.cc bfloat16, float and double).

paddle is imported only when an optimizer is created; its import warns that no ccache is installed (a note for
building C++ extensions, which the suite never does), and that one warning is silenced.
"""

from __future__ import annotations

import functools
import pathlib
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import reference
from reference.sparse import SparseGrad

from ..adapter import Capabilities, LiveOptimizer
from ..kit import (
    Unsupported,
    carrier,
    check_arity,
    check_dialect,
    check_state,
    common_dtype,
    dtype_name,
    framework_kwargs,
)
from ..kit import to_numpy as kit_to_numpy
from ..registry import manifest_path
from ._claims import sparse_claim

__all__ = ["PaddleAdapter", "PaddleLive", "subjects"]

# Paddle's optimizer class for each dialect, and the formats its CPU kernel is registered for.
_SUBJECTS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "adagrad/paddle": ("Adagrad", ("float32", "float64")),
    "rprop/paddle": ("Rprop", ("bfloat16", "float32", "float64")),
}
STATE_FILE = "optimizer.npz"


@functools.cache
def _paddle() -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
        import paddle
    paddle.disable_static()  # dygraph, Paddle's default since 2.0: stated, not assumed
    paddle.set_device("cpu")
    return paddle


def to_tensor(array: np.ndarray) -> Any:
    """A paddle tensor with the array's own dtype and values (bfloat16 travels through float32, exactly)."""
    paddle = _paddle()
    return paddle.to_tensor(carrier(array)).astype(dtype_name(array))


def to_numpy(tensor: Any, dtype: str) -> np.ndarray:
    paddle = _paddle()
    if tensor.dtype == paddle.bfloat16:  # NumPy has no native bfloat16 for paddle to hand over
        return kit_to_numpy(tensor.astype("float32").numpy(), dtype, carried=True)
    return kit_to_numpy(tensor.numpy(), dtype)


def _parameter(array: np.ndarray) -> Any:
    """A fresh paddle parameter holding `array`; paddle names it uniquely (create_parameter_<n>.w_0)."""
    paddle = _paddle()
    values = to_tensor(np.asarray(array))
    # Paddle's default initializer refuses bfloat16; the value is written over at once anyway.
    parameter = paddle.create_parameter(
        list(values.shape), values.dtype, default_initializer=paddle.nn.initializer.Constant(0.0)
    )
    parameter.set_value(values)
    return parameter


def _constructor_value(value: Any) -> Any:
    # Paddle takes pairs (etas, learning_rate_range) as tuples; JSON-born hyperparameters arrive as lists.
    return tuple(value) if isinstance(value, list) else value


class PaddleLive:
    """One paddle optimizer over fresh parameters, seen through the dialect's names."""

    def __init__(self, optimizer: Any, tensors: list[Any], dialect: reference.Dialect, dtype: str) -> None:
        self.optimizer = optimizer
        self._tensors = tensors
        self._dialect = dialect
        self.dtype = dtype

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        check_arity(grads, len(self._tensors), "gradient")
        fmt = reference.format_of(self.dtype)
        for tensor, grad in zip(self._tensors, grads, strict=True):
            if isinstance(grad, SparseGrad):
                _sparse_gradient(tensor, grad, fmt)
            else:
                # Gradients take the parameters' format, rounded by NumPy (exact to nearest, bfloat16 included).
                tensor.grad = to_tensor(np.asarray(grad).astype(fmt.np_dtype))
        with warnings.catch_warnings():
            # Rprop warns, at its first step in a 16-bit format, that accumulating in it loses accuracy.
            warnings.filterwarnings("ignore", message="Accumulating with FP16/BF16", category=UserWarning)
            self.optimizer.step()

    def params(self) -> list[np.ndarray]:
        return [to_numpy(t, self.dtype) for t in self._tensors]

    def _accumulators(self) -> list[dict[str, Any]]:
        """Per parameter tensor: accumulator name -> the tensor paddle holds (none before the first step)."""
        held = self.optimizer.state_dict()
        out: list[dict[str, Any]] = []
        for tensor in self._tensors:
            pattern = re.compile(re.escape(tensor.name) + r"_(?P<slot>\w+?)_\d+")
            out.append({match["slot"]: value for key, value in held.items() if (match := pattern.fullmatch(str(key)))})
        return out

    def state(self) -> dict[str, list[np.ndarray]]:
        """Every dialect slot that the optimizer has created (paddle creates its accumulators at the first step)."""
        per_tensor = self._accumulators()
        return {
            name: [to_numpy(held[name], self.dtype) for held in per_tensor]
            for name in self._dialect.slots.values()
            if all(name in held for held in per_tensor)
        }

    def count(self) -> int | None:
        return None  # neither optimizer keeps a step counter

    def gradients(self) -> list[np.ndarray] | None:
        """Each tensor's `.grad` after the step; None where one is missing or row-sparse (a SelectedRows tensor
        has no dense values to read back)."""
        grads = [t.grad for t in self._tensors]
        if any(g is None or g.is_selected_rows() for g in grads):
            return None
        return [to_numpy(g, self.dtype) for g in grads]

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        """Overwrite the parameters and every accumulator in place; before the first step, through
        `set_state_dict`, under the names paddle will give the accumulators it creates."""
        del count  # neither optimizer keeps a step counter
        check_arity(params, len(self._tensors), "parameter")
        slots = list(self._dialect.slots.values())
        check_state(slots, state, len(self._tensors))
        for tensor, value in zip(self._tensors, params, strict=True):
            _write(tensor, value, "parameter")
        per_tensor = self._accumulators()
        if all(name in held for held in per_tensor for name in slots):
            for index, held in enumerate(per_tensor):
                for name in slots:
                    _write(held[name], state[name][index], f"slot {name!r}")
            return
        # Paddle names a new accumulator <parameter>_<accumulator>_<n>, n counting earlier ones of that name:
        # these parameters are fresh, so n is 0.
        self.optimizer.set_state_dict(
            {
                f"{tensor.name}_{name}_0": to_tensor(np.asarray(state[name][index]))
                for index, tensor in enumerate(self._tensors)
                for name in slots
            }
        )

    def save(self, directory: pathlib.Path) -> None:
        arrays: dict[str, Any] = {
            f"{index}.{name}": carrier(array)
            for name, per_tensor in self.state().items()
            for index, array in enumerate(per_tensor)
        }
        np.savez(pathlib.Path(directory) / STATE_FILE, **arrays)


def _sparse_gradient(tensor: Any, grad: SparseGrad, fmt: reference.FloatFormat) -> None:
    """`tensor.grad` as the SelectedRows gradient of rows `grad.indices` (repeats kept) holding `grad.values`."""
    paddle = _paddle()
    if len(tensor.shape) != 2:
        raise Unsupported(f"paddle builds row-sparse gradients for 2-D parameters only; this one is {tensor.shape}")
    values = np.asarray(grad.values).astype(fmt.np_dtype)
    if values.shape != (len(grad.indices), tensor.shape[1]):
        raise ValueError(f"sparse values of shape {values.shape} do not fit rows of {tuple(tensor.shape)}")
    tensor.clear_gradient(False)  # None, not zeros: a dense zero gradient would absorb the rows into a dense one
    rows = paddle.nn.functional.embedding(paddle.to_tensor(np.array(grad.indices, dtype=np.int64)), tensor, sparse=True)
    # d(sum(rows * values)) / d(rows) is `values`, exactly; the lookup's backward gathers it into SelectedRows.
    (rows * to_tensor(values)).sum().backward()


def _write(target: Any, value: np.ndarray, what: str) -> None:
    source = to_tensor(np.asarray(value))
    if tuple(source.shape) != tuple(target.shape):
        raise ValueError(f"{what}: shape {tuple(source.shape)} does not match {tuple(target.shape)}")
    target.set_value(source)


class PaddleAdapter:
    """Drives paddle's optimizer for one dialect (adagrad/paddle or rprop/paddle)."""

    def __init__(self, dialect: str, *, manifest: pathlib.Path | None = None) -> None:
        if dialect not in _SUBJECTS:
            raise ValueError(f"no paddle optimizer implements {dialect!r}; paddle's are {', '.join(_SUBJECTS)}")
        self.dialect = reference.get(dialect)
        self._class_name, dtypes = _SUBJECTS[dialect]
        self.name = f"paddle.optimizer.{self._class_name}"
        self.manifest = manifest
        self.capabilities = Capabilities(
            dialects=(self.dialect.id,),
            dtypes=tuple(d for d in dtypes if d in self.dialect.dtypes),
            set_state=True,
            serialize=True,
            sparse=sparse_claim(None, adapter_type=type(self).__name__, built_in=True, dialect=self.dialect)[0],
        )

    def _build(self, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> PaddleLive:
        dtype = common_dtype(params)
        kwargs = {k: _constructor_value(v) for k, v in framework_kwargs(self.dialect, hparams).items()}
        tensors = [_parameter(np.asarray(p)) for p in params]
        optimizer_class = getattr(_paddle().optimizer, self._class_name)
        return PaddleLive(optimizer_class(parameters=tensors, **kwargs), tensors, self.dialect, dtype)

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, self.dialect.id, dialect)
        return self._build(hparams, params)

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        """A fresh optimizer with `hparams` over fresh parameters, its accumulators restored from `save`."""
        check_dialect(self.name, self.dialect.id, dialect)
        live = self._build(hparams, params)
        fmt = reference.format_of(live.dtype)
        with np.load(pathlib.Path(directory) / STATE_FILE, allow_pickle=False) as saved:
            state = {
                name: [kit_to_numpy(saved[f"{index}.{name}"], fmt, carried=True) for index in range(len(params))]
                for name in self.dialect.slots.values()
            }
        live.set_state(params, state, None)
        return live

    def versions(self) -> dict[str, str]:
        return {"paddlepaddle": str(_paddle().__version__)}

    def __repr__(self) -> str:
        return f"PaddleAdapter({self.name!r}, dialect={self.dialect.id!r})"


def subjects() -> list[PaddleAdapter]:
    """Paddle's own Adagrad and Rprop as conformance subjects, with paddle's known-failure manifest."""
    manifest = manifest_path("paddle")
    return [PaddleAdapter(dialect, manifest=manifest) for dialect in _SUBJECTS]
