"""Correct rounding from mpmath and exact hex codecs, in all four formats."""

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference._numerics import DTYPES, bits_to_hex, decimal_string, hex_to_value, round_mpf
from reference.trajectory import to_format

FORMATS = sorted(DTYPES)


@given(st.sampled_from(FORMATS), st.data())
def test_hex_round_trips_every_bit_pattern(name, data):
    fmt = DTYPES[name]
    raw = data.draw(st.integers(0, 2**fmt.bits - 1))
    value = np.asarray(raw, dtype=fmt.uint_dtype).view(fmt.np_dtype)[()]
    text = bits_to_hex(value, fmt)
    assert len(text) == 2 + fmt.bits // 4
    back = hex_to_value(text, fmt)
    assert np.asarray(back).view(fmt.uint_dtype) == raw


@given(st.sampled_from(["float16", "float32"]), st.floats(allow_nan=False, allow_infinity=False))
def test_round_mpf_matches_ieee_casts(name, x):
    # NumPy's float64 -> float16/float32 casts are correctly rounded (ties to even, gradual underflow).
    fmt = DTYPES[name]
    with np.errstate(over="ignore"):
        want = np.float64(x).astype(fmt.np_dtype)
    got = round_mpf(mpmath.mpf(x), fmt)
    assert float(got) == float(want) or (np.isinf(want) and mpmath.isinf(got))


@pytest.mark.parametrize(
    ("name", "x", "want"),
    [
        ("bfloat16", 0.1, 0.10009765625),
        ("bfloat16", 1.2, 1.203125),
        ("float16", 1e-10, 0.0),  # below half the smallest subnormal (2**-25)
        ("float16", 65520.0, float("inf")),  # the midpoint above 65504 rounds to even, i.e. overflows
        ("float16", 65519.0, 65504.0),
        ("float32", 1e-45, 2.0**-149),
        ("float64", 0.1, 0.1),
    ],
)
def test_round_mpf_known_values(name, x, want):
    assert float(round_mpf(mpmath.mpf(x), DTYPES[name])) == want


def test_to_format_keeps_signed_zero_and_nan():
    out = to_format([-0.0, float("nan"), 1.0], DTYPES["bfloat16"])
    assert np.signbit(out[0]) and np.isnan(out[1]) and out[2] == 1


def test_decimal_string_has_at_least_20_significant_digits():
    text = decimal_string(np.float32(0.1))
    assert text.startswith("0.100000001490116119384765")
    assert decimal_string(np.float64("-0.0")) == "-0.0"
