"""What the checks are run on, and what they found: test items, the terminal matrix and the JSON evidence."""

from __future__ import annotations

import json
import pathlib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import reference

from .adapter import Adapter, versions_of
from .checks import BY_NAME, REGISTRY, invalid_settings
from .manifest import Entry
from .session import Item, OptconfSession

__all__ = ["ALL_CHECKS", "Evidence", "item_id", "items_for", "stale_entries"]

ALL_CHECKS = tuple(check.name for check in REGISTRY)
# A conformance test id: test_CHECK[(IMPL-)DIALECT-DTYPE-LABEL], as `item_id` writes it.
_CRASHED = re.compile(
    r"test_(?P<check>\w+)\[(?:(?P<impl>.+)-)?(?P<dialect>(?:adagrad|rprop)/[\w.+-]+?)-"
    r"(?P<dtype>float16|bfloat16|float32|float64)-(?P<tcid>[^\]]+)\]$"
)
CELL = {"passed": "ok", "failed": "FAIL", "xfailed": "xfail", "skipped": "skip", "xpassed": "XPASS"}


def items_for(session: OptconfSession, check: str) -> Iterator[Item]:
    """What `test_<check>` is parametrized over, from the check's record."""
    record = BY_NAME[check]
    for adapter in session.adapters:
        yield from _SUBJECTS[record.subjects](session, adapter, check)


def _case_items(session: OptconfSession, adapter: Adapter, check: str) -> Iterator[Item]:
    for case in session.cases_for(adapter, check):
        yield Item(check, adapter, case)


def _setting_items(session: OptconfSession, adapter: Adapter, check: str) -> Iterator[Item]:
    for dialect_id in adapter.capabilities.dialects:
        dialect = reference.get(dialect_id)
        dtype = "float32" if "float32" in dialect.dtypes else dialect.dtypes[0]
        for setting in invalid_settings(dialect):
            yield Item(check, adapter, None, dialect_id, dtype, setting.label, setting)


def _fuzz_items(session: OptconfSession, adapter: Adapter, check: str) -> Iterator[Item]:
    if session.settings.fuzz:
        yield from (Item(check, adapter, None, d, "", "fuzz") for d in adapter.capabilities.dialects)


_SUBJECTS: dict[str, Callable[[OptconfSession, Adapter, str], Iterator[Item]]] = {
    "cases": _case_items,
    "settings": _setting_items,
    "fuzz": _fuzz_items,
}


def item_id(session: OptconfSession, item: Item) -> str:
    core = item.case.test_id if item.case else "-".join(p for p in (item.dialect, item.dtype, item.label) if p)
    return core if len(session.adapters) == 1 else f"{item.adapter.name}-{core}"


def _only_checks(entry: Entry, checks: set[str]) -> bool:
    selected = set(entry.selector.get("check", ()))
    return bool(selected) and selected <= checks


def stale_entries(session: OptconfSession) -> list[Entry]:
    """Manifest entries that select nothing in the whole collection (whatever -k later deselects).

    An entry aimed only at fuzzing is not stale in a run without --fuzz, nor one for level-2 cases in a level-1
    run: each has nothing to select yet.
    """
    views = [
        view
        for check in ALL_CHECKS
        for item in items_for(session, check)
        for view in (item.fuzz_views() if check == "fuzz" else [item.selector_view()])
    ]
    off = {"fuzz"} if not session.settings.fuzz else set()
    level = session.settings.level
    return [
        entry
        for entry in session.entries
        if not any(entry.matches(v) for v in views) and not _only_checks(entry, off) and not entry.beyond(level)
    ]


class Evidence:
    """A pytest plugin object: records every optconf result, prints the matrix, writes the JSON evidence."""

    def __init__(self, session: OptconfSession, json_path: pathlib.Path | None) -> None:
        self.session = session
        self.json_path = json_path
        self.results: dict[str, dict[str, Any]] = {}
        self.nothing_compared: str | None = None  # the one line, when the run compared nothing

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        props: dict[str, Any] = dict(report.user_properties)
        view = props.get("optconf_item") or self._crashed(report)
        if view is None:
            return
        status = _status(report)
        if status is None:
            return
        record = self.results.setdefault(report.nodeid, dict(view) | {"status": "passed"})
        if status != "passed" or report.when == "call":
            record["status"] = status
        record.update(props.get("optconf_outcome", {}))
        if "optconf_diagnosis" in props:
            record["diagnosis"] = props["optconf_diagnosis"]
        if status == "skipped" and isinstance(report.longrepr, tuple):
            record["reason"] = str(report.longrepr[2]).removeprefix("Skipped: ")
        if hasattr(report, "wasxfail"):
            # The entry whose `expect` matched, where several select the check; else the mark's reason.
            record["reason"] = props.get("optconf_known", report.wasxfail)

    def _crashed(self, report: pytest.TestReport) -> dict[str, Any] | None:
        """The check a crashed pytest-xdist worker was running, read from its test id: xdist reports the crash
        for the node id alone, without the item's properties, and a crash must not vanish from the evidence."""
        if not (report.failed and "crashed while running" in str(report.longrepr)):
            return None
        match = _CRASHED.search(report.nodeid)
        if match is None:
            return None
        impl = match["impl"] or self.session.adapters[0].name
        check, dialect, dtype, tcid = match["check"], match["dialect"], match["dtype"], match["tcid"]
        diagnosis = str(report.longrepr).strip().splitlines()[-1]
        view: dict[str, Any] = {
            "impl": impl,
            "dialect": dialect,
            "dtype": dtype,
            "tcid": tcid,
            "flags": [],
            "check": check,
        }
        return view | {"diagnosis": f"WorkerCrash: {diagnosis}"}

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """A run that selected an implementation but compared nothing does not pass: exit 5, as pytest does when
        it collects nothing, with one line saying why."""
        if hasattr(session.config, "workerinput") or exitstatus not in (0, pytest.ExitCode.NO_TESTS_COLLECTED):
            return
        statuses = Counter(r["status"] for r in self.results.values())
        if statuses["passed"] or statuses["xfailed"]:
            return
        deselected = self._deselected(session)
        self.nothing_compared = (
            f"optconf: --impl={self.session.settings.impl} was checked by nothing: "
            f"{statuses['skipped']} checks skipped, {deselected} deselected, none ran a comparison"
        )
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED

    @staticmethod
    def _deselected(session: pytest.Session) -> int:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        return len(getattr(reporter, "stats", {}).get("deselected", [])) if reporter else 0

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
        if hasattr(config, "workerinput"):
            return
        for line in self.summary_lines():
            terminalreporter.write_line(line)
        if self.nothing_compared:
            terminalreporter.write_line(self.nothing_compared, red=True, bold=True)
        if self.json_path is not None:
            self.json_path.write_text(json.dumps(self.as_json(), indent=1) + "\n", encoding="utf-8")
            terminalreporter.write_line(f"optconf: evidence written to {self.json_path}")

    def summary_lines(self) -> list[str]:
        cells: dict[tuple[str, str, str], Counter[tuple[str, str]]] = defaultdict(Counter)
        for record in self.results.values():
            cells[record["impl"], record["dialect"], record["dtype"]][record["check"], record["status"]] += 1
        if not cells:
            return []
        checks = [c for c in ALL_CHECKS if any(k[0] == c for cell in cells.values() for k in cell)]
        head = ["implementation", "dialect", "dtype", *(BY_NAME[check].heading for check in checks)]
        rows = [[*key, *(_cell(counts, check) for check in checks)] for key, counts in sorted(cells.items())]
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        lines = ["", "optconf conformance matrix (cells: ok | FAIL n | xfail n | skip n | XPASS n):"]
        for row in [head, *rows]:
            lines.append("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        stale = stale_entries(self.session)
        for entry in stale:
            lines.append(f"optconf: manifest entry matches nothing (stale): {entry.describe()}")
        return lines

    def as_json(self) -> dict[str, Any]:
        session = self.session
        return {
            "optconf": reference.__version__,
            "impl": session.settings.impl,
            "level": session.settings.level,
            "corpus": {"version": session.corpus.version, "sha256": session.corpus.sha256},
            "adapters": [
                {
                    "name": a.name,
                    "capabilities": a.capabilities.as_dict(),
                    "versions": versions_of(a),
                }
                for a in session.adapters
            ],
            "manifest": {
                "entries": len(session.entries),
                "stale": [e.describe() for e in stale_entries(session)],
            },
            "summary": dict(Counter(r["status"] for r in self.results.values())),
            "results": [{"id": nodeid} | record for nodeid, record in sorted(self.results.items())],
        }


def _status(report: pytest.TestReport) -> str | None:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.failed:
        return "failed"
    if report.skipped:
        return "skipped"
    if report.when == "call":
        return "passed"
    return None


def _cell(counts: Counter[tuple[str, str]], check: str) -> str:
    mine = {status: n for (c, status), n in counts.items() if c == check}
    if not mine:
        return "-"
    if set(mine) == {"passed"}:
        return "ok"
    order = ["failed", "xpassed", "xfailed", "skipped", "passed"]
    return " ".join(f"{CELL[s]} {mine[s]}" for s in order if s in mine)
