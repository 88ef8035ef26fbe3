"""NumPy's fast paths and the compiled loop give the bits of plain NumPy: every dialect and format, special values.

`NumpyOps` takes shortcuts on large arrays (a bitwise select, a clip for minimum and maximum against one value,
stores that do not copy), and `reference._fused` runs the whole step as one compiled loop. Neither may change a
bit: each is held here to the plain NumPy operations on arrays large enough to take its path.
"""

import itertools

import numpy as np
import pytest
from support.bit_identity import (
    LOSSES,
    PlainOps,
    assert_same_trajectory,
    hparams_variants,
    inputs,
    same_bits,
    specials,
    trajectory,
)

import reference
from conformance.adapters.reference import ReferenceLive
from reference import _fused
from reference._arith import NumpyOps


def _specials_setup(dtype: str, seed: int) -> tuple[reference.FloatFormat, NumpyOps, np.random.Generator, np.ndarray]:
    """The format, its NumPy evaluator, a seeded generator and the format's special values, for a fast-path test."""
    fmt = reference.format_of(dtype)
    return fmt, NumpyOps(fmt), np.random.default_rng(seed), specials(fmt.np_dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_where_is_bit_identical(dtype: str) -> None:
    fmt, ops, rng, values = _specials_setup(dtype, seed=1)
    n = 2 * 32768 + 101
    a = rng.choice(values, n)
    b = rng.choice(values, n)
    zero = np.asarray(0.0, dtype=fmt.np_dtype)
    for cond in (rng.random(n) < 0.5, np.zeros(n, bool), np.ones(n, bool), rng.random(n) < 0.01):
        assert same_bits(ops.where(cond, a, b), np.where(cond, a, b))
        assert same_bits(ops.where(cond, zero, b), np.where(cond, zero, b))
        assert same_bits(ops.where(cond, a, ops.full_like(a, 0.0)), np.where(cond, a, np.zeros_like(a)))
        assert same_bits(ops.where(cond, ops.full_like(b, 0.0), b), np.where(cond, np.zeros_like(b), b))
        assert same_bits(ops.where(cond, a, ops.full_like(a, -0.0)), np.where(cond, a, np.full_like(a, -0.0)))
        grid, rows = cond[: n - 101].reshape(-1, 64), a[: n - 101].reshape(-1, 64)
        assert same_bits(ops.where(grid, rows, zero), np.where(grid, rows, zero))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_minimum_and_maximum_against_one_value_are_bit_identical(dtype: str) -> None:
    fmt, ops, rng, values = _specials_setup(dtype, seed=2)
    x = rng.choice(values, 2 * 32768 + 101)
    with np.errstate(invalid="ignore"):
        for value in values:
            bound = np.asarray(value, dtype=fmt.np_dtype)
            assert same_bits(ops.minimum(x, bound), np.minimum(x, bound)), value
            assert same_bits(ops.maximum(x, bound), np.maximum(x, bound)), value
            assert same_bits(ops.minimum(bound, x), np.minimum(bound, x)), value


@pytest.mark.parametrize("dialect_id", list(reference.DIALECTS))
def test_fast_paths_step_bit_identical_to_plain_numpy(dialect_id):
    dialect = reference.get(dialect_id)
    rng = np.random.default_rng(sum(map(ord, dialect_id)))
    for dtype, hparams in itertools.product(dialect.dtypes, hparams_variants(dialect)):
        fmt = reference.format_of(dtype)
        shapes = [(70001,), (90, 257)]  # several select blocks, a ragged tail, and rows of a 2-D tensor
        params = [inputs(rng, s, fmt.np_dtype) for s in shapes]
        steps = [[inputs(rng, s, fmt.np_dtype) for s in shapes] for _ in range(6)]
        plain = trajectory(dialect, PlainOps(fmt), hparams, params, steps)
        fast = trajectory(dialect, NumpyOps(fmt), hparams, params, steps)
        assert_same_trajectory(plain, fast, f"{dialect_id} {dtype} {hparams}")


needs_numba = pytest.mark.skipif(not _fused.available(), reason="numba is not installed (optconf[fast])")


@needs_numba
@pytest.mark.parametrize("dialect_id", list(reference.DIALECTS))
def test_compiled_step_bit_identical_to_numpy(dialect_id):
    dialect = reference.get(dialect_id)
    rng = np.random.default_rng(sum(map(ord, dialect_id)) + 1)

    def compiled(ops, hp, knobs, state, theta, grads, loss):
        stepped = _fused.fused_step(dialect.family, ops, hp, knobs, state, theta, grads, loss)
        assert stepped is not None, f"{dialect_id} {ops.fmt.name}: the step was not compiled"
        return stepped

    for dtype, hparams in itertools.product(("float32", "float64"), hparams_variants(dialect)):
        fmt = reference.format_of(dtype)
        shapes = [(70001,), (260, 257)]  # both at least FUSED_MIN_SIZE
        params = [inputs(rng, s, fmt.np_dtype) for s in shapes]
        steps = [[inputs(rng, s, fmt.np_dtype) for s in shapes] for _ in range(6)]
        expected = trajectory(dialect, NumpyOps(fmt), hparams, params, steps)
        got = trajectory(dialect, NumpyOps(fmt), hparams, params, steps, compiled)
        # LLVM may commute an addition or a product, so which NaN an operation hands on may differ from NumPy's.
        assert_same_trajectory(expected, got, f"{dialect_id} {dtype} {hparams} (compiled)", any_nan=True)


@needs_numba
@pytest.mark.parametrize(
    ("why", "dtype", "hparams", "size"),
    [
        ("a 16-bit format is rounded through float32", "float16", {}, 1 << 16),
        ("a norm across all elements", "float32", {"clipnorm": 1.0}, 1 << 16),
        ("too small to pay for tracing", "float32", {}, 100),
    ],
)
def test_steps_a_loop_cannot_take_stay_with_numpy(why, dtype, hparams, size):
    dialect = reference.get("adagrad/keras3")
    fmt = reference.format_of(dtype)
    ops = NumpyOps(fmt)
    hp = dialect.hparams(dialect.framework_hparams({"lr": 0.01, **hparams}))
    theta = [ops.array(np.ones(size, dtype=fmt.np_dtype))]
    state = dialect.family.init(ops, hp, dialect.knobs, theta)
    grads = [ops.array(np.full(size, 0.5, dtype=fmt.np_dtype))]
    assert _fused.fused_step(dialect.family, ops, hp, dialect.knobs, state, theta, grads) is None, why


def _count_compiled_steps(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each step through `reference.stepping` took the compiled loop, in order."""
    compiled: list[bool] = []

    def counted(*args, **kwargs):
        stepped = _fused.fused_step(*args, **kwargs)
        compiled.append(stepped is not None)
        return stepped

    monkeypatch.setattr("reference.stepping.fused_step", counted)
    return compiled


@needs_numba
@pytest.mark.parametrize("dialect_id", list(reference.DIALECTS))
def test_reference_adapter_on_large_tensors_steps_as_numpy_does(dialect_id, monkeypatch):
    """Through `ReferenceLive`, whose compiled steps write the new state over the old one."""
    compiled = _count_compiled_steps(monkeypatch)
    dialect = reference.get(dialect_id)
    rng = np.random.default_rng(7)
    shapes = [(70001,), (260, 257)]
    params = [inputs(rng, s, np.dtype(np.float32)) for s in shapes]
    steps = [[inputs(rng, s, np.dtype(np.float32)) for s in shapes] for _ in range(6)]
    hparams = hparams_variants(dialect)[1]
    expected = trajectory(dialect, NumpyOps(reference.format_of("float32")), hparams, params, steps)
    live = ReferenceLive(dialect, hparams, params)
    held = []  # what a caller keeps must never be written over
    for t, row in enumerate(steps):
        with np.errstate(all="ignore"):
            live.step(row, LOSSES[t % len(LOSSES)] if dialect.needs_loss else None)
        got = reference.Step(live.params(), live.state(), live.count(), None, None)
        count = expected[t].count if dialect.counter else None  # the adapter reports no counter a dialect lacks
        want = reference.Step(expected[t].params, expected[t].state, count, None, None)
        assert_same_trajectory([want], [got], f"{dialect_id} step {t + 1}", any_nan=True)
        held.append((t, got))
    assert compiled and all(compiled), "ReferenceLive did not take the compiled loop"
    for t, got in held:
        want = expected[t]
        for a, b in zip(want.params, got.params, strict=True):
            assert same_bits(a, b, any_nan=True), f"step {t + 1}: a kept result changed"


@needs_numba
def test_reference_run_with_numpy_takes_the_compiled_loop(monkeypatch):
    """`reference.run(..., evaluator="numpy")` steps large tensors as the reference adapter does: compiled."""
    compiled = _count_compiled_steps(monkeypatch)
    dialect = reference.get("adagrad/torch")
    rng = np.random.default_rng(11)
    params = [inputs(rng, (1 << 16,), np.dtype(np.float32))]
    steps = [[inputs(rng, (1 << 16,), np.dtype(np.float32))] for _ in range(2)]
    hparams = hparams_variants(dialect)[1]
    expected = trajectory(dialect, NumpyOps(reference.format_of("float32")), hparams, params, steps)
    got = reference.run(dialect, hparams, "float32", params, steps, evaluator="numpy")
    assert compiled and all(compiled), "reference.run did not take the compiled loop"
    assert_same_trajectory(expected, got, "adagrad/torch float32 (reference.run)", any_nan=True)
