"""optax.adagrad, eager and under jax.jit, against the reference oracle, step by step, on the generator's cases.

Every step's params and `sum_of_squares` are compared by the error model (optax keeps no counter); what jit
rounds once is compared bit for bit. The machinery is in support/differential.py.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from support.differential import adapter_subjects, seeded_cases, trajectory_test

from conformance.adapter import drive
from conformance.adapters.optax import OptaxAdapter, subjects
from reference import run

pytest.importorskip("optax")

CASES = 8  # per (subject, dtype): 10 steps x 2 tensors, one of 65+ elements

# Eager: XLA's CPU rsqrt is approximate (up to 2 ulp), and |g|^2 + A, g * s, (-lr) * u and p + u round one by one.
# jit fuses |g|^2 + A into an FMA: one rounding, as the reference's, so sum_of_squares is bit-exact there.
SUBJECTS = adapter_subjects(
    [s for s in subjects() if s.dialect.id == "adagrad/optax"],  # optax.rprop: its manifest
    {"optax.adagrad[jit]": frozenset({"sum_of_squares"})},
)
EAGER, JIT = SUBJECTS


test_trajectory = trajectory_test(SUBJECTS, CASES)


def test_a_users_transformation_plugs_in_with_one_line() -> None:
    import optax

    def my_adagrad(learning_rate: float, initial_accumulator_value: float = 0.1, eps: float = 1e-7):
        return optax.chain(optax.scale_by_rss(initial_accumulator_value, eps), optax.scale(-learning_rate))

    mine = OptaxAdapter(my_adagrad, dialect="adagrad/optax")
    case = seeded_cases(EAGER, 1)[0]
    params, grads = case.inputs("float32")
    got = drive(mine, case.dialect, case.hparams, params, grads)
    want = drive(EAGER.make(), case.dialect, case.hparams, params, grads)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.params[1], b.params[1])
        np.testing.assert_array_equal(a.state["sum_of_squares"][1], b.state["sum_of_squares"][1])


def test_float64_stays_float64() -> None:
    # JAX downcasts float64 to float32 unless x64 is on; the adapter turns it on, or the case would test float32.
    hparams, params, grads = {"learning_rate": 0.1}, [np.full(3, 0.3)], [[np.full(3, 0.7)]]
    got = drive(JIT.make(), "adagrad/optax", hparams, params, grads)[0].params[0]
    assert got.dtype == np.float64
    assert got[0] != np.float32(got[0])  # a value only float64 holds
    want = run("adagrad/optax", hparams, "float64", params, grads)[0].params[0]
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_importing_the_adapter_does_not_import_jax() -> None:
    code = "import sys, conformance.adapters.optax as o; o.subjects(); assert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
