"""What a check is given and how it answers: the adapter and case it judges, and the verdicts it raises."""

from __future__ import annotations

from dataclasses import dataclass, field

import reference
from reference._numerics import FloatFormat, format_of

from .adapter import Adapter
from .corpus import Case
from .tolerance import Bound, bound_of

__all__ = ["CheckFailure", "CheckSkip", "Context", "Outcome"]


class CheckFailure(AssertionError):
    """A check found a divergence; str() is the full diagnosis."""


class CheckSkip(Exception):
    """The case needs a capability the adapter does not declare (the message is the reason)."""


@dataclass
class Outcome:
    """What a passing or failing check measured, for the evidence report."""

    worst_ulp: int = 0
    # Per bounded quantity (k > 0), the largest k a compared finite element needed (`tolerance.scaled_error`): what
    # the tolerance table's k is measured against.
    worst_k: dict[str, float] = field(default_factory=dict)
    first_divergence: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    adapter: Adapter
    case: Case
    repro: str
    k_override: float | None = None

    @property
    def dialect(self) -> reference.Dialect:
        return reference.get(self.case.dialect)

    @property
    def fmt(self) -> FloatFormat:
        return format_of(self.case.dtype)

    def bound(self, quantity: str) -> Bound:
        if self.k_override is not None:
            return Bound(self.k_override, "a tolerance override in the implementer's manifest")
        return bound_of(self.dialect, quantity)

    def fail(self, message: str, outcome: Outcome) -> CheckFailure:
        outcome.first_divergence = message
        return CheckFailure(f"{self.case.test_id}: {message}\n  repro: {self.repro}")
