"""Stable test ids: a case keeps the tcId it was first given, whatever is added or removed around it.

The registry (`tcids.json` in the corpus folder) maps, per dialect, every tcId ever assigned to the fingerprint of
its case's inputs: the format, hyperparameters, initial parameters and state, gradients, losses and checkpoint.
What a case *is*, not what the reference answers, so a corrected expectation keeps its id. Generation gives a case
its registered id and a new case the next id its dialect has never used; the id of a case that is gone stays
registered and is never given again. Manifests name cases by these ids, so a new case renumbers nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REGISTRY_FILE", "Registry", "assign", "dumps", "fingerprint", "mismatches", "parse"]

REGISTRY_FILE = "tcids.json"
INPUT_KEYS = ("hparams", "initialParams", "initialState", "grads", "losses", "checkpoint")

_HEX = re.compile(r"[0-9a-f]{64}")

# dialect -> tcId -> fingerprint of the case's inputs
Registry = dict[str, dict[int, str]]


def fingerprint(dtype: str, record: Mapping[str, Any]) -> str:
    """SHA-256 of the case's inputs as canonical JSON (the keys sorted, absent ones as null)."""
    inputs = {"dtype": dtype, **{key: record.get(key) for key in INPUT_KEYS}}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def assign(registry: Registry, dialect: str, fingerprints: list[str]) -> list[int]:
    """The tcId of each case of `dialect`, in order: its registered one, else a new one (added to `registry`)."""
    duplicated = sorted({f for f in fingerprints if fingerprints.count(f) > 1})
    if duplicated:
        raise ValueError(f"{dialect}: two cases have the same inputs (fingerprint {duplicated[0][:12]}…)")
    known = registry.setdefault(dialect, {})
    by_fingerprint = {f: tc_id for tc_id, f in known.items()}
    ids = []
    for f in fingerprints:
        if f not in by_fingerprint:
            new_id = max(known, default=0) + 1  # past every id the dialect ever had, those of removed cases too
            known[new_id] = f
            by_fingerprint[f] = new_id
        ids.append(by_fingerprint[f])
    return ids


def mismatches(registry: Registry, dialect: str, cases: Iterable[tuple[int, str]]) -> list[str]:
    """What is wrong with the (tcId, fingerprint) pairs of a corpus file against the registry, one line each."""
    known = registry.get(dialect, {})
    out = []
    for tc_id, f in cases:
        if tc_id not in known:
            out.append(f"tc{tc_id:04d} is not in {REGISTRY_FILE}: run `optconf generate` to register new cases")
        elif known[tc_id] != f:
            out.append(
                f"tc{tc_id:04d} is registered for other inputs: an id is never reused for a different case "
                "(give the changed case a new id with `optconf generate`)"
            )
    return out


def dumps(registry: Registry) -> bytes:
    doc = {d: {str(tc_id): registry[d][tc_id] for tc_id in sorted(registry[d])} for d in sorted(registry)}
    return (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode()


def parse(doc: Any, where: str) -> Registry:
    """The registry from its parsed JSON, refusing anything but dialect -> {positive id: 64-hex fingerprint}."""
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: must map dialects to their ids")
    registry: Registry = {}
    for dialect, ids in doc.items():
        if not isinstance(ids, dict):
            raise ValueError(f"{where}: {dialect!r} must map ids to fingerprints")
        registry[dialect] = {}
        for key, f in ids.items():
            if not (key.isdigit() and int(key) > 0 and isinstance(f, str) and _HEX.fullmatch(f)):
                raise ValueError(f"{where}: {dialect!r} has a bad entry {key!r}: {f!r}")
            registry[dialect][int(key)] = f
    return registry
