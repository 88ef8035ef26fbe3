"""The Keras 3 adapter's own protocol (TF backend): the model file with the optimizer inside, its variables file
checked against it, a user's Keras 3 class through config and the model file, and the backend read from the
environment. What it shares with the tf_keras and raw-op adapters (set_state, config, save/load, gradients(), sparse
duplicates, parametrised over every TF-family subject) is in test_adapter_tf.py.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
pytest.importorskip("tensorflow")
pytest.importorskip("tf_keras")
keras = pytest.importorskip("keras")

from support.adapter_protocol import assert_identical, run  # noqa: E402
from support.tf_family import KERAS, SUBJECTS, checkpoint_case, needs_tf_backend, python, start  # noqa: E402

from conformance.adapters.keras import KerasAdapter  # noqa: E402

# ---------------------------------------------------------------- save / load


@needs_tf_backend
def test_keras_load_restores_the_model_file_and_checks_the_variables_file(tmp_path: Any) -> None:
    case = checkpoint_case(KERAS)
    before = start(KERAS, case)
    run(before, case, stop=case.checkpoint)
    before.save(tmp_path)
    after = SUBJECTS[KERAS].load(case.dialect, case.hparams, before.params(), tmp_path)
    # The loaded optimizer is the one inside the model file: a compiled ParamsModel with the optimizer restored.
    assert type(after.model).__name__ == "ParamsModel" and after.model.optimizer is after.optimizer
    assert after.optimizer.get_config() == before.optimizer.get_config()
    # A variables file that disagrees with the model file is refused, not silently preferred.
    with np.load(tmp_path / "optimizer_variables.npz") as saved:
        store = {key: saved[key] for key in saved.files}
    store[str(len(store) - 1)] = store[str(len(store) - 1)] + 1
    np.savez(tmp_path / "optimizer_variables.npz", **store)
    with pytest.raises(ValueError, match="accumulator"):
        SUBJECTS[KERAS].load(case.dialect, case.hparams, before.params(), tmp_path)


# ---------------------------------------------------------------- a user's class


class MyAdagrad(keras.optimizers.Adagrad):
    """A user's class, unregistered with Keras' serialisation: the adapter hands it to load_model."""


@needs_tf_backend
def test_a_users_keras_class_through_config_and_the_model_file(tmp_path: Any) -> None:
    mine = KerasAdapter(MyAdagrad, dialect="adagrad/keras3")
    assert mine.name == f"{__name__}.MyAdagrad" and not mine.capabilities.sparse  # a user's class: dense only
    assert KerasAdapter(MyAdagrad, dialect="adagrad/keras3", sparse=True).capabilities.sparse
    case = checkpoint_case(KERAS)
    want = run(start(KERAS, case), case)
    live = mine.create(case.dialect, case.hparams, case.initial_params)
    assert_identical(run(live, case), want, "MyAdagrad")
    rebuilt = mine.from_config(case.dialect, live.config(), case.initial_params)
    assert type(rebuilt.optimizer) is MyAdagrad
    before = mine.create(case.dialect, case.hparams, case.initial_params)
    run(before, case, stop=case.checkpoint)
    before.save(tmp_path)
    after = mine.load(case.dialect, case.hparams, before.params(), tmp_path)
    assert type(after.optimizer) is MyAdagrad  # load_model found the class through custom_objects
    assert_identical(run(after, case, start=case.checkpoint), want[case.checkpoint :], "MyAdagrad loaded")


# ---------------------------------------------------------------- the backend


def test_the_keras_backend_is_read_from_the_environment() -> None:
    """KERAS_BACKEND picks the backend for the whole process; subjects() follows it (name, manifest, claims)."""
    code = """
from conformance.adapters import keras as k
(s,) = k.subjects()
print(s.name, s.backend, s.capabilities.sparse, s.capabilities.dtypes, s.manifest.name)
"""
    out = python(code, KERAS_BACKEND="jax", JAX_ENABLE_X64="0").split()
    assert out == ["keras.optimizers.Adagrad[jax]", "jax", "False", "('float32',)", "keras-jax.toml"]
