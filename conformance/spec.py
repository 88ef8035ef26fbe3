"""Resolving `--impl=SPEC` to adapters: a built-in name, `module`, `module:attr`, or a path to a .py file."""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys
from typing import Any

from .adapter import Adapter
from .registry import BUILT_INS, built_in

__all__ = ["SpecError", "built_in_names", "resolve"]


class SpecError(Exception):
    """`--impl` could not be turned into adapters; the message says why, in one line."""


def resolve(spec: str) -> list[Adapter]:
    spec = spec.strip()
    if not spec:
        raise SpecError(f"--impl is empty; give a built-in name ({built_in_names()}) or module[:attr]")
    entry = built_in(spec)
    if entry is not None:  # each built-in name loads only its own module, so naming one imports no other framework
        return _adapters(_import(entry.module, spec).subjects(), spec)
    module_name, _, attr = spec.partition(":")
    module = _load_file(module_name) if module_name.endswith(".py") else _import(module_name, spec)
    if attr:
        if not hasattr(module, attr):
            raise SpecError(f"--impl={spec}: module {module.__name__!r} has no attribute {attr!r}")
        target = getattr(module, attr)
        return _adapters(target if isinstance(target, list | tuple) else [target], spec)
    if not hasattr(module, "IMPLEMENTATIONS"):
        raise SpecError(
            f"--impl={spec}: module {module.__name__!r} defines no IMPLEMENTATIONS list; "
            "add one or name an adapter as module:attr"
        )
    return _adapters(module.IMPLEMENTATIONS, spec)


def _import(name: str, spec: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        entry = built_in(spec)
        if entry is not None and exc.name != name:
            raise SpecError(
                f"--impl={spec} needs {exc.name!r}, which is not installed (pip install 'optconf[{entry.extra}]')"
            ) from None
        raise SpecError(f"--impl={spec}: no module named {exc.name!r} (built-in names: {built_in_names()})") from None
    except Exception as exc:  # an import that raises is reported once, not as a traceback per test
        raise SpecError(f"--impl={spec}: importing {name!r} raised {type(exc).__name__}: {exc}") from None
    except SystemExit as exc:
        raise SpecError(f"--impl={spec}: importing {name!r} {_exited(exc)}") from None


def built_in_names() -> str:
    return ", ".join(b.name for b in BUILT_INS)


def _load_file(path_text: str) -> Any:
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise SpecError(f"--impl={path_text}: no such file")
    name = f"optconf_impl_{path.stem}"
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None or loader.loader is None:
        raise SpecError(f"--impl={path_text}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as exc:
        raise SpecError(f"--impl={path_text}: importing it raised {type(exc).__name__}: {exc}") from None
    except SystemExit as exc:
        raise SpecError(f"--impl={path_text}: importing it {_exited(exc)}") from None
    return module


def _exited(exc: SystemExit) -> str:
    """A module that exits at import (a script's `sys.exit`, or argparse reading pytest's own command line)."""
    return (
        f"called sys.exit({exc.code!r}); an implementation module must not run a program at import "
        "(put it under `if __name__ == '__main__':`)"
    )


def _adapters(candidates: Any, spec: str) -> list[Adapter]:
    try:
        adapters = list(candidates() if callable(candidates) and not hasattr(candidates, "create") else candidates)
    except Exception as exc:
        raise SpecError(f"--impl={spec}: building the adapters raised {type(exc).__name__}: {exc}") from None
    except SystemExit as exc:
        raise SpecError(f"--impl={spec}: building the adapters {_exited(exc)}") from None
    if not adapters:
        raise SpecError(f"--impl={spec} names no adapters")
    for adapter in adapters:
        if not (hasattr(adapter, "create") and hasattr(adapter, "capabilities") and hasattr(adapter, "name")):
            raise SpecError(f"--impl={spec}: {adapter!r} is not an adapter (needs name, capabilities and create)")
    for adapter in adapters:
        _check_claims(adapter, spec)
    names = [a.name for a in adapters]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SpecError(f"--impl={spec}: two adapters are named {duplicated[0]!r}; give each a distinct name")
    return adapters


def _check_claims(adapter: Adapter, spec: str) -> None:
    """Claims name real dialects and formats: a misspelt one would skip every check it was meant to enable."""
    import difflib

    import reference

    claims = adapter.capabilities
    for kind, claimed, known in (
        ("dialect", claims.dialects, reference.DIALECTS),
        ("dtype", claims.dtypes, reference.DTYPES),
    ):
        if isinstance(claimed, str) or not claimed:
            raise SpecError(f"--impl={spec}: {adapter.name} must claim a non-empty tuple of {kind}s; got {claimed!r}")
        for name in claimed:
            if name not in known:
                close = difflib.get_close_matches(str(name), list(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
                raise SpecError(f"--impl={spec}: {adapter.name} claims unknown {kind} {name!r}{hint}")
