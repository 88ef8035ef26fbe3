"""Loading the golden corpus: schema, manifest hashes and counts are checked before any case is used."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

from reference import DIALECTS, format_of
from reference.sparse import SparseGrad
from reference.vectors.codec import decode_hparams, decode_tensor
from reference.vectors.flags import FLAGS

__all__ = ["MIN_TESTS_PER_DIALECT", "Case", "Corpus", "CorpusError", "ExpectedStep", "default_root", "load", "problems"]

# A corpus that shrinks below this many cases per dialect is refused, not silently accepted.
MIN_TESTS_PER_DIALECT = 15


class CorpusError(Exception):
    """The corpus is unusable; the message names the file and the reason."""


def default_root() -> pathlib.Path:
    """OPTCONF_VECTORS if set; else the checkout's vectors/ folder; else the corpus installed with the wheel."""
    env = os.environ.get("OPTCONF_VECTORS")
    if env:
        return pathlib.Path(env)
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
    scales: dict[str, list[np.ndarray]]  # "params" and each slot name
    branches: list[np.ndarray] | None


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
        scales = {"params": [_scales(t) for t in data["params"]]}
        scales |= {name: [_scales(t) for t in ts] for name, ts in data["state"].items()}
        branches = data.get("branches")
        return ExpectedStep(
            params=[self._tensor(t) for t in data["params"]],
            state={name: [self._tensor(t) for t in ts] for name, ts in data["state"].items()},
            count=data["count"],
            scales=scales,
            branches=None if branches is None else [_read_only(np.asarray(b, dtype=np.int8)) for b in branches],
        )


def _scales(data: dict[str, Any]) -> np.ndarray:
    return _read_only(np.array([float(x) for x in data["scale"]], dtype=np.float64).reshape(data["shape"]))


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


def _schema_errors(doc: Any) -> str | None:
    """The first schema violation, or None. The validator is vectors/schema.json compiled to Python."""
    from conformance._vector_schema import JsonSchemaValueException, validate

    try:
        validate(doc)
    except JsonSchemaValueException as exc:
        return str(exc.message).replace("data", "$", 1)
    return None


def problems(root: pathlib.Path | None = None) -> list[str]:
    """Everything wrong with the corpus at `root`, one message per problem, each naming its file."""
    return _scan(root or default_root(), None)[0]


def _scan(root: pathlib.Path, dialects: frozenset[str] | None) -> tuple[list[str], bytes, list[Case]]:
    """One pass over the corpus: the problems, the manifest's bytes, and every case that decoded.

    Each file is read, hashed, parsed and validated once, and each case is decoded once: `load` keeps these
    `Case` objects, whose decoded arrays are cached, instead of parsing and decoding the corpus a second time.
    With `dialects`, only the files MANIFEST.json lists for them are read; the manifest itself is always read.
    """
    manifest_path = root / "MANIFEST.json"
    manifest_bytes = b""
    try:
        manifest_bytes = manifest_path.read_bytes()
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        listed = manifest["files"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        return [f"{manifest_path}: unreadable manifest ({exc})"], manifest_bytes, []
    found: list[str] = []
    counts: Counter[str] = Counter()
    cases: list[Case] = []
    for relative, entry in sorted(listed.items()):
        if dialects is None or not dialects.isdisjoint(_listed_dialects(entry)):
            found.extend(_file_problems(root, relative, entry, counts, cases))
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.json")} - {"MANIFEST.json", "schema.json"}
    found.extend(f"{root / extra}: not listed in MANIFEST.json" for extra in sorted(on_disk - set(listed)))
    for dialect in DIALECTS if dialects is None else sorted(dialects):
        if counts[dialect] < MIN_TESTS_PER_DIALECT:
            found.append(
                f"{root}: {dialect} has {counts[dialect]} test cases, fewer than the minimum {MIN_TESTS_PER_DIALECT}"
            )
    return found, manifest_bytes, cases


def _listed_dialects(entry: Any) -> set[str]:
    listed = entry.get("dialects") if isinstance(entry, dict) else None
    return set(listed) if isinstance(listed, dict) else set()


def _file_problems(
    root: pathlib.Path, relative: str, entry: dict[str, Any], counts: Counter[str], cases: list[Case]
) -> Iterator[str]:
    path = root / relative
    try:
        data = path.read_bytes()
    except OSError:
        yield f"{path}: listed in MANIFEST.json but missing"
        return
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        yield f"{path}: SHA-256 does not match MANIFEST.json (edited or corrupted)"
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        yield f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})"
        return
    violation = _schema_errors(doc)
    if violation:
        yield f"{path}: schema violation: {violation[:200]}"
        return
    yield from _content_problems(path, doc, entry, cases)
    counts[doc["dialect"]] += doc["numberOfTests"]


def _content_problems(
    path: pathlib.Path, doc: dict[str, Any], entry: dict[str, Any], cases: list[Case]
) -> Iterator[str]:
    tests = [(g["dtype"], t) for g in doc["testGroups"] for t in g["tests"]]
    if doc["numberOfTests"] != len(tests):
        yield f"{path}: numberOfTests says {doc['numberOfTests']} but the file holds {len(tests)}"
    if entry.get("numberOfTests") != len(tests):
        yield f"{path}: MANIFEST.json counts {entry.get('numberOfTests')} tests but the file holds {len(tests)}"
    if doc["dialect"] not in DIALECTS:
        yield f"{path}: unknown dialect {doc['dialect']!r}"
    if entry.get("dialects") != {doc["dialect"]: len(tests)}:
        yield f"{path}: MANIFEST.json lists dialects {entry.get('dialects')} but the file holds {doc['dialect']}"
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
    for dtype, test in tests:
        try:
            case = Case(doc["dialect"], dtype, test)
            case.initial_params, case.initial_state, case.grads, case.expected  # noqa: B018 - decoding is the check
        except (ValueError, KeyError, TypeError) as exc:
            yield f"{path}: tc{test['tcId']:04d}: {exc}"
        else:
            cases.append(case)


def load(root: pathlib.Path | None = None, dialects: Iterable[str] | None = None) -> Corpus:
    """The corpus, after every check in `problems`; raises CorpusError naming the first problem.

    With `dialects`, only their files are read and checked: a run against one framework does not pay for the
    other dialects. The cases come out of the checking pass already decoded: a session parses and decodes once.
    """
    root = root or default_root()
    wanted = None if dialects is None else frozenset(dialects)
    unknown = sorted((wanted or frozenset()) - set(DIALECTS))
    if unknown:
        raise CorpusError(f"unknown dialect {unknown[0]!r}; the dialects are {', '.join(DIALECTS)}")
    found, manifest_bytes, cases = _scan(root, wanted)
    if found:
        more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
        raise CorpusError(f"refusing the corpus: {found[0]}{more}")
    manifest = json.loads(manifest_bytes)
    return Corpus(root, manifest["vectorSetVersion"], hashlib.sha256(manifest_bytes).hexdigest(), cases)
