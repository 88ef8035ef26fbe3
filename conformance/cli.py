"""The `optconf` command line."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from conformance.inputs import one_line, parse_json, read_regular, shown

__all__ = ["main"]


class UsageError(Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


def _json_arg(name: str, text: str) -> Any:
    return parse_json(text, f"--{name}")


def _number(value: Any) -> float:
    """A JSON number, or a string that float() parses ('nan', '-0.0', 'inf'); never a boolean, null or container."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"{shown(value)} is not a number")
    return float(value)


def _numbers(name: str, value: Any) -> np.ndarray:
    """A nested list of numbers or numeric strings as float64, within the codec's limits on tensors."""
    from reference.vectors.codec import element_count

    try:
        array = np.vectorize(_number, otypes=[np.float64])(np.asarray(value, dtype=object))
        element_count(list(array.shape))
    except (TypeError, ValueError, OverflowError) as exc:
        raise UsageError(f"--{name} must hold numbers or numeric strings: {exc}") from None
    return array


def _as_text(array: np.ndarray) -> Any:
    """Nested lists of strings that float() parses back to exactly the dtype's value."""
    return np.vectorize(lambda x: repr(float(x)), otypes=[object])(array).tolist() if array.size else []


def trace(args: argparse.Namespace) -> int:
    from reference import get, run
    from reference.vectors.codec import MAX_STEPS, decode_hparams

    dialect = get(args.dialect)
    hparams = _json_arg("hparams", args.hparams)
    if not isinstance(hparams, dict):
        raise UsageError("--hparams must be a JSON object of the dialect's hyperparameter names")
    params = _numbers("params", _json_arg("params", args.params))
    grads = _json_arg("grads", args.grads)
    if not isinstance(grads, list) or not grads:
        raise UsageError("--grads must be a non-empty JSON list with one gradient per step")
    if len(grads) > MAX_STEPS:
        raise UsageError(f"--grads holds {len(grads)} steps; at most {MAX_STEPS} are accepted")
    grad_steps = [[_numbers("grads", g)] for g in grads]
    losses = None
    if args.losses is not None:
        losses = [float(x) for x in _numbers("losses", _json_arg("losses", args.losses)).ravel()]
    state = _json_arg("state", args.state) if args.state is not None else {}
    if not isinstance(state, dict):
        raise UsageError("--state must be a JSON object of the dialect's slot names, each one tensor")
    given = {str(name): [_numbers("state", value)] for name, value in state.items()}
    if args.count < 0:
        raise UsageError(f"--count must be >= 0, not {args.count}")
    # The same decoding as a stored case's hyperparameters; `Dialect.hparams` then type-checks every value.
    hparams = decode_hparams(hparams)
    steps = run(
        dialect,
        hparams,
        args.dtype,
        [params],
        grad_steps,
        losses,
        evaluator=args.evaluator,
        initial_count=args.count,
        initial_state=given,
    )
    out = {"dialect": dialect.id, "dtype": args.dtype, "steps": []}
    for s in steps:
        state = {name: _as_text(arrays[0]) for name, arrays in s.state.items()}
        if dialect.counter is not None:
            state[dialect.counter] = str(s.count)
        out["steps"].append({"params": _as_text(s.params[0]), "state": state})
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def _corpus_root(given: str | None) -> pathlib.Path:
    """The folder given, else the default corpus; none at all is a usage error."""
    from conformance.corpus import CorpusError, default_root

    try:
        return pathlib.Path(given) if given else default_root()
    except CorpusError as exc:
        raise UsageError(str(exc)) from None


def _registry(root: pathlib.Path) -> Any:
    """The tcId registry to number cases by: the one in `root`, else the project's own (a fresh --out folder gets
    the committed ids), else none."""
    from reference.vectors import tcids

    for folder in (root, _corpus_root(None)):
        path = folder / tcids.REGISTRY_FILE
        if path.exists():
            return tcids.parse(parse_json(read_regular(path), str(path)), str(path))
    return None


def generate(args: argparse.Namespace) -> int:
    from reference.vectors.generate import Selection, build, diff_summary, write

    root = _corpus_root(args.out)
    selection = Selection(
        tuple(args.dialect) if args.dialect else None,
        tuple(args.dtype) if args.dtype else None,
        tuple(args.level) if args.level else None,
    )
    if args.check and not selection.is_complete:
        raise UsageError("--check compares whole files: it takes --dialect but no --dtype or --level")
    if not selection.is_complete and root.resolve() == _corpus_root(None).resolve():
        raise UsageError("--dtype and --level write a partial corpus: give --out DIR so the corpus is kept whole")
    files = build(selection, jobs=args.jobs, progress=not args.quiet, registry=_registry(root))
    if args.check:
        differences = diff_summary(root, files, read=read_regular)
        for line in differences:
            print(line, file=sys.stderr)
        if differences:
            print(
                f"{root}: the committed corpus is not what the reference generates; run `optconf generate`",
                file=sys.stderr,
            )
            return 1
        print(f"{root}: bit-identical ({len(files)} files checked)")
        return 0
    write(root, files)
    print(f"{root}: wrote {len(files)} files and MANIFEST.json")
    return 0


def lint(args: argparse.Namespace) -> int:
    from conformance.corpus import problems

    root = _corpus_root(args.root)
    found = problems(root)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        return 1
    print(f"{root}: schema, hashes, counts, tcIds, flags, limits and cross-field invariants are all in order")
    return 0


def explain(args: argparse.Namespace) -> int:
    from conformance.corpus import CorpusError
    from conformance.explain import explain as run_explain
    from conformance.explain import find_case
    from conformance.fuzz import load_case_json
    from conformance.spec import SpecError

    if bool(args.tcid) == bool(args.case_json):
        raise UsageError("give a case id or --case-json FILE (a case saved by --fuzz), not both")
    try:
        if args.case_json:
            case = load_case_json(pathlib.Path(args.case_json))
        else:
            case = find_case(args.tcid, pathlib.Path(args.vectors) if args.vectors else None)
        return run_explain(case, args.impl, args.subject, sys.stdout, forced=args.forced)
    except (SpecError, CorpusError) as exc:
        raise UsageError(str(exc)) from None


def matrix(args: argparse.Namespace) -> int:
    from conformance.matrix import run_all, write_into
    from conformance.registry import MatrixRun, matrix_runs

    known = matrix_runs()
    runs = [run for run in known if run.installed()] + [MatrixRun(spec, spec) for spec in args.impl or []]
    if args.only:
        unknown = sorted(set(args.only) - {run.name for run in runs})
        if unknown:
            have = ", ".join(run.name for run in runs)
            raise UsageError(f"--only {', '.join(unknown)}: not installed or not a built-in (have {have})")
        runs = [run for run in runs if run.name in args.only]
    missing = [run.name for run in known if not run.installed()]
    if missing:
        print(f"optconf matrix: not installed, left out: {', '.join(missing)}", file=sys.stderr)
    evidence = run_all(runs, sys.stderr)
    write_into(pathlib.Path(args.file), pathlib.Path(args.evidence), evidence)
    print(f"{args.file}: matrix of {len(runs)} implementations written; evidence in {args.evidence}")
    return 0


def docs(args: argparse.Namespace) -> int:
    from conformance.docs import stale, write

    root = pathlib.Path(args.root)
    if args.check:
        found = stale(root)
        if found:
            print(f"generated text out of date: {', '.join(found)}; run `optconf docs`", file=sys.stderr)
            return 1
        return 0
    write(root)
    return 0


def diff(args: argparse.Namespace) -> int:
    from conformance import porting

    given = _json_arg("hparams", args.hparams)
    if not isinstance(given, dict):
        raise UsageError("--hparams must be a JSON object of the family's canonical hyperparameter names")
    plot = pathlib.Path(args.plot) if args.plot else None
    if plot is not None:
        try:
            from conformance import porting_plot
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install 'optconf[plot]'") from None
        if plot.suffix.lower() not in porting_plot.FORMATS:
            raise UsageError(f"--plot writes {' or '.join(porting_plot.FORMATS)} files, not {plot.name!r}")
    result = porting.compare(args.a, args.b, given, steps=args.steps, dtype=args.dtype, seed=args.seed)
    sys.stdout.write(porting.render(result))
    if plot is not None:
        porting_plot.save(result, plot)
        print(f"optconf diff: drew {plot}", file=sys.stderr)
    return 0


def _command(
    commands: Any, func: Callable[[argparse.Namespace], int], help: str, description: str
) -> argparse.ArgumentParser:
    """The subcommand named after `func`, which runs it with the parsed arguments."""
    parser: argparse.ArgumentParser = commands.add_parser(func.__name__, help=help, description=description)
    parser.set_defaults(func=func)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optconf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = _command(
        commands,
        trace,
        help="print the reference trajectory of a dialect for given inputs, as JSON",
        description="Run the reference on the given parameters and gradients and print every step's parameters and "
        "state as JSON on standard output, each number a string that float() parses exactly. Writes no file.",
    )
    p.add_argument("dialect", help="a dialect id, e.g. adagrad/torch or rprop/irprop-")
    p.add_argument("--dtype", default="float32", help="float16, bfloat16, float32 or float64 (default float32)")
    p.add_argument("--hparams", default="{}", help="JSON object, using the dialect's own hyperparameter names")
    p.add_argument("--params", required=True, help="JSON: the initial parameter tensor")
    p.add_argument("--grads", required=True, help="JSON list: one gradient tensor per step")
    p.add_argument("--losses", help="JSON list: one loss per step (iRprop+)")
    p.add_argument(
        "--state",
        help="JSON object: initial slots given as inputs, by the dialect's slot names, each a tensor like --params "
        "(the loss slot a number); a slot not given starts as the hyperparameters build it",
    )
    p.add_argument("--count", type=int, default=0, help="the counter before the first step (default 0)")
    p.add_argument("--evaluator", choices=("oracle", "numpy"), default="oracle", help="default: the mpmath oracle")
    p = _command(
        commands,
        generate,
        help="write the golden vector corpus from the reference",
        description="Compute every case of the golden corpus with the reference and rewrite the corpus folder: one "
        "JSON file per dialect and MANIFEST.json. With --check, write nothing: regenerate in memory and exit 1, with "
        "a per-case diff, unless the committed corpus is bit-identical.",
    )
    p.add_argument("--out", help="the corpus folder (default: the project's vectors/)")
    p.add_argument("--dialect", action="append", help="only this dialect (repeatable)")
    p.add_argument("--dtype", action="append", help="only this format (repeatable; needs --out)")
    p.add_argument("--level", action="append", type=int, help="only this level, 1 or 2 (repeatable; needs --out)")
    p.add_argument("--check", action="store_true", help="regenerate in memory; exit 1 unless bit-identical")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = _command(
        commands,
        lint,
        help="validate the corpus: schema, manifest hashes, counts, tcIds, flags",
        description="Check a corpus folder as the runner does before using it, and more: the schema, the manifest's "
        "hashes and counts, unique tcIds, flags defined and used, limits, cross-field invariants, and every expected "
        "decimal against its hex value. Prints one line per problem and exits 1 if there is any. Writes no file.",
    )
    p.add_argument("--root", help="the corpus folder (default: the project's vectors/)")
    p = _command(
        commands,
        explain,
        help="re-run one corpus case against an implementation, step by step",
        description="Run one case (a corpus id, or a case saved by fuzzing) on an implementation and print, step by "
        "step, what it computed beside what the reference expects. Writes no file.",
    )
    p.add_argument("tcid", nargs="?", help="the case id, e.g. adagrad/torch-float32-tc0042")
    p.add_argument("--case-json", help="a case saved by fuzzing (.optconf-fuzz/*.json) instead of a corpus id")
    p.add_argument("--impl", default=os.environ.get("OPTCONF_IMPL", "reference"), help="as pytest --impl")
    p.add_argument("--subject", help="which adapter, when the implementation has several")
    p.add_argument(
        "--forced",
        action="store_true",
        help="teacher forcing: set the expected state before each step and judge each step alone, as "
        "test_teacher_forced does",
    )
    p.add_argument("--vectors", default=os.environ.get("OPTCONF_VECTORS"), help="the corpus folder")
    p = _command(
        commands,
        matrix,
        help="run every installed built-in implementation and rewrite the matrix in CONFORMANCE.md",
        description="Run every installed built-in implementation (and any --impl) through the level-1 corpus, each "
        "in its own pytest process with its own known-failure manifest. Rewrites the matrix between the markers of "
        "CONFORMANCE.md (--file) and the whole JSON evidence file (--evidence, docs/conformance-evidence.json).",
    )
    p.add_argument("--impl", action="append", help="also run this SPEC (repeatable)")
    p.add_argument("--only", action="append", help="run only these SPECs (repeatable)")
    p.add_argument("--file", default="CONFORMANCE.md", help="where the Markdown matrix goes, between markers")
    p.add_argument(
        "--evidence", default="docs/conformance-evidence.json", help="where the JSON evidence goes (rewritten whole)"
    )
    p = _command(
        commands,
        docs,
        help="regenerate the generated sections of CONFORMANCE.md and docs/guide.md",
        description="Rewrite the sections of CONFORMANCE.md and docs/guide.md that are generated from code (the "
        "dialects, the vector format, the flags, the checks, the tolerance table, the self-test corpus, the options), "
        "between their markers; the rest of each document is kept. With --check, write nothing and exit 1 if a "
        "section is out of date.",
    )
    p.add_argument("--root", default=".", help="the checkout holding the documents (default: the current folder)")
    p.add_argument("--check", action="store_true", help="exit 1 if a generated section is out of date")
    p = _command(
        commands,
        diff,
        help="why two dialects of one family train differently: their settings and a seeded fit, side by side",
        description="List every setting in which two dialects of one family differ (knobs, defaults, keywords, "
        "slots, counter, formats) and, for the given hyperparameters, which of them change the numbers: each is "
        "tried alone on the same problem. Then run both on one seeded least-squares fit and print where the "
        "trajectories part and the relative loss gap. With --plot, also draw both loss curves and the gap "
        "(matplotlib, the 'plot' extra). Writes no file but the plot.",
    )
    p.add_argument("a", help="a dialect id, e.g. adagrad/keras2")
    p.add_argument("b", help="another dialect of the same family, e.g. adagrad/torch")
    p.add_argument("--hparams", default="{}", help="JSON object of canonical names (lr, eps, ...) given to both")
    p.add_argument("--steps", type=int, default=100, help="steps of the fit (default 100)")
    p.add_argument("--dtype", default="float32", help="float16, bfloat16, float32 or float64 (default float32)")
    p.add_argument("--seed", type=int, default=0, help="the problem's seed (default 0)")
    p.add_argument("--plot", help="also draw the loss curves and their gap into this .png or .svg file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError) as exc:  # ValueError: every input refusal (InputError, the reference's own)
        print(f"optconf {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
