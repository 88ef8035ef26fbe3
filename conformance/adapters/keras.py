"""Adapter for Keras 3 `keras.optimizers.Adagrad` (or a user's Keras 3 optimizer), on the configured backend.

The parameters are the weights of a tiny model (`ParamsModel`, one weight per parameter tensor), compiled with the
optimizer under test, so that the optimizer is saved the way users save it: inside a `.keras` model file.

Beyond the core protocol, through Keras' own mechanisms:

- `set_state` assigns the weights, the slot variables and `iterations`. A slot is found where
  `add_variable_from_reference` puts it (`<weight path, '/' -> '_'>_<slot>`), or among variables made with
  `add_variable(name=<slot>)`, one per weight in order, or where `slots=` says (`_tf_common.locate_slot`).
- `config` is `optimizer.get_config()` (as JSON values); `from_config` is the class's own `from_config`.
- `save` writes both `model.save("model.keras")` and the optimizer's own variables (`save_own_variables`, as an
  `.npz` of arrays, no pickle). `load` restores the model, and with it the optimizer, with
  `keras.models.load_model`, restores a fresh optimizer from the variables file too, and refuses (ValueError)
  unless the two agree bit for bit; the loaded model file is what is returned.
- Sparse gradients (TF backend only): a `SparseGrad` becomes a `tf.IndexedSlices` with its repeated indices.

Backends: Keras 3 fixes its backend once per process, when it is imported (KERAS_BACKEND, else keras.json, else
TensorFlow). `keras.config.set_backend` re-imports Keras and leaves every existing Keras object unusable, so the
backends cannot be offered side by side in one run. `subjects()` follows the current backend instead:
`KERAS_BACKEND=jax pytest --impl=keras` (or `torch`) runs the same subject on that backend. Its name is
`keras.optimizers.Adagrad[jax]`, so that manifest entries can tell the backends apart; on TensorFlow, the default,
the name carries no suffix. `versions()` always reports the backend. Sparse gradients are claimed on TF only, and
float64 on JAX only with `JAX_ENABLE_X64=1` (without it JAX holds a float64 weight as float32).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from ..registry import manifest_path
from ._convert import carrier
from ._tf_common import (
    TF_DTYPES,
    KerasStyleAdapter,
    KerasStyleLive,
    SlotSource,
    as_numpy,
    assert_same_snapshot,
    by_name,
    check_holds,
    import_tensorflow,
    quiet_tf_logging,
    tf_gradient,
    variable_name,
)

__all__ = [
    "MODEL_FILE",
    "VARIABLES_FILE",
    "KerasAdapter",
    "KerasLive",
    "backend_manifest",
    "configured_backend",
    "subjects",
]

MODEL_FILE = "model.keras"
VARIABLES_FILE = "optimizer_variables.npz"
MODEL_NAME = "optconf_params"


def configured_backend() -> str:
    """The backend Keras runs on (or will, once imported), read without importing Keras."""
    keras = sys.modules.get("keras")
    config = getattr(keras, "config", None)
    if config is not None:
        return str(config.backend())
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = pathlib.Path(os.environ.get("KERAS_HOME") or pathlib.Path.home() / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text(encoding="utf-8")).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _jax_x64() -> bool:
    jax = sys.modules.get("jax")
    if jax is not None:
        return bool(jax.config.jax_enable_x64)
    return os.environ.get("JAX_ENABLE_X64", "").lower() in ("1", "true", "yes", "on")


def _import_keras() -> Any:
    quiet_tf_logging()  # harmless on the JAX and torch backends
    if configured_backend() == "tensorflow":
        import_tensorflow()  # first, so that TF's devices are configured as the other TF adapters expect
    import keras

    return keras


@functools.cache
def params_model_class() -> type:
    """`ParamsModel`, registered with Keras' serialisation as `optconf>ParamsModel` (defined on first use)."""
    keras = _import_keras()
    model: Any = keras.Model  # a base class known only at run time: Keras is imported on first use

    @keras.saving.register_keras_serializable(package="optconf", name="ParamsModel")
    class ParamsModel(model):
        """A model whose only weights are the parameters under test, created from their shapes and dtypes."""

        def __init__(self, shapes: Sequence[Sequence[int]], dtypes: Sequence[str], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.param_shapes = [[int(n) for n in s] for s in shapes]
            self.param_dtypes = [str(d) for d in dtypes]
            self.params = [
                self.add_weight(shape=tuple(s), dtype=d, initializer="zeros", name=variable_name(i))
                for i, (s, d) in enumerate(zip(self.param_shapes, self.param_dtypes, strict=True))
            ]
            self.built = True

        def call(self, inputs: Any) -> Any:
            return inputs

        def get_config(self) -> dict[str, Any]:
            return {"name": self.name, "shapes": self.param_shapes, "dtypes": self.param_dtypes}

    return ParamsModel


class KerasLive(KerasStyleLive):
    """A Keras 3 optimizer compiled into a `ParamsModel` whose weights are the parameters."""

    def __init__(self, model: Any, slots: Mapping[str, SlotSource], backend: str) -> None:
        self.model = model
        self._backend = backend
        super().__init__(model.optimizer, model.params, slots, _by_reference, self._gradient, "KerasAdapter")

    def _gradient(self, grad: Any, dtype: np.dtype, shape: tuple[int, ...]) -> Any:
        if self._backend == "tensorflow":
            return tf_gradient(import_tensorflow(), grad, dtype, shape)
        if not isinstance(grad, np.ndarray):
            raise TypeError(f"Keras on {self._backend} takes dense gradients only; got {type(grad).__name__}")
        return _import_keras().ops.convert_to_tensor(np.asarray(grad, dtype=dtype))

    def save(self, directory: pathlib.Path) -> None:
        """`model.save` to a .keras file, and the optimizer's own variables as arrays beside it."""
        directory = pathlib.Path(directory)
        self.model.save(directory / MODEL_FILE)
        store: dict[str, Any] = {}
        self.optimizer.save_own_variables(store)
        # .npz has no bfloat16 (it would load back as raw bytes): bfloat16 goes as float32, which holds it exactly,
        # and assign() rounds it back to the variable's format unchanged.
        arrays = {key: _storable(as_numpy(value)) for key, value in store.items()}
        # mypy matches the ** names against savez's `allow_pickle: bool` too; they are the variables' names.
        np.savez(directory / VARIABLES_FILE, **arrays)  # type: ignore[arg-type]


def _storable(array: np.ndarray) -> np.ndarray:
    return carrier(array) if array.dtype.name == "bfloat16" else array  # the counter is an integer: as it is


def _by_reference(optimizer: Any, variable: Any, own_name: str) -> tuple[Any, str]:
    """The slot as `add_variable_from_reference(variable, own_name)` names it."""
    wanted = f"{variable.path.replace('/', '_')}_{own_name}"
    return by_name(optimizer.variables, wanted), f"variable {wanted!r} (add_variable_from_reference)"


def _snapshot(live: KerasLive) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]], int | None]:
    return live.params(), live.state(), live.count()


class KerasAdapter(KerasStyleAdapter):
    """Keras 3's Adagrad, or a user's Keras 3 optimizer class taking the same keywords.

    Slots are the optimizer variables that `add_variable_from_reference(var, "<slot>")` creates, named
    `<variable path>_<slot>`, or that `add_variable(..., name="<slot>")` creates, one per variable in order;
    `slots=` names anything else (see `KerasStyleAdapter`). A user's class must survive
    `get_config`/`from_config` for `config` and `serialize`; `load` passes it to `load_model` as a custom object.
    """

    framework = "keras.optimizers"
    built_in = MappingProxyType({"adagrad/keras3": "Adagrad"})

    def __init__(self, optimizer_class: Any = None, **kwargs: Any) -> None:
        self.backend = configured_backend()
        super().__init__(optimizer_class, **kwargs)

    def _default_name(self) -> str:
        name = super()._default_name()
        if self._optimizer_class is None and self.backend != "tensorflow":
            name += f"[{self.backend}]"
        return name

    def _dtypes(self) -> tuple[str, ...]:
        if self.backend == "jax" and not _jax_x64():
            return ("float32",)
        return TF_DTYPES

    def _takes_sparse(self) -> bool:
        return self.backend == "tensorflow"  # tf.IndexedSlices; the JAX and torch backends take dense gradients

    def _optimizers_module(self) -> Any:
        return _import_keras().optimizers

    def _check_backend(self) -> None:
        if configured_backend() != self.backend:
            running = configured_backend()
            raise RuntimeError(f"{self.name} was made for Keras on {self.backend}, but Keras runs on {running}")

    def _live(self, make_optimizer: Callable[[], Any], params: Sequence[np.ndarray]) -> KerasLive:
        self._check_backend()
        optimizer = make_optimizer()
        arrays = [np.array(p, copy=True) for p in params]
        model = params_model_class()([a.shape for a in arrays], [a.dtype.name for a in arrays], name=MODEL_NAME)
        for weight, array in zip(model.params, arrays, strict=True):
            check_holds(self.name, array.dtype, as_numpy(weight).dtype)
            weight.assign(array)
        model.compile(optimizer=optimizer)
        # Create the state now, as torch does in `__init__`, so that it can be read before the first step.
        optimizer.build(model.trainable_variables)
        return KerasLive(model, self._slots, self.backend)

    def _load(self, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: Any) -> KerasLive:
        """The saved model file, through `keras.models.load_model` (parameters and optimizer from the file), checked
        against a fresh optimizer with `hparams` over `params` that `load_own_variables` the saved variables."""
        self._check_backend()
        keras = _import_keras()
        directory = pathlib.Path(directory)
        custom = {"ParamsModel": params_model_class()}
        if self._optimizer_class is not None:
            custom[self._optimizer_class.__name__] = self._optimizer_class
        model = keras.models.load_model(directory / MODEL_FILE, custom_objects=custom)
        if model.optimizer is None:
            raise ValueError(f"{directory / MODEL_FILE} holds no optimizer")
        from_file = KerasLive(model, self._slots, self.backend)
        cls = self.optimizer_class()
        from_variables = self._live(lambda: cls(**hparams), params)
        with np.load(directory / VARIABLES_FILE, allow_pickle=False) as saved:
            from_variables.optimizer.load_own_variables({key: saved[key] for key in saved.files})
        assert_same_snapshot(
            _snapshot(from_file), _snapshot(from_variables), f"{MODEL_FILE} and {VARIABLES_FILE} restore"
        )
        return from_file

    def versions(self) -> dict[str, str]:
        keras = _import_keras()
        versions = {"keras": str(keras.__version__), "backend": self.backend}
        library = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(self.backend)
        if library is not None:
            versions[library] = str(getattr(importlib.import_module(library), "__version__", "?"))
        return versions


def subjects() -> list[KerasAdapter]:
    """Keras 3's built-in Adagrad on the configured backend, with that backend's known-failure manifest."""
    manifest = backend_manifest(configured_backend())  # the backend each adapter reads as it is built
    return [KerasAdapter(dialect=dialect, manifest=manifest) for dialect in KerasAdapter.built_in]


def backend_manifest(backend: str) -> pathlib.Path:
    """`manifests/keras.toml` for TensorFlow; `manifests/keras-<backend>.toml` for another backend that has one."""
    default = manifest_path("keras")
    own = default.with_name(f"keras-{backend}.toml")
    return own if backend != "tensorflow" and own.is_file() else default
