"""Known-failure manifests (TOML): selectors with globs, a mode, a reason, a link, and for an xfail the signature
(`expect`) of the failure it stands for; stale entries reported.

An xfail entry absorbs only the failure it names: the one-line diagnosis of the failure must match `expect`, a
regular expression (searched, as `pytest.raises(match=...)` does). Any other failure of the same check fails.
"""

from __future__ import annotations

import fnmatch
import math
import pathlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SELECTOR_FIELDS", "Entry", "KnownFailure", "ManifestError", "diagnosis_of", "load_manifest"]

SELECTOR_FIELDS = ("impl", "dialect", "dtype", "tcid", "flag", "check", "level")
MODES = ("xfail", "skip", "tolerance")
_OTHER_FIELDS = ("mode", "reason", "link", "k", "expect")


class ManifestError(Exception):
    """The manifest file is unusable; the message names the file and the entry."""


class KnownFailure(AssertionError):
    """A failure that matched an xfail entry's `expect`: the only exception a manifest's xfail mark accepts."""


def diagnosis_of(exc: BaseException) -> str:
    """The one-line diagnosis that `expect` is matched against: the exception's type and its message's first line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip()


@dataclass
class Entry:
    selector: dict[str, tuple[str, ...]]  # field -> patterns, any of which may match
    mode: str
    reason: str
    link: str | None
    k: float | None
    origin: str  # "FILE entry N", for messages
    expect: re.Pattern[str] | None = None

    def matches(self, item: Mapping[str, Any]) -> bool:
        for key, patterns in self.selector.items():
            values = item.get("flags", ()) if key == "flag" else (str(item.get(key, "")),)
            if not any(_matches(v, p) for v in values for p in patterns):
                return False
        return True

    def expects(self, diagnosis: str) -> bool:
        """Whether a failure with this diagnosis is the one the entry records (any failure, without `expect`)."""
        return self.expect is None or self.expect.search(diagnosis) is not None

    def beyond(self, level: int) -> bool:
        """Whether the entry selects only cases above `level`, which a run at `level` never collects."""
        return "level" in self.selector and all(int(p) > level for p in self.selector["level"])

    def describe(self) -> str:
        what = ", ".join(f"{k}={'|'.join(v)}" for k, v in self.selector.items())
        return f"{self.origin} [{what}] ({self.mode})"


def _matches(value: str, pattern: str) -> bool:
    # Exact names first: subject names such as "torch.optim.Adagrad[single]" hold brackets that fnmatch reads as sets.
    return value == pattern or fnmatch.fnmatchcase(value, pattern)


def load_manifest(path: pathlib.Path) -> list[Entry]:
    """Entries of a manifest: `[[entry]]` tables with selector fields, `mode`, `reason`, and optional `link`, `k`
    (tolerance) and `expect` (xfail). Every value is type-checked; a problem is one ManifestError naming it."""
    if not path.is_file():
        raise ManifestError(f"{path}: not a readable file" if path.exists() else f"{path}: no such file")
    try:
        doc = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - {"entry"})
    if unknown:
        raise ManifestError(f"{path}: unknown top-level key {unknown[0]!r}; entries go in [[entry]] tables")
    entries = doc.get("entry", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ManifestError(f"{path}: `entry` must be an array of tables, written [[entry]]")
    return [_entry(path, n, raw) for n, raw in enumerate(entries, start=1)]


def _patterns(origin: str, key: str, value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if key == "level":
        # A case's corpus level: an entry for level-2 cases selects nothing in a level-1 run, and is not stale there.
        if not values or not all(v in (1, 2) and not isinstance(v, bool) for v in values):
            raise ManifestError(f"{origin}: level must be 1, 2 or a list of them; got {value!r}")
        return tuple(str(v) for v in values)
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ManifestError(f"{origin}: {key} must be a non-empty string or a list of them; got {value!r}")
    return tuple(values)


def _text(origin: str, raw: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{origin}: {key} must be a non-empty string; got {value!r}")
    return value.strip()


def _entry(path: pathlib.Path, number: int, raw: dict[str, Any]) -> Entry:
    origin = f"{path.name} entry {number}"
    allowed = set(SELECTOR_FIELDS) | set(_OTHER_FIELDS)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ManifestError(f"{origin}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    selector = {key: _patterns(origin, key, raw[key]) for key in SELECTOR_FIELDS if key in raw}
    if not selector:
        raise ManifestError(f"{origin}: needs at least one selector ({', '.join(SELECTOR_FIELDS)})")
    mode = raw.get("mode")
    if mode not in MODES:
        raise ManifestError(f"{origin}: mode must be one of {', '.join(MODES)}; got {mode!r}")
    if "reason" not in raw:
        raise ManifestError(f"{origin}: every entry needs a reason")
    reason = _text(origin, raw, "reason", required=True)
    link = _text(origin, raw, "link")
    return Entry(selector, mode, str(reason), link, _k(origin, mode, raw), origin, _expect(origin, mode, raw))


def _k(origin: str, mode: str, raw: dict[str, Any]) -> float | None:
    k = raw.get("k")
    if mode != "tolerance":
        if k is not None:
            raise ManifestError(f"{origin}: k is only for mode 'tolerance'")
        return None
    # bool is an int to Python; `k = true` is a slip, not a factor.
    if isinstance(k, bool) or not isinstance(k, int | float) or not math.isfinite(k) or k <= 0:
        raise ManifestError(
            f"{origin}: mode 'tolerance' needs k, a finite number > 0 (the factor that replaces the table's k); "
            f"got {k!r}"
        )
    return float(k)


def _expect(origin: str, mode: str, raw: dict[str, Any]) -> re.Pattern[str] | None:
    if "expect" not in raw:
        return None
    if mode != "xfail":
        raise ManifestError(f"{origin}: expect is only for mode 'xfail' (the signature of the failure it stands for)")
    text = _text(origin, raw, "expect", required=True)
    try:
        return re.compile(str(text))
    except re.error as exc:
        raise ManifestError(f"{origin}: expect is not a valid regular expression ({exc})") from None
