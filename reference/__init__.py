"""optconf's reference semantics: the Adagrad and RProp families, their dialects, and two evaluators."""

__version__ = "0.1.0"

from ._numerics import DTYPES, FloatFormat, format_of
from .dialects import DIALECTS, Dialect, get
from .trajectory import ORACLE_DPS, Step, run

__all__ = [
    "DIALECTS",
    "DTYPES",
    "ORACLE_DPS",
    "Dialect",
    "FloatFormat",
    "Step",
    "__version__",
    "format_of",
    "get",
    "run",
]
