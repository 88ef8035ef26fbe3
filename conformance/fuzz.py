"""Live differential fuzzing (`--fuzz=N`): hypothesis draws fresh cases, the oracle evaluates them on the spot, and
the trajectory check compares the implementation; a failure shrinks to a minimal case saved for `optconf explain`."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

import reference
from reference._arith import OracleOps
from reference.sparse import SparseGrad
from reference.vectors.cases import CaseSpec, random_hparams
from reference.vectors.generate import evaluate

from .adapter import Adapter
from .checks import CheckFailure, CheckSkip, Context, Outcome, check_trajectory
from .corpus import Case, case_from_json
from .inputs import read_json
from .manifest import Entry, diagnosis_of
from .session import fuzz_case_view

__all__ = ["FUZZ_DIR", "HPARAM_EDGES", "exposed", "fuzz", "load_case_json"]

FUZZ_DIR = pathlib.Path(".optconf-fuzz")


def _strategies() -> Any:
    from hypothesis import strategies as st

    # Magnitudes whose squares overflow float16 and float32 but whose products with any drawn lr stay finite: the
    # spec evaluates intermediates exactly, so an overflowing lr*g (inf/inf = NaN in any working precision) is
    # outside what an implementation can match, and is not drawn.
    edge = st.sampled_from([0.0, -0.0, 1e-30, -1e-30, 1e-8, 1e3, -1e3, 1e30, float("nan"), float("inf")])
    ordinary = st.floats(-8.0, 8.0, allow_nan=False, allow_subnormal=False, width=32)
    element = st.one_of(ordinary, ordinary, ordinary, edge)
    return st, element


def _case_strategy(dialect: reference.Dialect, dtypes: tuple[str, ...]) -> Any:
    st, element = _strategies()

    @st.composite
    def draw(data: Any) -> CaseSpec:
        dtype = data(st.sampled_from(dtypes))
        shape = data(st.sampled_from([(), (1,), (3,), (2, 2), (5,)]))
        steps = data(st.integers(1, 6))
        size = int(np.prod(shape, dtype=int))
        tensor = st.lists(element, min_size=size, max_size=size).map(lambda v: np.array(v, np.float64).reshape(shape))
        params = data(st.lists(st.floats(-4, 4, allow_nan=False, width=32), min_size=size, max_size=size))
        hparam_seed = data(st.integers(0, 2**32 - 1))
        edge = data(st.sampled_from(HPARAM_EDGES))
        losses = data(st.lists(st.floats(0, 10, width=32), min_size=steps, max_size=steps))
        return CaseSpec(
            dialect=dialect.id,
            dtype=dtype,
            level=1,
            flags=("FUZZ",),
            comment="a fuzzed case",
            hparams=random_hparams(dialect, random.Random(hparam_seed)) | exposed(dialect, edge),
            params=[np.array(params, np.float64).reshape(shape)],
            grads=[[data(tensor)] for _ in range(steps)],
            losses=losses if dialect.needs_loss else None,
        )

    return draw()


# Hyperparameter edges the random draw rarely makes (canonical names); each applies only where the dialect has it.
HPARAM_EDGES: list[dict[str, Any]] = [
    {},
    {},
    {},
    {"eps": 0.0},
    {"lr": 60.0},
    {"lr": 1e-9},
    {"weight_decay": 0.1},
    {"maximize": True},
    {"clipvalue": 0.5},
    {"clipnorm": 1.0},
    {"global_clipnorm": 1.5},
    {"clipvalue": 0.5, "clipnorm": 1.0},
    {"initial_accumulator": 0.0},
    {"decay": 0.1},
]


def exposed(dialect: reference.Dialect, canonical: dict[str, Any]) -> dict[str, Any]:
    """An edge in the dialect's own names, or none where the dialect lacks one of its knobs."""
    if not set(canonical) <= dialect.exposed:
        return {}
    return dialect.framework_hparams(canonical)


def _as_case(spec: CaseSpec) -> Case | None:
    ops = OracleOps(reference.format_of(spec.dtype))
    try:
        reference.run(spec.dialect, spec.hparams, spec.dtype, spec.params, spec.grads, spec.losses, ops=ops)
        record = evaluate(spec)
    except ValueError:  # a guard band or the precision check refused the draw: not a meaningful case
        return None
    if ops.overflows:  # e.g. a norm of 1e30 in float32: exact here, inf in any working precision
        return None
    return Case(spec.dialect, spec.dtype, {"tcId": 1} | record)


def save_case(case: Case) -> pathlib.Path:
    text = json.dumps({"dialect": case.dialect, "dtype": case.dtype, "record": case.record}, sort_keys=True)
    FUZZ_DIR.mkdir(exist_ok=True)
    path = FUZZ_DIR / f"{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_case_json(path: pathlib.Path) -> Case:
    """A case saved by `save_case`, refused in one line (InputError, CorpusError) unless it passes every check a
    corpus case does: the file comes from outside, and may have been edited."""
    return case_from_json(read_json(path), str(path))


def fuzz(
    adapter: Adapter, dialect_id: str, examples: int, seed: int, impl: str, entries: Sequence[Entry] = ()
) -> list[str]:
    """Run `examples` fresh cases of one dialect through the trajectory check; raise CheckFailure at a minimal one.

    A failure that a manifest xfail entry records (it selects the case, as `fuzz_case_view` shows it, and its
    `expect` matches the diagnosis) is not a finding: fuzzing goes on past it. Returns the entries that absorbed
    failures, as "ORIGIN (N cases)", for the test's xfail reason.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as with_seed
    from hypothesis import strategies as st

    dialect = reference.get(dialect_id)
    dtypes = tuple(t for t in dialect.dtypes if t in adapter.capabilities.dtypes)
    if not dtypes:
        raise CheckSkip(f"no format of {dialect_id} claimed")
    failures: list[tuple[Case, str]] = []
    absorbed: Counter[str] = Counter()
    declined: list[str] = []  # the reasons of cases the implementation declared unsupported
    compared = 0

    @with_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(spec=_case_strategy(dialect, dtypes), _=st.just(None))
    def property_(spec: CaseSpec, _: None) -> None:
        case = _as_case(spec)
        nonlocal compared
        if case is None or _unsupported(adapter, case):
            return
        try:
            check_trajectory(Context(adapter, case, ""), Outcome(), {})
        except CheckSkip as exc:  # conformance.kit.Unsupported: a setting the implementation lacks
            declined.append(str(exc))
            return
        except CheckFailure as exc:
            view = fuzz_case_view(adapter.name, case.dialect, case.dtype)
            recorded = [e for e in entries if e.matches(view) and e.expects(diagnosis_of(exc))]
            if recorded:
                absorbed[recorded[0].origin] += 1
                return
            failures.append((case, str(exc)))
            raise
        compared += 1

    try:
        property_()
    except CheckFailure:
        case, message = failures[-1]  # hypothesis reports the shrunk example last
        path = save_case(case)
        detail = message.split("\n")[0].removeprefix(f"{case.test_id}: ")
        raise CheckFailure(
            f"fuzzing {dialect_id} (seed {seed}) found a minimal failing case: {detail}\n"
            f"  replay: optconf explain --case-json {path} --impl {impl}"
        ) from None
    if not compared and not absorbed and declined:
        raise CheckSkip(f"every fuzzed case of {dialect_id} was declared unsupported, e.g. {declined[0]}")
    return [f"{origin} ({n} cases)" for origin, n in sorted(absorbed.items())]


def _unsupported(adapter: Adapter, case: Case) -> bool:
    caps = adapter.capabilities
    sparse = any(isinstance(g, SparseGrad) for row in case.grads for g in row)
    return (sparse and not caps.sparse) or (case.losses is not None and not caps.loss)
