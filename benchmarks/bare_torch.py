"""The denominator of the runner-overhead ratio: torch alone, creating and stepping what the suite gives it.

Every subject of `conformance.adapters.torch.subjects()` (Adagrad single/foreach/fused, Rprop single/foreach),
every level-1 corpus case of its dialect: tensors built from the case's arrays, the torch class constructed with
the case's keywords, `.grad` set, `step()` called once per gradient row. No adapter, no reading back, no
comparison, no pytest.

Two workloads:

- `suite` (default): the optimizer constructions and steps that the level-1 checks ask of torch, on the cases
  each check selects (conformance.session.CASE_FILTERS): trajectory and teacher_forced construct once and step
  through the case (counter_and_slots reuses the trajectory); checkpoint constructs twice (before and after the
  save) and steps through once; config_round_trip constructs and steps through twice; inputs_not_mutated once;
  invalid_hparams constructs (and where torch accepts, steps once) each refused setting. Cases a subject cannot
  take (fused Adagrad and sparse gradients) are left out, as the suite skips them.
- `once`: every (subject, case) pair constructed and stepped once.

The inputs are decoded before the clock starts. The clock covers `import torch`, torch's first optimizer (which
imports torch._dynamo) and the loop: what torch itself needs to step these cases.

Run as a script: `python benchmarks/bare_torch.py [--workload suite|once]`; prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

import reference
from conformance.checks import invalid_settings
from conformance.corpus import Case, load
from conformance.session import CASE_FILTERS
from reference.sparse import SparseGrad

FLAVOURS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
SUBJECTS = [
    ("adagrad/torch", "Adagrad", "single"),
    ("adagrad/torch", "Adagrad", "foreach"),
    ("adagrad/torch", "Adagrad", "fused"),
    ("rprop/torch", "Rprop", "single"),
    ("rprop/torch", "Rprop", "foreach"),
]


@dataclass(frozen=True)
class Job:
    """One optimizer construction and the gradient rows it is stepped through."""

    class_name: str
    kwargs: dict[str, Any]
    params: list[np.ndarray]
    grads: list[list[Any]]
    losses: list[float] | None


def _kwargs(hparams: dict[str, Any], flavour: str) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()} | FLAVOURS[flavour]


# What each check asks of torch for one case of n steps: (start, stop) row ranges, one per optimizer it constructs.
# Which cases a check runs on is conformance.session.CASE_FILTERS, shared with the suite. counter_and_slots reuses
# the trajectory; replicas is skipped (torch's adapter does not claim it) before anything is constructed.
def _per_check(check: str, case: Case) -> list[tuple[int, int]]:
    n, k = len(case.grads), case.checkpoint
    return {
        "trajectory": [(0, n)],
        "teacher_forced": [(0, n)],
        "inputs_not_mutated": [(0, n)],
        "config_round_trip": [(0, n), (0, n)],  # the original and the rebuilt optimizer
        "checkpoint": [(0, k), (k, n)] if k is not None else [],  # up to the save, then the loaded one
    }.get(check, [])


def _repeats(case: Case, workload: str) -> list[tuple[int, int]]:
    if workload == "once":
        return [(0, len(case.grads))]
    return [span for check, keep in CASE_FILTERS.items() if keep(case) for span in _per_check(check, case)]


def jobs(workload: str = "suite") -> list[Job]:
    corpus = load()
    out = []
    for dialect_id, class_name, flavour in SUBJECTS:
        for case in corpus:
            if case.dialect != dialect_id or case.level > 1:
                continue
            if flavour == "fused" and any(isinstance(g, SparseGrad) for row in case.grads for g in row):
                continue  # fused Adagrad takes no sparse gradients: the suite skips these cases
            for start, stop in _repeats(case, workload):
                losses = None if case.losses is None else case.losses[start:stop]
                grads = case.grads[start:stop]
                out.append(Job(class_name, _kwargs(case.hparams, flavour), case.initial_params, grads, losses))
        if workload == "suite":
            dialect = reference.get(dialect_id)
            dtype = "float32" if "float32" in dialect.dtypes else dialect.dtypes[0]
            params = [np.ones((2,), dtype=reference.format_of(dtype).np_dtype)]
            step = [[np.full((2,), 0.5, dtype=params[0].dtype)]]
            for setting in invalid_settings(dialect):  # the control with valid values, then the refused ones
                for hparams in (setting.valid, setting.invalid):
                    out.append(Job(class_name, _kwargs(hparams, flavour), params, step, None))
    return out


def _carrier(a: np.ndarray) -> np.ndarray:
    """A copy torch.from_numpy takes: bfloat16 travels as float32 (exactly)."""
    return np.array(a, dtype=np.float32 if a.dtype.name == "bfloat16" else a.dtype, copy=True)


def run(workload: str = "suite") -> dict[str, Any]:
    prepared = time.perf_counter(), time.process_time()
    work = jobs(workload)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    import torch

    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
    constructions = steps = refused = 0
    warnings.filterwarnings("ignore", message="Sparse invariant checks")
    for job in work:
        tensors = [torch.from_numpy(_carrier(p)).to(dtypes[p.dtype.name]).requires_grad_(True) for p in job.params]
        constructions += 1
        try:
            optimizer = getattr(torch.optim, job.class_name)(tensors, **job.kwargs)
        except (ValueError, TypeError):
            refused += 1  # invalid_hparams: torch refuses at construction
            continue
        for t, row in enumerate(job.grads):
            for tensor, g in zip(tensors, row, strict=True):
                if isinstance(g, SparseGrad):
                    index = torch.tensor([list(g.indices)], dtype=torch.int64)
                    values = torch.from_numpy(_carrier(g.values)).to(tensor.dtype)
                    tensor.grad = torch.sparse_coo_tensor(index, values, tuple(tensor.shape))
                else:
                    tensor.grad = torch.from_numpy(_carrier(g)).to(tensor.dtype)
            loss = None if job.losses is None else job.losses[t]
            optimizer.step() if loss is None else optimizer.step(lambda loss=loss: loss)
            steps += 1
    return {
        "workload": workload,
        "torch_wall_s": time.perf_counter() - start_wall,
        "torch_cpu_s": time.process_time() - start_cpu,
        "prepare_wall_s": start_wall - prepared[0],
        "prepare_cpu_s": start_cpu - prepared[1],
        "constructions": constructions,
        "refused": refused,
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="torch alone, stepping the level-1 cases of its dialects")
    parser.add_argument("--workload", choices=("suite", "once"), default="suite")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.workload)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
