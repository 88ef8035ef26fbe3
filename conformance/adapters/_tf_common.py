"""Plumbing shared by the TensorFlow-family adapters (tf_keras, Keras 3, raw ops).

Nothing here imports a framework at module import time: each adapter imports its framework on first `create`,
so listing or constructing adapters stays cheap and works where the framework is not installed.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from conformance.adapter import Capabilities, LiveOptimizer
from reference import get as get_dialect

__all__ = [
    "TF_DTYPES",
    "KerasStyleAdapter",
    "KerasStyleLive",
    "VariablesLive",
    "as_numpy",
    "check_dialect",
    "find_by_name",
    "import_tensorflow",
    "quiet_tf_logging",
    "variable_name",
]

# What the adapters are measured on (tests/test_differential_*.py); the 16-bit formats are not claimed yet.
TF_DTYPES = ("float32", "float64")


def quiet_tf_logging() -> None:
    """Hide TF's C++ info banners (oneDNN, CUDA probing) unless the user chose a level themselves.

    Note: the few lines TF prints before absl logging is initialised ignore every environment setting.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow() -> Any:
    quiet_tf_logging()
    import tensorflow as tf

    return tf


def as_numpy(value: Any) -> np.ndarray:
    """A NumPy copy of a framework tensor or variable (tf, Keras 3 on any backend), keeping its dtype."""
    # Not np.array(copy=True): TF's __array__ takes no `copy` keyword, and NumPy 2 warns about that.
    return np.asarray(value).copy()


def variable_name(index: int) -> str:
    # Distinct, prefix-free names, so an optimizer's per-variable slots can be found by name.
    return f"optconf_param_{index}_"


def check_dialect(adapter_name: str, claimed: str, dialect: str) -> None:
    if dialect != claimed:
        raise ValueError(f"{adapter_name} implements {claimed}, not {dialect}")


class VariablesLive(ABC):
    """A LiveOptimizer over one framework variable per parameter tensor; subclasses step and locate slots."""

    def __init__(self, variables: Sequence[Any], slots: Mapping[str, str]) -> None:
        self._variables = list(variables)
        self._slots = dict(slots)  # the dialect's slot name -> the implementation's own slot name

    @abstractmethod
    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None: ...

    @abstractmethod
    def count(self) -> int | None: ...

    @abstractmethod
    def _slot(self, variable: Any, own_name: str) -> Any:
        """The state variable called `own_name` that belongs to `variable`."""

    def params(self) -> list[np.ndarray]:
        return [as_numpy(v) for v in self._variables]

    def state(self) -> dict[str, list[np.ndarray]]:
        return {name: [as_numpy(self._slot(v, own)) for v in self._variables] for name, own in self._slots.items()}


class KerasStyleLive(VariablesLive):
    """Any optimizer with Keras' `apply_gradients(zip(grads, vars))` and `iterations`."""

    def __init__(
        self,
        optimizer: Any,
        variables: Sequence[Any],
        slots: Mapping[str, str],
        find_slot: Callable[[Any, Any, str], Any],
        to_tensor: Callable[[np.ndarray], Any],
    ) -> None:
        super().__init__(variables, slots)
        self.optimizer = optimizer
        self._find_slot = find_slot
        self._to_tensor = to_tensor
        self._dtypes = [as_numpy(v).dtype for v in self._variables]

    def step(self, grads: Sequence[np.ndarray], loss: float | None = None) -> None:
        del loss  # Adagrad takes no loss
        # The runner hands over gradients already in the dtype; asarray only guards against Python lists.
        tensors = [self._to_tensor(np.asarray(g, dtype=d)) for g, d in zip(grads, self._dtypes, strict=True)]
        self.optimizer.apply_gradients(zip(tensors, self._variables, strict=True))

    def count(self) -> int | None:
        return int(as_numpy(self.optimizer.iterations))

    def _slot(self, variable: Any, own_name: str) -> Any:
        return self._find_slot(self.optimizer, variable, own_name)


def find_by_name(optimizer: Any, wanted: str) -> Any:
    """The optimizer variable named `wanted` (TF's ':0' suffix ignored); a clear error lists what exists."""
    names = []
    for v in optimizer.variables:
        name = v.name.split(":")[0]
        if name == wanted:
            return v
        names.append(name)
    raise LookupError(f"{type(optimizer).__name__} has no state variable {wanted!r}; it has {names}")


def _check_holds(adapter_name: str, wanted: np.dtype, held: np.dtype) -> None:
    # Note: Keras 3 on JAX without jax_enable_x64 keeps a float64 variable as float32 and says nothing.
    if held != wanted:
        raise ValueError(f"{adapter_name}: a {wanted} parameter is held as {held}; the framework cannot run {wanted}")


class KerasStyleAdapter(ABC):
    """An Adapter for an optimizer class with Keras' API, one dialect, hyperparameters passed as keywords.

    `slots` maps the dialect's slot names to the class's own slot names where a user's class names them
    differently; by default they are the same.
    """

    framework: ClassVar[str]  # where the built-in classes live, e.g. "keras.optimizers"
    built_in: ClassVar[Mapping[str, str]]  # dialect -> the built-in class's attribute path under `framework`
    name: str
    capabilities: Capabilities

    def __init__(
        self,
        optimizer_class: Any = None,
        *,
        dialect: str,
        name: str | None = None,
        slots: Mapping[str, str] | None = None,
    ) -> None:
        if optimizer_class is None and dialect not in self.built_in:
            raise ValueError(f"{self.framework} has no built-in optimizer for {dialect}; pass optimizer_class")
        dialect_slots = tuple(get_dialect(dialect).slots.values())
        unknown = sorted(set(slots or {}) - set(dialect_slots))
        if unknown:
            raise ValueError(f"{dialect} has no slot {', '.join(unknown)}; its slots: {', '.join(dialect_slots)}")
        self.dialect = dialect
        self._optimizer_class = optimizer_class
        self._slots = {s: (slots or {}).get(s, s) for s in dialect_slots}
        self.name = name or self._default_name()
        self.capabilities = Capabilities(dialects=(dialect,), dtypes=TF_DTYPES)

    @abstractmethod
    def _optimizers_module(self) -> Any:
        """The imported module that `framework` names."""

    @abstractmethod
    def _variable(self, value: np.ndarray, name: str) -> Any: ...

    @abstractmethod
    def _find_slot(self, optimizer: Any, variable: Any, own_name: str) -> Any: ...

    @abstractmethod
    def _to_tensor(self, value: np.ndarray) -> Any: ...

    def _default_name(self) -> str:
        if self._optimizer_class is not None:
            return f"{self._optimizer_class.__module__}.{self._optimizer_class.__qualname__}"
        return f"{self.framework}.{self.built_in[self.dialect]}"

    def _optimizer_class_to_use(self) -> Any:
        if self._optimizer_class is not None:
            return self._optimizer_class
        namespace = self._optimizers_module()
        for attribute in self.built_in[self.dialect].split("."):
            namespace = getattr(namespace, attribute)
        return namespace

    def _build(self, optimizer: Any, variables: list[Any]) -> None:
        """Create the state now, as torch does in `__init__`, so it can be read before the first step."""
        optimizer.build(variables)

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, self.dialect, dialect)
        optimizer = self._optimizer_class_to_use()(**hparams)
        variables = [self._variable(np.array(p, copy=True), variable_name(i)) for i, p in enumerate(params)]
        for p, v in zip(params, variables, strict=True):
            _check_holds(self.name, np.asarray(p).dtype, as_numpy(v).dtype)
        self._build(optimizer, variables)
        return KerasStyleLive(optimizer, variables, self._slots, self._find_slot, self._to_tensor)
