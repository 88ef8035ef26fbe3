"""Loading the golden corpus: schema, manifest hashes and counts are checked before any case is used."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import pathlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

from reference import DIALECTS, Dialect, format_of
from reference.dialects import LOSS_SLOT
from reference.sparse import SparseGrad
from reference.vectors import tcids
from reference.vectors.codec import (
    MAX_STEPS,
    MAX_TENSORS,
    SCHEMA_NAME,
    decimal_mismatch,
    decode_hparams,
    decode_tensor,
    element_count,
)
from reference.vectors.flags import FLAGS

from .inputs import InputError, MissingInput, one_line, parse_json, read_regular, shown

__all__ = [
    "MIN_TESTS_PER_DIALECT",
    "Case",
    "Corpus",
    "CorpusError",
    "ExpectedStep",
    "case_from_json",
    "default_root",
    "load",
    "problems",
]

# A corpus that shrinks below this many cases per dialect is refused, not silently accepted.
MIN_TESTS_PER_DIALECT = 15


class CorpusError(Exception):
    """The corpus is unusable; the message names the file and the reason."""


def default_root() -> pathlib.Path:
    """OPTCONF_VECTORS if set; else the checkout's vectors/ folder; else the corpus installed with the wheel."""
    env = os.environ.get("OPTCONF_VECTORS")
    if env:
        return pathlib.Path(env)
    return _packaged_root()


def _packaged_root() -> pathlib.Path:
    """The corpus that comes with this code: the checkout's vectors/ folder, else the installed optconf_vectors."""
    checkout = pathlib.Path(__file__).resolve().parents[1] / "vectors"
    if (checkout / "MANIFEST.json").is_file():
        return checkout
    import importlib.util

    installed = importlib.util.find_spec("optconf_vectors")
    if installed is None or not installed.submodule_search_locations:
        raise CorpusError("no corpus found: not in a checkout, optconf_vectors is not installed, OPTCONF_VECTORS unset")
    return pathlib.Path(next(iter(installed.submodule_search_locations)))


@dataclass(frozen=True)
class ExpectedStep:
    params: list[np.ndarray]
    state: dict[str, list[np.ndarray]]
    count: int | None
    scales: dict[str, list[np.ndarray]]  # "params" and each slot name: S over the trajectory (free running)
    step_scales: dict[str, list[np.ndarray]]  # S of this step alone, from the previous stored state (teacher forcing)
    branches: list[np.ndarray] | None

    def scales_for(self, forced: bool) -> dict[str, list[np.ndarray]]:
        """The error scales that bound an implementation: of this step alone when it was handed the previous
        expected state (`forced`), else accumulated over the trajectory it ran itself."""
        return self.step_scales if forced else self.scales


@dataclass(frozen=True)
class Case:
    """One test case, decoded on first use."""

    dialect: str
    dtype: str
    record: dict[str, Any] = field(repr=False)

    @property
    def tc_id(self) -> int:
        return int(self.record["tcId"])

    @property
    def test_id(self) -> str:
        return f"{self.dialect}-{self.dtype}-tc{self.tc_id:04d}"

    @property
    def flags(self) -> tuple[str, ...]:
        return tuple(self.record["flags"])

    @property
    def level(self) -> int:
        return int(self.record["level"])

    @property
    def comment(self) -> str:
        return str(self.record["comment"])

    @property
    def checkpoint(self) -> int | None:
        return self.record.get("checkpoint")

    @cached_property
    def hparams(self) -> Mapping[str, Any]:
        return MappingProxyType(decode_hparams(self.record["hparams"]))  # read-only: see `_read_only`

    @cached_property
    def initial_params(self) -> list[np.ndarray]:
        return [self._tensor(t) for t in self.record["initialParams"]]

    @cached_property
    def initial_state(self) -> tuple[int | None, dict[str, list[np.ndarray]]]:
        state = self.record["initialState"]
        return state["count"], {name: [self._tensor(t) for t in ts] for name, ts in state["slots"].items()}

    @property
    def state_given(self) -> bool:
        """The initial state is an input: a counter that starts late, or slots given rather than built (1.1.0)."""
        state = self.record["initialState"]
        return bool(state["count"]) or state.get("given", False)

    @cached_property
    def grads(self) -> list[list[Any]]:
        fmt = format_of(self.dtype)
        return [[_read_only(decode_tensor(t, fmt)) for t in row] for row in self.record["grads"]]

    @cached_property
    def losses(self) -> list[float] | None:
        losses = self.record.get("losses")
        return None if losses is None else [float(x) for x in losses]

    @cached_property
    def expected(self) -> list[ExpectedStep]:
        return [self._expected_step(e) for e in self.record["expected"]]

    def _tensor(self, data: dict[str, Any]) -> np.ndarray:
        value = decode_tensor(data, format_of(self.dtype))
        assert isinstance(value, np.ndarray)
        return _read_only(value)

    def _expected_step(self, data: dict[str, Any]) -> ExpectedStep:
        records = {"params": data["params"]} | data["state"]
        branches = data.get("branches")
        return ExpectedStep(
            params=[self._tensor(t) for t in data["params"]],
            state={name: [self._tensor(t) for t in ts] for name, ts in data["state"].items()},
            count=data["count"],
            scales={name: [_scales(t, "scale") for t in ts] for name, ts in records.items()},
            step_scales={name: [_scales(t, "stepScale") for t in ts] for name, ts in records.items()},
            branches=None if branches is None else [_read_only(np.asarray(b, dtype=np.int8)) for b in branches],
        )


def _scales(data: dict[str, Any], field_name: str) -> np.ndarray:
    values = np.array([float(x) for x in data[field_name]], dtype=np.float64)
    return _read_only(values.reshape(data["shape"]))


def _read_only(value: Any) -> Any:
    """The decoded corpus is shared by every check of a session, so no array of it may be written: what is handed
    to an implementation is a copy (`conformance.adapter.handed`), and a stray write raises instead of silently
    changing what later checks expect."""
    array = value.values if isinstance(value, SparseGrad) else value
    array.flags.writeable = False
    return value


@dataclass(frozen=True)
class Corpus:
    root: pathlib.Path
    version: str
    sha256: str  # of MANIFEST.json, which pins every file's hash
    cases: list[Case]

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)


@functools.cache
def _validator(case_only: bool) -> tuple[Callable[..., Any], type[Exception]]:
    """The packaged schema compiled to Python, once per process (about 0.1 s for the whole file, less for a case).

    fastjsonschema compiles a schema to source code and runs it, so the schema compiled is always the one shipped
    with this code, never the schema.json beside a corpus named by --vectors or OPTCONF_VECTORS: what a user hands
    the runner is validated as data, never run. A corpus is validated against the schema of the code reading it.
    """
    import fastjsonschema

    schema = parse_json(read_regular(_packaged_root() / SCHEMA_NAME), SCHEMA_NAME)
    if case_only:
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/case"}
    # The exception class travels with the validator: a caller that imported fastjsonschema anew (after a test
    # harness dropped it from sys.modules) would otherwise catch another module's class and miss this one's.
    return fastjsonschema.compile(schema), fastjsonschema.JsonSchemaValueException


def _schema_violation(doc: Any, *, case_only: bool = False, prefix: str = "$") -> str | None:
    """The first schema violation, or None. `case_only` validates one test case (the schema's `$defs/case`), as
    `optconf explain --case-json` reads it."""
    validate, violation = _validator(case_only)
    try:
        validate(doc, name_prefix=prefix)
    except violation as exc:
        return str(getattr(exc, "message", exc))[:200]
    return None


def problems(root: pathlib.Path | None = None) -> list[str]:
    """Everything wrong with the corpus at `root`, one line per problem, each naming its file.

    Empty exactly when `load(root)` succeeds, except that only this also compares every expected decimal with its
    hex value: the runner never reads the decimals, so a conformance run does not pay for parsing them.
    """
    return _scan(root or default_root(), None, thorough=True).problems


@dataclass(frozen=True)
class _Scan:
    problems: list[str]
    version: str
    manifest_sha256: str
    cases: list[Case]


def _scan(root: pathlib.Path, dialects: frozenset[str] | None, thorough: bool) -> _Scan:
    """One pass over the corpus: the problems, the manifest's version and hash, and every case that decoded.

    Each file is read, hashed, parsed and validated once, and each case is decoded once: `load` keeps these
    `Case` objects, whose decoded arrays are cached, instead of parsing and decoding the corpus a second time.
    With `dialects`, only the files MANIFEST.json lists for them are read; the manifest itself is always read and
    checked, whole, before any file it lists is touched.
    """
    manifest_path = root / "MANIFEST.json"
    try:
        manifest_bytes = read_regular(manifest_path)
        manifest = parse_json(manifest_bytes, str(manifest_path))
    except InputError as exc:
        return _Scan([one_line(f"unreadable manifest: {exc}")], "", "", [])
    found = list(_manifest_problems(root, manifest_path, manifest))
    if found:
        return _Scan([one_line(p) for p in found], "", "", [])
    listed: dict[str, dict[str, Any]] = manifest["files"]
    counts: Counter[str] = Counter()
    cases: list[Case] = []
    refused: set[str] = set()  # dialects of files refused before their cases were counted
    for relative, entry in sorted(listed.items()):
        if dialects is None or not dialects.isdisjoint(entry["dialects"]):
            file_found = list(_file_problems(root, relative, entry, counts, cases, thorough))
            found.extend(file_found)
            if file_found:
                refused |= set(entry["dialects"]) - set(counts)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.json")}
    on_disk -= {"MANIFEST.json", SCHEMA_NAME, tcids.REGISTRY_FILE}
    found.extend(f"{root / extra}: not listed in MANIFEST.json" for extra in sorted(on_disk - set(listed)))
    if thorough:
        found.extend(_tcid_problems(root, cases))
    for dialect in DIALECTS if dialects is None else sorted(dialects):
        # A refused file already has its line; "0 test cases" would be the same problem twice.
        if counts[dialect] < MIN_TESTS_PER_DIALECT and dialect not in refused:
            found.append(
                f"{root}: {dialect} has {counts[dialect]} test cases, fewer than the minimum {MIN_TESTS_PER_DIALECT}"
            )
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    return _Scan([one_line(p) for p in found], manifest["vectorSetVersion"], digest, cases)


def _tcid_problems(root: pathlib.Path, cases: list[Case]) -> Iterator[str]:
    """Each case's tcId against the registry: an id given to other inputs is a silent reuse, and refused."""
    path = root / tcids.REGISTRY_FILE
    try:
        registry = tcids.parse(parse_json(read_regular(path), str(path)), str(path))
    except (InputError, ValueError) as exc:
        yield f"{path}: {exc}" if path.exists() else f"{path}: missing; `optconf generate` writes it"
        return
    by_dialect: dict[str, list[tuple[int, str]]] = {}
    for case in cases:
        by_dialect.setdefault(case.dialect, []).append((case.tc_id, tcids.fingerprint(case.dtype, case.record)))
    for dialect, pairs in sorted(by_dialect.items()):
        yield from (f"{path}: {dialect} {line}" for line in tcids.mismatches(registry, dialect, pairs))


# A listed file is a relative path of plain names ending in .json: no absolute path, no "." or ".." component
# (no name starts with a dot), no backslash or drive, no control character.
_LISTED_PATH = re.compile(r"(?:[A-Za-z0-9_+-][A-Za-z0-9_.+-]*/)*[A-Za-z0-9_+-][A-Za-z0-9_.+-]*\.json\Z")
_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_counts(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_count(v) for v in value.values())


def _field_problems(
    where: str, doc: dict[str, Any], fields: dict[str, tuple[Callable[[Any], bool], str]]
) -> Iterator[str]:
    """Each of `fields` present and of its kind, and no other field: one line per problem."""
    for name in sorted(set(doc) - set(fields)):
        yield f"{where}: unknown field {json.dumps(name)}"
    for name, (ok, kind) in fields.items():
        if name not in doc:
            yield f"{where}: {name} is missing ({kind} expected)"
        elif not ok(doc[name]):
            yield f"{where}: {name} must be {kind}, not {shown(doc[name])}"


_MANIFEST_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "vectorSetVersion": (lambda v: isinstance(v, str) and bool(_VERSION.match(v)), 'a version string like "1.0.0"'),
    "schema": (lambda v: v == SCHEMA_NAME, json.dumps(SCHEMA_NAME)),
    "files": (lambda v: isinstance(v, dict), "an object of file entries"),
}
_ENTRY_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "sha256": (lambda v: isinstance(v, str) and bool(_SHA256.match(v)), "64 lowercase hex digits"),
    "numberOfTests": (_is_count, "an integer >= 0"),
    "dialects": (_is_counts, "an object of dialect ids to integers >= 0"),
    "levels": (_is_counts, "an object of levels to integers >= 0"),
}


def _manifest_problems(root: pathlib.Path, path: pathlib.Path, doc: Any) -> Iterator[str]:
    """MANIFEST.json's structure, and every path it lists confined to the corpus folder."""
    if not isinstance(doc, dict):
        yield f"{path}: must be a JSON object, not {shown(doc)}"
        return
    yield from _field_problems(str(path), doc, _MANIFEST_FIELDS)
    files = doc.get("files")
    if not isinstance(files, dict):
        return
    inside = root.resolve()
    for relative, entry in files.items():
        where = f"{path}: files[{json.dumps(relative)}]"
        confinement = _confinement_problem(root, inside, relative)
        if confinement:
            yield f"{where}: {confinement}"
        if isinstance(entry, dict):
            yield from _field_problems(where, entry, _ENTRY_FIELDS)
        else:
            yield f"{where}: must be an object, not {shown(entry)}"


def _confinement_problem(root: pathlib.Path, inside: pathlib.Path, relative: str) -> str | None:
    """Why a listed path may not be read, or None. Decided from the name and the links alone: nothing is opened."""
    if not _LISTED_PATH.match(relative):
        return "not a relative path of plain names ending in .json inside the corpus folder"
    try:
        resolved = (root / relative).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symbolic link loop (Python 3.11 and 3.12)
        return f"cannot be resolved ({exc})"
    if not resolved.is_relative_to(inside):
        return "a symbolic link that leads outside the corpus folder"
    return None


def _file_problems(
    root: pathlib.Path,
    relative: str,
    entry: dict[str, Any],
    counts: Counter[str],
    cases: list[Case],
    thorough: bool,
) -> Iterator[str]:
    path = root / relative
    try:
        data = read_regular(path)
    except MissingInput:
        yield f"{path}: listed in MANIFEST.json but missing"
        return
    except InputError as exc:
        yield str(exc)
        return
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        yield f"{path}: SHA-256 does not match MANIFEST.json (edited or corrupted)"
    try:
        doc = parse_json(data, str(path))
    except InputError as exc:
        yield str(exc)
        return
    violation = _schema_violation(doc)
    if violation:
        yield f"{path}: schema violation: {violation}"
        return
    yield from _content_problems(path, doc, entry, cases, thorough)
    counts[doc["dialect"]] += doc["numberOfTests"]


def _content_problems(
    path: pathlib.Path, doc: dict[str, Any], entry: dict[str, Any], cases: list[Case], thorough: bool
) -> Iterator[str]:
    tests = [(g["dtype"], t) for g in doc["testGroups"] for t in g["tests"]]
    if doc["numberOfTests"] != len(tests):
        yield f"{path}: numberOfTests says {doc['numberOfTests']} but the file holds {len(tests)}"
    if entry["numberOfTests"] != len(tests):
        yield f"{path}: MANIFEST.json counts {entry['numberOfTests']} tests but the file holds {len(tests)}"
    dialect = DIALECTS.get(doc["dialect"])
    if dialect is None:
        yield f"{path}: unknown dialect {doc['dialect']!r}"
        return
    if doc["family"] != dialect.family.name:
        yield f"{path}: family is {doc['family']!r}, but {dialect.id} is of the {dialect.family.name} family"
    if entry["dialects"] != {dialect.id: len(tests)}:
        yield f"{path}: MANIFEST.json lists dialects {entry['dialects']} but the file holds {dialect.id}"
    levels = dict(Counter(str(t["level"]) for _, t in tests))
    if entry["levels"] != levels:
        yield f"{path}: MANIFEST.json counts levels {entry['levels']} but the file holds {levels}"
    for index, group in enumerate(doc["testGroups"]):
        if group["dtype"] not in dialect.dtypes:
            yield f"{path}: testGroups[{index}].dtype: {_no_such_format(dialect, group['dtype'])}"
    yield from _flag_problems(path, doc, tests)
    for dtype, test in tests:
        if dtype not in dialect.dtypes:
            continue  # its group's line says it all: every tensor of the case would be misread
        case = Case(dialect.id, dtype, test)
        found = [f"{path}: tc{case.tc_id:04d}: {p}" for p in _case_problems(case, thorough)]
        yield from found
        if not found:
            cases.append(case)


def _no_such_format(dialect: Dialect, dtype: str) -> str:
    return f"{dialect.id} has no format {dtype!r} (only {', '.join(dialect.dtypes)})"


def _flag_problems(path: pathlib.Path, doc: dict[str, Any], tests: list[tuple[str, dict[str, Any]]]) -> Iterator[str]:
    ids = Counter(t["tcId"] for _, t in tests)
    duplicated = sorted(i for i, n in ids.items() if n > 1)
    if duplicated:
        yield f"{path}: duplicate tcId {duplicated[0]}"
    used = {flag for _, t in tests for flag in t["flags"]}
    for flag in sorted(used - set(doc["notes"])):
        yield f"{path}: flag {flag} is used but not defined in notes"
    for flag in sorted(set(doc["notes"]) - used):
        yield f"{path}: note {flag} is defined but no case uses it"
    for flag in sorted(used - set(FLAGS)):
        yield f"{path}: flag {flag} is not in optconf's flag glossary"


def _case_problems(case: Case, thorough: bool) -> Iterator[str]:
    """What the schema cannot say about one schema-valid case, each as "field.path: what was expected".

    In order: the limits (before anything is decoded), each tensor on its own, the fields that must agree with
    each other, and the values that must parse or be accepted. `thorough` adds the decimal-against-hex comparison.
    """
    limits = list(_limit_problems(case.record))
    if limits:
        yield from limits
        return
    try:
        case.initial_params, case.initial_state, case.grads, case.expected  # noqa: B018 - decoding is the check
    except ValueError as exc:  # the fast path failed: find which tensors, by their field paths
        yield from _tensor_problems(case) or [str(exc)]
        return
    dialect = DIALECTS[case.dialect]
    yield from _agreement_problems(case, dialect)
    yield from _value_problems(case, dialect)
    if thorough:
        yield from _decimal_problems(case)


def _limit_problems(record: dict[str, Any]) -> Iterator[str]:
    for name in ("grads", "expected"):
        if len(record[name]) > MAX_STEPS:
            yield f"{name}: {len(record[name])} steps; at most {MAX_STEPS} are accepted"
    if len(record["initialParams"]) > MAX_TENSORS:
        yield f"initialParams: {len(record['initialParams'])} tensors; at most {MAX_TENSORS} are accepted"


def _tensor_records(record: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every tensor record of a case with its field path, and whether it is an expected one (with decimals)."""
    for i, t in enumerate(record["initialParams"]):
        yield f"initialParams[{i}]", t, False
    for name, tensors in record["initialState"]["slots"].items():
        for i, t in enumerate(tensors):
            yield f"initialState.slots.{name}[{i}]", t, False
    for step, row in enumerate(record["grads"]):
        for i, t in enumerate(row):
            yield f"grads[{step}][{i}]", t, False
    for step, expected in enumerate(record["expected"]):
        for i, t in enumerate(expected["params"]):
            yield f"expected[{step}].params[{i}]", t, True
        for name, tensors in expected["state"].items():
            for i, t in enumerate(tensors):
                yield f"expected[{step}].state.{name}[{i}]", t, True


def _tensor_problems(case: Case) -> list[str]:
    """Each tensor record that does not decode, by field path: the slow path, taken only once decoding failed."""
    fmt = format_of(case.dtype)
    found = []
    for where, data, expected in _tensor_records(case.record):
        try:
            count = element_count(data["shape"])
            decode_tensor(data, fmt)
        except ValueError as exc:
            found.append(f"{where}: {exc}")
            continue
        for field_name in ("scale", "stepScale") if expected else ():
            if len(data[field_name]) != count:
                found.append(f"{where}: {len(data[field_name])} {field_name} values for shape {data['shape']}")
    return found


def _agreement_problems(case: Case, dialect: Dialect) -> Iterator[str]:
    """The fields that must agree: steps, losses, checkpoint, counter, slots, and every shape with its parameter's."""
    record, steps = case.record, len(case.grads)
    if len(case.expected) != steps:
        yield f"expected: {len(case.expected)} steps, but grads has {steps}"
    losses = record.get("losses")
    if losses is not None and len(losses) != steps:
        yield f"losses: {len(losses)} values for {steps} steps"
    if (losses is not None) != dialect.needs_loss:
        yield f"losses: {dialect.id} " + ("needs one loss per step" if dialect.needs_loss else "takes no losses")
    checkpoint = case.checkpoint
    if checkpoint is not None and not 1 <= checkpoint <= steps:
        yield f"checkpoint: {checkpoint} is not one of the steps 1..{steps}"
    shapes = [p.shape for p in case.initial_params]
    layout = _slot_layout(dialect, shapes)
    count, slots = case.initial_state
    yield from _state_problems("initialState", "initialState.slots", count, slots, layout, dialect)
    for step, row in enumerate(case.grads):
        if [getattr(g, "shape", None) for g in row] != shapes:  # a row-sparse gradient has no shape of its own
            yield from _grad_problems(f"grads[{step}]", row, shapes)
    sizes: list[tuple[int, ...]] = [(math.prod(shape),) for shape in shapes]  # branches are stored flat
    for step, expected in enumerate(case.expected):
        if _fits(expected, shapes, layout, sizes, dialect):
            continue  # the common case, decided without building a path or a message
        where = f"expected[{step}]"
        yield from _shape_problems(f"{where}.params", [p.shape for p in expected.params], shapes)
        yield from _state_problems(where, f"{where}.state", expected.count, expected.state, layout, dialect)
        if expected.branches is not None:
            yield from _shape_problems(f"{where}.branches", [b.shape for b in expected.branches], sizes)


def _slot_layout(dialect: Dialect, shapes: list[tuple[int, ...]]) -> dict[str, list[tuple[int, ...]]]:
    """The shapes of every slot the dialect reports, for parameters of `shapes`."""
    layout = {name: shapes for name in dialect.slots.values()}
    return layout | {LOSS_SLOT: [()]} if dialect.keeps_loss else layout


def _fits(
    step: ExpectedStep,
    shapes: list[tuple[int, ...]],
    layout: dict[str, list[tuple[int, ...]]],
    sizes: list[tuple[int, ...]],
    dialect: Dialect,
) -> bool:
    return (
        (step.count is None) == (dialect.counter is None)
        and [p.shape for p in step.params] == shapes
        and {name: [a.shape for a in arrays] for name, arrays in step.state.items()} == layout
        and (step.branches is None or [b.shape for b in step.branches] == sizes)
    )


def _shape_problems(where: str, got: list[tuple[int, ...]], wanted: list[tuple[int, ...]]) -> Iterator[str]:
    if len(got) != len(wanted):
        yield f"{where}: {len(got)} tensors for {len(wanted)} parameters"
        return
    for i, (g, w) in enumerate(zip(got, wanted, strict=True)):
        if g != w:
            yield f"{where}[{i}]: shape {list(g)}, but {list(w)} expected"


def _state_problems(
    where: str,
    slots_where: str,
    count: int | None,
    slots: dict[str, list[np.ndarray]],
    layout: dict[str, list[tuple[int, ...]]],
    dialect: Dialect,
) -> Iterator[str]:
    if (count is None) != (dialect.counter is None):
        keeps = f"counts steps ({dialect.counter})" if dialect.counter else "keeps no counter"
        yield f"{where}.count: {'null' if count is None else count}, but {dialect.id} {keeps}"
    if sorted(slots) != sorted(layout):
        yield f"{slots_where}: slots {sorted(slots)}, but {dialect.id} keeps {sorted(layout)}"
        return
    for name, wanted in layout.items():
        yield from _shape_problems(f"{slots_where}.{name}", [a.shape for a in slots[name]], wanted)


def _grad_problems(where: str, row: list[Any], shapes: list[tuple[int, ...]]) -> Iterator[str]:
    if len(row) != len(shapes):
        yield f"{where}: {len(row)} gradients for {len(shapes)} parameters"
        return
    for i, (grad, shape) in enumerate(zip(row, shapes, strict=True)):
        if not isinstance(grad, SparseGrad):
            if grad.shape != shape:
                yield f"{where}[{i}]: shape {list(grad.shape)}, but the parameter's is {list(shape)}"
        elif not shape or grad.values.shape[1:] != shape[1:]:
            yield f"{where}[{i}]: sparse rows of shape {list(grad.values.shape[1:])} for a parameter of {list(shape)}"
        elif grad.indices and max(grad.indices) >= shape[0]:
            yield f"{where}[{i}]: sparse index {max(grad.indices)} is not a row of the parameter's {shape[0]}"


def _value_problems(case: Case, dialect: Dialect) -> Iterator[str]:
    """The hyperparameters the dialect must accept, and losses that must parse."""
    try:
        dialect.hparams(case.hparams)
    except ValueError as exc:
        yield f"hparams: {exc}"
    try:
        case.losses  # noqa: B018 - parsing is the check
    except ValueError as exc:
        yield f"losses: {exc}"


def _decimal_problems(case: Case) -> Iterator[str]:
    fmt = format_of(case.dtype)
    expected = [(where, data) for where, data, is_expected in _tensor_records(case.record) if is_expected]
    # One comparison for the whole case (a third of the time of one per tensor); the tensors one by one only to
    # say where, once something differs. Counts are checked per tensor: merged, a surplus here could hide a
    # shortfall there.
    merged = {key: [x for _, data in expected for x in data[key]] for key in ("hex", "decimal")}
    if all(len(data["decimal"]) == len(data["hex"]) for _, data in expected) and not decimal_mismatch(merged, fmt):
        return
    for where, data in expected:
        mismatch = decimal_mismatch(data, fmt)
        if mismatch:
            yield f"{where}: {mismatch}"


_CASE_FILE_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dialect": (lambda v: isinstance(v, str) and v in DIALECTS, "a dialect id"),
    "dtype": (lambda v: isinstance(v, str), "a format name"),
    "record": (lambda v: isinstance(v, dict), "a test case object"),
}


def case_from_json(doc: Any, where: str) -> Case:
    """One case as fuzzing saves it (`{"dialect", "dtype", "record"}`), under every check a corpus case gets.

    For `optconf explain --case-json`: the file comes from outside, like the corpus. Raises CorpusError naming
    `where` and the first problem.
    """
    found, case = _standalone_case(doc)
    if case is None or found:
        more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
        raise CorpusError(one_line(f"{where}: {found[0]}{more}"))
    return case


def _standalone_case(doc: Any) -> tuple[list[str], Case | None]:
    if not isinstance(doc, dict):
        return [f"must be a JSON object with dialect, dtype and record, not {shown(doc)}"], None
    found = list(_field_problems("$", doc, _CASE_FILE_FIELDS))
    if found:
        return found, None
    dialect = DIALECTS[doc["dialect"]]
    if doc["dtype"] not in dialect.dtypes:
        return [f"$.dtype: {_no_such_format(dialect, doc['dtype'])}"], None
    violation = _schema_violation(doc["record"], case_only=True, prefix="$.record")
    if violation:
        return [f"schema violation: {violation}"], None
    case = Case(dialect.id, doc["dtype"], doc["record"])
    return [f"$.record.{p}" for p in _case_problems(case, thorough=True)], case


def load(root: pathlib.Path | None = None, dialects: Iterable[str] | None = None) -> Corpus:
    """The corpus, after every check in `problems` (but the decimals); raises CorpusError naming the first problem.

    With `dialects`, only their files are read and checked: a run against one framework does not pay for the
    other dialects. The cases come out of the checking pass already decoded: a session parses and decodes once.
    """
    root = root or default_root()
    wanted = None if dialects is None else frozenset(dialects)
    unknown = sorted((wanted or frozenset()) - set(DIALECTS))
    if unknown:
        raise CorpusError(f"unknown dialect {unknown[0]!r}; the dialects are {', '.join(DIALECTS)}")
    scan = _scan(root, wanted, thorough=False)
    if scan.problems:
        more = f" (and {len(scan.problems) - 1} more problems)" if len(scan.problems) > 1 else ""
        raise CorpusError(f"refusing the corpus: {scan.problems[0]}{more}")
    return Corpus(root, scan.version, scan.manifest_sha256, scan.cases)
