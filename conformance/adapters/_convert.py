"""Moving arrays between NumPy and a framework without changing a bit (framework-free, shared by every adapter).

Frameworks disagree on which NumPy dtypes they accept: torch.from_numpy refuses ml_dtypes' bfloat16, JAX takes
it. Every 16-bit value is exactly representable in float32, so float32 is the lossless carrier for those.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reference import FloatFormat, format_of

__all__ = ["carrier", "common_dtype", "dtype_name", "restore"]


def dtype_name(array: np.ndarray) -> str:
    """The format name of a NumPy array ('float16', 'bfloat16', 'float32', 'float64'); refuses anything else."""
    name = np.asarray(array).dtype.name
    return format_of(name).name


def common_dtype(arrays: Sequence[np.ndarray]) -> str:
    """The one format shared by all `arrays` (an optimizer's parameter list); refuses none or a mix."""
    names = sorted({dtype_name(a) for a in arrays})
    if len(names) != 1:
        raise ValueError(f"parameters must share one float format; got {', '.join(names) or 'no parameters'}")
    return names[0]


def carrier(array: np.ndarray, *, native: frozenset[str] = frozenset({"float16", "float32", "float64"})) -> np.ndarray:
    """A contiguous copy in a dtype the framework accepts: the array's own if it is in `native`, else float32.

    The float32 detour is exact for the 16-bit formats, which are its only users.
    """
    fmt = format_of(dtype_name(array))
    target = fmt.np_dtype if fmt.name in native else np.dtype(np.float32)
    if fmt.name not in native and fmt.bits > 32:
        raise ValueError(f"{fmt.name} does not fit exactly in float32; the framework must accept it natively")
    return np.array(array, dtype=target, order="C", copy=True)


def restore(values: np.ndarray, dtype: str | FloatFormat) -> np.ndarray:
    """Cast a framework's output back to `dtype`, refusing any value the cast would change."""
    fmt = dtype if isinstance(dtype, FloatFormat) else format_of(dtype)
    values = np.asarray(values)
    if values.dtype == fmt.np_dtype:
        return values.copy()  # a copy: the framework may still own, and later overwrite, these bytes
    out = values.astype(fmt.np_dtype)
    wide = values.astype(np.float64)
    back = out.astype(np.float64)
    changed = ~((back == wide) | (np.isnan(back) & np.isnan(wide)))
    if changed.any():
        first = tuple(int(i) for i in np.argwhere(changed)[0])
        raise ValueError(f"value {wide[first]!r} at {first} is not exactly representable in {fmt.name}")
    return out
