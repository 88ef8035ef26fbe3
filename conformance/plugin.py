"""The pytest plugin (entry point `pytest11: optconf`): options, header, collection, manifest marks, reports.

Wiring only: no framework is imported here; adapters load when `--impl` resolves.
"""

from __future__ import annotations

import gc
import os
import pathlib
from typing import Any

import pytest

from . import report
from .corpus import CorpusError
from .isolation import ForkedRun
from .manifest import Entry, KnownFailure, ManifestError
from .registry import BUILT_INS
from .session import Item, OptconfSession, Settings
from .spec import SpecError

SESSION_KEY = pytest.StashKey[OptconfSession | None]()
ITEM_KEY = pytest.StashKey[Item]()
K_KEY = pytest.StashKey[float]()
KNOWN_KEY = pytest.StashKey[list[Entry]]()  # the xfail entries that select the item
PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
# Seconds per check. The slowest level-2 check of a built-in framework takes a few seconds; a hang must not take
# the whole run. Fuzzing runs N cases in one test and has no default limit.
DEFAULT_TIMEOUT = 120
TIMEOUT_KEY = pytest.StashKey[int]()

# name, environment variable, argparse keywords: the options, documented in CONFORMANCE.md from this table.
OPTIONS: list[tuple[str, str | None, dict[str, Any]]] = [
    (
        "--impl",
        "OPTCONF_IMPL",
        {
            "metavar": "SPEC",
            "help": f"the implementation: a built-in name ({', '.join(b.name for b in BUILT_INS)}), module, "
            "module:attr, or a .py file; never empty",
        },
    ),
    (
        "--manifest",
        "OPTCONF_MANIFEST",
        {"metavar": "FILE", "help": "a TOML known-failure manifest (xfail, skip, tolerance overrides)"},
    ),
    ("--strict-manifest", None, {"action": "store_true", "help": "a manifest entry that matches nothing is an error"}),
    (
        "--no-default-manifest",
        None,
        {"action": "store_true", "help": "do not apply the built-in adapters' own known-failure manifests"},
    ),
    (
        "--optconf-level",
        "OPTCONF_LEVEL",
        {"metavar": "N", "help": "1: the release gate (default); 2: the full grid"},
    ),
    (
        "--optconf-timeout",
        "OPTCONF_TIMEOUT",
        {
            "metavar": "SECONDS",
            "help": f"the time limit of each check (default {DEFAULT_TIMEOUT}; 0: none): a check still running then "
            "fails with the timeout, and the run goes on",
        },
    ),
    (
        "--optconf-isolation",
        "OPTCONF_ISOLATION",
        {
            "metavar": "MODE",
            "help": "fork (default): the checks run in a forked process, so that a crash fails the check it was in "
            "and the run goes on; off: in this process (pytest-xdist's -n gives its own boundary)",
        },
    ),
    ("--optconf-json", "OPTCONF_JSON", {"metavar": "FILE", "help": "write the JSON evidence report here"}),
    ("--vectors", "OPTCONF_VECTORS", {"metavar": "DIR", "help": "use this corpus instead of the installed one"}),
    (
        "--fuzz",
        "OPTCONF_FUZZ",
        {
            "metavar": "N",
            "help": "also fuzz: N fresh hypothesis cases per dialect, "
            "evaluated live by the oracle, shrunk to a minimal failing case",
        },
    ),
    (
        "--fuzz-seed",
        "OPTCONF_FUZZ_SEED",
        {
            "metavar": "SEED",
            "help": "the fuzzing seed (default: random, printed in the header; fixed under CI)",
        },
    ),
]


class ManifestWarning(pytest.PytestWarning):
    """A manifest entry that is usable but weaker than it should be."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("optconf", "optimizer conformance (optconf)")
    for name, env, kwargs in OPTIONS:
        help_text = kwargs["help"] + (f" [env {env}]" if env else "")
        group.addoption(name, dest=name.lstrip("-").replace("-", "_"), **(kwargs | {"help": help_text}))


def option(config: pytest.Config, name: str) -> Any:
    """The option's value: the command line's, else its environment variable's (None when neither is given)."""
    for flag, env, _ in OPTIONS:
        if flag == name:
            value = config.getoption(name.lstrip("-").replace("-", "_"))
            if value in (None, False) and env and env in os.environ:
                return os.environ[env]
            return value
    raise KeyError(name)


def _source(name: str) -> str:
    env = next(e for flag, e, _ in OPTIONS if flag == name)
    return f"{name} (or {env})" if env else name


def _integer(config: pytest.Config, name: str, low: int, high: int, default: int) -> int:
    """An integer option within [low, high]; anything else is a usage error naming the option."""
    raw = option(config, name)
    if raw is None:
        return default
    text = str(raw).strip()
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"{_source(name)} must be an integer from {low} to {high}; got {raw!r}") from None
    if not low <= value <= high:
        raise pytest.UsageError(f"{_source(name)} must be an integer from {low} to {high}; got {value}")
    return value


def _impl(config: pytest.Config) -> str | None:
    """The implementation SPEC, or None when none was asked for. Given but blank (`--impl=`, or OPTCONF_IMPL set
    to nothing, as `OPTCONF_IMPL=$IMPL` with IMPL unset) is a usage error, not a run of whatever tests are here."""
    raw = option(config, "--impl")
    if raw is None:
        return None
    if not str(raw).strip():
        raise pytest.UsageError(
            "--impl (or OPTCONF_IMPL) is empty; name the implementation: a built-in name, module, module:attr "
            "or a .py file"
        )
    return str(raw).strip()


def _evidence_path(config: pytest.Config) -> pathlib.Path | None:
    """Where the JSON evidence goes, checked before any test runs: a long run must not end unable to write it."""
    raw = option(config, "--optconf-json")
    if raw is None:
        return None
    path = pathlib.Path(str(raw))
    if not str(raw).strip() or path.is_dir():
        raise pytest.UsageError(f"{_source('--optconf-json')} must name a file; got {raw!r}")
    folder = path.parent if str(path.parent) else pathlib.Path(".")
    if not folder.is_dir():
        raise pytest.UsageError(f"{_source('--optconf-json')}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise pytest.UsageError(f"{_source('--optconf-json')}: the folder {str(folder)!r} is not writable")
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "optconf: a conformance check generated from the golden vectors")
    impl = _impl(config)
    if impl is None:
        config.stash[SESSION_KEY] = None
        if _targets_conformance(config):
            raise pytest.UsageError(
                "the optconf conformance checks need an implementation: --impl=SPEC or OPTCONF_IMPL"
            )
        return
    manifest = option(config, "--manifest")
    vectors = option(config, "--vectors")
    settings = Settings(
        impl=impl,
        manifest=pathlib.Path(manifest) if manifest else None,
        strict_manifest=bool(config.getoption("strict_manifest")),
        level=_integer(config, "--optconf-level", 1, 2, default=1),
        vectors=pathlib.Path(vectors) if vectors else None,
        default_manifests=not config.getoption("no_default_manifest"),
        fuzz=_integer(config, "--fuzz", 0, 1_000_000, default=0),
        fuzz_seed=_fuzz_seed(config),
    )
    json_path = _evidence_path(config)
    config.stash[TIMEOUT_KEY] = _integer(config, "--optconf-timeout", 0, 86_400, default=DEFAULT_TIMEOUT)
    try:
        session = OptconfSession.start(settings)
    except (SpecError, CorpusError, ManifestError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    unsigned = [e for e in session.entries if e.mode == "xfail" and e.expect is None]
    if unsigned and settings.strict_manifest:
        raise pytest.UsageError(
            "--strict-manifest: xfail entries without `expect` would absorb any failure: "
            + "; ".join(e.describe() for e in unsigned)
        )
    for entry in unsigned:
        config.issue_config_time_warning(
            ManifestWarning(
                f"{entry.describe()} has no `expect`: it absorbs any failure of what it selects, not only the "
                "one it records; give it the failure's signature (an error under --strict-manifest)"
            ),
            stacklevel=2,
        )
    stale = report.stale_entries(session)
    if stale and settings.strict_manifest:
        raise pytest.UsageError(
            "--strict-manifest: entries that match nothing: " + "; ".join(e.describe() for e in stale)
        )
    config.pluginmanager.register(report.Evidence(session, json_path), "optconf-evidence")
    if _isolated(config):
        config.pluginmanager.register(ForkedRun(), "optconf-isolation")
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        # `pytest --impl=...` with no paths runs the conformance checks, not the project's own tests.
        config.args = [str(PACKAGE_DIR / "test_conformance.py")]


def _isolated(config: pytest.Config) -> bool:
    """Whether the checks run in a forked process: by default, unless pytest-xdist already runs them in workers."""
    raw = option(config, "--optconf-isolation")
    mode = "fork" if raw is None else str(raw).strip()
    if mode not in ("fork", "off"):
        raise pytest.UsageError(f"{_source('--optconf-isolation')} must be fork or off; got {raw!r}")
    under_xdist = hasattr(config, "workerinput") or bool(config.getoption("numprocesses", None))
    # --pdb and --trace talk to the terminal from inside the check: the debugger needs the run's own process.
    debugging = bool(config.getoption("usepdb", False) or config.getoption("trace", False))
    return mode == "fork" and not under_xdist and not debugging


def _fuzz_seed(config: pytest.Config) -> int:
    # Derandomized under CI (a fixed seed); a fresh seed, printed in the header, elsewhere.
    default = 20261121 if os.environ.get("CI") else int.from_bytes(os.urandom(4), "big")
    return _integer(config, "--fuzz-seed", 0, 2**32 - 1, default=default)


def _targets_conformance(config: pytest.Config) -> bool:
    """Whether the command line asks for the conformance checks (by --pyargs name or by path)."""
    for arg in config.args:
        target = arg.split("::")[0]
        if target in ("conformance", "conformance.test_conformance"):
            return True
        path = pathlib.Path(target).resolve()
        if path == PACKAGE_DIR or PACKAGE_DIR in path.parents:
            return True
    return False


def session_of(config: pytest.Config) -> OptconfSession:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.exit(
            "the optconf conformance checks need an implementation: --impl=SPEC or OPTCONF_IMPL",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    return session


def pytest_report_header(config: pytest.Config) -> list[str]:
    session = config.stash.get(SESSION_KEY, None)
    return session.header() if session else []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "optconf_item" not in metafunc.fixturenames:
        return
    session = session_of(metafunc.config)
    check = metafunc.function.__name__.removeprefix("test_")
    items = list(report.items_for(session, check))
    ids = [report.item_id(session, item) for item in items]
    metafunc.parametrize("optconf_item", items, ids=ids)


def _optconf_param(item: pytest.Item) -> Any:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("optconf_item")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    # A check with nothing to run (test_fuzz without --fuzz) leaves pytest's empty-set placeholder: drop it.
    placeholders = [i for i in items if _optconf_param(i) is not None and not isinstance(_optconf_param(i), Item)]
    if placeholders:
        config.hook.pytest_deselected(items=placeholders)
        items[:] = [i for i in items if i not in placeholders]
    for item in items:
        subject = _optconf_param(item)
        if not isinstance(subject, Item):
            continue
        item.stash[ITEM_KEY] = subject
        view = subject.selector_view()
        item.user_properties.append(("optconf_item", view))
        known = []
        for entry in session.entries:
            if subject.check == "fuzz":
                continue  # fuzzing applies the entries to each case it finds (conformance/fuzz.py)
            if not entry.matches(view):
                continue
            if entry.mode == "skip":
                item.add_marker(pytest.mark.skip(reason=entry_note(entry)))
            elif entry.mode == "xfail":
                known.append(entry)
            else:
                item.stash[K_KEY] = float(entry.k or 0)
        _limit_time(config, item, subject)
        if known:
            # Only a KnownFailure (a failure whose diagnosis matched an entry's `expect`) counts as the xfail;
            # any other failure fails, and a pass is a strict XPASS.
            item.stash[KNOWN_KEY] = known
            reason = "; ".join(entry_note(entry) for entry in known)
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True, raises=KnownFailure))


def _limit_time(config: pytest.Config, item: pytest.Item, subject: Item) -> None:
    """pytest-timeout's mark with the check's time limit, unless the run set its own (`--timeout` or a mark)."""
    seconds = config.stash.get(TIMEOUT_KEY, 0)
    if not seconds or subject.check == "fuzz" or not config.pluginmanager.hasplugin("timeout"):
        return
    own = config.getoption("timeout", None) is not None or config.getini("timeout")
    if own or item.get_closest_marker("timeout") is not None:
        return
    item.add_marker(pytest.mark.timeout(seconds))


def entry_note(entry: Entry) -> str:
    """An entry as reports show it: its reason, link and origin."""
    return f"{entry.reason}" + (f" ({entry.link})" if entry.link else "") + f" [{entry.origin}]"


# What lives for the whole run (the decoded corpus, the collected items, and each framework's modules, imported
# by its adapter's first check) is moved out of the cyclic collector's reach, so that later collections, and
# pytest's own at exit, do not walk torch's or TensorFlow's object graph again and again. Garbage made by the
# checks themselves is still collected.
_FROZEN_AFTER = pytest.StashKey[set[str]]()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.stash.get(SESSION_KEY, None) is not None:
        session.config.stash[_FROZEN_AFTER] = set()
        gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    subject = item.stash.get(ITEM_KEY, None)
    seen = item.config.stash.get(_FROZEN_AFTER, None)
    if subject is None or seen is None or subject.adapter.name in seen:
        return
    seen.add(subject.adapter.name)
    gc.freeze()
