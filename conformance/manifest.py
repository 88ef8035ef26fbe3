"""Known-failure manifests (TOML): selectors with globs, a mode, a reason and a link; stale entries reported."""

from __future__ import annotations

import fnmatch
import pathlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SELECTOR_FIELDS", "Entry", "ManifestError", "load_manifest"]

SELECTOR_FIELDS = ("impl", "dialect", "dtype", "tcid", "flag", "check")
MODES = ("xfail", "skip", "tolerance")


class ManifestError(Exception):
    """The manifest file is unusable; the message names the file and the entry."""


@dataclass
class Entry:
    selector: dict[str, tuple[str, ...]]  # field -> patterns, any of which may match
    mode: str
    reason: str
    link: str | None
    k: float | None
    origin: str  # "FILE entry N", for messages

    def matches(self, item: Mapping[str, Any]) -> bool:
        for key, patterns in self.selector.items():
            values = item.get("flags", ()) if key == "flag" else (str(item.get(key, "")),)
            if not any(_matches(v, p) for v in values for p in patterns):
                return False
        return True

    def describe(self) -> str:
        what = ", ".join(f"{k}={'|'.join(v)}" for k, v in self.selector.items())
        return f"{self.origin} [{what}] ({self.mode})"


def _matches(value: str, pattern: str) -> bool:
    # Exact names first: subject names such as "torch.optim.Adagrad[single]" hold brackets that fnmatch reads as sets.
    return value == pattern or fnmatch.fnmatchcase(value, pattern)


def load_manifest(path: pathlib.Path) -> list[Entry]:
    """Entries of a manifest: `[[entry]]` tables with selector fields, `mode`, `reason`, optional `link`, `k`."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - {"entry"})
    if unknown:
        raise ManifestError(f"{path}: unknown top-level key {unknown[0]!r}; entries go in [[entry]] tables")
    return [_entry(path, n, raw) for n, raw in enumerate(doc.get("entry", []), start=1)]


def _patterns(origin: str, key: str, value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str | int) for v in values):
        raise ManifestError(f"{origin}: {key} must be a string or a list of strings")
    return tuple(str(v) for v in values)


def _entry(path: pathlib.Path, number: int, raw: dict[str, Any]) -> Entry:
    origin = f"{path.name} entry {number}"
    allowed = set(SELECTOR_FIELDS) | {"mode", "reason", "link", "k"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ManifestError(f"{origin}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    selector = {key: _patterns(origin, key, raw[key]) for key in SELECTOR_FIELDS if key in raw}
    if not selector:
        raise ManifestError(f"{origin}: needs at least one selector ({', '.join(SELECTOR_FIELDS)})")
    mode = raw.get("mode")
    if mode not in MODES:
        raise ManifestError(f"{origin}: mode must be one of {', '.join(MODES)}; got {mode!r}")
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ManifestError(f"{origin}: every entry needs a reason")
    k = raw.get("k")
    if mode == "tolerance" and not (isinstance(k, int | float) and k > 0):
        raise ManifestError(f"{origin}: mode 'tolerance' needs k > 0 (the factor that replaces the table's k)")
    if mode != "tolerance" and k is not None:
        raise ManifestError(f"{origin}: k is only for mode 'tolerance'")
    return Entry(selector, mode, reason.strip(), raw.get("link"), None if k is None else float(k), origin)
