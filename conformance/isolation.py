"""Crash isolation for a plain `pytest --impl=X`: the checks run in a forked child process.

An implementation that segfaults, calls `abort()` or hangs in native code would otherwise take the whole run
with it: no summary, no evidence. So the run's own process (which has configured pytest, resolved the
implementation and collected the checks) forks one child that runs the checks, in order, exactly as pytest would
in-process, and sends back each report through a pipe, serialised by pytest's own report hooks (the ones
pytest-xdist uses). The parent logs them: the terminal, the evidence and `--junitxml` see every report as if the
child did not exist. When the child dies, the check it was running fails, naming the signal, and a new child
forked from the parent's unchanged state goes on with the next check. A child silent for longer than the check's
time limit plus a grace period (a native hang that pytest-timeout's signal cannot interrupt) is killed, and the
check fails with the time limit.

One fork per run, not per check: a check costs what it costs in-process. pytest-xdist gives the same boundary
(`-n 1`), at about 40% more wall time for a level-1 torch run (a second interpreter importing the framework, and
every report through execnet); it stays the choice for parallel runs, and this mechanism stands aside under it.

Fork is refused where it is unsafe: without `os.fork` (Windows), or when the process already runs other Python
threads, since a child forked then can deadlock on a lock that a vanished thread held. The run is then
in-process, and the summary says why. The same holds for native threads started since pytest began (JAX's or
TF's runtime, torch's pool, in a process that ran them before: a test session calling pytest in-process). The
BLAS pool that NumPy starts at import is fork-safe, and the frameworks start theirs lazily, at their first
operation, which comes in the child: after collection, the built-in frameworks run no thread of their own
(measured for each). A child that deadlocks all the same is killed at its check's time limit and reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import sys
import threading
import time
import warnings
from typing import IO, Any

import numpy  # noqa: F401 - before the thread baseline below: see there
import pytest

__all__ = ["ForkedRun", "fork_unsafe"]

# Seconds a child may stay silent beyond a check's own time limit before the parent kills it: pytest-timeout,
# in the child, fails a check at its limit and goes on; only a hang it cannot interrupt outlives the grace. The
# grace is the limit itself, within [2, 30] s, so that a short limit (a test's) is not dwarfed by it.
GRACE_S = (2.0, 30.0)
_HEADER = struct.Struct("!I")


def fork_unsafe() -> str | None:
    """Why forking this process now would be unsafe, or None when it is safe."""
    if not hasattr(os, "fork"):
        return "this platform has no fork"
    threads = threading.active_count()
    if threads > 1:
        return f"the process already runs {threads} Python threads, and a forked child could deadlock"
    native = _native_threads()
    if native is not None and native > _STARTUP_THREADS:
        return (
            f"the process runs {native} threads, {native - _STARTUP_THREADS} started since pytest began (a framework's "
            "runtime), and a forked child could deadlock"
        )
    return None


def _native_threads() -> int | None:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None  # not Linux: Python's own threads are all that can be counted


# The threads running when pytest loaded this plugin, NumPy's BLAS pool among them: it starts when NumPy is
# imported (hence the import above, whatever imported this module first) and is fork-safe (rebuilt in a child).
# A framework's runtime starts its own later, at its first operation; a fork after that is refused.
_STARTUP_THREADS = _native_threads() or 1


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Channel:
    """Length-prefixed JSON messages over a pipe."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def send(self, kind: str, **fields: Any) -> None:
        body = json.dumps({"kind": kind, **fields}, default=str).encode("utf-8")
        self.stream.write(_HEADER.pack(len(body)) + body)
        self.stream.flush()


# What a passed report holds when no plugin added to it: all a parent needs besides its own copy of the item.
_PLAIN = frozenset(
    {"nodeid", "location", "keywords", "outcome", "longrepr", "when", "user_properties", "sections"}
    | {"duration", "start", "stop"}
)


class _Forward:
    """The child's reporting: each logging hook's arguments go to the parent instead of the terminal."""

    def __init__(self, channel: _Channel, config: pytest.Config) -> None:
        self.channel = channel
        self.config = config

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.channel.send("logstart", nodeid=nodeid, location=list(location))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.passed and not report.longrepr and not report.sections and set(vars(report)) <= _PLAIN:
            # Most reports, in brief: the parent rebuilds them from its own copy of the item.
            self.channel.send(
                "passed",
                when=report.when,
                times=[report.duration, report.start, report.stop],
                properties=report.user_properties,
            )
            return
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        self.channel.send("report", data=data)

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.channel.send("logfinish", nodeid=nodeid, location=list(location))

    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str, location: Any) -> None:
        if when != "runtest":
            return  # registering this plugin replays the configuration's warnings, which the parent has logged
        category = warning_message.category
        self.channel.send(
            "warning",
            text=str(warning_message.message),
            category=[category.__module__, category.__qualname__],
            where=[str(warning_message.filename), int(warning_message.lineno)],
            nodeid=nodeid,
        )


class _Muted:
    """The child's terminal reporter without its hooks, so that only the parent logs each check; what reaches for
    the terminal directly (pytest-timeout's stack dump of a check it stops) still finds its writer."""

    def __init__(self, reporter: Any) -> None:
        self._reporter = reporter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reporter, name)


class ForkedRun:
    """The pytest plugin that runs the collected checks in forked children (registered by the optconf plugin)."""

    def __init__(self) -> None:
        self.crashes = 0
        self.refused: str | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        config = session.config
        if config.option.collectonly or (session.testsfailed and not config.option.continue_on_collection_errors):
            return None  # pytest's own loop reports these
        self.refused = fork_unsafe()
        if self.refused is not None:
            return None
        items = session.items
        index = 0
        while index < len(items) and not (session.shouldfail or session.shouldstop):
            index = self._run_child(session, index)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        return True

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.refused is not None:
            terminalreporter.write_line(
                f"optconf: the checks ran in this process, without crash isolation: {self.refused}"
            )
        if self.crashes:
            terminalreporter.write_line(
                f"optconf: {self.crashes} check(s) crashed their process; each failed, and the run went on"
            )

    def _run_child(self, session: pytest.Session, start: int) -> int:
        """Fork a child for items[start:]; return the index of the first item it did not finish."""
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what the parent buffered must not be written twice
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its reports are what the tests see
            os.close(read_fd)
            _child(session, start, os.fdopen(write_fd, "wb"))
        os.close(write_fd)
        try:
            with os.fdopen(read_fd, "rb") as stream:
                running, finished, killed = self._follow(session, pid, stream)
        except BaseException:  # Ctrl-C, or an error in logging: no child may outlive the run
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        _, status = os.waitpid(pid, 0)
        if running is None:
            return finished
        item = session.items[running]
        self.crashes += 1
        limit = _limit(item)
        if killed and limit is not None:
            why = f"the check did not finish within {limit:g} s and could not be interrupted; its process was killed"
        else:
            why = _died(status)
        _report_crash(session, item, f"Crash: {why}")
        return running + 1

    def _follow(self, session: pytest.Session, pid: int, stream: IO[bytes]) -> tuple[int | None, int, bool]:
        """Log the child's messages until it stops; return the item it was running then (or None), the next item
        to run, and whether the child was killed for its silence."""
        config = session.config
        running: int | None = None
        finished = len(session.items)
        while True:
            limit = _limit(session.items[running]) if running is not None else None
            message = _receive(stream, None if limit is None else limit + min(max(limit, GRACE_S[0]), GRACE_S[1]))
            if message is _SILENT:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                return running, finished, True
            if message is None:  # the child is gone
                return running, finished, False
            kind = message["kind"]
            if kind == "start":
                running = int(message["index"])
            elif kind == "done":
                running = None
                finished = int(message["index"]) + 1
            elif kind == "stopped":
                return None, int(message["index"]), False
            elif kind == "logstart":
                config.hook.pytest_runtest_logstart(nodeid=message["nodeid"], location=tuple(message["location"]))
            elif kind == "logfinish":
                config.hook.pytest_runtest_logfinish(nodeid=message["nodeid"], location=tuple(message["location"]))
            elif kind == "passed" and running is not None:
                config.hook.pytest_runtest_logreport(report=_passed(session.items[running], message))
            elif kind == "report":
                report = config.hook.pytest_report_from_serializable(config=config, data=_tuples(message["data"]))
                config.hook.pytest_runtest_logreport(report=report)
            elif kind == "warning":
                _log_warning(config, message)


_SILENT = object()


def _passed(item: pytest.Item, message: dict[str, Any]) -> pytest.TestReport:
    """A passed report sent in brief, rebuilt as pytest builds it (`TestReport.from_item_and_call`)."""
    duration, start, stop = message["times"]
    return pytest.TestReport(
        item.nodeid,
        item.location,
        dict.fromkeys(item.keywords, 1),
        "passed",
        None,
        message["when"],
        (),
        duration,
        start,
        stop,
        user_properties=[tuple(pair) for pair in message["properties"]],
    )


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    """A serialised report with the tuples that JSON turned into lists made tuples again (pytest's summary
    tells a skip's (path, line, reason) from a traceback by its type)."""
    for key in ("location", "longrepr"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    for key in ("user_properties", "sections"):
        if isinstance(data.get(key), list):
            data[key] = [tuple(pair) if isinstance(pair, list) else pair for pair in data[key]]
    return data


def _receive(stream: IO[bytes], timeout: float | None) -> Any:
    """The next message; None at the end of the stream; _SILENT when nothing came within `timeout` seconds."""
    if timeout is not None:
        deadline = time.monotonic() + timeout
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return _SILENT
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return json.loads(body)


def _limit(item: pytest.Item) -> float | None:
    """The check's time limit in seconds (pytest-timeout's mark, else its option or ini setting), or None."""
    if not item.config.pluginmanager.hasplugin("timeout"):
        return None
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    else:
        value = item.config.getoption("timeout", None) or item.config.getini("timeout")
    try:
        seconds = float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _died(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"the check's process died of {_signal_name(os.WTERMSIG(status))}"
    return f"the check's process exited with status {os.WEXITSTATUS(status)} before the check finished"


def _report_crash(session: pytest.Session, item: pytest.Item, diagnosis: str) -> None:
    """Log a failed call for the item that was running when its process died, and go on."""
    report = pytest.TestReport(
        item.nodeid,
        item.location,
        {name: 1 for name in item.keywords},
        "failed",
        f"{diagnosis} while running {item.nodeid}; the run goes on in a new process",
        "call",
        user_properties=[*item.user_properties, ("optconf_diagnosis", diagnosis)],
    )
    hook = session.config.hook
    hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _log_warning(config: pytest.Config, message: dict[str, Any]) -> None:
    """Log a warning a check raised in the child, under its own category where it can be found by name."""
    module, name = message["category"]
    category = getattr(sys.modules.get(module), name, None)
    text = message["text"]
    if not (isinstance(category, type) and issubclass(category, Warning)):
        category, text = UserWarning, f"{module}.{name}: {text}"
    filename, lineno = message["where"]
    record = warnings.WarningMessage(text, category, filename, lineno)
    config.hook.pytest_warning_recorded.call_historic(
        kwargs={"warning_message": record, "when": "runtest", "nodeid": message["nodeid"], "location": None}
    )


def _child(session: pytest.Session, start: int, stream: IO[bytes]) -> None:  # pragma: no cover - runs forked
    """Run items[start:] as pytest's own loop would, reporting through the pipe; never returns."""
    code = 0
    channel = _Channel(stream)
    try:
        config = session.config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            config.pluginmanager.unregister(reporter)
            config.pluginmanager.register(_Muted(reporter), "terminalreporter")
        config.pluginmanager.register(_Forward(channel, config), "optconf-forward")
        items = session.items
        for index in range(start, len(items)):
            item = items[index]
            channel.send("start", index=index)
            nextitem = items[index + 1] if index + 1 < len(items) else None
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            channel.send("done", index=index)
            if session.shouldfail or session.shouldstop:
                channel.send("stopped", index=index + 1)
                break
    except BaseException:  # whatever happens, the parent must hear of it and the child must end
        code = 70
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            stream.close()
        for output in (sys.stdout, sys.stderr):  # what a check printed uncaptured (-s), which _exit would drop
            with contextlib.suppress(BaseException):
                output.flush()
        os._exit(code)
