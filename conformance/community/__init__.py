"""Community optimizers as conformance subjects: run them with `pytest --impl=conformance.community`.

- `KerasSeedAdagrad` is the Keras 2 Adagrad (with `decay`) that a question about `self.weights` quotes, ported to
  Keras 3 and run as `adagrad/keras2`.
- `KerasAnswerRProp` is the Stack Overflow answer's rule, written from the `rprop/keras-answer` dialect. It passes.
- `KerasQuestionRProp` is the question's class with its bugs kept, run as the `rprop/rprop+` it was meant to be.
  It fails. Its known failures are listed, with reasons, in `conformance/manifests/community.toml`, which both
  adapters carry as their own manifest. So the run exits 0 while the bugs show as xfails. Pass
  `--no-default-manifest` to see them fail.

Importing this package imports Keras (see `keras_rprop`).
"""

from __future__ import annotations

import pathlib
from typing import Any

from conformance.adapters import KerasAdapter

from .keras_adagrad import KerasSeedAdagrad
from .keras_rprop import KerasAnswerRProp, KerasQuestionRProp

__all__ = [
    "ANSWER",
    "IMPLEMENTATIONS",
    "MANIFEST",
    "QUESTION",
    "SEED_ADAGRAD",
    "KerasAnswerRProp",
    "KerasQuestionRProp",
    "KerasSeedAdagrad",
]

MANIFEST = pathlib.Path(__file__).resolve().parents[1] / "manifests" / "community.toml"

ANSWER = KerasAdapter(KerasAnswerRProp, dialect="rprop/keras-answer", name="KerasAnswerRProp", manifest=MANIFEST)
# The class names its variables after the dialect's slots (delta, prev_grad, prev_update), so no `slots=` mapping.
# Its bugs are logic, not precision, and are catalogued case by case in float32 and float64; in the 16-bit formats the
# same bugs fire on other case numbers, so it claims the two formats its manifest covers.
QUESTION = KerasAdapter(
    KerasQuestionRProp,
    dialect="rprop/rprop+",
    name="KerasQuestionRProp",
    manifest=MANIFEST,
    dtypes=("float32", "float64"),
)

SEED_ADAGRAD = KerasAdapter(KerasSeedAdagrad, dialect="adagrad/keras2", name="KerasSeedAdagrad", manifest=MANIFEST)

IMPLEMENTATIONS = [SEED_ADAGRAD, ANSWER, QUESTION]


def subjects() -> list[Any]:
    """The community classes as the built-in `--impl=community`."""
    return list(IMPLEMENTATIONS)
