"""The torch adapter: any `torch.optim.Optimizer` subclass written against torch's own keywords and state names.

`TorchAdapter(MyAdagrad, dialect="adagrad/torch")` tests a user's class exactly like `torch.optim.Adagrad`: it is
constructed with the dialect's framework keywords (`lr`, `lr_decay`, `etas`, ...), stepped through `p.grad` and
`optimizer.step()`, and read back from `optimizer.state[p][slot]` under the dialect's slot names (`sum`, `prev`,
`step_size`) and counter (`step`). torch is imported only when an optimizer is created.

A user's class claims dense gradients only, which is all that `torch.optim.Optimizer` guarantees: pass
`sparse=True` if its `step` takes row-sparse ones. torch's own classes (`subjects()`, or no class given) claim
them where they were measured to take them.

Beyond the core protocol, through torch's own mechanisms:

- `set_state` writes the parameters, `optimizer.state[p][slot]` and `optimizer.state[p]["step"]` in place; where
  the optimizer has not created its state yet (torch's Rprop does so on the first step), it is created as torch
  would create it, so the optimizer's lazy initialisation then leaves it alone.
- `config` is the first param group's hyperparameters (torch has no get_config); `from_config` passes them back
  to the constructor.
- `save` is `torch.save(optimizer.state_dict())`; `load` builds a fresh optimizer and `load_state_dict`s it.
- A `reference.sparse.SparseGrad` becomes a `torch.sparse_coo_tensor` gradient with the same, possibly repeated,
  row indices (torch coalesces it, summing duplicates). Fused Adagrad refuses sparse gradients, Rprop too.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import reference
from reference.sparse import SparseGrad

from ..adapter import Capabilities, LiveOptimizer
from ..kit import carrier, check_arity, check_dialect, check_state, common_dtype, dtype_name, json_config
from ..kit import to_numpy as kit_to_numpy
from ..registry import manifest_path
from ._claims import sparse_claim

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

# Flavours that take row-sparse gradients, where the dialect has them. Measured on torch 2.13 CPU, all four formats:
# the single-tensor path coalesces and updates the touched rows; foreach hands a step with a sparse gradient to
# that same single-tensor path; fused raises "`fused` does not support sparse grad or complex param".
_SPARSE_FLAVOURS = frozenset({None, "single", "foreach"})

# The torch class that is each family's reference subject, by family name.
_DEFAULT_CLASSES = {"adagrad": "Adagrad", "rprop": "Rprop"}
_DTYPES = ("float16", "bfloat16", "float32", "float64")
STATE_FILE = "optimizer.pt"


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
        return kit_to_numpy(values.to(torch.float32).numpy(), dtype, carried=True)
    return kit_to_numpy(values.numpy(), dtype)


def _constructor_value(value: Any) -> Any:
    # Torch takes pairs (etas, step_sizes) as tuples; JSON-born hyperparameters arrive as lists.
    return tuple(value) if isinstance(value, list) else value


def _json_value(name: str, value: Any) -> Any:
    """A param group entry as JSON: tuples become lists, a one-element tensor (a tensor lr) its Python number."""
    torch = _torch()
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"hyperparameter {name!r} is a tensor of {value.numel()} elements")
        return value.item()
    if isinstance(value, tuple | list):
        return [_json_value(name, v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"hyperparameter {name!r} = {value!r} ({type(value).__name__}) is not JSON-serialisable")


def _scalar_dtype(fused: bool) -> Any:
    """The dtype torch gives `state["step"]`: torch.optim.optimizer._get_scalar_dtype, without the private import."""
    torch = _torch()
    if fused:
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _new_step(group: Mapping[str, Any], tensor: Any) -> Any:
    """A zero counter as torch's Adagrad and Rprop create it: a 0-d float tensor on the CPU, or on the parameter's
    device for the fused and capturable paths."""
    torch = _torch()
    fused = bool(group.get("fused"))
    on_device = fused or bool(group.get("capturable"))
    return torch.zeros((), dtype=_scalar_dtype(fused), device=tensor.device if on_device else None)


def _sparse_tensor(grad: SparseGrad, like: Any, fmt: reference.FloatFormat) -> Any:
    """A COO gradient for rows `grad.indices` (repeats kept: torch coalesces them itself), values in the format."""
    torch = _torch()
    values = np.asarray(grad.values).astype(fmt.np_dtype)
    if like.dim() == 0 or values.shape != (len(grad.indices), *like.shape[1:]):
        raise ValueError(f"sparse values of shape {values.shape} do not fit rows of {tuple(like.shape)}")
    indices = torch.tensor([list(grad.indices)], dtype=torch.int64).reshape(1, len(grad.indices))
    return torch.sparse_coo_tensor(indices, to_tensor(values), tuple(like.shape), check_invariants=True)


class TorchLive:
    """One torch optimizer over its own tensors, seen through the dialect's slot and counter names."""

    def __init__(self, optimizer: Any, tensors: list[Any], dialect: reference.Dialect, dtype: str) -> None:
        self._optimizer = optimizer
        self._tensors = tensors
        self._dialect = dialect
        self._format = reference.format_of(dtype)

    @property
    def optimizer(self) -> Any:
        return self._optimizer

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        torch = _torch()
        check_arity(grads, len(self._tensors), "gradient")
        sparse = False
        for tensor, grad in zip(self._tensors, grads, strict=True):
            if isinstance(grad, SparseGrad):
                tensor.grad = _sparse_tensor(grad, tensor, self._format)
                sparse = True
            else:
                # Gradients take the parameters' format, rounded by NumPy (exact to nearest, bfloat16 included).
                tensor.grad = to_tensor(np.asarray(grad).astype(self._format.np_dtype))
        if sparse:
            # Checked sparse tensors, explicitly: torch's own Adagrad builds unchecked ones, and an unset policy
            # warns on each (a UserWarning about memory errors), where a checked build raises instead.
            with torch.sparse.check_sparse_tensor_invariants(enable=True):
                self._step(loss)
        else:
            self._step(loss)

    def _step(self, loss: float | None) -> None:
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

    def gradients(self) -> list[Any] | None:
        """Each tensor's `.grad` after the step: an array in the parameters' format, or for a sparse gradient a
        `SparseGrad` of its indices and values as torch holds them (uncoalesced, unless the optimizer coalesced
        `p.grad` itself). None where the optimizer dropped a gradient (`p.grad = None`)."""
        grads = [t.grad for t in self._tensors]
        if any(g is None for g in grads):
            return None
        out: list[Any] = []
        for grad in grads:
            if grad.is_sparse:
                indices = tuple(int(i) for i in grad._indices()[0].tolist())
                out.append(SparseGrad(indices, to_numpy(grad._values(), self._format.name)))
            else:
                out.append(to_numpy(grad, self._format.name))
        return out

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        """Overwrite the parameters, every dialect slot and the counter, in place where torch already holds them.

        State the optimizer has not created yet is created as torch creates it: each slot like the parameter,
        `step` as a 0-d float32 tensor (float64 under a float64 default dtype; on the parameter's device for the
        fused and capturable paths). A counter that this `step` cannot hold exactly is refused.
        """
        torch = _torch()
        check_arity(params, len(self._tensors), "parameter")
        check_state(self._dialect.slots.values(), state, len(self._tensors))
        group = self._optimizer.param_groups[0]
        counter = self._dialect.counter
        with torch.no_grad():
            for index, tensor in enumerate(self._tensors):
                _copy_into(tensor, params[index], "parameter")
                held = self._optimizer.state[tensor]
                for name in self._dialect.slots.values():
                    value = state[name][index]
                    if name in held and isinstance(held[name], torch.Tensor):
                        _copy_into(held[name], value, f"slot {name!r}")
                    else:
                        held[name] = to_tensor(np.asarray(value)).to(device=tensor.device, dtype=tensor.dtype)
                if counter is None:
                    continue
                if counter not in held:
                    held[counter] = _new_step(group, tensor)
                if count is not None:
                    held[counter] = _with_count(held[counter], count)

    def config(self) -> dict[str, Any]:
        """The first param group's hyperparameters, everything but "params", as JSON values."""
        group = self._optimizer.param_groups[0]
        return json_config({name: _json_value(name, value) for name, value in group.items() if name != "params"})

    def save(self, directory: pathlib.Path) -> None:
        _torch().save(self._optimizer.state_dict(), pathlib.Path(directory) / STATE_FILE)


def _copy_into(target: Any, value: np.ndarray, what: str) -> None:
    source = to_tensor(np.asarray(value))
    if tuple(source.shape) != tuple(target.shape):
        raise ValueError(f"{what}: shape {tuple(source.shape)} does not match {tuple(target.shape)}")
    target.copy_(source)  # same format: the cast to the target's dtype is exact


def _with_count(step: Any, count: int) -> Any:
    """`step` holding `count`, in its own type (a tensor keeps its dtype and device, and is written in place)."""
    torch = _torch()
    if isinstance(step, torch.Tensor):
        step.fill_(float(count))
        if step.item() != count:
            raise ValueError(f"torch's {step.dtype} step counter cannot hold {count} exactly (got {step.item()!r})")
        return step
    return type(step)(count)  # an older-style optimizer that keeps a Python number


class TorchAdapter:
    """Drives a torch optimizer class as an implementation of one dialect.

    `sparse` says whether the class takes row-sparse gradients; they are claimed where it does, the dialect has
    them and the flavour is not fused. By default torch's own class does (as measured) and a user's class does
    not. `how_to_claim` says how a user claims what is not claimed (capability -> hint). `manifest` names the
    adapter's own known-failure manifest, applied unless `--no-default-manifest`.
    """

    def __init__(
        self,
        optimizer_class: type | None = None,
        *,
        dialect: str,
        flavour: str | None = None,
        name: str | None = None,
        sparse: bool | None = None,
        manifest: pathlib.Path | None = None,
        **fixed_kwargs: Any,
    ) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}; expected one of {', '.join(map(str, FLAVOURS))}")
        self.dialect = reference.get(dialect)
        self.flavour = flavour
        self.manifest = manifest
        self._optimizer_class = optimizer_class
        self._fixed_kwargs = dict(FLAVOURS[flavour]) | fixed_kwargs
        if optimizer_class is None:
            class_name = f"torch.optim.{_default_class_name(self.dialect)}"
        else:
            class_name = f"{optimizer_class.__module__}.{optimizer_class.__qualname__}"
        self.name = name or class_name + (f"[{flavour}]" if flavour else "")
        dtypes = tuple(d for d in _DTYPES if d in self.dialect.dtypes)
        sparse, self.how_to_claim = sparse_claim(
            sparse,
            adapter_type=type(self).__name__,
            built_in=optimizer_class is None,
            dialect=self.dialect,
            path_takes_them=flavour in _SPARSE_FLAVOURS and not self._fixed_kwargs.get("fused"),
        )
        self.capabilities = Capabilities(
            dialects=(self.dialect.id,),
            dtypes=dtypes,
            set_state=True,
            config=True,
            serialize=True,
            sparse=sparse,
            loss=self.dialect.needs_loss,
        )

    @property
    def optimizer_class(self) -> type:
        return self._optimizer_class or getattr(_torch().optim, _default_class_name(self.dialect))

    def _build(self, kwargs: Mapping[str, Any], params: Sequence[np.ndarray]) -> TorchLive:
        dtype = common_dtype(params)
        tensors = [to_tensor(np.asarray(p)).requires_grad_(True) for p in params]
        return TorchLive(self.optimizer_class(tensors, **kwargs), tensors, self.dialect, dtype)

    def _kwargs(self, hparams: Mapping[str, Any]) -> dict[str, Any]:
        return {k: _constructor_value(v) for k, v in hparams.items()} | self._fixed_kwargs

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, self.dialect.id, dialect)
        return self._build(self._kwargs(hparams), params)

    def from_config(self, dialect: str, config: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        """The class constructed with `config` (a `TorchLive.config()`); the flavour's keywords only fill gaps."""
        check_dialect(self.name, self.dialect.id, dialect)
        return self._build(self._fixed_kwargs | {k: _constructor_value(v) for k, v in config.items()}, params)

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        """Fresh tensors holding `params`, a fresh optimizer with `hparams`, then torch's own `load_state_dict`."""
        check_dialect(self.name, self.dialect.id, dialect)
        live = self._build(self._kwargs(hparams), params)
        saved = _torch().load(pathlib.Path(directory) / STATE_FILE, weights_only=True)
        live.optimizer.load_state_dict(saved)
        return live

    def versions(self) -> dict[str, str]:
        return {"torch": str(_torch().__version__)}

    def __repr__(self) -> str:
        return f"TorchAdapter({self.name!r}, dialect={self.dialect.id!r})"


def subjects() -> list[TorchAdapter]:
    """torch's own optimizers as conformance subjects, one per code path, with torch's known-failure manifest."""
    manifest = manifest_path("torch")
    return [
        *(TorchAdapter(dialect="adagrad/torch", flavour=f, manifest=manifest) for f in ("single", "foreach", "fused")),
        *(TorchAdapter(dialect="rprop/torch", flavour=f, manifest=manifest) for f in ("single", "foreach")),
    ]
