"""The reference's NumPy step on 1M float32 elements against the memory-bandwidth bound.

The step is `ReferenceLive.step`, the `--impl=reference` adapter: one compiled loop per tensor when numba is
installed (reference/_fused.py), `NumpyOps` otherwise; `NumpyOps` alone is timed as well.

Bound: the bytes a step cannot avoid moving (read every parameter, gradient and state array, write every parameter
and state array) at the speed of `numpy.copyto` moving the same number of bytes, measured in the same run,
interleaved with the steps. Adagrad (adagrad/torch): read theta, g, A; write theta, A: 5 arrays. RProp
(rprop/torch): read theta, g, Delta, p; write theta, Delta, p: 7 arrays, the framework's state. The reference's
RProp state also keeps the previous update (for the backtracking dialects) and the branch record, 5 more bytes
per element that the bound does not count. Times are the thread's CPU time (the machine is shared); each ratio
is the least step time over the least copy time of interleaved repetitions.

tests/reference/test_fast_paths.py holds every path timed here to plain NumPy, bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import reference
from benchmarks._harness import summary
from conformance.adapters.reference import ReferenceLive
from reference import _fused as fused
from reference._arith import NumpyOps
from tests.support.bit_identity import PlainOps, same_bits

N = 1 << 20
REPS = 40


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
    plain, fast = PlainOps(fmt), NumpyOps(fmt)
    before = _family_step_time(family, dialect, plain, theta, grads)
    after = _family_step_time(family, dialect, fast, theta, grads)
    evaluator = "one compiled loop (numba)" if fused.available() else "NumpyOps (numba not installed)"
    record(
        summary(
            f"NumPy {dialect} step / copyto bound",
            step_min / copy_min,
            1.5,
            "x",
            f"{evaluator}: step {step_min * 1e3:.2f} ms vs copy of {arrays} x 4 MiB {copy_min * 1e3:.2f} ms "
            f"(medians {step_med / copy_med:.2f}x); NumpyOps alone {after * 1e3:.2f} ms "
            f"({after / copy_min:.1f}x), plain NumPy ops {before * 1e3:.2f} ms",
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
    assert same_bits(theta, live.params()[0]) and same_bits(accumulator, live.state()["sum"][0])
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
