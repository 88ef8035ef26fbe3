"""ONNX's training Adagrad under onnx.reference against the reference oracle, step by step, on the generator's cases.

Every step's params, `H` and the counter `T` (which the adapter feeds and counts) are compared by the error model.
NumPy evaluates the operator's pseudo code one operation at a time, each rounded: G + norm_coefficient * X,
H + G * G and sqrt(H) + epsilon in X's format; for float32 X, r = R / (1 + T * decay_factor) and
r * G / (sqrt(H) + epsilon) in float64 (int64 T times a Python float promotes), and X - ... rounded back once more.
Measured with onnx 1.23.2 on x86-64: params k 0.91 / 0.93, H k 0.88 / 0.84 (float32 / float64). The machinery is
in support/differential.py.
"""

from __future__ import annotations

import pytest
from support.differential import adapter_subjects, trajectory_test

from conformance.adapters.onnx import subjects

pytest.importorskip("onnx")

CASES = 8  # per dtype: 10 steps x 2 tensors, one of 65+ elements

SUBJECTS = adapter_subjects(subjects(), {})

test_trajectory = trajectory_test(SUBJECTS, CASES)
