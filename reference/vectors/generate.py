"""Generate the corpus: evaluate every case in the oracle, apply the guard bands, encode, hash."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import pathlib
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import __version__
from .._arith import OracleOps
from .._numerics import FloatFormat, format_of
from ..dialects import DIALECTS
from ..sparse import SparseGrad
from ..trajectory import ORACLE_DPS, Step, run, to_format
from . import tcids
from .cases import SEED, CaseSpec, catalogue, given_state_catalogue, redraw
from .codec import SCHEMA_NAME, dumps, encode_expected, encode_hparams, encode_input
from .flags import FLAGS

__all__ = ["VECTOR_SET_VERSION", "Selection", "build", "diff_summary", "file_path", "manifest", "write"]

VECTOR_SET_VERSION = "2.0.0"
CHECK_DPS = 2 * ORACLE_DPS
MAX_REDRAWS = 20


@dataclass(frozen=True)
class Selection:
    """Which part of the corpus to build; None means all."""

    dialects: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    levels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for d in self.dialects or ():
            if d not in DIALECTS:
                raise ValueError(f"unknown dialect {d!r}; known dialects: {', '.join(DIALECTS)}")
        for t in self.dtypes or ():
            format_of(t)
        for level in self.levels or ():
            if level not in (1, 2):
                raise ValueError(f"invalid level {level}: must be 1 or 2")

    @property
    def is_complete(self) -> bool:
        return self.dtypes is None and self.levels is None

    def specs(self, dialect_id: str) -> list[CaseSpec]:
        dtypes = [t for t in DIALECTS[dialect_id].dtypes if self.dtypes is None or t in self.dtypes]
        cases = [spec for t in dtypes for spec in catalogue(dialect_id, t)]
        cases += [spec for t in dtypes for spec in given_state_catalogue(dialect_id, t)]
        return [c for c in cases if self.levels is None or c.level in self.levels]


def file_path(dialect_id: str) -> str:
    return f"{dialect_id}.json"


def _trajectory(spec: CaseSpec, dps: int) -> tuple[list[Step], OracleOps]:
    ops = OracleOps(format_of(spec.dtype))
    steps = run(
        spec.dialect,
        spec.hparams,
        spec.dtype,
        spec.params,
        spec.grads,
        spec.losses,
        dps=dps,
        initial_count=spec.initial_count,
        initial_state=spec.initial_state,
        ops=ops,
        include_initial=True,
        step_scales=True,
    )
    return steps, ops


def _expected(spec: CaseSpec, steps: list[Step]) -> list[dict[str, Any]]:
    fmt = format_of(spec.dtype)
    counter = DIALECTS[spec.dialect].counter
    out: list[dict[str, Any]] = []
    for s in steps[1:]:
        out.append(
            {
                "params": _encoded(s, "params", s.params, fmt),
                "state": {name: _encoded(s, name, arrays, fmt) for name, arrays in s.state.items()},
                "count": s.count if counter else None,
            }
        )
        if s.branches is not None:
            out[-1]["branches"] = [b.ravel().tolist() for b in s.branches]
    return out


def _encoded(step: Step, name: str, arrays: list[Any], fmt: FloatFormat) -> list[dict[str, Any]]:
    if step.error_scale is None or step.step_scale is None:
        raise RuntimeError("the corpus needs the oracle's error scales, the step's own included")
    return [
        encode_expected(a, scale, alone, fmt)
        for a, scale, alone in zip(arrays, step.error_scale[name], step.step_scale[name], strict=True)
    ]


def evaluate(spec: CaseSpec) -> dict[str, Any]:
    """One case as its JSON record (without tcId). Redraws random cases of a branching family (RProp) that fall
    in a guard band of a branch edge."""
    branches = DIALECTS[spec.dialect].family.has_branches
    for _ in range(MAX_REDRAWS):
        steps, ops = _trajectory(spec, ORACLE_DPS)
        if not branches or "BOUNDARY" in spec.flags or not ops.near_ties:
            break
        if "RANDOM" not in spec.flags:
            raise ValueError(
                f"{spec.dialect} {spec.dtype} {spec.comment!r} is near a branch edge "
                f"({ops.near_ties[0]}): flag it BOUNDARY or move it"
            )
        spec = redraw(spec)
    else:
        raise ValueError(f"{spec.seed_key}: every draw fell in a guard band")
    expected = _expected(spec, steps)
    if _expected(spec, _trajectory(spec, CHECK_DPS)[0]) != expected:
        raise ValueError(f"{spec.dialect} {spec.dtype} {spec.comment!r}: doubling the precision changed a digit")
    fmt = format_of(spec.dtype)
    initial = steps[0]
    record: dict[str, Any] = {
        "comment": spec.comment,
        "flags": list(spec.flags),
        "level": spec.level,
        "hparams": encode_hparams(spec.hparams),
        "initialParams": [encode_input(p, fmt) for p in initial.params],
        "initialState": {
            "count": initial.count if DIALECTS[spec.dialect].counter else None,
            "slots": {name: [encode_input(a, fmt) for a in arrays] for name, arrays in initial.state.items()},
        },
        "grads": [[encode_input(g, fmt) for g in _rounded(row, fmt)] for row in spec.grads],
    }
    if spec.initial_state is not None:
        record["initialState"]["given"] = True
    if spec.losses is not None:
        record["losses"] = [repr(float(x)) for x in spec.losses]
    if spec.checkpoint is not None:
        record["checkpoint"] = spec.checkpoint
    record["expected"] = expected
    return record


def _rounded(row: list[Any], fmt: FloatFormat) -> list[Any]:
    return [
        SparseGrad(g.indices, to_format(g.values, fmt)) if isinstance(g, SparseGrad) else to_format(g, fmt) for g in row
    ]


def _file_bytes(
    dialect_id: str, specs: Sequence[CaseSpec], records: Sequence[dict[str, Any]], registry: tcids.Registry
) -> bytes:
    """One dialect's file; each case takes its registered tcId (a new case, the next free one: see tcids)."""
    ids = tcids.assign(
        registry, dialect_id, [tcids.fingerprint(s.dtype, r) for s, r in zip(specs, records, strict=True)]
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for tc_id, spec, record in zip(ids, specs, records, strict=True):
        groups.setdefault(spec.dtype, []).append({"tcId": tc_id, **record})
    used = sorted({flag for record in records for flag in record["flags"]})
    doc = {
        "schema": SCHEMA_NAME,
        "dialect": dialect_id,
        "family": DIALECTS[dialect_id].family.name,
        "vectorSetVersion": VECTOR_SET_VERSION,
        "numberOfTests": len(records),
        "notes": {flag: _note(flag) for flag in used},
        "testGroups": [
            {
                "dtype": dtype,
                "source": {
                    "generator": f"optconf {__version__}",
                    "mpmathDps": ORACLE_DPS,
                    "precisionCheckDps": CHECK_DPS,
                    "seed": SEED,
                },
                "tests": tests,
            }
            for dtype, tests in groups.items()
        ],
    }
    return (dumps(doc) + "\n").encode()


def _note(flag: str) -> dict[str, Any]:
    note = FLAGS[flag]
    out: dict[str, Any] = {"description": note.description}
    if note.bug:
        out["bug"] = note.bug
    if note.links:
        out["links"] = list(note.links)
    return out


def build(
    selection: Selection = Selection(),
    jobs: int = 2,
    progress: bool = True,
    *,
    registry: tcids.Registry | None,
) -> dict[str, bytes]:
    """The selected dialect files as bytes, keyed by their path under vectors/, and the tcId registry after them.

    `registry` (required, so that no caller numbers cases by position by mistake) gives every registered case its
    id; None starts a new corpus, whose ids count from 1.
    """
    registry = {d: dict(ids) for d, ids in (registry or {}).items()}
    dialects = selection.dialects or tuple(DIALECTS)
    per_dialect = {d: selection.specs(d) for d in dialects}
    specs = [s for d in dialects for s in per_dialect[d]]
    records = _evaluate_all(specs, jobs, progress)
    files, start = {}, 0
    for d in dialects:
        n = len(per_dialect[d])
        files[file_path(d)] = _file_bytes(d, per_dialect[d], records[start : start + n], registry)
        start += n
    files[tcids.REGISTRY_FILE] = tcids.dumps(registry)
    return files


def _evaluate_all(specs: list[CaseSpec], jobs: int, progress: bool) -> list[dict[str, Any]]:
    bar = _progress(len(specs), progress)
    if jobs <= 1:
        results = []
        for spec in specs:
            results.append(evaluate(spec))
            bar.update(1)
    else:
        # spawn, not fork: the caller may hold threads (JAX, TF) that a forked child would deadlock on.
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = []
            for record in pool.imap(evaluate, specs, chunksize=4):
                results.append(record)
                bar.update(1)
    bar.close()
    return results


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="cases", unit="case", disable=not enabled, file=sys.stderr)


def manifest(files: dict[str, bytes]) -> bytes:
    entries = {}
    for path in sorted(set(files) - {tcids.REGISTRY_FILE}):
        doc = json.loads(files[path])
        levels = Counter(str(t["level"]) for g in doc["testGroups"] for t in g["tests"])
        entries[path] = {
            "sha256": hashlib.sha256(files[path]).hexdigest(),
            "numberOfTests": doc["numberOfTests"],
            "dialects": {doc["dialect"]: doc["numberOfTests"]},
            "levels": dict(sorted(levels.items())),
        }
    doc = {"vectorSetVersion": VECTOR_SET_VERSION, "schema": SCHEMA_NAME, "files": entries}
    return (dumps(doc) + "\n").encode()


def write(root: pathlib.Path, files: dict[str, bytes]) -> None:
    """Write the dialect files, then a manifest covering every dialect file under `root`."""
    for path, data in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    present = {file_path(d): (root / file_path(d)).read_bytes() for d in DIALECTS if (root / file_path(d)).exists()}
    (root / "MANIFEST.json").write_bytes(manifest(present))


def diff_summary(
    root: pathlib.Path,
    files: dict[str, bytes],
    limit: int = 20,
    read: Callable[[pathlib.Path], bytes] = pathlib.Path.read_bytes,
) -> list[str]:
    """Readable differences between the corpus on disk and freshly generated `files` (empty if identical).

    `files` may be a subset of the dialects; the manifest is then compared for those files only. `read` reads a
    file on disk (the command line passes one that refuses anything but a regular file of sane size).
    """
    lines: list[str] = []
    for path, fresh in files.items():
        target = root / path
        if not target.exists():
            lines.append(f"{path}: missing on disk")
            continue
        old = read(target)
        if old != fresh:
            registry = path == tcids.REGISTRY_FILE
            lines.extend(
                [f"{path}: differs (new cases, or ids never registered)"]
                if registry
                else _case_diffs(path, old, fresh, limit)
            )
    fresh_manifest = manifest(files)
    if not (root / "MANIFEST.json").exists():
        return [*lines, "MANIFEST.json: missing on disk"]
    on_disk = read(root / "MANIFEST.json")
    if len(set(files) - {tcids.REGISTRY_FILE}) == len(DIALECTS):
        if on_disk != fresh_manifest:
            lines.append("MANIFEST.json: differs")
        return lines
    listed, wanted = json.loads(on_disk)["files"], json.loads(fresh_manifest)["files"]
    lines.extend(f"MANIFEST.json: entry for {path} differs" for path in wanted if listed.get(path) != wanted[path])
    return lines


def _case_diffs(path: str, old: bytes, fresh: bytes, limit: int) -> Iterable[str]:
    try:
        before, after = _cases_by_id(json.loads(old)), _cases_by_id(json.loads(fresh))
    except (json.JSONDecodeError, KeyError, TypeError):
        yield f"{path}: unreadable on disk"
        return
    changed = [i for i in sorted(after) if i in before and before[i] != after[i]]
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    yield f"{path}: {len(changed)} changed, {len(added)} added, {len(removed)} removed test cases"
    for tc_id in changed[:limit]:
        yield f"  tc{tc_id:04d}: {_first_difference(before[tc_id], after[tc_id])}"
    if len(before) == len(after) and not changed:
        yield "  (byte differences outside the test cases: header, notes or formatting)"


def _cases_by_id(doc: dict[str, Any]) -> dict[int, Any]:
    return {t["tcId"]: t for g in doc["testGroups"] for t in g["tests"]}


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {json.dumps(a)[:60]} -> {json.dumps(b)[:60]}"
