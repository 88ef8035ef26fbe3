"""`optconf explain TCID --impl SPEC`: re-run one case alone and print it step by step."""

from __future__ import annotations

import difflib
import pathlib
from typing import TextIO

import numpy as np

from reference._numerics import FloatFormat, bits_to_hex, decimal_string

from .comparison import BRANCH_NAMES
from .context import CheckSkip, Context
from .corpus import Case, load
from .driving import forced_run, free_run
from .spec import resolve
from .tolerance import judge, ulp_distance

__all__ = ["explain", "find_case"]


def find_case(test_id: str, vectors: pathlib.Path | None) -> Case:
    return _find(load(vectors).cases, test_id)


def _find(cases: list[Case], test_id: str) -> Case:
    by_id = {c.test_id: c for c in cases}
    if test_id in by_id:
        return by_id[test_id]
    close = difflib.get_close_matches(test_id, list(by_id), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else " (ids read DIALECT-DTYPE-tcNNNN)"
    raise ValueError(f"no test case {test_id!r} in the corpus{hint}")


def explain(case: Case, impl: str, subject: str | None, out: TextIO, forced: bool = False) -> int:
    """Print the case's trajectory against the implementation; 0 if it conforms, 1 at a divergence. `forced`: each
    step from the expected state before it (teacher forcing), judged by the error scale of the step alone."""
    test_id = case.test_id
    claiming = [a for a in resolve(impl) if case.dialect in a.capabilities.dialects]
    if subject:
        claiming = [a for a in claiming if a.name == subject]
    if not claiming:
        raise ValueError(
            f"--impl={impl} has no adapter{f' named {subject!r}' if subject else ''} claiming {case.dialect}"
        )
    adapter = claiming[0]
    ctx = Context(adapter, case, f"optconf explain {test_id} --impl {impl}")
    fmt = ctx.fmt
    print(f"{test_id}: {case.comment} [{', '.join(case.flags)}]", file=out)
    print(f"  implementation {adapter.name}; hparams {dict(case.hparams)}; {len(case.grads)} steps", file=out)
    if forced:
        print("  teacher-forced: each step from the expected state before it; k for S of the step alone", file=out)
    try:
        results = list(forced_run(ctx)) if forced else free_run(ctx)
    except CheckSkip as exc:
        print(f"  cannot run: {exc}", file=out)
        return 1
    header = f"  {'step':>4}  {'quantity':<16} {'expected':<40} {'got':<40} {'ulp':>6} {'k':>8}  branch"
    print(header, file=out)
    diverged = False
    for step, (got, want) in enumerate(zip(results, case.expected, strict=True), start=1):
        for quantity, wanted in [("params", want.params), *want.state.items()]:
            gotten = got.params if quantity == "params" else got.state.get(quantity)
            if gotten is None:
                print(f"  {step:>4}  {quantity:<16} missing from the implementation's state", file=out)
                diverged = True
                continue
            bound = ctx.bound(quantity)
            for tensor, (g, w) in enumerate(zip(gotten, wanted, strict=True)):
                g = np.asarray(g, dtype=fmt.np_dtype).reshape(w.shape)
                scale = want.scales_for(forced)[quantity][tensor]
                judged, ulps = judge(g, w, scale, fmt, bound.k), ulp_distance(g, w, fmt)
                for index in np.ndindex(w.shape):
                    marker = ""
                    if judged.outside[index] and not diverged:
                        special = judged.special[index]
                        why = "NaN, inf and the sign of zero are exact" if special else f"bound k = {bound.k:g}"
                        diverged, marker = True, f"  <-- first divergence ({why})"
                    branch = ""
                    if quantity == "params" and want.branches is not None:
                        branch = BRANCH_NAMES[int(want.branches[tensor].reshape(w.shape)[index])]
                    name = f"{quantity}[{tensor}]{list(index) if index else ''}"
                    print(
                        f"  {step:>4}  {name:<16} {_text(w[index], fmt):<40} {_text(g[index], fmt):<40} "
                        f"{min(int(ulps[index]), 999999):>6} {float(judged.needed[index]):>8.3g}  {branch}{marker}",
                        file=out,
                    )
        if want.count is not None and got.count != want.count:
            print(f"  {step:>4}  counter: got {got.count}, expected {want.count}  <-- exact", file=out)
            diverged = True
    print(f"  {'DIVERGES' if diverged else 'conforms'}", file=out)
    return 1 if diverged else 0


def _text(x: np.generic | np.ndarray, fmt: FloatFormat) -> str:
    return f"{bits_to_hex(x, fmt)} {decimal_string(x, 12)}"
