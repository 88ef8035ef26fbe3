"""Plumbing shared by the TensorFlow-family adapters (tf_keras, Keras 3, raw ops).

Nothing here imports a framework at module import time: each adapter imports its framework on first use, so
listing or constructing adapters stays cheap and works where the framework is not installed.

What every TF-family live optimizer offers beyond the core protocol:

- `set_state` assigns the parameters and every slot variable in place, and the counter where there is one.
- `gradients()` returns the gradients handed to the framework at the last step, read back from the framework's own
  tensors (dense arrays, or `SparseGrad` for a `tf.IndexedSlices`).
- A `reference.sparse.SparseGrad` becomes a `tf.IndexedSlices` with the same, possibly repeated, row indices.

Where a Keras-style optimizer keeps a slot (`locate_slot`): the variable the framework's per-variable helper made
(Keras 3 `add_variable_from_reference`, tf_keras `add_slot`/`get_slot`), else one variable per parameter made
with `add_variable(name=<slot>)`, in the parameters' order, else a list attribute of the optimizer, else where the
user's `slots=` callable says.
"""

from __future__ import annotations

import os
import pathlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeAlias, TypeGuard

import numpy as np

from conformance.adapter import Capabilities, LiveOptimizer
from reference import format_of
from reference import get as get_dialect
from reference.sparse import SparseGrad

from ..kit import check_arity, check_dialect, check_state, json_config
from ._claims import sparse_claim

__all__ = [
    "REPLICAS",
    "TF_DTYPES",
    "KerasStyleAdapter",
    "KerasStyleLive",
    "SlotSource",
    "Snapshot",
    "VariablesLive",
    "as_numpy",
    "assert_same_snapshot",
    "assign",
    "by_name",
    "check_holds",
    "held_gradient",
    "import_tensorflow",
    "locate_slot",
    "quiet_tf_logging",
    "replica_devices",
    "short_name",
    "tf_gradient",
    "variable_name",
]

# TF registers its Adagrad kernels for half and bfloat16 as well, and mixed precision is how many run them: every
# format is claimed (Keras 3 on each backend too), and what fails is in the manifests.
TF_DTYPES = ("float16", "bfloat16", "float32", "float64")

# Logical CPU devices that `import_tensorflow` asks for, so that MirroredStrategy has two replicas without a GPU.
REPLICAS = 2
_devices = {"configured": False, "why_not": ""}

Snapshot = tuple[list[np.ndarray], dict[str, list[np.ndarray]], int | None]

# Where a Keras-style optimizer keeps one of the dialect's slots: a name (the slot's own name, or a list attribute
# of the optimizer holding one variable per parameter), or a callable (optimizer, parameter variable, index) ->
# the slot variable.
SlotSource: TypeAlias = str | Callable[[Any, Any, int], Any]
# A framework's per-variable slot helper, asked first: (optimizer, parameter variable, own name) -> (the slot
# variable or None, what was looked for, for the error message).
ByReference: TypeAlias = Callable[[Any, Any, str], tuple[Any, str]]


def quiet_tf_logging() -> None:
    """Hide TF's C++ info banners (oneDNN, CUDA probing) unless the user chose a level themselves.

    Note: the few lines TF prints before absl logging is initialised ignore every environment setting.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow() -> Any:
    """`tensorflow`, with its one physical CPU split into two logical devices the first time (see `_split_cpu`)."""
    quiet_tf_logging()
    import tensorflow as tf

    if not _devices["configured"]:
        _devices["configured"] = True
        _split_cpu(tf)
    return tf


def _split_cpu(tf: Any) -> None:
    """Two logical CPU devices for MirroredStrategy, where TF lets us and the user has not chosen otherwise.

    This must happen before TF initialises its devices (its first op does that): afterwards TF refuses with a
    RuntimeError and keeps one CPU device. A configuration the user set (or a machine with several physical CPU
    devices) is left alone. Ops still run on /CPU:0 unless placed elsewhere, so nothing else changes.
    """
    try:
        cpus = tf.config.list_physical_devices("CPU")
        if len(cpus) != 1:
            _devices["why_not"] = f"TF sees {len(cpus)} physical CPU devices; the adapter splits only a single one"
            return
        if tf.config.get_logical_device_configuration(cpus[0]) is not None:
            _devices["why_not"] = "the CPU's logical devices were configured before the adapter imported TF"
            return
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * REPLICAS)
    except RuntimeError as exc:
        _devices["why_not"] = f"TF had initialised its devices before the adapter imported it ({exc})"


def replica_devices(tf: Any) -> list[str]:
    """The first `REPLICAS` logical CPU devices, or a RuntimeError that says why there are not enough."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < REPLICAS:
        why = _devices["why_not"] or "TF has a single logical CPU device"
        raise RuntimeError(
            f"replica aggregation needs {REPLICAS} logical CPU devices, TF has {len(devices)}: {why}. Import "
            "conformance.adapters.tf_keras (or call tf.config.set_logical_device_configuration) before running "
            "any TF op."
        )
    return devices[:REPLICAS]


def as_numpy(value: Any) -> np.ndarray:
    """A NumPy copy of a framework tensor or variable (tf, Keras 3 on any backend), keeping its dtype."""
    if str(getattr(value, "dtype", "")) == "torch.bfloat16":
        # NumPy cannot take torch's bfloat16 (Keras 3 on torch); float32 holds every bfloat16 value exactly.
        return np.asarray(value.detach().float()).astype(format_of("bfloat16").np_dtype)
    # Not np.array(copy=True): TF's __array__ takes no `copy` keyword, and NumPy 2 warns about that.
    return np.asarray(value).copy()


def variable_name(index: int) -> str:
    # Distinct, prefix-free names, so an optimizer's per-variable slots can be found by name.
    return f"optconf_param_{index}_"


def tf_gradient(tf: Any, grad: Any, dtype: np.dtype, shape: tuple[int, ...]) -> Any:
    """A dense tf tensor in `dtype`, or for a `SparseGrad` a `tf.IndexedSlices` with its indices as given."""
    if isinstance(grad, SparseGrad):
        values = np.asarray(grad.values).astype(dtype)
        if len(shape) == 0 or values.shape != (len(grad.indices), *shape[1:]):
            raise ValueError(f"sparse values of shape {values.shape} do not fit rows of {shape}")
        return tf.IndexedSlices(
            tf.constant(values),
            tf.constant(list(grad.indices), dtype=tf.int64, shape=(len(grad.indices),)),
            dense_shape=tf.constant(list(shape), dtype=tf.int64, shape=(len(shape),)),
        )
    return tf.constant(np.asarray(grad, dtype=dtype))


def held_gradient(tensor: Any, dtype: np.dtype) -> Any:
    """What `tf_gradient` made, read back: an array, or a `SparseGrad` from a `tf.IndexedSlices`."""
    if type(tensor).__name__ == "IndexedSlices":  # by name: no TF import here (torch tensors have .indices() too)
        indices = tuple(int(i) for i in as_numpy(tensor.indices).reshape(-1))
        return SparseGrad(indices, as_numpy(tensor.values).astype(dtype, copy=False))
    return as_numpy(tensor).astype(dtype, copy=False)


def assert_same_snapshot(first: Snapshot, second: Snapshot, what: str) -> None:
    """Raise ValueError naming the first difference (bitwise) between two (params, state, count) readings."""
    (p1, s1, c1), (p2, s2, c2) = first, second
    if c1 != c2:
        raise ValueError(f"{what}: counter {c1} != {c2}")
    if sorted(s1) != sorted(s2):
        raise ValueError(f"{what}: slots {sorted(s1)} != {sorted(s2)}")
    for quantity, a, b in [("params", p1, p2), *((name, s1[name], s2[name]) for name in s1)]:
        for tensor, (x, y) in enumerate(zip(a, b, strict=True)):
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                raise ValueError(f"{what}: {quantity}[{tensor}] differs: {x!r} != {y!r}")


def assign(target: Any, value: np.ndarray, what: str) -> None:
    held = as_numpy(target)
    value = np.asarray(value)
    if value.shape != held.shape:
        raise ValueError(f"{what}: shape {value.shape} does not match {held.shape}")
    if value.dtype != held.dtype:
        raise ValueError(f"{what}: a {value.dtype} value for a {held.dtype} variable")
    target.assign(value)


class VariablesLive(ABC):
    """A LiveOptimizer over one framework variable per parameter tensor; subclasses step and locate slots."""

    def __init__(self, variables: Sequence[Any], slots: Mapping[str, SlotSource]) -> None:
        self._variables = list(variables)
        self._slots = dict(slots)  # the dialect's slot name -> where the implementation keeps it
        self._dtypes = [as_numpy(v).dtype for v in self._variables]
        self._held: list[Any] | None = None  # the framework tensors of the last step's gradients

    @abstractmethod
    def step(self, grads: Sequence[Any], loss: float | None = None) -> None: ...

    @abstractmethod
    def count(self) -> int | None: ...

    @abstractmethod
    def _slot(self, index: int, slot: str) -> Any:
        """The state variable that holds the dialect's `slot` for parameter `index`."""

    def _set_count(self, count: int) -> None:
        raise ValueError(f"{type(self).__name__} keeps no counter; got {count}")

    def _read(self, variable: Any) -> np.ndarray:
        return as_numpy(variable)

    def params(self) -> list[np.ndarray]:
        return [self._read(v) for v in self._variables]

    def state(self) -> dict[str, list[np.ndarray]]:
        return {name: [self._read(self._slot(i, name)) for i in range(len(self._variables))] for name in self._slots}

    def gradients(self) -> list[Any] | None:
        if self._held is None:
            return None
        return [held_gradient(t, d) for t, d in zip(self._held, self._dtypes, strict=True)]

    def _check_grads(self, grads: Sequence[Any]) -> None:
        check_arity(grads, len(self._variables), "gradient")

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        """Assign the parameters, every slot and the counter in place (each value in its variable's dtype; a
        count of None leaves the counter as it is)."""
        check_arity(params, len(self._variables), "parameter")
        check_state(self._slots, state, len(self._variables))
        for index, variable in enumerate(self._variables):
            assign(variable, params[index], f"parameter {index}")
        self._assign_slots(state)
        if count is not None:
            self._set_count(count)

    def _assign_slots(self, state: Mapping[str, Sequence[np.ndarray]]) -> None:
        for name in self._slots:
            for index in range(len(self._variables)):
                assign(self._slot(index, name), state[name][index], f"slot {name!r} of parameter {index}")


class KerasStyleLive(VariablesLive):
    """Any optimizer with Keras' `apply_gradients(zip(grads, vars))`, `iterations` and `get_config`."""

    def __init__(
        self,
        optimizer: Any,
        variables: Sequence[Any],
        slots: Mapping[str, SlotSource],
        by_reference: ByReference,
        to_gradient: Callable[[Any, np.dtype, tuple[int, ...]], Any],
        adapter_type: str,
    ) -> None:
        super().__init__(variables, slots)
        self.optimizer = optimizer
        self._by_reference = by_reference
        self._adapter_type = adapter_type
        self._to_gradient = to_gradient
        self._shapes = [tuple(as_numpy(v).shape) for v in self._variables]

    def _gradients_for(self, grads: Sequence[Any]) -> list[Any]:
        self._check_grads(grads)
        # The runner hands over gradients already in the dtype; the cast only guards against Python lists.
        return [self._to_gradient(g, d, s) for g, d, s in zip(grads, self._dtypes, self._shapes, strict=True)]

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        del loss  # Keras' apply_gradients takes no loss
        tensors = self._gradients_for(grads)
        self.optimizer.apply_gradients(zip(tensors, self._variables, strict=True))
        self._held = tensors

    def count(self) -> int | None:
        return int(as_numpy(self.optimizer.iterations))

    def _set_count(self, count: int) -> None:
        iterations = self.optimizer.iterations
        iterations.assign(np.asarray(count, dtype=as_numpy(iterations).dtype))
        if self.count() != count:
            raise ValueError(f"the optimizer's iterations cannot hold {count} (holds {self.count()})")

    def _slot(self, index: int, slot: str) -> Any:
        return locate_slot(
            self.optimizer, self._variables, index, slot, self._slots[slot], self._by_reference, self._adapter_type
        )

    def config(self) -> dict[str, Any]:
        """The optimizer's own `get_config()`, as JSON values."""
        return json_config(self.optimizer.get_config())


def short_name(variable: Any) -> str:
    """A variable's name without TF's ':0' suffix."""
    return str(variable.name).split(":")[0]


def by_name(variables: Sequence[Any], wanted: str) -> Any:
    """The variable named `wanted` (TF's ':0' suffix ignored), or None."""
    return next((v for v in variables if short_name(v) == wanted), None)


def _shape(variable: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in variable.shape)


def _one_per_parameter(candidates: object, params: Sequence[Any]) -> TypeGuard[Sequence[Any]]:
    """Whether `candidates` is a sequence of one variable per parameter, in order, each shaped like it."""
    if isinstance(candidates, str | bytes) or not isinstance(candidates, Sequence) or len(candidates) != len(params):
        return False  # tf_keras wraps a list attribute in a ListWrapper: a Sequence, not a list
    return all(hasattr(c, "shape") and _shape(c) == _shape(p) for c, p in zip(candidates, params, strict=True))


def locate_slot(
    optimizer: Any,
    params: Sequence[Any],
    index: int,
    slot: str,
    source: SlotSource,
    by_reference: ByReference,
    adapter_type: str,
) -> Any:
    """The variable holding the dialect's `slot` for parameter `index`, wherever the optimizer keeps it.

    A name is looked up, in order: through the framework's per-variable helper (`by_reference`: Keras 3's
    `add_variable_from_reference` naming, tf_keras's `get_slot` or `<slot>/<variable>` naming); as one variable per
    parameter named `source` among the optimizer's variables (`add_variable(name=...)`, which names them all
    alike), matched by order and shape; as a list attribute of the optimizer holding one variable per parameter. A
    callable is asked directly. Anything else is one LookupError line naming what exists and the keyword to pass.
    """
    variable = params[index]
    owner = type(optimizer).__name__
    if callable(source):
        found = source(optimizer, variable, index)
        if not hasattr(found, "shape") or _shape(found) != _shape(variable):
            raise ValueError(
                f"the slots= callable for {slot!r} gave {found!r} for parameter {index}, which is shaped "
                f"{list(_shape(variable))}: it must return that parameter's slot variable"
            )
        return found
    found, looked_for = by_reference(optimizer, variable, source)
    if found is not None:
        return found
    variables = optimizer.variables
    variables = list(variables() if callable(variables) else variables)  # a method on tf_keras's OptimizerV2
    named = [v for v in variables if short_name(v) == source]
    if _one_per_parameter(named, params):
        return named[index]
    attribute = getattr(optimizer, source, None) if source.isidentifier() else None
    if _one_per_parameter(attribute, params):
        return attribute[index]
    mismatch = f" ({len(named)} variables are named {source!r}, for {len(params)} parameters)" if named else ""
    raise LookupError(
        f"{owner} keeps no slot {source!r} for parameter {index} (shape {list(_shape(variable))}) where "
        f"{adapter_type} looks: no {looked_for}, no variable per parameter named {source!r} in order and shape "
        f"(add_variable){mismatch}, no list attribute {source!r}; its variables are "
        f"{[short_name(v) for v in variables]}. Pass slots={{{slot!r}: NAME}} to {adapter_type}, NAME being a list "
        f"attribute of the optimizer with one variable per parameter, or a callable (optimizer, variable, index) "
        f"-> variable"
    )


def check_holds(adapter_name: str, wanted: np.dtype, held: np.dtype) -> None:
    # Note: Keras 3 on JAX without jax_enable_x64 keeps a float64 variable as float32 and says nothing.
    if held != wanted:
        raise ValueError(f"{adapter_name}: a {wanted} parameter is held as {held}; the framework cannot run {wanted}")


class KerasStyleAdapter(ABC):
    """An Adapter for an optimizer class with Keras' API, one dialect, hyperparameters passed as keywords.

    `slots` maps a dialect slot name to where a user's class keeps it, where it is not under the dialect's name:
    the class's own slot name, the name of a list attribute of the optimizer holding one variable per parameter,
    or a callable (optimizer, variable, index) -> variable (see `locate_slot`).

    `sparse` says whether the class takes row-sparse gradients; they are claimed where it does, the dialect has
    them and the framework can pass them. By default the framework's own class does and a user's class does not:
    dense gradients are all that the framework's base optimizer guarantees.

    `manifest` names the adapter's own known-failure manifest, applied unless `--no-default-manifest`.

    `dtypes` narrows the formats claimed (by default every one the framework runs: float16, bfloat16, float32 and
    float64, where the backend has them).
    """

    framework: ClassVar[str]  # where the built-in classes live, e.g. "keras.optimizers"
    built_in: ClassVar[Mapping[str, str]]  # dialect -> the built-in class's attribute path under `framework`
    replicas: ClassVar[bool] = False  # whether live optimizers offer step_replicated
    name: str
    capabilities: Capabilities

    def __init__(
        self,
        optimizer_class: Any = None,
        *,
        dialect: str,
        name: str | None = None,
        slots: Mapping[str, SlotSource] | None = None,
        sparse: bool | None = None,
        manifest: pathlib.Path | None = None,
        dtypes: Sequence[str] | None = None,
    ) -> None:
        if optimizer_class is None and dialect not in self.built_in:
            raise ValueError(f"{self.framework} has no built-in optimizer for {dialect}; pass optimizer_class")
        spec = get_dialect(dialect)
        dialect_slots = tuple(spec.slots.values())
        unknown = sorted(set(slots or {}) - set(dialect_slots))
        if unknown:
            raise ValueError(f"{dialect} has no slot {', '.join(unknown)}; its slots: {', '.join(dialect_slots)}")
        self.dialect = dialect
        self.manifest = manifest
        self._optimizer_class = optimizer_class
        self._slots: dict[str, SlotSource] = {s: (slots or {}).get(s, s) for s in dialect_slots}
        self.name = name or self._default_name()
        sparse, self.how_to_claim = sparse_claim(
            sparse,
            adapter_type=type(self).__name__,
            built_in=optimizer_class is None,
            dialect=spec,
            path_takes_them=self._takes_sparse(),
        )
        supported = self._dtypes()
        if dtypes is not None and not set(dtypes) <= set(supported):
            extra = ", ".join(sorted(set(dtypes) - set(supported)))
            raise ValueError(f"{type(self).__name__} cannot claim {extra}; this framework takes {', '.join(supported)}")
        self.capabilities = Capabilities(
            dialects=(dialect,),
            dtypes=tuple(d for d in supported if dtypes is None or d in dtypes),
            set_state=True,
            config=True,
            serialize=True,
            sparse=sparse,
            replicas=self.replicas,
        )

    @abstractmethod
    def _optimizers_module(self) -> Any:
        """The imported module that `framework` names."""

    @abstractmethod
    def _live(self, make_optimizer: Callable[[], Any], params: Sequence[np.ndarray]) -> KerasStyleLive:
        """`make_optimizer()` built over fresh variables holding `params`, as a live optimizer."""

    @abstractmethod
    def _load(self, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: Any) -> KerasStyleLive: ...

    @abstractmethod
    def versions(self) -> dict[str, str]: ...

    def _dtypes(self) -> tuple[str, ...]:
        return TF_DTYPES

    def _takes_sparse(self) -> bool:
        return True

    def _default_name(self) -> str:
        if self._optimizer_class is not None:
            return f"{self._optimizer_class.__module__}.{self._optimizer_class.__qualname__}"
        return f"{self.framework}.{self.built_in[self.dialect]}"

    def optimizer_class(self) -> Any:
        if self._optimizer_class is not None:
            return self._optimizer_class
        namespace = self._optimizers_module()
        for attribute in self.built_in[self.dialect].split("."):
            namespace = getattr(namespace, attribute)
        return namespace

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, self.dialect, dialect)
        cls = self.optimizer_class()
        return self._live(lambda: cls(**hparams), params)

    def from_config(self, dialect: str, config: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        """The class's own `from_config` on a `config()` output, built over fresh variables holding `params`."""
        check_dialect(self.name, self.dialect, dialect)
        cls = self.optimizer_class()
        return self._live(lambda: cls.from_config(dict(config)), params)

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: Any
    ) -> LiveOptimizer:
        check_dialect(self.name, self.dialect, dialect)
        return self._load(hparams, params, directory)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dialect={self.dialect!r})"
