"""Adapters for tf_keras (Keras 2): OptimizerV2 `optimizers.legacy.Adagrad` and the "new" `optimizers.Adagrad`.

Parameters are `tf.Variable`s of the parameter dtype. Beyond the core protocol, through tf_keras' own mechanisms:

- `set_state` assigns the variables and `iterations`; the legacy (OptimizerV2) slots go through `set_weights`
  (its `weights` are `[iter, accumulators...]`), the new optimizer's slot variables (`accumulator/<var>`) are
  assigned directly, as it has no `set_weights`.
- `config` is `optimizer.get_config()` as JSON values (its learning_rate is a NumPy float32); `from_config` is the
  class's own.
- `save` writes a `tf.train.Checkpoint` of the optimizer and the parameters; `load` restores it into a fresh
  optimizer (built with the case's hyperparameters) over fresh variables, and insists that every saved value found
  its variable (`assert_consumed`).
- Sparse gradients: a `SparseGrad` becomes a `tf.IndexedSlices` with its repeated indices (both APIs sum them).
- Replicas: `step_replicated` runs `apply_gradients` in `tf.distribute.MirroredStrategy.run` over two logical CPU
  devices, one gradient per replica, so the optimizer itself aggregates them (summed by default). The first call
  moves the optimizer into the strategy: it rebuilds the variables and the optimizer in `strategy.scope()` and
  carries the state over with `set_state`. Afterwards `step` hands every replica the whole gradient with
  `experimental_aggregate_gradients=False`, and every read checks that the replicas agree bit for bit.
  `import_tensorflow` splits the CPU into two logical devices before TF initialises them; where it cannot (TF ran
  an op before this module imported it), `step_replicated` raises and says so.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from ..registry import manifest_path
from ._tf_common import (
    REPLICAS,
    KerasStyleAdapter,
    KerasStyleLive,
    SlotSource,
    as_numpy,
    assign,
    by_name,
    check_holds,
    import_tensorflow,
    replica_devices,
    short_name,
    tf_gradient,
    variable_name,
)

__all__ = ["CHECKPOINT", "TFKerasAdapter", "TFKerasLive", "subjects"]

CHECKPOINT = "checkpoint"  # tf.train.Checkpoint's prefix inside the save directory


def _import_tf_keras() -> Any:
    import_tensorflow()
    import tf_keras

    return tf_keras


def _is_legacy(optimizer: Any) -> bool:
    return isinstance(optimizer, _import_tf_keras().optimizers.legacy.Optimizer)


def _by_reference(optimizer: Any, variable: Any, own_name: str) -> tuple[Any, str]:
    """The slot as the framework's per-variable helper made it: OptimizerV2's `add_slot` (read with `get_slot`),
    or the new optimizer's `add_variable_from_reference`, which names it `<slot>/<variable>`."""
    if _is_legacy(optimizer):
        try:
            return optimizer.get_slot(variable, own_name), f"get_slot(variable, {own_name!r}) (add_slot)"
        except KeyError:
            return None, f"get_slot(variable, {own_name!r}) (add_slot)"
    wanted = f"{own_name}/{short_name(variable)}"
    return by_name(optimizer.variables, wanted), f"variable {wanted!r} (add_variable_from_reference)"


def _gradient(grad: Any, dtype: np.dtype, shape: tuple[int, ...]) -> Any:
    return tf_gradient(import_tensorflow(), grad, dtype, shape)


def _build(adapter_name: str, make_optimizer: Callable[[], Any], params: Sequence[np.ndarray]) -> tuple[Any, list[Any]]:
    """A fresh optimizer over fresh variables holding `params`, its state created (in the current scope)."""
    tf = import_tensorflow()
    variables = []
    for index, param in enumerate(params):
        array = np.array(param, copy=True)
        variable = tf.Variable(array, name=variable_name(index))
        check_holds(adapter_name, array.dtype, as_numpy(variable).dtype)
        variables.append(variable)
    optimizer = make_optimizer()
    # Create the state now, as torch does in `__init__`, so that it can be read before the first step.
    if _is_legacy(optimizer):
        # Note: OptimizerV2 has no public `build`; this is what its `apply_gradients` calls first.
        optimizer._create_all_weights(variables)
    else:
        optimizer.build(variables)
    return optimizer, variables


class TFKerasLive(KerasStyleLive):
    """A tf_keras optimizer (either API) over tf.Variables; see the module docstring for its capabilities."""

    def __init__(
        self,
        adapter_name: str,
        make_optimizer: Callable[[], Any],
        params: Sequence[np.ndarray],
        slots: Mapping[str, SlotSource],
    ) -> None:
        optimizer, variables = _build(adapter_name, make_optimizer, params)
        super().__init__(optimizer, variables, slots, _by_reference, _gradient, "TFKerasAdapter")
        self._adapter_name = adapter_name
        self._make_optimizer = make_optimizer
        self.strategy: Any = None  # a MirroredStrategy once step_replicated has been called

    @property
    def variables(self) -> list[Any]:
        return list(self._variables)

    # ------------------------------------------------------------------ stepping

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        if self.strategy is None:
            super().step(grads, loss)
            return
        # Already aggregated: every replica applies the whole gradient, and the optimizer must not sum them again.
        tensors = self._gradients_for(grads)
        self._run_replicated([tensors] * REPLICAS, aggregate=False)
        self._held = tensors

    def step_replicated(self, per_replica: Sequence[Sequence[np.ndarray]], *, aggregate: bool = True) -> None:
        """One step from one gradient list per replica, aggregated by the optimizer (`aggregate=False` passes
        `experimental_aggregate_gradients=False`: each replica then applies its own gradients as they are)."""
        if len(per_replica) != REPLICAS:
            raise ValueError(f"{len(per_replica)} replicas' gradients; the strategy has {REPLICAS} replicas")
        self._replicated()
        self._run_replicated([self._gradients_for(row) for row in per_replica], aggregate=aggregate)
        self._held = None  # several gradients went in; none is *the* gradient of this step

    def _run_replicated(self, per_replica: Sequence[Sequence[Any]], *, aggregate: bool) -> None:
        strategy = self.strategy
        distributed = [
            strategy.experimental_distribute_values_from_function(
                lambda context, i=i: _on_this_device(per_replica[context.replica_id_in_sync_group][i])
            )
            for i in range(len(self._variables))
        ]

        def apply(*grads: Any) -> None:
            pairs = zip(grads, self._variables, strict=True)
            self.optimizer.apply_gradients(pairs, experimental_aggregate_gradients=aggregate)

        strategy.run(apply, args=tuple(distributed))

    def _replicated(self) -> Any:
        """Move into a MirroredStrategy over two logical CPUs (once), carrying parameters and state over."""
        if self.strategy is None:
            strategy = mirrored_strategy()
            params, state, count = self.params(), self.state(), self.count()
            with strategy.scope():
                self.optimizer, self._variables = _build(self._adapter_name, self._make_optimizer, params)
            self.strategy = strategy
            self.set_state(params, state, count)
        return self.strategy

    def _read(self, variable: Any) -> np.ndarray:
        if self.strategy is None:
            return as_numpy(variable)
        values = [as_numpy(v) for v in self.strategy.experimental_local_results(variable)]
        for replica, value in enumerate(values[1:], start=1):
            if value.tobytes() != values[0].tobytes():
                raise RuntimeError(f"{variable.name}: replica {replica} holds {value!r}, replica 0 {values[0]!r}")
        return values[0]

    def local_values(self, variable: Any) -> list[np.ndarray]:
        """Each replica's copy of `variable` (one value when not replicated)."""
        if self.strategy is None:
            return [as_numpy(variable)]
        return [as_numpy(v) for v in self.strategy.experimental_local_results(variable)]

    # ------------------------------------------------------------------ state

    def _assign_slots(self, state: Mapping[str, Sequence[np.ndarray]]) -> None:
        if not _is_legacy(self.optimizer):
            super()._assign_slots(state)
            return
        # OptimizerV2's own API: `weights` is [iter, slots in creation order]; set_weights checks every shape.
        weights = self.optimizer.weights
        values = [as_numpy(w) for w in weights]
        position = {id(w): i for i, w in enumerate(weights)}
        direct = []  # slots the optimizer keeps outside its `weights` (a user's own list): assigned as variables
        for name in self._slots:
            for index in range(len(self._variables)):
                value = np.asarray(state[name][index])
                slot = self._slot(index, name)
                if id(slot) not in position:
                    direct.append((slot, value, f"slot {name!r} of parameter {index}"))
                    continue
                if value.dtype != values[position[id(slot)]].dtype:
                    raise ValueError(f"slot {name!r} of parameter {index}: a {value.dtype} value for {slot.dtype}")
                values[position[id(slot)]] = value
        self.optimizer.set_weights(values)
        for slot, value, what in direct:
            assign(slot, value, what)

    def save(self, directory: pathlib.Path) -> None:
        """A `tf.train.Checkpoint` of the optimizer (slots, iterations, hyper-variables) and the parameters."""
        tf = import_tensorflow()
        tf.train.Checkpoint(optimizer=self.optimizer, params=list(self._variables)).write(
            str(pathlib.Path(directory) / CHECKPOINT)
        )

    def restore(self, directory: pathlib.Path) -> None:
        tf = import_tensorflow()
        checkpoint = tf.train.Checkpoint(optimizer=self.optimizer, params=list(self._variables))
        checkpoint.read(str(pathlib.Path(directory) / CHECKPOINT)).assert_consumed()


@functools.cache
def mirrored_strategy() -> Any:
    """One MirroredStrategy over two logical CPUs, shared by every live optimizer in the process.

    Shared, not one per optimizer: each strategy numbers its collective all-reduces from the same start, and a
    second strategy reusing an instance number with other shapes aborts TF's collective executor for the process.
    """
    tf = import_tensorflow()
    return tf.distribute.MirroredStrategy(replica_devices(tf))


def _on_this_device(tensor: Any) -> Any:
    # experimental_distribute_values_from_function calls us under each replica's device scope: copy it there.
    return import_tensorflow().identity(tensor)


class TFKerasAdapter(KerasStyleAdapter):
    """tf_keras's Adagrad, or a user's tf_keras optimizer class taking the same keywords.

    Works with both tf_keras optimizer APIs: OptimizerV2 (`legacy`, slots via `get_slot`) and the new one (slots
    are variables named `<slot>/<variable>`).
    """

    framework = "tf_keras.optimizers"
    built_in = MappingProxyType({"adagrad/tf-keras-v2": "legacy.Adagrad", "adagrad/keras3": "Adagrad"})
    replicas = True

    def _optimizers_module(self) -> Any:
        return _import_tf_keras().optimizers

    def _live(self, make_optimizer: Callable[[], Any], params: Sequence[np.ndarray]) -> TFKerasLive:
        return TFKerasLive(self.name, make_optimizer, params, self._slots)

    def _load(self, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: Any) -> TFKerasLive:
        live = self._live(lambda: self.optimizer_class()(**hparams), params)
        live.restore(pathlib.Path(directory))
        return live

    def versions(self) -> dict[str, str]:
        tf_keras = _import_tf_keras()
        return {"tf_keras": str(tf_keras.__version__), "tensorflow": str(import_tensorflow().__version__)}


@functools.cache
def legacy_as_keras2() -> type:
    """tf_keras's legacy Adagrad configured as Keras 2 (`adagrad/keras2`), the API it succeeded: Keras 2's keywords
    (`lr`, `epsilon`, `decay`, `clipnorm`, `clipvalue`), the accumulators starting at 0 as Keras 2's did, and Keras
    2's `clipnorm`, a joint norm over all gradients, passed as `global_clipnorm`. Nothing of the step is changed."""
    base = _import_tf_keras().optimizers.legacy.Adagrad

    class LegacyAdagradAsKeras2(base):  # type: ignore[misc, valid-type]
        def __init__(
            self,
            lr: float = 0.01,
            epsilon: float = 1e-7,
            decay: float = 0.0,
            clipnorm: float | None = None,
            clipvalue: float | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(
                learning_rate=lr,
                initial_accumulator_value=0.0,
                epsilon=epsilon,
                decay=decay,
                global_clipnorm=clipnorm,
                clipvalue=clipvalue,
                **kwargs,
            )

        def get_config(self) -> dict[str, Any]:
            config = dict(super().get_config())
            config.pop("initial_accumulator_value")
            config["lr"] = config.pop("learning_rate")
            config["clipnorm"] = config.pop("global_clipnorm", None)
            return config

        @classmethod
        def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> Any:
            # Not the base class's: it adds initial_accumulator_value and renames lr, which this class sets itself.
            return cls(**config)

    return LegacyAdagradAsKeras2


def subjects() -> list[TFKerasAdapter]:
    """The built-in tf_keras Adagrads, one per API generation, and the legacy one configured as Keras 2, with the
    manifest `manifests/tf_keras.toml`."""
    manifest = manifest_path("tf_keras")
    own = [TFKerasAdapter(dialect=dialect, manifest=manifest) for dialect in TFKerasAdapter.built_in]
    as_keras2 = TFKerasAdapter(
        legacy_as_keras2(),
        dialect="adagrad/keras2",
        name="tf_keras.optimizers.legacy.Adagrad[as keras2]",
        manifest=manifest,
    )
    return [*own, as_keras2]
