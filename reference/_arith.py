"""The arithmetic namespace each family step is written against, bound to mpmath (oracle) or NumPy (fast).

A step never calls mpmath or NumPy directly. It uses Python operators on arrays plus the few functions of
`Ops`, so one definition runs in both evaluators.

The oracle evaluates every right-hand side exactly (at `dps` digits) and rounds once, to the parameter's
format, when a value is stored into a variable (`Ops.store`). Alongside each value it carries an error scale:
a first-order running bound, in units of the format's unit roundoff u, on how far an implementation that
rounds every operation in the format can be from the stored value. It is Wilkinson's running error analysis;
CONFORMANCE.md ("Tolerance") states the rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import mpmath
import numpy as np
from mpmath import libmp

from ._numerics import FloatFormat, round_mpf

__all__ = ["NumpyOps", "Ops", "OracleOps", "Tracked", "given_exactly"]

_ZERO = mpmath.mpf(0)


# The smallest normal of the format being evaluated. Rounding c in the format errs by at most u*|c| + tiny/2, which
# in units of u is |c| + 2**emin: the second term is what an intermediate that underflows can lose.
_UNDERFLOW_FLOOR: ContextVar[mpmath.mpf | int] = ContextVar("underflow_floor", default=0)


# Where to note an intermediate that exceeds the format's largest finite value (None: not evaluating).
_OVERFLOWS: ContextVar[tuple[mpmath.mpf, list[str]] | None] = ContextVar("overflows", default=None)


def _rounding(v: mpmath.mpf) -> mpmath.mpf:
    """The rounding error bound of one operation whose exact result is v, in units of u."""
    watch = _OVERFLOWS.get()
    if watch is not None and _finite(v) and abs(v) > watch[0]:
        watch[1].append(f"an intermediate {mpmath.nstr(v, 6)} exceeds the format's range")
    return abs(v) + _UNDERFLOW_FLOOR.get()


def _finite(x: mpmath.mpf) -> bool:
    return bool(mpmath.isfinite(x))


def _defer_to_arrays(method: Callable[[Tracked, Any], Any]) -> Callable[[Tracked, Any], Any]:
    """Let NumPy broadcast `Tracked op ndarray` element by element instead of lifting the array."""

    def wrapper(self: Tracked, other: Any) -> Any:
        if isinstance(other, np.ndarray):
            return NotImplemented
        return method(self, other)

    return wrapper


class Tracked:
    """An exact value, its error scale (in units of u) and, for a zero, its IEEE sign bit."""

    __slots__ = ("e", "neg", "v")

    # Read from mpf's raw (sign, mantissa, exponent, bits) tuple rather than by comparisons: every operation of the
    # oracle builds a Tracked and asks for signs, and mpf comparisons were a tenth of the corpus's generation time.
    def __init__(self, v: mpmath.mpf, e: mpmath.mpf = _ZERO, neg: bool = False) -> None:
        self.v = v
        raw = v._mpf_
        zero = raw == libmp.fzero
        special = not raw[1] and not zero  # inf, -inf and NaN: mantissa 0, a marker exponent
        self.e = _ZERO if special else e
        self.neg = bool(neg) if zero else False

    @property
    def signbit(self) -> bool:
        return bool(self.v._mpf_[0]) or self.neg  # the sign of a negative value and of -inf; neg: of a zero

    def __repr__(self) -> str:
        return f"Tracked({mpmath.nstr(self.v, 12)}, e={mpmath.nstr(self.e, 3)})"

    # Each operation: the exact result, the propagated input errors, plus |result| for its own rounding.
    @_defer_to_arrays
    def __add__(self, other: Any) -> Tracked:
        b = _lift(other)
        v = self.v + b.v
        return Tracked(v, self.e + b.e + _rounding(v), self.signbit and b.signbit)

    __radd__ = __add__

    def __neg__(self) -> Tracked:
        return Tracked(-self.v, self.e, not self.signbit)

    @_defer_to_arrays
    def __sub__(self, other: Any) -> Tracked:
        return self + (-_lift(other))

    @_defer_to_arrays
    def __rsub__(self, other: Any) -> Tracked:
        return _lift(other) + (-self)

    @_defer_to_arrays
    def __mul__(self, other: Any) -> Tracked:
        b = _lift(other)
        v = self.v * b.v
        return Tracked(v, self.e * abs(b.v) + b.e * abs(self.v) + _rounding(v), self.signbit != b.signbit)

    __rmul__ = __mul__

    @_defer_to_arrays
    def __truediv__(self, other: Any) -> Tracked:
        b = _lift(other)
        negative = self.signbit != b.signbit
        if b.v == 0:
            if self.v == 0 or mpmath.isnan(self.v):
                return Tracked(mpmath.nan)
            return Tracked(-mpmath.inf if negative else mpmath.inf)
        v = self.v / b.v
        return Tracked(v, (self.e + b.e * abs(v)) / abs(b.v) + _rounding(v), negative)

    @_defer_to_arrays
    def __rtruediv__(self, other: Any) -> Tracked:
        return _lift(other) / self

    def __abs__(self) -> Tracked:
        return Tracked(abs(self.v), self.e)

    @_defer_to_arrays
    def __lt__(self, other: Any) -> bool:
        return bool(self.v < _lift(other).v)

    @_defer_to_arrays
    def __le__(self, other: Any) -> bool:
        return bool(self.v <= _lift(other).v)

    @_defer_to_arrays
    def __gt__(self, other: Any) -> bool:
        return bool(self.v > _lift(other).v)

    @_defer_to_arrays
    def __ge__(self, other: Any) -> bool:
        return bool(self.v >= _lift(other).v)


def given_exactly(x: Any) -> Any:
    """The same values with error scale 0, as an implementation holds them when they are handed to it exactly.

    Maps every `Tracked` inside lists, tuples, object arrays and NamedTuples (a family state); numbers, None and
    non-object arrays are kept, and any other container is refused.

    Teacher forcing hands an implementation the stored state of step t - 1, so one step from this copy gives the
    error scale of that step alone (CONFORMANCE.md, "Tolerance").
    """
    if isinstance(x, Tracked):
        return Tracked(x.v, _ZERO, x.neg)
    if isinstance(x, np.ndarray) and x.dtype == object:
        out = np.empty(x.shape, dtype=object)
        for index, item in np.ndenumerate(x):
            out[index] = given_exactly(item)
        return out
    if isinstance(x, list):
        return [given_exactly(item) for item in x]
    if isinstance(x, tuple):
        values = [given_exactly(item) for item in x]
        return type(x)(*values) if hasattr(x, "_fields") else tuple(values)
    if x is None or isinstance(x, int | float | np.number | np.bool_ | np.ndarray):  # counters, flags, branches
        return x
    # Anything else could hold a Tracked this function would not reset: refuse it rather than keep its S.
    raise TypeError(f"given_exactly cannot reset the error scales inside a {type(x).__name__}")


def _lift(x: Any) -> Tracked:
    if isinstance(x, Tracked):
        return x
    return Tracked(mpmath.mpf(x), _ZERO, bool(np.signbit(float(x))))


class Ops(Protocol):
    """What a family step may use besides + - * / and comparisons."""

    fmt: FloatFormat

    def const(self, value: mpmath.mpf | float) -> Any: ...
    def hyperparameter(self, value: mpmath.mpf | float) -> Any: ...
    def array(self, values: np.ndarray) -> Any: ...
    def store(self, x: Any) -> Any: ...
    def round_to_format(self, x: Any) -> Any: ...
    def sqrt(self, x: Any) -> Any: ...
    def sign(self, x: Any) -> Any: ...
    def where(self, cond: Any, a: Any, b: Any) -> Any: ...
    def minimum(self, a: Any, b: Any) -> Any: ...
    def maximum(self, a: Any, b: Any) -> Any: ...
    def isnan(self, x: Any) -> Any: ...
    def sum_of_squares(self, xs: Sequence[Any]) -> Any: ...
    def full_like(self, x: Any, value: Any) -> Any: ...
    def mask(self, cond: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class OracleOps:
    """Object arrays of `Tracked` values; exact arithmetic at the ambient mpmath precision."""

    fmt: FloatFormat
    # Decisions an implementation could take the other way: a clamp within 8 u of its bound, or a product
    # within a factor 2 of the underflow threshold. The generator's guard bands read this.
    near_ties: list[str] = field(default_factory=list, compare=False)
    # Exact intermediates beyond the largest finite value: any working-precision evaluation overflows there.
    overflows: list[str] = field(default_factory=list, compare=False)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Within this block, every operation's error scale includes this format's underflow floor."""
        token = _UNDERFLOW_FLOOR.set(mpmath.ldexp(mpmath.mpf(1), self.fmt.emin))
        watch = _OVERFLOWS.set((self.fmt.largest_finite, self.overflows))
        try:
            yield
        finally:
            _UNDERFLOW_FLOOR.reset(token)
            _OVERFLOWS.reset(watch)

    def const(self, value: mpmath.mpf | float) -> Tracked:
        return _lift(value)

    def hyperparameter(self, value: mpmath.mpf | float) -> Tracked:
        """A hyperparameter, after the dialect's own rounding: exact, but where the format cannot hold it, an
        implementation working in the format rounds it once (Rprop's 1.2 in float32), so its S is |c|."""
        c = _lift(value)
        if _finite(c.v) and round_mpf(c.v, self.fmt) != c.v:
            return Tracked(c.v, _rounding(c.v), c.neg)
        return c

    def array(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        out = np.empty(values.shape, dtype=object)
        for index, x in np.ndenumerate(values):
            out[index] = _lift(float(x))
        return out

    def store(self, x: Any) -> Any:
        return _elementwise(self._store_one, x)

    def _store_one(self, x: Tracked) -> Tracked:
        rounded = round_mpf(x.v, self.fmt)
        return Tracked(rounded, x.e + _rounding(rounded), x.signbit)

    def round_to_format(self, x: Any) -> Any:
        """An explicit rounding that the dialect performs (not an error source: it is part of the spec)."""
        return _elementwise(self._round_one, x)

    def _round_one(self, t: Tracked) -> Tracked:
        threshold = mpmath.mpf(self.fmt.smallest_subnormal)
        if _finite(t.v) and threshold / 4 < abs(t.v) < threshold:
            self.near_ties.append(f"{mpmath.nstr(t.v, 6)} rounds near the underflow threshold")
        return Tracked(round_mpf(t.v, self.fmt), t.e, t.signbit)

    def sqrt(self, x: Any) -> Any:
        return _elementwise(self._sqrt_one, x)

    def _sqrt_one(self, x: Tracked) -> Tracked:
        if mpmath.isnan(x.v) or x.v < 0:
            return Tracked(mpmath.nan)
        v = mpmath.sqrt(x.v)
        # |sqrt(a') - sqrt(a)| <= min(|a'-a| / (2 sqrt a), sqrt|a'-a|): the second covers a = 0.
        u = mpmath.mpf(self.fmt.unit_roundoff)
        propagated = mpmath.sqrt(x.e / u)
        if v > 0:
            propagated = min(propagated, x.e / (2 * v))
        return Tracked(v, propagated + _rounding(v), x.neg)

    def sign(self, x: Any) -> Any:
        return _elementwise(_sign_one, x)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return np.where(np.asarray(cond, dtype=bool), a, b)

    def minimum(self, a: Any, b: Any) -> Any:
        return np.where(np.asarray(_compare(b, a, self._less), dtype=bool), b, a)

    def maximum(self, a: Any, b: Any) -> Any:
        return np.where(np.asarray(_compare(a, b, self._less), dtype=bool), b, a)

    def _less(self, p: Tracked, q: Tracked) -> bool:
        if _finite(p.v) and _finite(q.v) and p.v != q.v:
            gap = abs(p.v - q.v) / max(abs(p.v), abs(q.v))
            if gap < 8 * mpmath.mpf(self.fmt.unit_roundoff):
                self.near_ties.append(f"{mpmath.nstr(p.v, 8)} vs {mpmath.nstr(q.v, 8)}")
        return bool(p.v < q.v)

    def isnan(self, x: Any) -> Any:
        return np.asarray(_elementwise(lambda t: bool(mpmath.isnan(t.v)), x), dtype=bool)

    def mask(self, cond: Any) -> np.ndarray:
        return np.asarray(cond, dtype=bool)

    def full_like(self, x: Any, value: Any) -> np.ndarray:
        out = np.empty(np.shape(x), dtype=object)
        out.fill(_lift(value))
        return out

    def sum_of_squares(self, xs: Sequence[Any]) -> Tracked:
        total = Tracked(_ZERO)
        for x in xs:
            for t in np.asarray(x, dtype=object).ravel():
                total = total + t * t
        return total


def _sign_one(x: Tracked) -> Tracked:
    # Note: sign(-0) is +0, as NumPy and the frameworks' sign functions return it; the spec fixes it so that
    # a zero step -sign(g)*Delta has one sign of zero whatever the zero's sign.
    if mpmath.isnan(x.v):
        return Tracked(mpmath.nan)
    return Tracked(mpmath.mpf(int(x.v > 0) - int(x.v < 0)))


def _elementwise(fn: Callable[[Tracked], Any], x: Any) -> Any:
    if isinstance(x, Tracked):
        return fn(x)
    return np.frompyfunc(fn, 1, 1)(x)


def _compare(a: Any, b: Any, fn: Callable[[Tracked, Tracked], bool]) -> Any:
    return np.frompyfunc(lambda p, q: fn(_lift(p), _lift(q)), 2, 1)(a, b)


# Smaller arrays (every corpus case) keep np.where: at that size the calls cost more than the loop.
_SELECT_MIN_SIZE = 4096


def _select(cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """np.where(cond, a, b), bit for bit, as b ^ ((a ^ b) * cond) on the integer view; None if it does not apply.

    NumPy's where on floats is a scalar, branchy loop: on 1M float32 elements with a random condition it takes
    about 80 times a copy, where these three integer ufuncs take about 5. Against +0.0 (whose bits are 0, the
    freeze and NaN-to-zero selects) one product of the bits with the condition suffices. It applies to
    same-dtype float arrays, for which np.where copies bits. A uniform condition returns a or b itself (see
    NumpyOps). tests/reference/test_fast_paths.py holds this to np.where bit for bit.
    """
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and isinstance(cond, np.ndarray)):
        return None
    if a.dtype != b.dtype or a.dtype.kind != "f" or cond.dtype != np.bool_:
        return None
    shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    if math.prod(shape) < _SELECT_MIN_SIZE:
        return None
    if not cond.any():
        return b if b.shape == shape else None
    if cond.all():
        return a if a.shape == shape else None
    bits = np.dtype(f"u{a.dtype.itemsize}")
    out = np.empty(shape, dtype=bits)
    if _is_positive_zero(b):
        return np.multiply(a.view(bits), cond, out=out).view(a.dtype)
    if _is_positive_zero(a):
        return np.multiply(b.view(bits), ~cond, out=out).view(a.dtype)
    b_bits = b.view(bits)
    np.bitwise_xor(a.view(bits), b_bits, out=out)
    np.multiply(out, cond, out=out)
    np.bitwise_xor(out, b_bits, out=out)
    return out.view(a.dtype)


def _clip_to_bound(x: Any, bound: Any, *, upper: bool) -> np.ndarray | None:
    """np.minimum(x, bound) (upper) or np.maximum(x, bound), bit for bit, as one np.clip; None if it does not apply.

    NumPy's minimum and maximum against one value take about three times as long as clip, whose loop is
    vectorized. They agree bit for bit, NaN payloads included, unless the bound is NaN or a zero (a tie between
    -0 and +0 goes to the bound in minimum, to x in clip): those bounds, and small arrays, keep the ufunc.
    tests/reference/test_fast_paths.py holds this to np.minimum and np.maximum bit for bit.
    """
    if not isinstance(x, np.ndarray) or x.size < _SELECT_MIN_SIZE or x.dtype.kind != "f":
        return None
    bound = np.asarray(bound)
    if bound.ndim != 0 or bound.dtype != x.dtype or np.isnan(bound) or bound == 0:
        return None
    infinity = np.asarray(np.inf, dtype=x.dtype)
    return np.clip(x, -infinity, bound) if upper else np.clip(x, bound, infinity)


def broadcast_value(x: np.ndarray) -> np.generic | None:
    """The one value an array repeats when it is a broadcast (every stride 0, a 0-d array too), else None.

    Read from the strides, not from every element: `NumpyOps.full_like` makes such arrays.
    """
    if any(stride != 0 for stride in x.strides):
        return None
    return x[(0,) * x.ndim]


def _is_positive_zero(x: np.ndarray) -> bool:
    """Whether x is one +0.0 broadcast (NumpyOps.full_like(_, 0.0))."""
    value = broadcast_value(x)
    return value is not None and not value.view(np.dtype(f"u{x.dtype.itemsize}"))


@dataclass(frozen=True)
class NumpyOps:
    """Whole arrays in the format's work dtype (float32 for 16-bit formats); stores round to the format.

    The step is pure: no operation writes into an array it was given or returned before, so a result may be
    one of its inputs (a store that rounds nothing, a where whose condition is uniform) instead of a copy.
    """

    fmt: FloatFormat

    def const(self, value: mpmath.mpf | float) -> np.ndarray:
        return np.asarray(float(value), dtype=self.fmt.work_dtype)

    def hyperparameter(self, value: mpmath.mpf | float) -> np.ndarray:
        return self.const(value)

    def array(self, values: np.ndarray) -> np.ndarray:
        # Always a copy: the caller keeps its arrays (a gradient may become state: Rprop- stores g as p).
        return np.asarray(values).astype(self.fmt.work_dtype)

    def store(self, x: Any) -> np.ndarray:
        return self.round_to_format(x)

    def round_to_format(self, x: Any) -> np.ndarray:
        value = np.asarray(x)
        work = self.fmt.work_dtype
        if work == self.fmt.np_dtype and value.dtype == work:
            return value  # float32 / float64: already in the format, the rounding is the identity
        stored = value.astype(self.fmt.np_dtype)
        return stored.astype(work)

    def sqrt(self, x: Any) -> np.ndarray:
        return np.sqrt(x)

    def sign(self, x: Any) -> np.ndarray:
        return np.sign(x)

    def where(self, cond: Any, a: Any, b: Any) -> np.ndarray:
        selected = _select(cond, a, b)
        return np.where(cond, a, b) if selected is None else selected

    def minimum(self, a: Any, b: Any) -> np.ndarray:
        clipped = _clip_to_bound(a, b, upper=True)
        return np.minimum(a, b) if clipped is None else clipped

    def maximum(self, a: Any, b: Any) -> np.ndarray:
        clipped = _clip_to_bound(a, b, upper=False)
        return np.maximum(a, b) if clipped is None else clipped

    def isnan(self, x: Any) -> np.ndarray:
        return np.isnan(x)

    def mask(self, cond: Any) -> np.ndarray:
        return np.asarray(cond, dtype=bool)

    def full_like(self, x: Any, value: Any) -> np.ndarray:
        # A read-only broadcast of one value: no memory to fill or read (the step never writes into arrays).
        return np.broadcast_to(np.asarray(value, dtype=self.fmt.work_dtype), np.shape(x))

    def sum_of_squares(self, xs: Sequence[Any]) -> np.ndarray:
        total = self.const(0.0)
        for x in xs:
            total = total + np.sum(np.square(x), dtype=self.fmt.work_dtype)
        return total
