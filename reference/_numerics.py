"""Floating-point formats: parameters, correct rounding from mpmath, and exact text codecs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import ml_dtypes
import mpmath
import numpy as np

__all__ = [
    "DTYPES",
    "FloatFormat",
    "bits_to_hex",
    "decimal_string",
    "format_of",
    "hex_to_value",
    "round_mpf",
]


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE-style binary format: `precision` significand bits (implicit bit included)."""

    name: str
    short: str
    bits: int
    precision: int
    emin: int  # exponent of the smallest normal: 2**emin
    emax: int  # exponent of the largest finite value's leading bit

    @cached_property
    def np_dtype(self) -> np.dtype:
        return np.dtype(ml_dtypes.bfloat16) if self.name == "bfloat16" else np.dtype(self.name)

    @cached_property
    def uint_dtype(self) -> np.dtype:
        return np.dtype(f"uint{self.bits}")

    @cached_property
    def work_dtype(self) -> np.dtype:
        """The NumPy dtype the fast path computes in: float32 for the 16-bit formats, else itself."""
        return np.dtype(np.float32) if self.bits == 16 else self.np_dtype

    @property
    def unit_roundoff(self) -> float:
        return 2.0**-self.precision

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.precision + 1)

    @cached_property
    def largest_finite(self) -> mpmath.mpf:
        return mpmath.ldexp(mpmath.mpf(2) ** self.precision - 1, self.emax - self.precision + 1)


DTYPES: dict[str, FloatFormat] = {
    f.name: f
    for f in (
        FloatFormat("float16", "f16", 16, 11, -14, 15),
        FloatFormat("bfloat16", "bf16", 16, 8, -126, 127),
        FloatFormat("float32", "f32", 32, 24, -126, 127),
        FloatFormat("float64", "f64", 64, 53, -1022, 1023),
    )
}


def format_of(name: str) -> FloatFormat:
    """Look a format up by its name ("float32") or short name ("f32")."""
    for fmt in DTYPES.values():
        if name in (fmt.name, fmt.short):
            return fmt
    known = ", ".join(DTYPES)
    raise ValueError(f"dtype {name!r} is not supported; expected one of {known}")


def round_mpf(x: mpmath.mpf, fmt: FloatFormat) -> mpmath.mpf:
    """Round x to the nearest value of `fmt` (ties to even), with gradual underflow and overflow to inf.

    Pure integer arithmetic on mpmath's (mantissa, exponent) pair, so the result never depends on NumPy.
    """
    if not mpmath.isfinite(x) or x == 0:
        return x
    negative = x < 0
    man, exp = abs(x).man_exp
    man = int(man)
    leading = exp + man.bit_length() - 1
    quantum = max(leading, fmt.emin) - (fmt.precision - 1)
    if exp >= quantum:
        rounded, scale = man, exp
    else:
        shift = quantum - exp
        q, r = divmod(man, 1 << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q & 1):
            q += 1
        rounded, scale = q, quantum
    # Rounded to the format's precision, the value exceeds the largest finite one exactly when its leading bit
    # lies above emax (an integer test: this runs for every stored value of the corpus).
    if rounded.bit_length() - 1 + scale > fmt.emax:
        return -mpmath.inf if negative else mpmath.inf
    value = mpmath.ldexp(mpmath.mpf(rounded), scale)
    return -value if negative else value


def bits_to_hex(value: np.generic | np.ndarray, fmt: FloatFormat) -> str:
    """The bit pattern of one value as fixed-width hex, e.g. '0x3f800000'."""
    raw = np.asarray(value, dtype=fmt.np_dtype).reshape(()).view(fmt.uint_dtype)
    return f"0x{int(raw):0{fmt.bits // 4}x}"


def hex_to_value(text: str, fmt: FloatFormat) -> np.generic:
    """Inverse of `bits_to_hex`; every bit pattern (NaN payloads, -0, subnormals) survives."""
    if not text.startswith("0x") or len(text) != 2 + fmt.bits // 4:
        raise ValueError(f"{text!r} is not a {fmt.bits}-bit hex pattern for {fmt.name}")
    raw = np.asarray(int(text, 16), dtype=fmt.uint_dtype)
    # numpy's stubs type `a[()]` as an array whatever the shape; on this 0-d array it is the scalar.
    return raw.view(fmt.np_dtype)[()]  # type: ignore[return-value]


def decimal_string(value: np.generic | np.ndarray, digits: int = 25) -> str:
    """The exact binary value as a decimal with `digits` significant digits ('nan', 'inf', '-0.0' kept)."""
    as_float = float(value)
    if not np.isfinite(as_float) or as_float == 0:
        return repr(as_float)
    return mpmath.nstr(mpmath.mpf(as_float), digits, strip_zeros=False, min_fixed=-4, max_fixed=6)
