"""Exact JSON encoding of tensors and cases. Floats never pass through a JSON float."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._numerics import FloatFormat, decimal_string
from ..sparse import SparseGrad

__all__ = [
    "decode_hparams",
    "decode_tensor",
    "dumps",
    "encode_expected",
    "encode_hparams",
    "encode_input",
    "scale_string",
]

DECIMAL_DIGITS = 21


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


def encode_expected(array: np.ndarray, scale: np.ndarray, fmt: FloatFormat) -> dict[str, Any]:
    flat = np.asarray(array, dtype=fmt.np_dtype).ravel()
    return {
        "shape": list(np.shape(array)),
        "hex": _hex_list(flat, fmt),
        "decimal": [decimal_string(x, DECIMAL_DIGITS) for x in flat],
        "scale": [scale_string(float(x)) for x in np.ravel(scale)],
    }


def decode_tensor(data: dict[str, Any], fmt: FloatFormat) -> np.ndarray | SparseGrad:
    """The exact array (or sparse gradient) a tensor record holds; refuses malformed records."""
    shape = tuple(data["shape"])
    count = int(np.prod(shape, dtype=np.int64))
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
