"""What the TF family's adapter tests share (tests/adapters/test_adapter_tf.py and test_adapter_keras.py): the
subjects of tf_keras, the raw ops and Keras 3 by name, a corpus case with a checkpoint, an optimizer started as the
runner starts it, and a Python child process. Import it only after the test module's importorskips."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import keras
import pytest

from conformance import corpus
from conformance.adapters import _tf_common, tf_keras, tf_raw
from conformance.adapters import keras as keras_adapters
from support.adapter_protocol import cases

# First, so that TF's CPU is split into the two logical devices the replica tests need before any op runs.
tf = _tf_common.import_tensorflow()

LEGACY, NEW, KERAS = "tf_keras.optimizers.legacy.Adagrad", "tf_keras.optimizers.Adagrad", "keras.optimizers.Adagrad"
RAW_V2, RAW_V1 = "tf.raw_ops.ResourceApplyAdagradV2", "tf.raw_ops.ResourceApplyAdagrad"
AS_KERAS2 = "tf_keras.optimizers.legacy.Adagrad[as keras2]"  # the legacy class configured as Keras 2: float32 only
ON_TF = keras.config.backend() == "tensorflow"
SUBJECTS = {a.name: a for a in [*tf_keras.subjects(), *tf_raw.subjects(), *keras_adapters.subjects()]}
# The subjects of the TF family's own dialects, which every protocol test below runs over (in float32 and float64).
TF_SUBJECTS = sorted(n for n in SUBJECTS if (n != KERAS or ON_TF) and n != AS_KERAS2)
KERAS_STYLE = [n for n in TF_SUBJECTS if not n.startswith("tf.raw_ops")]
needs_tf_backend = pytest.mark.skipif(not ON_TF, reason="the Keras 3 subject is measured on the TF backend")


def dialect_of(name: str) -> str:
    return SUBJECTS[name].capabilities.dialects[0]


def checkpoint_case(name: str, dtype: str = "float32") -> corpus.Case:
    return cases(dialect_of(name), dtype, "CHECKPOINT", level=1)[0]


def start(name: str, case: corpus.Case) -> Any:
    """A fresh optimizer at the case's initial state, as the runner starts it (set_state where the case gives it)."""
    live = SUBJECTS[name].create(case.dialect, case.hparams, [p.copy() for p in case.initial_params])
    count, slots = case.initial_state
    if case.state_given:
        live.set_state(case.initial_params, slots, count)
    return live


def python(code: str, **env: str) -> str:
    """Run `code` in a fresh Python with these environment variables added; its stdout (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ | env, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
