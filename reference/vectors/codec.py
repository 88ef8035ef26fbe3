"""Exact JSON encoding of tensors and cases. Floats never pass through a JSON float."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._numerics import FloatFormat, decimal_string
from ..sparse import SparseGrad

__all__ = [
    "MAX_DIMS",
    "MAX_ELEMENTS",
    "MAX_STEPS",
    "MAX_TENSORS",
    "SCHEMA_NAME",
    "decimal_mismatch",
    "decode_hparams",
    "decode_tensor",
    "dumps",
    "element_count",
    "encode_expected",
    "encode_hparams",
    "encode_input",
    "scale_string",
]

DECIMAL_DIGITS = 21
SCHEMA_NAME = "schema.json"  # the corpus's JSON Schema, beside MANIFEST.json; every file names it

# What one case may describe. The corpus stays far below (16 elements, 2 dimensions, 10 steps, 2 tensors); the
# limits bound the memory and time that a broken or hostile record costs before it is refused.
MAX_DIMS = 32
MAX_ELEMENTS = 2**24  # per tensor
MAX_STEPS = 10_000
MAX_TENSORS = 256  # parameter tensors per case


def _hex_list(array: np.ndarray, fmt: FloatFormat) -> list[str]:
    raw = np.ascontiguousarray(array, dtype=fmt.np_dtype).view(fmt.uint_dtype).ravel()
    width = fmt.bits // 4
    return [f"0x{int(x):0{width}x}" for x in raw]


def scale_string(value: float) -> str:
    """S with 6 significant digits: plenty for a tolerance, and stable under the precision-doubling check."""
    return f"{value:.5e}"


def encode_input(value: Any, fmt: FloatFormat) -> dict[str, Any]:
    if isinstance(value, SparseGrad):
        return {"indices": list(value.indices), "shape": list(value.values.shape), "hex": _hex_list(value.values, fmt)}
    array = np.asarray(value, dtype=fmt.np_dtype)
    return {"shape": list(array.shape), "hex": _hex_list(array, fmt)}


def encode_expected(array: np.ndarray, scale: np.ndarray, step_scale: np.ndarray, fmt: FloatFormat) -> dict[str, Any]:
    """An expected tensor: bits, decimals, S over the trajectory (`scale`) and S of its step alone (`stepScale`)."""
    flat = np.asarray(array, dtype=fmt.np_dtype).ravel()
    return {
        "shape": list(np.shape(array)),
        "hex": _hex_list(flat, fmt),
        "decimal": [decimal_string(x, DECIMAL_DIGITS) for x in flat],
        "scale": [scale_string(float(x)) for x in np.ravel(scale)],
        "stepScale": [scale_string(float(x)) for x in np.ravel(step_scale)],
    }


def element_count(shape: Any) -> int:
    """The number of elements of a record's shape; refuses a shape that is not a list of integers within the
    limits (checked one dimension at a time, so that no product ever overflows)."""
    if not isinstance(shape, list | tuple) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ValueError(f"shape {shape!r} is not a list of integers")
    if len(shape) > MAX_DIMS:
        raise ValueError(f"shape has {len(shape)} dimensions; at most {MAX_DIMS} are accepted")
    if not all(0 <= d <= MAX_ELEMENTS for d in shape):
        raise ValueError(f"shape {list(shape)}: every dimension must be within 0..{MAX_ELEMENTS}")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise ValueError(f"shape {list(shape)} holds {count} elements; at most {MAX_ELEMENTS} are accepted")
    return count


def decode_tensor(data: Mapping[str, Any], fmt: FloatFormat) -> np.ndarray | SparseGrad:
    """The exact array (or sparse gradient) a tensor record holds; refuses malformed records."""
    shape = tuple(data["shape"])
    count = element_count(shape)
    hexes = data["hex"]
    if len(hexes) != count:
        raise ValueError(f"{len(hexes)} hex values for shape {list(shape)}")
    width = 2 + fmt.bits // 4
    bad = [h for h in hexes if len(h) != width or not h.startswith("0x")]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a {fmt.bits}-bit hex pattern for {fmt.name}")
    raw = np.array([int(h, 16) for h in hexes], dtype=fmt.uint_dtype)
    array = raw.view(fmt.np_dtype).reshape(shape)
    if "indices" in data:
        if len(data["indices"]) != (shape[0] if shape else -1):
            raise ValueError(f"{len(data['indices'])} sparse indices for {shape[0] if shape else 0} rows")
        return SparseGrad(tuple(data["indices"]), array)
    return array


def decimal_mismatch(data: Mapping[str, Any], fmt: FloatFormat) -> str | None:
    """Where an expected tensor's decimals disagree with its hex values (None: nowhere).

    A decimal holds 21 significant digits of the exact binary value, so parsed to the nearest float64 (which holds
    every value of every format here) it is that value exactly: the comparison is exact, in no tolerance. A NaN
    matches as a class; its payload is not in the decimal.
    """
    hexes, decimals = data["hex"], data["decimal"]
    if len(decimals) != len(hexes):
        return f"{len(decimals)} decimals for {len(hexes)} hex values"
    exact = np.asarray(decode_tensor({"shape": [len(hexes)], "hex": hexes}, fmt)).astype(np.float64)
    try:
        parsed = np.array(decimals, dtype=np.float64)
    except ValueError:
        bad = next((i for i, text in enumerate(decimals) if not _parses(text)), 0)
        return f"decimal[{bad}] {decimals[bad]!r} is not a number"
    same = ((parsed == exact) & (np.signbit(parsed) == np.signbit(exact))) | (np.isnan(parsed) & np.isnan(exact))
    if same.all():
        return None
    at = int(np.argmin(same))
    return f"decimal[{at}] {decimals[at]} is not the value of hex[{at}] {hexes[at]} ({float(exact[at])!r})"


def _parses(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def encode_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    def one(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, list | tuple):
            return [one(v) for v in value]
        return repr(float(value))

    return {name: one(value) for name, value in hparams.items() if value is not None}


def decode_hparams(data: Mapping[str, Any]) -> dict[str, Any]:
    """Stored hyperparameters -> Python values: numeric strings become floats, lists tuples.

    Anything else (a boolean, null, a number, a string that is not one) passes unchanged: `Dialect.hparams` knows
    which type each hyperparameter takes and refuses the rest by name, for this and every other entry point.
    """

    def one(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(one(v) for v in value)
        if isinstance(value, str) and _parses(value):
            return float(value)
        return value

    return {name: one(value) for name, value in data.items()}


def _inline(obj: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    if isinstance(obj, list):
        return all(isinstance(x, scalar) for x in obj)
    if isinstance(obj, dict):
        return all(isinstance(v, scalar) or (isinstance(v, list) and _inline(v)) for v in obj.values())
    return True


def dumps(obj: Any, indent: int = 0) -> str:
    """Canonical JSON: one line per tensor and per scalar field, so diffs of the corpus stay readable."""
    if _inline(obj):
        return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
    pad, inner = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{dumps(v, indent + 1)}" for v in obj]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"
