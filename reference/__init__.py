"""optconf's reference semantics: the Adagrad and RProp families, their dialects, and two evaluators."""

from ._numerics import DTYPES, FloatFormat, format_of
from .dialects import DIALECTS, Dialect, get
from .trajectory import ORACLE_DPS, Step, run

__all__ = ["DIALECTS", "DTYPES", "ORACLE_DPS", "Dialect", "FloatFormat", "Step", "format_of", "get", "run"]
