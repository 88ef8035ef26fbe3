"""The torch adapter: any `torch.optim.Optimizer` subclass written against torch's own keywords and state names.

`TorchAdapter(MyAdagrad, dialect="adagrad/torch")` tests a user's class exactly like `torch.optim.Adagrad`: it is
constructed with the dialect's framework keywords (`lr`, `lr_decay`, `etas`, ...), stepped through `p.grad` and
`optimizer.step()`, and read back from `optimizer.state[p][slot]` under the dialect's slot names (`sum`, `prev`,
`step_size`) and counter (`step`). torch is imported only when an optimizer is created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import reference

from ..adapter import Capabilities, LiveOptimizer
from ._convert import carrier, common_dtype, dtype_name, restore

if TYPE_CHECKING:
    import torch

__all__ = ["FLAVOURS", "TorchAdapter", "subjects"]

# What each flavour adds to the constructor. "single" pins foreach=False so that a device whose default is
# foreach (CUDA) cannot silently turn it into the foreach path; None passes nothing, for classes that take neither.
FLAVOURS: Mapping[str | None, Mapping[str, bool]] = {
    None: {},
    "single": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}

# The torch class that is each family's reference subject, by family name.
_DEFAULT_CLASSES = {"adagrad": "Adagrad", "rprop": "Rprop"}
_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _torch() -> Any:
    import torch

    return torch


def _default_class_name(dialect: reference.Dialect) -> str:
    family = dialect.family.name
    if family not in _DEFAULT_CLASSES:
        raise ValueError(f"no built-in torch optimizer for the {family} family; pass optimizer_class")
    return _DEFAULT_CLASSES[family]


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """A torch tensor with the array's own dtype and values (bfloat16 travels through float32, exactly)."""
    torch = _torch()
    wanted = getattr(torch, dtype_name(array))
    return torch.from_numpy(carrier(array)).to(wanted)


def to_numpy(tensor: torch.Tensor, dtype: str) -> np.ndarray:
    torch = _torch()
    values = tensor.detach().cpu()
    if values.dtype == torch.bfloat16:  # NumPy has no native bfloat16 for torch to hand over
        values = values.to(torch.float32)
    return restore(values.numpy(), dtype)


def _constructor_value(value: Any) -> Any:
    # Torch takes pairs (etas, step_sizes) as tuples; JSON-born hyperparameters arrive as lists.
    return tuple(value) if isinstance(value, list) else value


class TorchLive:
    """One torch optimizer over its own tensors, seen through the dialect's slot and counter names."""

    def __init__(self, optimizer: Any, tensors: list[Any], dialect: reference.Dialect, dtype: str) -> None:
        self._optimizer = optimizer
        self._tensors = tensors
        self._dialect = dialect
        self._format = reference.format_of(dtype)

    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None:
        if len(grads) != len(self._tensors):
            raise ValueError(f"{len(grads)} gradient tensors for {len(self._tensors)} parameter tensors")
        for tensor, grad in zip(self._tensors, grads, strict=True):
            # Gradients take the parameters' format, rounded by NumPy (exact to nearest, bfloat16 included).
            tensor.grad = to_tensor(np.asarray(grad).astype(self._format.np_dtype))
        if loss is None:
            self._optimizer.step()
        else:  # torch passes the loss through a closure; iRprop+-style optimizers read it there
            self._optimizer.step(lambda: loss)

    def params(self) -> list[np.ndarray]:
        return [to_numpy(t, self._format.name) for t in self._tensors]

    def state(self) -> dict[str, list[np.ndarray]]:
        """Every dialect slot that the optimizer has created (torch's Rprop creates its state on the first step)."""
        per_tensor = [self._optimizer.state.get(t, {}) for t in self._tensors]
        return {
            name: [to_numpy(s[name], self._format.name) for s in per_tensor]
            for name in self._dialect.slots.values()
            if all(name in s for s in per_tensor)
        }

    def count(self) -> int | None:
        name = self._dialect.counter
        if name is None or not self._tensors:
            return None
        counter = self._optimizer.state.get(self._tensors[0], {}).get(name)
        return 0 if counter is None else int(_torch().as_tensor(counter).item())


class TorchAdapter:
    """Drives a torch optimizer class as an implementation of one dialect."""

    def __init__(
        self,
        optimizer_class: type | None = None,
        *,
        dialect: str,
        flavour: str | None = None,
        name: str | None = None,
        **fixed_kwargs: Any,
    ) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}; expected one of {', '.join(map(str, FLAVOURS))}")
        self.dialect = reference.get(dialect)
        self.flavour = flavour
        self._optimizer_class = optimizer_class
        self._fixed_kwargs = dict(FLAVOURS[flavour]) | fixed_kwargs
        if optimizer_class is None:
            class_name = f"torch.optim.{_default_class_name(self.dialect)}"
        else:
            class_name = f"{optimizer_class.__module__}.{optimizer_class.__qualname__}"
        self.name = name or class_name + (f"[{flavour}]" if flavour else "")
        dtypes = tuple(d for d in _DTYPES if d in self.dialect.dtypes)
        self.capabilities = Capabilities(dialects=(self.dialect.id,), dtypes=dtypes, loss=self.dialect.needs_loss)

    @property
    def optimizer_class(self) -> type:
        return self._optimizer_class or getattr(_torch().optim, _default_class_name(self.dialect))

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        if dialect != self.dialect.id:
            raise ValueError(f"{self.name} implements {self.dialect.id}, not {dialect}")
        dtype = common_dtype(params)
        tensors = [to_tensor(np.asarray(p)).requires_grad_(True) for p in params]
        kwargs = {k: _constructor_value(v) for k, v in hparams.items()} | self._fixed_kwargs
        return TorchLive(self.optimizer_class(tensors, **kwargs), tensors, self.dialect, dtype)

    def __repr__(self) -> str:
        return f"TorchAdapter({self.name!r}, dialect={self.dialect.id!r})"


def subjects() -> list[TorchAdapter]:
    """torch's own optimizers as conformance subjects, one per code path."""
    return [
        *(TorchAdapter(dialect="adagrad/torch", flavour=f) for f in ("single", "foreach", "fused")),
        *(TorchAdapter(dialect="rprop/torch", flavour=f) for f in ("single", "foreach")),
    ]
