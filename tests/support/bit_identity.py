"""Holding NumPy's fast paths to plain NumPy bit for bit: special values, inputs, hyperparameter variants.

Shared by tests/reference/test_fast_paths.py and the NumPy benchmark. The corpus's arrays are too small to reach the
fast paths (the bitwise select, one-value clips, the compiled loop), so these tests use arrays large enough to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import reference
from reference._arith import NumpyOps
from reference.trajectory import observe


class PlainOps(NumpyOps):
    """NumpyOps as it was before the fast paths: each operation one plain NumPy call, every store a copy."""

    def round_to_format(self, x: Any) -> np.ndarray:
        return np.asarray(x).astype(self.fmt.np_dtype).astype(self.fmt.work_dtype)

    def where(self, cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    def full_like(self, x: Any, value: Any) -> np.ndarray:
        return np.full(np.shape(x), value, dtype=self.fmt.work_dtype)

    def minimum(self, a: Any, b: Any) -> np.ndarray:
        return np.minimum(a, b)

    def maximum(self, a: Any, b: Any) -> np.ndarray:
        return np.maximum(a, b)


def specials(dtype: np.dtype) -> np.ndarray:
    """Signed zeros, infinities, NaNs with payloads and both signs, subnormals, extremes, ordinary values."""
    info = np.finfo(dtype)
    base = np.array(
        [0.0, -0.0, np.inf, -np.inf, 1.0, -1.0, 0.5, 2.0, 1e-6, 50.0, -3.0, info.max, -info.max],
        dtype=dtype,
    )
    tiny = np.array([info.tiny, -info.tiny, info.smallest_subnormal, -info.smallest_subnormal], dtype=dtype)
    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    quiet = np.array(np.nan, dtype=dtype).view(bits)
    sign = bits.type(1) << bits.type(8 * np.dtype(dtype).itemsize - 1)
    nans = np.array([quiet, quiet | 1, quiet | 5, quiet | sign, quiet | sign | 3], dtype=bits).view(dtype)
    return np.concatenate([base, tiny, nans])


def same_bits(a: np.ndarray, b: np.ndarray, *, any_nan: bool = False) -> bool:
    """Bit for bit; with `any_nan`, a NaN matches any NaN (IEEE 754 leaves a result NaN's sign and payload open)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    bits = np.dtype(f"u{a.dtype.itemsize}")
    equal = a.view(bits) == b.view(bits)
    if any_nan:
        equal |= np.isnan(a) & np.isnan(b)
    return bool(equal.all())


def inputs(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    values = rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 10.0], shape)
    values = values.astype(dtype)
    special = rng.random(shape) < 0.02
    pool = specials(np.dtype(np.float32) if dtype.itemsize == 2 else dtype)  # 16-bit: rounded from float32's
    with np.errstate(over="ignore"):
        values[special] = rng.choice(pool, int(special.sum())).astype(dtype)
    zero = rng.random(shape) < 0.1  # products that are exactly 0: Rprop's keep branch
    values[zero] = 0.0
    return values


def hparams_variants(dialect: reference.Dialect) -> list[dict[str, Any]]:
    """Defaults, and settings that reach the clamps and clips (where the dialect exposes them)."""
    exposed = dialect.exposed
    tight: dict[str, Any] = dict(dialect.family.stress_hparams)
    if "maximize" in exposed:
        tight["maximize"] = True
    tight = {k: v for k, v in tight.items() if k in exposed}
    return [dialect.framework_hparams({"lr": 0.01}), dialect.framework_hparams(tight)]


# (ops, hp, knobs, state, params, grads, loss) -> (params, state): a family's step, or the compiled one.
Stepper = Callable[[NumpyOps, Any, Any, Any, list[Any], list[Any], float | None], tuple[list[Any], Any]]


def trajectory(
    dialect: reference.Dialect,
    ops: NumpyOps,
    hparams: dict[str, Any],
    params: Sequence[np.ndarray],
    steps: Sequence[Sequence[np.ndarray]],
    step: Stepper | None = None,
) -> list[reference.Step]:
    """What `observe` sees after each of `steps`, stepping with `step` (default: the family's own)."""
    family, hp = dialect.family, dialect.hparams(hparams)
    step = step or family.step
    theta = [ops.array(p) for p in params]
    state = family.init(ops, hp, dialect.knobs, theta)
    seen = []
    with np.errstate(all="ignore"):
        for t, row in enumerate(steps):
            loss = LOSSES[t % len(LOSSES)] if dialect.needs_loss else None
            theta, state = step(ops, hp, dialect.knobs, state, theta, [ops.array(g) for g in row], loss)
            seen.append(observe(ops, dialect, theta, state))
    return seen


LOSSES = [3.0, 2.0, 2.0, 5.0, 1.0, 1.5]  # rises and falls: iRprop+ backtracks on some steps


def assert_same_trajectory(
    expected: list[reference.Step], got: list[reference.Step], where: str, *, any_nan: bool = False
) -> None:
    for t, (x, y) in enumerate(zip(expected, got, strict=True)):
        at = f"{where} step {t + 1}"
        assert x.count == y.count, at
        for a, b in zip(x.params, y.params, strict=True):
            assert same_bits(a, b, any_nan=any_nan), f"{at}: params"
        assert x.state.keys() == y.state.keys(), at
        for name in x.state:
            for a, b in zip(x.state[name], y.state[name], strict=True):
                assert same_bits(a, b, any_nan=any_nan), f"{at}: {name}"
        if x.branches is not None:
            assert y.branches is not None, at
            for a, b in zip(x.branches, y.branches, strict=True):
                assert np.array_equal(a, b), f"{at}: branches"
