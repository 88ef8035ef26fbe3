"""The NumPy reference step on 1M float32 elements against the memory-bandwidth bound, and its fast paths' bits.

Bound: the bytes a step cannot avoid moving (read every parameter, gradient and state array, write every parameter
and state array) at the speed of `numpy.copyto` moving the same number of bytes, measured in the same run,
interleaved with the steps. Adagrad (adagrad/torch): read theta, g, A; write theta, A: 5 arrays. RProp
(rprop/torch): read theta, g, Delta, p; write theta, Delta, p: 7 arrays. Times are the thread's CPU time (the
machine is shared); each ratio is the least step time over the least copy time of interleaved repetitions.

The bit-identity tests hold `NumpyOps`' fast paths (the bitwise select, stores that do not copy, broadcast
constants) to plain NumPy, `_PlainOps` below, on arrays large enough to take them: every
dialect and format, special values included. The corpus's arrays are too small to reach those paths.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import reference
from benchmarks._harness import summary
from conformance.adapters.reference import ReferenceLive
from reference._arith import NumpyOps
from reference.trajectory import observe

N = 1 << 20
REPS = 40


class _PlainOps(NumpyOps):
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


# ---------------------------------------------------------------------------------------------------------------
# Speed


def _interleaved(step: Callable[[int], None], copy: Callable[[], None]) -> tuple[float, float, float, float]:
    """(min step, median step, min copy, median copy) in thread CPU seconds."""
    clock = time.thread_time
    steps, copies = [], []
    for i in range(REPS):
        start = clock()
        copy()
        copies.append(clock() - start)
        start = clock()
        step(i)
        steps.append(clock() - start)
    steps.sort()
    copies.sort()
    return steps[0], steps[REPS // 2], copies[0], copies[REPS // 2]


@pytest.mark.parametrize(("dialect", "arrays"), [("adagrad/torch", 5), ("rprop/torch", 7)])
def test_numpy_step_against_memory_bandwidth(benchmark: Any, record: Any, dialect: str, arrays: int) -> None:
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(N).astype(np.float32)
    grads = [rng.standard_normal(N).astype(np.float32) for _ in range(4)]
    live = ReferenceLive(reference.get(dialect), {}, [theta])
    for i in range(3):  # past the first steps, where Rprop's p is still 0
        live.step([grads[i % 4]])
    source = np.ones(N * arrays // 2, dtype=np.float32)
    target = np.empty_like(source)

    def step(i: int) -> None:
        live.step([grads[i % 4]])

    def copy() -> None:
        np.copyto(target, source)

    step_min, step_med, copy_min, copy_med = benchmark.pedantic(_interleaved, args=(step, copy), rounds=1, iterations=1)
    family = reference.get(dialect).family
    fmt = reference.format_of("float32")
    plain, fast = _PlainOps(fmt), NumpyOps(fmt)
    before = _family_step_time(family, dialect, plain, theta, grads)
    after = _family_step_time(family, dialect, fast, theta, grads)
    record(
        summary(
            f"NumPy {dialect} step / copyto bound",
            step_min / copy_min,
            1.5,
            "x",
            f"step {step_min * 1e3:.2f} ms vs copy of {arrays} x 4 MiB {copy_min * 1e3:.2f} ms "
            f"(medians {step_med / copy_med:.2f}x); family.step alone {after * 1e3:.2f} ms, "
            f"plain NumPy ops {before * 1e3:.2f} ms",
        )
    )


def test_fewest_numpy_passes_for_adagrad_against_memory_bandwidth(benchmark: Any, record: Any) -> None:
    """What any NumPy evaluation of adagrad/torch costs: its seven operations as seven in-place ufunc calls into
    preallocated buffers, no temporaries and no Python around them, against the same copy bound. It must give
    the reference's bits (same operations, same order), so it is the step, not an approximation of it."""
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(N).astype(np.float32)
    accumulator = np.zeros(N, dtype=np.float32)
    grads = [rng.standard_normal(N).astype(np.float32) for _ in range(4)]
    dialect = reference.get("adagrad/torch")
    hp = dialect.hparams({})
    lr, eps = np.float32(hp.lr), np.float32(hp.eps)
    scratch = np.empty(N, dtype=np.float32), np.empty(N, dtype=np.float32)

    def step(i: int) -> None:
        g, (t, s) = grads[i % 4], scratch
        np.multiply(g, g, out=t)
        np.add(accumulator, t, out=accumulator)  # A + g*g
        np.multiply(lr, g, out=t)  # lr*g
        np.sqrt(accumulator, out=s)
        np.add(s, eps, out=s)  # sqrt(A) + eps
        np.divide(t, s, out=t)
        np.subtract(theta, t, out=theta)

    live = ReferenceLive(dialect, {}, [theta])
    live.step([grads[0]])
    step(0)
    assert _same_bits(theta, live.params()[0]) and _same_bits(accumulator, live.state()["sum"][0])
    source = np.ones(N * 5 // 2, dtype=np.float32)
    target = np.empty_like(source)

    def copy() -> None:
        np.copyto(target, source)

    with np.errstate(all="ignore"):
        step_min, _, copy_min, _ = benchmark.pedantic(_interleaved, args=(step, copy), rounds=1, iterations=1)
        sqrt_min, _, copy2_min, _ = _interleaved(lambda i: np.sqrt(accumulator, out=scratch[1]), copy)
    record(
        summary(
            "fewest NumPy passes, adagrad/torch / copyto bound",
            step_min / copy_min,
            1.5,
            "x",
            f"7 in-place ufuncs {step_min * 1e3:.2f} ms vs copy {copy_min * 1e3:.2f} ms; "
            f"the sqrt alone {sqrt_min / copy2_min:.2f}x",
        )
    )


def _family_step_time(family: Any, dialect: str, ops: NumpyOps, theta: np.ndarray, grads: list[np.ndarray]) -> float:
    """The least thread CPU time of family.step with these ops (no ReferenceLive around it)."""
    d = reference.get(dialect)
    hp = d.hparams({})
    params = [ops.array(theta)]
    state = family.init(ops, hp, d.knobs, params)
    best = float("inf")
    with np.errstate(all="ignore"):
        for i in range(12):
            g = [ops.array(grads[i % 4])]
            start = time.thread_time()
            params, state = family.step(ops, hp, d.knobs, state, params, g, None)
            best = min(best, time.thread_time() - start) if i >= 3 else best
    return best


# ---------------------------------------------------------------------------------------------------------------
# Bits


def _specials(dtype: np.dtype) -> np.ndarray:
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


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    bits = np.dtype(f"u{a.dtype.itemsize}")
    return a.dtype == b.dtype and a.shape == b.shape and bool((a.view(bits) == b.view(bits)).all())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_where_is_bit_identical(dtype: str) -> None:
    fmt = reference.format_of(dtype)
    ops = NumpyOps(fmt)
    rng = np.random.default_rng(1)
    specials = _specials(fmt.np_dtype)
    n = 2 * 32768 + 101
    a = rng.choice(specials, n)
    b = rng.choice(specials, n)
    zero = np.asarray(0.0, dtype=fmt.np_dtype)
    for cond in (rng.random(n) < 0.5, np.zeros(n, bool), np.ones(n, bool), rng.random(n) < 0.01):
        assert _same_bits(ops.where(cond, a, b), np.where(cond, a, b))
        assert _same_bits(ops.where(cond, zero, b), np.where(cond, zero, b))
        assert _same_bits(ops.where(cond, a, ops.full_like(a, 0.0)), np.where(cond, a, np.zeros_like(a)))
        assert _same_bits(ops.where(cond, ops.full_like(b, 0.0), b), np.where(cond, np.zeros_like(b), b))
        assert _same_bits(ops.where(cond, a, ops.full_like(a, -0.0)), np.where(cond, a, np.full_like(a, -0.0)))
        grid, rows = cond[: n - 101].reshape(-1, 64), a[: n - 101].reshape(-1, 64)
        assert _same_bits(ops.where(grid, rows, zero), np.where(grid, rows, zero))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_minimum_and_maximum_against_one_value_are_bit_identical(dtype: str) -> None:
    fmt = reference.format_of(dtype)
    ops = NumpyOps(fmt)
    rng = np.random.default_rng(2)
    specials = _specials(fmt.np_dtype)
    x = rng.choice(specials, 2 * 32768 + 101)
    with np.errstate(invalid="ignore"):
        for value in specials:
            bound = np.asarray(value, dtype=fmt.np_dtype)
            assert _same_bits(ops.minimum(x, bound), np.minimum(x, bound)), value
            assert _same_bits(ops.maximum(x, bound), np.maximum(x, bound)), value
            assert _same_bits(ops.minimum(bound, x), np.minimum(bound, x)), value


def _inputs(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    values = rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 10.0], shape)
    values = values.astype(dtype)
    special = rng.random(shape) < 0.02
    pool = _specials(np.dtype(np.float32) if dtype.itemsize == 2 else dtype)  # 16-bit: rounded from float32's
    with np.errstate(over="ignore"):
        values[special] = rng.choice(pool, int(special.sum())).astype(dtype)
    zero = rng.random(shape) < 0.1  # products that are exactly 0: Rprop's keep branch
    values[zero] = 0.0
    return values


def _hparams_variants(dialect: reference.Dialect) -> list[dict[str, Any]]:
    """Defaults, and settings that reach the clamps and clips (where the dialect exposes them)."""
    exposed = {t for v in dialect.names.values() for t in (v if isinstance(v, tuple) else (v,))}
    tight: dict[str, Any] = {}
    if dialect.family.name == "rprop":
        tight = {"lr": 0.01, "step_min": 0.004, "step_max": 0.03}
    else:
        tight = {k: v for k, v in {"clipvalue": 0.5, "weight_decay": 0.01, "decay": 0.1}.items() if k in exposed}
        tight["lr"] = 0.05
    if "maximize" in exposed:
        tight["maximize"] = True
    tight = {k: v for k, v in tight.items() if k in exposed}
    return [dialect.framework_hparams({"lr": 0.01}), dialect.framework_hparams(tight)]


@pytest.mark.parametrize("dialect_id", list(reference.DIALECTS))
def test_fast_paths_step_bit_identical_to_plain_numpy(dialect_id: str) -> None:
    dialect = reference.get(dialect_id)
    family = dialect.family
    rng = np.random.default_rng(sum(map(ord, dialect_id)))
    for dtype, hparams in itertools.product(dialect.dtypes, _hparams_variants(dialect)):
        fmt = reference.format_of(dtype)
        shapes = [(70001,), (90, 257)]  # several select blocks, a ragged tail, and rows of a 2-D tensor
        params = [_inputs(rng, s, fmt.np_dtype) for s in shapes]
        steps = [[_inputs(rng, s, fmt.np_dtype) for s in shapes] for _ in range(6)]
        losses = [3.0, 2.0, 2.0, 5.0, 1.0, 1.5]
        hp = dialect.hparams(hparams)
        runs = []
        for ops in (_PlainOps(fmt), NumpyOps(fmt)):
            theta = [ops.array(p) for p in params]
            state = family.init(ops, hp, dialect.knobs, theta)
            seen = []
            with np.errstate(all="ignore"):
                for t, row in enumerate(steps):
                    loss = losses[t] if dialect.needs_loss else None
                    theta, state = family.step(ops, hp, dialect.knobs, state, theta, [ops.array(g) for g in row], loss)
                    seen.append(observe(ops, dialect, theta, state))
            runs.append(seen)
        for t, (plain, fast) in enumerate(zip(*runs, strict=True)):
            where = f"{dialect_id} {dtype} {hparams} step {t + 1}"
            assert plain.count == fast.count, where
            for x, y in zip(plain.params, fast.params, strict=True):
                assert _same_bits(x, y), f"{where}: params"
            assert plain.state.keys() == fast.state.keys(), where
            for name in plain.state:
                for x, y in zip(plain.state[name], fast.state[name], strict=True):
                    assert _same_bits(x, y), f"{where}: {name}"
            if plain.branches is not None:
                assert fast.branches is not None
                for x, y in zip(plain.branches, fast.branches, strict=True):
                    assert np.array_equal(x, y), f"{where}: branches"
