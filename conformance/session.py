"""One conformance session: the resolved adapters, the corpus, the manifest, and what the checks recorded."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import reference

from .adapter import Adapter, own_manifest, versions_of
from .checks import REGISTRY, InvalidSetting
from .corpus import Case, Corpus, load
from .manifest import Entry, load_manifest
from .registry import built_in, manifest_path
from .spec import resolve

__all__ = ["Item", "OptconfSession", "Settings", "fuzz_case_view"]

# Which cases each check runs on (the registry's `cases`); the rest of the corpus is covered by the trajectory checks.
CASE_FILTERS: dict[str, Callable[[Case], bool]] = {c.name: c.cases for c in REGISTRY if c.subjects == "cases"}


@dataclass(frozen=True)
class Settings:
    impl: str
    manifest: pathlib.Path | None = None
    strict_manifest: bool = False
    level: int = 1
    vectors: pathlib.Path | None = None
    default_manifests: bool = True
    fuzz: int = 0  # hypothesis examples per dialect; 0 = no fuzzing
    fuzz_seed: int = 0


@dataclass(frozen=True)
class Item:
    """One collected check: what a manifest selector and a report row see."""

    check: str
    adapter: Adapter
    case: Case | None = None
    dialect: str = ""
    dtype: str = ""
    label: str = ""  # invalid-hyperparameter checks: the setting
    setting: InvalidSetting | None = None  # invalid-hyperparameter checks: the refused setting and its control

    def selector_view(self) -> dict[str, Any]:
        case = self.case
        return {
            "impl": self.adapter.name,
            "dialect": case.dialect if case else self.dialect,
            "dtype": case.dtype if case else self.dtype,
            "tcid": f"tc{case.tc_id:04d}" if case else self.label,  # invalid_hparams: the refused setting
            "flags": list(case.flags) if case else [],
            "check": self.check,
            "level": str(case.level) if case else "1",  # refused settings belong to the release gate
        }

    def fuzz_views(self) -> list[dict[str, Any]]:
        """What a manifest selector sees of the cases fuzzing may find for this item, one view per format."""
        return [fuzz_case_view(self.adapter.name, self.dialect, dtype) for dtype in reference.get(self.dialect).dtypes]


def fuzz_case_view(impl: str, dialect: str, dtype: str) -> dict[str, Any]:
    """A fuzzed case as manifest selectors see it: tcid `fuzz`, flag `FUZZ`, check `fuzz`."""
    return {"impl": impl, "dialect": dialect, "dtype": dtype, "tcid": "fuzz", "flags": ["FUZZ"], "check": "fuzz"}


@dataclass
class OptconfSession:
    settings: Settings
    adapters: list[Adapter]
    corpus: Corpus
    entries: list[Entry]
    cache: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def start(cls, settings: Settings) -> OptconfSession:
        adapters = resolve(settings.impl)
        corpus = load(settings.vectors, {d for adapter in adapters for d in adapter.capabilities.dialects})
        entries = load_manifest(settings.manifest) if settings.manifest else []
        if settings.default_manifests:
            entry = built_in(settings.impl)
            registered = manifest_path(entry.manifest) if entry is not None and entry.manifest else None
            # An adapter's own `manifest` (Keras picks one per backend) wins over its built-in's registered one.
            for path in dict.fromkeys(own_manifest(a) or registered for a in adapters):
                if path is not None:
                    entries.extend(load_manifest(path))
        return cls(settings, adapters, corpus, entries)

    def cases_for(self, adapter: Adapter, check: str) -> Iterator[Case]:
        claimed = set(adapter.capabilities.dialects)
        keep = CASE_FILTERS[check]
        for case in self.corpus:
            if case.dialect in claimed and case.level <= self.settings.level and keep(case):
                yield case

    def repro(self, adapter: Adapter, case_id: str, forced: bool = False) -> str:
        """The command that re-runs one case step by step; `forced` for a teacher-forced check's failure."""
        subject = f" --subject '{adapter.name}'" if len(self.adapters) > 1 else ""
        return f"optconf explain {case_id} --impl {self.settings.impl}{subject}{' --forced' if forced else ''}"

    def case_cache(self, adapter: Adapter, case: Case) -> dict[str, Any]:
        return self.cache.setdefault((adapter.name, case.test_id), {})

    def header(self) -> list[str]:
        lines = [
            f"optconf: --impl={self.settings.impl}, level {self.settings.level}, "
            f"corpus {self.corpus.version} sha256:{self.corpus.sha256[:16]} "
            f"({len(self.corpus.cases)} cases of the claimed dialects)"
        ]
        for adapter in self.adapters:
            shown = ", ".join(f"{k} {v}" for k, v in versions_of(adapter).items())
            unclaimed = len(reference.DIALECTS) - len(adapter.capabilities.dialects)
            lines.append(
                f"  {adapter.name}: {', '.join(adapter.capabilities.dialects)}"
                f" ({shown or 'no versions reported'}; {unclaimed} other dialects not claimed)"
            )
        env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("OPTCONF_")}
        lines.append("  environment: " + (", ".join(f"{k}={v}" for k, v in env.items()) or "no OPTCONF_* variables"))
        if self.entries:
            lines.append(f"  manifest: {len(self.entries)} entries")
        if self.settings.fuzz:
            lines.append(
                f"  fuzzing: {self.settings.fuzz} cases per dialect, seed {self.settings.fuzz_seed} "
                f"(replay with --fuzz-seed={self.settings.fuzz_seed})"
            )
        return lines
