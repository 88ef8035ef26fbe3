"""The family record: everything optconf knows about one optimizer family, declared once, in the family's module.

The dialect table, the describer, the corpus generator, the tolerance model, the invalid-setting check and the
fuzzer all read a family through this record, so that adding a family is one step module and one record (under
reference/families/), and no code elsewhere asks which family it holds.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ._numerics import FloatFormat
    from .dialects import Dialect
    from .vectors.casespec import CaseSpec

__all__ = ["Bound", "Family", "Invalid"]


@dataclass(frozen=True)
class Bound:
    """A tolerance: |got - expected| <= k * u * S + tiny, and why k is what it is."""

    k: float
    source: str


class Invalid(NamedTuple):
    """A canonical hyperparameter, a value the family refuses, and a valid value of it for the control run."""

    canonical: str
    bad: Any
    good: Any


@dataclass(frozen=True)
class Family:
    name: str
    hparams_type: type
    init: Callable[..., Any]
    step: Callable[..., Any]
    validate: Callable[..., Any]
    slots: tuple[str, ...]  # canonical per-tensor state slots, in state order
    # k per canonical quantity ("params", each slot, and any scalar slot a dialect reports), for every format
    tolerance: Mapping[str, Bound]
    # knobs -> the out-of-range settings a dialect of these knobs refuses (kept only where it exposes them)
    invalid: Callable[[Any], tuple[Invalid, ...]]
    # settings that are only out of range beside another one (step_min > step_max): canonical -> the other ones
    alongside: Mapping[str, Mapping[str, Any]]
    # (dialect, rng) -> canonical hyperparameters of a random corpus or fuzz case; the draw order is the corpus's
    random_hparams: Callable[[Dialect, random.Random], dict[str, Any]]
    zero_chance: float  # how often an element of a random gradient is exactly 0
    # (dialect, format) -> the family's edge cases for the corpus, in tcId order
    edge_cases: Callable[[Dialect, FloatFormat], Iterator[CaseSpec]]
    # canonical settings that reach the clamps and clips (kept only where a dialect exposes them)
    stress_hparams: Mapping[str, Any]
    # (dialect, format) -> the cases whose initial state is an input (CaseSpec.initial_state): numbered after every
    # other case of the file, so that adding them (vector set 1.1.0) kept each earlier tcId
    given_state_cases: Callable[[Dialect, FloatFormat], Iterator[CaseSpec]]
    describe: Callable[[Dialect], list[str]]  # the dialect's formula, one line per assignment
    # The step takes data-dependent branches: the oracle records them per element, and a random case that lands
    # within a guard band of a branch edge is drawn again.
    has_branches: bool
