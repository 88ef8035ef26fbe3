"""The family records, one module each: the only place that knows what a family is called and how it behaves."""

from __future__ import annotations

from ..family import Family
from .adagrad import ADAGRAD
from .rprop import RPROP

__all__ = ["FAMILIES"]

# name -> record; a dialect id starts with its family's name
FAMILIES: dict[str, Family] = {family.name: family for family in (ADAGRAD, RPROP)}
