"""A third way to evaluate the same step: traced once through symbolic `Ops`, compiled to one loop (numba).

`NumpyOps` performs each operation of a step as one NumPy call, one pass over memory per operation; on large
tensors the step then costs several times a copy of its bytes. Here `family.step` runs on `Sym` values instead
of arrays. Each operation appends one line to a straight-line program, in the work dtype and with NumPy's own
rules (type promotion, NaN payloads, signed zeros, ties in minimum and maximum), and the program becomes the
body of a loop that numba compiles: every element goes through the whole step in registers, in one pass.

The program's text comes from the step definitions alone. Every value that reaches the step (hyperparameters,
the counter, the loss) is an argument of the compiled loop, not part of its text, so one compiled loop serves
every call with the same knobs. A step that does something a loop cannot (a norm across elements, a 16-bit
format, a Python decision on an array's values) is not fused: `fused_step` returns None and the caller keeps
`NumpyOps`. tests/reference/test_fast_paths.py holds every dialect to `NumpyOps` bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np

from ._arith import NumpyOps, broadcast_value
from ._numerics import FloatFormat

__all__ = ["FUSED_MIN_SIZE", "available", "fused_step"]

# Below this many elements per tensor the compiled loop saves less than tracing costs.
FUSED_MIN_SIZE = 1 << 16


class _Unfusable(Exception):
    """The step needs something an element-by-element loop cannot do."""


@functools.cache
def available() -> bool:
    """Whether numba is installed (the optional dependency `optconf[fast]`)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class _Program:
    """Straight-line code over one element: inputs, scalar arguments, and one assignment per operation."""

    lines: list[str] = field(default_factory=list)
    inputs: list[np.ndarray] = field(default_factory=list)
    scalars: list[np.generic] = field(default_factory=list)

    def emit(self, expression: str, dtype: np.dtype) -> Sym:
        name = f"v{len(self.lines)}"
        self.lines.append(f"{name} = {_constructor(dtype)}({expression})")
        return Sym(self, name, dtype)

    def scalar(self, value: Any, dtype: np.dtype) -> str:
        # A NumPy scalar: numba types a 0-d array as an array. (numpy's stubs type `a[()]` as an array whatever the
        # shape; on a 0-d array it is the scalar.)
        self.scalars.append(np.asarray(value, dtype=dtype)[()])  # type: ignore[arg-type]
        return f"s{len(self.scalars) - 1}"

    def source(self, stores: Sequence[tuple[str, Sym]], fresh: int) -> str:
        """The loop: every input loaded, every operation, then each result stored to its target (an input
        array written over, `a<k>`, or a new one, `o<k>`). Loads come first, so writing over an input is safe."""
        names = [f"a{i}" for i in range(len(self.inputs))] + [f"s{i}" for i in range(len(self.scalars))]
        args = ", ".join(["n", *names, *[f"o{i}" for i in range(fresh)]])
        body = [f"        x{i} = a{i}[i]" for i in range(len(self.inputs))]
        body += [f"        {line}" for line in self.lines]
        body += [f"        {target}[i] = {out.name}" for target, out in stores]
        return f"def kernel({args}):\n    for i in range(n):\n" + "\n".join(body) + "\n"


@functools.cache
def _constructor(dtype: np.dtype) -> str:
    return f"np.{dtype.name}"


class Sym:
    """One element of an array in a traced step: Python operators append to the program."""

    __slots__ = ("dtype", "name", "program")
    __array_ufunc__ = None  # `ndarray op Sym` defers to Sym's reflected operator

    def __init__(self, program: _Program, name: str, dtype: np.dtype) -> None:
        self.program, self.name, self.dtype = program, name, dtype

    def __bool__(self) -> bool:
        raise _Unfusable("a Python decision on an array's values")

    def __add__(self, other: Any) -> Sym:
        return _binary(np.add, "{} + {}", self, other)

    def __radd__(self, other: Any) -> Sym:
        return _binary(np.add, "{} + {}", other, self)

    def __sub__(self, other: Any) -> Sym:
        return _binary(np.subtract, "{} - {}", self, other)

    def __rsub__(self, other: Any) -> Sym:
        return _binary(np.subtract, "{} - {}", other, self)

    def __mul__(self, other: Any) -> Sym:
        return _binary(np.multiply, "{} * {}", self, other)

    def __rmul__(self, other: Any) -> Sym:
        return _binary(np.multiply, "{} * {}", other, self)

    def __truediv__(self, other: Any) -> Sym:
        return _binary(np.true_divide, "{} / {}", self, other)

    def __rtruediv__(self, other: Any) -> Sym:
        return _binary(np.true_divide, "{} / {}", other, self)

    def __gt__(self, other: Any) -> Sym:
        return _binary(np.greater, "{} > {}", self, other)

    def __lt__(self, other: Any) -> Sym:
        return _binary(np.less, "{} < {}", self, other)

    def __ge__(self, other: Any) -> Sym:
        return _binary(np.greater_equal, "{} >= {}", self, other)

    def __le__(self, other: Any) -> Sym:
        return _binary(np.less_equal, "{} <= {}", self, other)

    def __neg__(self) -> Sym:
        return self.program.emit(f"-{self.name}", self.dtype)

    def __invert__(self) -> Sym:
        if self.dtype != np.bool_:
            raise _Unfusable("~ on a non-boolean")
        return self.program.emit(f"not {self.name}", self.dtype)

    def astype(self, dtype: Any) -> Sym:
        target = np.dtype(dtype)
        if target.kind not in "iub" or self.dtype.kind not in "iub":
            raise _Unfusable(f"astype({target}) of {self.dtype}")
        return self.program.emit(self.name, target)


def _kind(x: Any) -> tuple[str, Any]:
    """What NumPy's promotion looks at: a Python scalar's type (weak, NEP 50), or a dtype."""
    if isinstance(x, Sym):
        return ("dtype", x.dtype)
    if isinstance(x, bool | int | float):
        return ("python", type(x))
    return ("dtype", np.asarray(x).dtype)


def _probe(kind: tuple[str, Any]) -> Any:
    return kind[1]() if kind[0] == "python" else np.empty(0, dtype=kind[1])


@functools.cache
def _promoted(ufunc: np.ufunc, a: tuple[str, Any], b: tuple[str, Any]) -> tuple[np.dtype, np.dtype]:
    """(the dtype the operation is done in, the result's dtype), as NumPy decides them; cached, as tracing is hot."""
    return np.result_type(_probe(a), _probe(b)), ufunc(_probe(a), _probe(b)).dtype


def _program_of(*xs: Any) -> _Program:
    for x in xs:
        if isinstance(x, Sym):
            return x.program
    raise _Unfusable("no traced operand")


def _operand(program: _Program, x: Any, dtype: np.dtype) -> str:
    """x as an expression of `dtype`: what NumPy casts an operand to before the ufunc's loop runs."""
    if isinstance(x, Sym):
        return x.name if x.dtype == dtype else f"{_constructor(dtype)}({x.name})"
    value = broadcast_value(np.asarray(x))
    if value is None:
        raise _Unfusable("an array that is neither traced nor one broadcast value")
    return program.scalar(value, dtype)


def _binary(ufunc: np.ufunc, pattern: str, a: Any, b: Any) -> Sym:
    program = _program_of(a, b)
    loop, result = _promoted(ufunc, _kind(a), _kind(b))
    expression = pattern.format(_operand(program, a, loop), _operand(program, b, loop))
    return program.emit(expression, result)


def _minimum_or_maximum(a: Any, b: Any, test: str) -> Sym:
    # NumPy's: a NaN a wins, then a NaN b, then the comparison; a tie (-0 against +0) goes to b. A constant that
    # is not NaN (a clamp's bound) needs no NaN test: fewer instructions in the loop, the same result.
    program = _program_of(a, b)
    dtype, _ = _promoted(np.minimum, _kind(a), _kind(b))
    x, y = _operand(program, a, dtype), _operand(program, b, dtype)
    a_nan = f"{x} != {x} or " if _may_be_nan(a) else ""
    b_number = f"{y} == {y} and " if _may_be_nan(b) else ""
    return program.emit(f"{x} if ({a_nan}({b_number}{x} {test} {y})) else {y}", dtype)


def _may_be_nan(x: Any) -> bool:
    return isinstance(x, Sym) or bool(np.isnan(np.asarray(x, dtype=np.float64)).any())


@dataclass(frozen=True)
class TraceOps:
    """`Ops` over `Sym` values; constants stay NumPy values, computed exactly as `NumpyOps` computes them."""

    fmt: FloatFormat
    _numpy: NumpyOps = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.fmt.work_dtype != self.fmt.np_dtype:
            raise _Unfusable(f"{self.fmt.name} is evaluated through a wider work dtype")
        object.__setattr__(self, "_numpy", NumpyOps(self.fmt))

    def const(self, value: mpmath.mpf | float) -> np.ndarray:
        return self._numpy.const(value)

    def hyperparameter(self, value: mpmath.mpf | float) -> np.ndarray:
        return self._numpy.hyperparameter(value)

    def array(self, values: np.ndarray) -> Any:
        raise _Unfusable("a new array inside the step")

    def store(self, x: Any) -> Any:
        return self.round_to_format(x)

    def round_to_format(self, x: Any) -> Any:
        if not isinstance(x, Sym):
            return self._numpy.round_to_format(x)
        work = np.dtype(self.fmt.work_dtype)
        return x if x.dtype == work else x.program.emit(x.name, work)

    def sqrt(self, x: Any) -> Any:
        return _unary(x, "math.sqrt({x})", np.sqrt)

    def sign(self, x: Any) -> Any:
        # NumPy's sign: +1, -1, +0 for either zero, and a NaN keeps its bits.
        return _unary(x, "{t}(1) if {x} > 0 else ({t}(-1) if {x} < 0 else ({t}(0) if {x} == 0 else {x}))", np.sign)

    def isnan(self, x: Any) -> Any:
        return _unary(x, "{x} != {x}", np.isnan)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        if not isinstance(cond, Sym):
            if isinstance(a, Sym) or isinstance(b, Sym):
                return _fixed(cond, a, b)
            return self._numpy.where(cond, a, b)
        program = cond.program
        dtype, _ = _promoted(np.minimum, _kind(a), _kind(b))  # where's result type: the operands' promotion
        return program.emit(f"{_operand(program, a, dtype)} if {cond.name} else {_operand(program, b, dtype)}", dtype)

    def minimum(self, a: Any, b: Any) -> Any:
        if not isinstance(a, Sym) and not isinstance(b, Sym):
            return self._numpy.minimum(a, b)
        return _minimum_or_maximum(a, b, "<")

    def maximum(self, a: Any, b: Any) -> Any:
        if not isinstance(a, Sym) and not isinstance(b, Sym):
            return self._numpy.maximum(a, b)
        return _minimum_or_maximum(a, b, ">")

    def sum_of_squares(self, xs: Sequence[Any]) -> Any:
        raise _Unfusable("a norm across elements")

    def full_like(self, x: Any, value: Any) -> Any:
        return np.asarray(value, dtype=self.fmt.work_dtype)  # one value: a scalar argument where it meets a Sym

    def mask(self, cond: Any) -> Any:
        if isinstance(cond, Sym) and cond.dtype != np.bool_:
            raise _Unfusable(f"a mask of {cond.dtype}")
        return cond if isinstance(cond, Sym) else self._numpy.mask(cond)


def _unary(x: Any, pattern: str, ufunc: np.ufunc) -> Any:
    if not isinstance(x, Sym):
        return ufunc(x)
    dtype = _unary_result(ufunc, x.dtype)
    return x.program.emit(pattern.format(x=x.name, t=_constructor(x.dtype)), dtype)


@functools.cache
def _unary_result(ufunc: np.ufunc, dtype: np.dtype) -> np.dtype:
    return ufunc(np.empty(0, dtype=dtype)).dtype


def _fixed(cond: Any, a: Any, b: Any) -> Any:
    """where() on a condition known while tracing: one branch, or an element-wise choice the loop cannot make."""
    if np.ndim(cond) == 0:
        return a if bool(cond) else b
    raise _Unfusable("where() on a condition that is an array but not traced")


# ---------------------------------------------------------------------------------------------------------------
# Compiling and running


@functools.cache
def _compiled(source: str) -> Callable[..., None]:
    import numba

    # The text is the traced program of a step definition in this package (see the module docstring), never data.
    namespace: dict[str, Any] = {"np": np, "math": math}
    exec(compile(source, "<optconf fused step>", "exec"), namespace)
    # error_model="numpy": a division by zero gives inf or NaN, as NumPy's does, instead of raising.
    return numba.njit(error_model="numpy", fastmath=False, nogil=True)(namespace["kernel"])


def _flat(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).reshape(-1)


def _split(state: tuple[Any, ...], count: int, index: int) -> tuple[Any, ...]:
    """Tensor `index`'s share of a state tuple: the per-tensor fields cut down to that tensor, the rest shared."""
    fields = [(v[index],) if isinstance(v, tuple) and len(v) == count else v for v in state]
    return type(state)(*fields)


def _traced_tensor(
    family: Any,
    fmt: FloatFormat,
    hp: Any,
    knobs: Any,
    state: Any,
    theta: np.ndarray,
    g: np.ndarray,
    loss: Any,
    overwrite: bool,
) -> tuple[list[Any], Any]:
    """One tensor's step through the compiled loop: (new params, new state), arrays in place of Syms."""
    ops = TraceOps(fmt)
    program = _Program()
    # What each traced value stands for, and whether it is the caller's gradient (never written over, and copied
    # if a result is it unchanged). Holding each key object keeps its id from being reused.
    arrays: dict[int, tuple[Any, np.ndarray, bool]] = {}
    slots: list[Any] = []  # each loop input's slot: "param", "grad", or the state field's index
    originals: list[np.ndarray] = []  # each loop input as it was passed in

    def traced(array: Any, slot: Any) -> Any:
        if not isinstance(array, np.ndarray) or array.shape != theta.shape:
            return array  # a scalar: a constant to the loop
        value = broadcast_value(array)
        if value is not None:  # one broadcast value (a state's first values): a constant too
            arrays[id(value)] = (value, array, slot == "grad")
            return value
        program.inputs.append(_flat(array))
        slots.append(slot)
        originals.append(array)
        sym = Sym(program, f"x{len(program.inputs) - 1}", array.dtype)
        arrays[id(sym)] = (sym, array, slot == "grad")
        return sym

    fields = [tuple(traced(a, i) for a in v) if isinstance(v, tuple) else v for i, v in enumerate(state)]
    new_params, new_state = family.step(
        ops, hp, knobs, type(state)(*fields), [traced(theta, "param")], [traced(g, "grad")], loss
    )
    results_by_slot: list[tuple[str | int, Any]] = [("param", new_params[0])]
    results_by_slot += [(i, v[0]) for i, v in enumerate(new_state) if isinstance(v, tuple) and v]
    kept = {id(arrays[id(v)][1]) for _, v in results_by_slot if id(v) in arrays}  # inputs that are results
    computed: dict[int, tuple[Sym, Any]] = {}
    for slot, value in results_by_slot:
        if isinstance(value, Sym) and id(value) not in arrays:
            computed.setdefault(id(value), (value, slot))
    stores, fresh, results = [], [], {}
    for out, slot in computed.values():
        k = _writable_input(program.inputs, originals, slots, slot, out.dtype, kept) if overwrite else None
        if k is None:
            fresh.append(out)
            results[id(out)] = np.empty(theta.shape, dtype=out.dtype)
            stores.append((f"o{len(fresh) - 1}", out))
        else:
            results[id(out)] = originals[k]  # the array itself, written through its flat view
            stores.append((f"a{k}", out))
    _compiled(program.source(stores, len(fresh)))(
        theta.size, *program.inputs, *program.scalars, *[results[id(out)].reshape(-1) for out in fresh]
    )

    def concrete(x: Any) -> Any:
        if id(x) in results:
            return results[id(x)]
        if id(x) in arrays:  # an input unchanged (Rprop-'s p = g; a slot that a variant does not update)
            _, array, callers = arrays[id(x)]
            return array.copy() if callers else array
        # A value made of constants alone has the tensor's shape under NumpyOps, which broadcasts it.
        return np.broadcast_to(np.asarray(x), theta.shape) if np.ndim(x) == 0 else x

    state_out = type(new_state)(*[tuple(concrete(a) for a in v) if isinstance(v, tuple) else v for v in new_state])
    return [concrete(p) for p in new_params], state_out


def _writable_input(
    inputs: list[np.ndarray], originals: list[np.ndarray], slots: list[Any], slot: Any, dtype: np.dtype, kept: set[int]
) -> int | None:
    """The loop input that a result of `slot` may be written over, or None.

    Writing over an input is what makes the loop as fast as a copy: its lines are in cache when the result is
    stored (a new array is first read from memory, then written). It is safe for the input of the result's own
    slot, never the gradient, when it is contiguous, writeable, of the result's dtype, owns its memory, shares
    none with another input, and is not itself a result: the loop reads every input of an element before it
    writes any, and nothing reads the old values after the step.
    """
    if slot == "grad" or slots.count(slot) != 1:
        return None
    k = slots.index(slot)
    array = originals[k]
    flags = array.flags
    if not (flags.owndata and flags.writeable and flags.c_contiguous) or array.dtype != dtype or id(array) in kept:
        return None
    if any(np.may_share_memory(array, other) for j, other in enumerate(inputs) if j != k):
        return None
    return k


def fused_step(
    family: Any,
    ops: NumpyOps,
    hp: Any,
    knobs: Any,
    state: Any,
    params: list[np.ndarray],
    grads: list[np.ndarray],
    loss: float | None = None,
    overwrite: bool = False,
) -> tuple[list[np.ndarray], Any] | None:
    """`family.step` with `ops`, each tensor in one compiled pass; None where that does not apply.

    Each tensor is stepped on its own, with the state cut down to it: a step is separable across tensors unless
    it takes a norm over all of them, which tracing refuses. The results are the bits `ops` would give (a NaN
    may carry another sign or payload). As with `ops`, a result may be a parameter or state array passed in,
    unchanged; never one of `grads`. With `overwrite`, the caller gives up `params` and the state's arrays, and
    results are written over them where that is safe (see `_writable_input`).
    """
    if not params or min(np.size(p) for p in params) < FUSED_MIN_SIZE or not available():
        return None  # the size first: small tensors never import numba
    work = np.dtype(ops.fmt.work_dtype)
    if any(not isinstance(a, np.ndarray) or a.dtype != work for a in [*params, *grads]):
        return None  # a sparse gradient, or an array NumpyOps would first convert
    try:
        per_tensor = [
            _traced_tensor(family, ops.fmt, hp, knobs, _split(state, len(params), k), theta, g, loss, overwrite)
            for k, (theta, g) in enumerate(zip(params, grads, strict=True))
        ]
    except _Unfusable:
        return None
    new_params = [p for tensor_params, _ in per_tensor for p in tensor_params]
    first = per_tensor[0][1]
    joined = [
        tuple(a for _, s in per_tensor for a in s[i]) if isinstance(v, tuple) and len(v) == 1 else v
        for i, v in enumerate(first)
    ]
    return new_params, type(first)(*joined)
