"""Hostile and broken input: one clear line per problem, never a traceback, a hang or a silent pass.

One test (or one batch) per class of input read from outside: JSON nesting, UTF-8, file kinds, paths confined to
the corpus folder, the manifest's structure, limits on shapes and counts, the cross-field invariants of a case,
and the strictly typed inputs of `optconf trace` and `optconf explain --case-json`.
"""

import copy
import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.corpus_copy import ROOT, copy_corpus, edit_json, edit_manifest, pin

from conformance import corpus as corpus_module
from conformance.cli import main
from conformance.corpus import CorpusError, case_from_json, load, problems
from conformance.inputs import MAX_DEPTH, InputError, nesting, parse_json, read_regular
from reference import get
from reference.vectors.codec import MAX_DIMS, MAX_ELEMENTS, MAX_STEPS, MAX_TENSORS

HANG_LIMIT_S = 120
FIXTURE_HEALTH = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(autouse=True)
def no_hang():
    """A regression that blocks (a FIFO opened for reading) fails its test instead of hanging the suite."""

    def expire(signum, frame):
        raise TimeoutError(f"no answer within {HANG_LIMIT_S} s: something blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(HANG_LIMIT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def corpus_copy(tmp_path):
    return copy_corpus(tmp_path)


# JSON values of every kind, strings full of brackets, quotes and backslashes included.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=16,
)


def depth_of(value):
    if isinstance(value, dict | list):
        children = value.values() if isinstance(value, dict) else value
        return 1 + max((depth_of(c) for c in children), default=0)
    return 0


def assert_one_line(line):
    assert "\n" not in line and line.isprintable() and "Traceback" not in line, line


def read_or_refuse_in_one_line(read, refusal, prefix=""):
    """`read()` either returns or raises `refusal` as one line starting with `prefix` (the source's name)."""
    try:
        read()
    except refusal as exc:
        assert str(exc).startswith(prefix)
        assert_one_line(str(exc))


def expect_problems(root, *fragments):
    """problems(root) is exactly one line per expected problem: each tuple of fragments in exactly one line."""
    found = problems(root)
    for line in found:
        assert_one_line(line)
    assert len(found) == len(fragments), "\n".join(found)
    for wanted in fragments:
        matching = [line for line in found if all(f in line for f in wanted)]
        assert len(matching) == 1, (wanted, found)
    return found


def expect_refused(root, dialects=None, *fragments):
    with pytest.raises(CorpusError) as info:
        load(root, dialects)
    assert_one_line(str(info.value))
    for fragment in fragments:
        assert fragment in str(info.value)


def snapshot(folder):
    """What is under `folder`, by name, size and modification time, without opening anything."""
    return {p.relative_to(folder).as_posix(): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def cli(capsys, *argv):
    code = main([*argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(result, command, *fragments):
    code, out, err = result
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith(f"optconf {command}: error: ") and err.count("\n") == 1, err
    assert_one_line(err.rstrip("\n"))
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def run_cli(*argv, cwd=None):
    """The command in its own process, as a user runs it: a hang is a failure, and so is a traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "conformance.cli", *argv],
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT_S,
        cwd=cwd,
        env=os.environ | {"PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


# --- JSON: nesting, encoding, syntax -------------------------------------------------------------------------


@given(JSON_VALUES)
def test_nesting_is_measured_exactly_without_parsing(value):
    assert nesting(json.dumps(value).encode()) == depth_of(value)
    assert nesting(json.dumps(value, ensure_ascii=False).encode()) == depth_of(value)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_nesting_beyond_the_limit_is_refused_in_one_line(opener):
    closer = "]" if opener == "[" else "}"
    assert parse_json(opener * MAX_DEPTH + "1" + closer * MAX_DEPTH, "x") is not None
    for depth in (MAX_DEPTH + 1, 10**5):
        with pytest.raises(InputError, match=rf"^--params: JSON nested {depth} levels deep; at most {MAX_DEPTH}"):
            parse_json(opener * depth + "1" + closer * depth, "--params")


@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_are_refused_in_one_line(data):
    read_or_refuse_in_one_line(lambda: parse_json(data, "FILE"), InputError, "FILE: ")


@given(JSON_VALUES, st.data())
def test_damaged_json_text_parses_or_is_refused_in_one_line(value, data):
    text = json.dumps(value).encode()
    cut = data.draw(st.integers(0, len(text)))
    damaged = text[:cut] + data.draw(st.sampled_from([b"", b"\xff", b"\xc3", b"[", b"}", b'"', b"\\", b"\x00"]))
    read_or_refuse_in_one_line(lambda: parse_json(damaged, "FILE"), InputError)


def test_not_utf8_and_huge_numbers_are_refused_in_one_line():
    with pytest.raises(InputError, match=r"^F: not UTF-8 \(invalid start byte at offset 2\)"):
        parse_json(b'["\xff"]', "F")
    with pytest.raises(InputError, match=r"^F: not UTF-8"):
        parse_json('["x"]'.encode("utf-16"), "F")
    with pytest.raises(InputError, match=r"^F: not UTF-8"):
        parse_json('["\udcff"]', "F")  # argv bytes that were not UTF-8, as Python decodes them
    with pytest.raises(InputError, match=r"^F: not valid JSON \(a number too long"):
        parse_json("1" * 10_000, "F")


def test_only_regular_files_are_read_and_never_past_the_limit(tmp_path, monkeypatch):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"fifo\.json: a FIFO, not a regular file"):
        read_regular(fifo)  # refused from its stat: opening it would block
    with pytest.raises(InputError, match=r"a directory, not a regular file"):
        read_regular(tmp_path)
    with pytest.raises(InputError, match=r"a character device, not a regular file"):
        read_regular(pathlib.Path("/dev/zero"))
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"0," * 1000 + b"0]")
    monkeypatch.setattr("conformance.inputs.MAX_FILE_BYTES", 1000)
    with pytest.raises(InputError, match=r"big\.json: 2003 bytes, larger than the limit of 1000"):
        read_regular(big)


# --- The corpus: files, confinement, manifest structure ------------------------------------------------------


def test_every_file_level_refusal_is_one_line_naming_the_file(corpus_copy):
    deep, not_utf8, utf16, empty, fifo, folder = (
        "adagrad/keras2.json",
        "adagrad/optax.json",
        "adagrad/tf1.json",
        "adagrad/tf-raw-v2.json",
        "rprop/torch.json",
        "rprop/rprop-.json",
    )
    (corpus_copy / deep).write_text("[" * 100_000 + "]" * 100_000)
    text = (corpus_copy / not_utf8).read_bytes()
    (corpus_copy / not_utf8).write_bytes(text.replace(b'"comment": "', b'"comment": "\xff', 1))
    (corpus_copy / utf16).write_bytes((corpus_copy / utf16).read_text().encode("utf-16"))
    (corpus_copy / empty).write_bytes(b"")
    for relative in (deep, not_utf8, utf16, empty):
        pin(corpus_copy, relative)  # the hash agrees: the content itself must be refused
    (corpus_copy / fifo).unlink()
    os.mkfifo(corpus_copy / fifo)
    (corpus_copy / folder).unlink()
    (corpus_copy / folder).mkdir()
    before = snapshot(corpus_copy)
    expect_problems(
        corpus_copy,
        (deep, "JSON nested 100000 levels deep; at most 64 are accepted"),
        (not_utf8, "not UTF-8 (invalid start byte"),
        (utf16, "not UTF-8"),
        (empty, "not valid JSON (Expecting value at line 1 column 1)"),
        (fifo, "a FIFO, not a regular file"),
        (folder, "a directory, not a regular file"),
    )
    for dialect, relative in [("adagrad/keras2", deep), ("rprop/torch", fifo), ("rprop/rprop-", folder)]:
        expect_refused(corpus_copy, [dialect], relative)
    result = run_cli("lint", "--root", str(corpus_copy))
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 6
    assert snapshot(corpus_copy) == before  # nothing written, nothing created


def test_a_manifest_that_is_not_a_regular_file_is_refused_without_opening_it(corpus_copy):
    (corpus_copy / "MANIFEST.json").unlink()
    os.mkfifo(corpus_copy / "MANIFEST.json")
    expect_problems(corpus_copy, ("unreadable manifest", "MANIFEST.json: a FIFO, not a regular file"))
    expect_refused(corpus_copy, None, "MANIFEST.json: a FIFO")
    expect_refused(corpus_copy / "MANIFEST.json", None, "MANIFEST.json/MANIFEST.json: cannot be read")


def entry_for(key):
    """A manifest edit adding `key` with a well-formed entry (a copy of another file's)."""

    def edit(doc):
        doc["files"][key] = copy.deepcopy(doc["files"]["adagrad/torch.json"])
        return doc

    return edit


OUTSIDE = [
    "/etc/passwd.json",
    "../outside.json",
    "adagrad/../../outside.json",
    "./adagrad/torch.json",
    "adagrad//torch.json",
    "adagrad\\torch.json",
    "C:/outside.json",
    ".hidden.json",
    "adagrad/torch.json\n",
    "adagrad/torch.txt",
    "",
]


@pytest.mark.parametrize("key", OUTSIDE, ids=[repr(k) for k in OUTSIDE])
def test_listed_paths_outside_the_corpus_are_refused_before_anything_is_read(corpus_copy, monkeypatch, key):
    edit_manifest(corpus_copy, entry_for(key))
    read = []
    monkeypatch.setattr(corpus_module, "read_regular", lambda path: read.append(path) or read_regular(path))
    expect_problems(corpus_copy, ("MANIFEST.json: files[" + json.dumps(key), "not a relative path of plain names"))
    expect_refused(corpus_copy, ["adagrad/torch"], "MANIFEST.json")
    assert [p.name for p in read] == ["MANIFEST.json", "MANIFEST.json"]  # one per scan, and no listed file


def test_a_symbolic_link_out_of_the_corpus_is_refused_before_anything_is_read(corpus_copy, tmp_path):
    os.mkfifo(tmp_path / "outside.json")  # reading it would block: the refusal must come from the link alone
    (corpus_copy / "adagrad" / "link.json").symlink_to(tmp_path / "outside.json")
    edit_manifest(corpus_copy, entry_for("adagrad/link.json"))
    expect_problems(corpus_copy, ('files["adagrad/link.json"]', "a symbolic link that leads outside the corpus"))
    expect_refused(corpus_copy, None, "link.json")


def test_a_symbolic_link_loop_is_one_line(corpus_copy):
    (corpus_copy / "rprop" / "loop.json").symlink_to(corpus_copy / "rprop" / "loop.json")
    edit_manifest(corpus_copy, entry_for("rprop/loop.json"))
    # Refused when the manifest is checked where resolving a loop raises (Python 3.11, 3.12), else when read.
    (line,) = [p for p in problems(corpus_copy) if "loop.json" in p]
    assert "cannot be resolved" in line or "cannot be read" in line
    expect_refused(corpus_copy, None, "loop.json")


def changed(edit):
    """An in-place edit of the manifest, as one that returns the manifest."""

    def apply(doc):
        edit(doc)
        return doc

    return apply


def drop(key):
    return changed(lambda doc: doc.pop(key))


def set_entry(field, value, key="adagrad/torch.json"):
    return changed(lambda doc: doc["files"][key].__setitem__(field, value))


MANIFEST_DAMAGE = [
    ("a list", lambda doc: [doc], "MANIFEST.json: must be a JSON object, not a list"),
    ("null", lambda doc: None, "MANIFEST.json: must be a JSON object, not null"),
    ("files a list", changed(lambda doc: doc.__setitem__("files", list(doc["files"]))), "files must be an object"),
    ("files missing", drop("files"), "files is missing"),
    ("version missing", drop("vectorSetVersion"), "vectorSetVersion is missing"),
    ("version a number", changed(lambda doc: doc.update(vectorSetVersion=1)), "vectorSetVersion must be a version"),
    ("schema renamed", changed(lambda doc: doc.update(schema="other.json")), 'schema must be "schema.json"'),
    ("unknown field", changed(lambda doc: doc.update(extra=1)), 'unknown field "extra"'),
    ("entry a number", changed(lambda doc: doc["files"].update({"adagrad/torch.json": 5})), "an object, not 5"),
    ("sha256 a number", set_entry("sha256", 5), "sha256 must be 64 lowercase hex digits, not 5"),
    ("sha256 upper case", set_entry("sha256", "A" * 64), "sha256 must be 64 lowercase hex digits"),
    ("count a string", set_entry("numberOfTests", "81"), 'numberOfTests must be an integer >= 0, not "81"'),
    ("count a boolean", set_entry("numberOfTests", True), "numberOfTests must be an integer >= 0, not true"),
    ("count negative", set_entry("numberOfTests", -1), "numberOfTests must be an integer >= 0, not -1"),
    ("dialects a list", set_entry("dialects", ["adagrad/torch"]), "dialects must be an object of dialect ids"),
    ("levels of strings", set_entry("levels", {"1": "x"}), "levels must be an object of levels"),
    (
        "entry field missing",
        changed(lambda doc: doc["files"]["adagrad/torch.json"].pop("levels")),
        "levels is missing",
    ),
    ("entry field unknown", set_entry("extra", 1), 'unknown field "extra"'),
]


@pytest.mark.parametrize(("what", "edit", "message"), MANIFEST_DAMAGE, ids=[d[0] for d in MANIFEST_DAMAGE])
def test_a_malformed_manifest_is_one_line_for_lint_and_for_load(corpus_copy, capsys, what, edit, message):
    edit_manifest(corpus_copy, edit)
    (line,) = expect_problems(corpus_copy, ("MANIFEST.json", message))
    expect_refused(corpus_copy, None, line)  # load and lint agree, on the same line
    expect_refused(corpus_copy, ["rprop/torch"], line)
    code, out, err = cli(capsys, "lint", "--root", str(corpus_copy))
    assert code == 1 and out == "" and err == line + "\n"


@FIXTURE_HEALTH
@given(st.one_of(JSON_VALUES.map(json.dumps).map(str.encode), st.binary(max_size=200)))
def test_load_refuses_exactly_when_lint_finds_problems_whatever_the_manifest(tmp_path, content):
    (tmp_path / "MANIFEST.json").write_bytes(content)
    found = problems(tmp_path)
    assert found
    for line in found:
        assert_one_line(line)
    with pytest.raises(CorpusError):
        load(tmp_path)


# --- Limits on shapes and counts -----------------------------------------------------------------------------


def in_case(tc_id, edit):
    """An edit of the file's case `tc_id`."""

    def apply(doc):
        (test,) = [t for g in doc["testGroups"] for t in g["tests"] if t["tcId"] == tc_id]
        edit(test)

    return apply


def all_of(*edits):
    def apply(doc):
        for edit in edits:
            edit(doc)

    return apply


def test_shapes_and_counts_beyond_the_limits_are_refused_before_any_array_exists(corpus_copy):
    def shape(field_path, new_shape):
        def edit(test):
            *parents, last = field_path
            target = test
            for part in parents:
                target = target[part]
            target[last]["shape"] = new_shape

        return edit

    def more(field, factor):
        return lambda test: test.__setitem__(field, test[field] * factor)

    edit_json(
        corpus_copy,
        "adagrad/torch.json",
        all_of(
            in_case(1, shape(["initialParams", 0], [2**70])),
            in_case(2, shape(["grads", 0, 0], [1] * (MAX_DIMS + 8))),
            in_case(3, shape(["expected", 0, "params", 0], [4096, 8192])),
            in_case(4, shape(["initialParams", 0], [3, 5])),
            in_case(5, more("grads", MAX_STEPS)),
            in_case(6, more("initialParams", MAX_TENSORS + 1)),
            in_case(7, lambda test: test["expected"][0]["params"][0].__setitem__("scale", ["1.00000e+00"] * 7)),
            in_case(8, lambda test: test["expected"][1]["state"]["sum"][0].__setitem__("stepScale", [])),
        ),
    )
    file = "adagrad/torch.json: tc"
    expect_problems(
        corpus_copy,
        (file + "0001: initialParams[0]: shape [1180591620717411303424]: every dimension must be within 0..16777216",),
        (file + f"0002: grads[0][0]: shape has {MAX_DIMS + 8} dimensions; at most {MAX_DIMS}",),
        (file + f"0003: expected[0].params[0]: shape [4096, 8192] holds 33554432 elements; at most {MAX_ELEMENTS}",),
        (file + "0004: initialParams[0]: 2 hex values for shape [3, 5]",),
        (file + f"0005: grads: {2 * MAX_STEPS} steps; at most {MAX_STEPS} are accepted",),
        (file + f"0006: initialParams: {MAX_TENSORS + 1} tensors; at most {MAX_TENSORS} are accepted",),
        (file + "0007: expected[0].params[0]: 7 scale values for shape [3]",),
        (file + "0008: expected[1].state.sum[0]: 0 stepScale values for shape [2]",),
    )
    expect_refused(corpus_copy, ["adagrad/torch"], "tc0001", "(and 7 more problems)")


# --- Cross-field invariants ----------------------------------------------------------------------------------


def test_every_cross_field_invariant_is_one_line_naming_the_case_and_field(corpus_copy):
    def on_expected(step, edit):
        return lambda test: edit(test["expected"][step])

    def grow_tensor(record):
        record["shape"] = [record["shape"][0] + 1]
        for key in ("hex", "decimal", "scale", "stepScale"):
            if key in record:
                record[key] = [*record[key], record[key][-1]]

    edit_json(
        corpus_copy,
        "rprop/irprop+.json",
        all_of(
            lambda doc: doc.__setitem__("family", "adagrad"),
            in_case(15, lambda test: test.__setitem__("checkpoint", 11)),
            in_case(1, lambda test: test["expected"].pop()),
            in_case(4, lambda test: test["losses"].pop()),
            in_case(5, lambda test: test.pop("losses")),
            in_case(6, on_expected(1, lambda step: step.__setitem__("count", None))),
            in_case(7, lambda test: test["initialState"].__setitem__("count", None)),
            in_case(8, lambda test: test["initialState"]["slots"].pop("prev_grad")),
            in_case(10, on_expected(0, lambda step: step["branches"][0].pop())),
            in_case(11, lambda test: grow_tensor(test["grads"][0][0])),
            in_case(14, on_expected(0, lambda step: grow_tensor(step["state"]["delta"][0]))),
            in_case(16, lambda test: test["hparams"].__setitem__("delta_0", "1.2.3")),
            in_case(17, lambda test: test["losses"].__setitem__(0, "1.2.3")),
            in_case(18, on_expected(0, lambda step: step["params"][0]["decimal"].__setitem__(0, "7.5"))),
            in_case(19, on_expected(0, lambda step: step["params"][0]["decimal"].__setitem__(0, "1.2.3"))),
        ),
    )
    edit_json(
        corpus_copy,
        "adagrad/torch.json",
        in_case(12, lambda test: test["grads"][1][0].__setitem__("indices", [2, 0, 99])),
    )
    edit_json(
        corpus_copy,
        "adagrad/optax.json",
        in_case(1, on_expected(0, lambda step: step.__setitem__("count", 1))),
    )
    edit_json(corpus_copy, "adagrad/keras2.json", lambda doc: doc["testGroups"][0].__setitem__("dtype", "float64"))
    file = "rprop/irprop+.json"
    expect_problems(
        corpus_copy,
        (file, "family is 'adagrad', but rprop/irprop+ is of the rprop family"),
        (file, "tc0015: checkpoint: 11 is not one of the steps 1..10"),
        (file, "tc0001: expected: 9 steps, but grads has 10"),
        (file, "tc0004: losses: 9 values for 10 steps"),
        (file, "tc0005: losses: rprop/irprop+ needs one loss per step"),
        (file, "tc0006: expected[1].count: null, but rprop/irprop+ counts steps (t)"),
        (file, "tc0007: initialState.count: null, but rprop/irprop+ counts steps (t)"),
        (file, "tc0008: initialState.slots: slots ['delta', 'prev_loss', 'prev_update'], but rprop/irprop+ keeps"),
        (file, "tc0010: expected[0].branches[0]: shape [1], but [2] expected"),
        (file, "tc0011: grads[0][0]: shape [3], but the parameter's is [2]"),
        (file, "tc0014: expected[0].state.delta[0]: shape [4], but [3] expected"),
        (file, "tc0016: hparams: invalid delta_0='1.2.3': must be a number"),
        (file, "tc0017: losses: could not convert string to float: '1.2.3'"),
        (file, "tc0018: expected[0].params[0]: decimal[0] 7.5 is not the value of hex[0]"),
        (file, "tc0019: expected[0].params[0]: decimal[0] '1.2.3' is not a number"),
        ("adagrad/torch.json", "tc0012: grads[1][0]: sparse index 99 is not a row of the parameter's 3"),
        ("adagrad/optax.json", "tc0001: expected[0].count: 1, but adagrad/optax keeps no counter"),
        ("adagrad/keras2.json", "testGroups[0].dtype: adagrad/keras2 has no format 'float64' (only float32)"),
    )
    for dialect in ("rprop/irprop+", "adagrad/torch", "adagrad/optax", "adagrad/keras2"):
        expect_refused(corpus_copy, [dialect], dialect + ".json")


def test_decimals_are_checked_by_lint_only_since_no_run_reads_them(corpus_copy):
    edit_json(
        corpus_copy,
        "rprop/torch.json",
        in_case(3, lambda test: test["expected"][0]["params"][0]["decimal"].__setitem__(0, "-0.0")),
    )
    expect_problems(corpus_copy, ("rprop/torch.json", "tc0003: expected[0].params[0]: decimal[0] -0.0 is not"))
    assert load(corpus_copy, ["rprop/torch"]).cases  # the runner compares hex values only


def test_a_file_name_cannot_break_a_problem_line(corpus_copy):
    (corpus_copy / "rprop" / "two\nlines.json").write_text("{}")
    (line,) = expect_problems(corpus_copy, ("two\\nlines.json: not listed in MANIFEST.json",))
    expect_refused(corpus_copy, None, "two\\nlines.json")
    assert len(line) < 1000


# --- optconf trace: strictly typed -----------------------------------------------------------------------------

TRACE = ["adagrad/torch", "--params", "[1.0, -0.5]", "--grads", "[[0.5, -1.0]]"]

BAD_HPARAMS = [
    ('{"maximize": "no"}', "invalid maximize='no': must be true or false"),
    ('{"maximize": 1}', "invalid maximize=1: must be true or false"),
    ('{"maximize": null}', "invalid maximize=None: must be true or false"),
    ('{"lr": "abc"}', "invalid lr='abc': must be a number"),
    ('{"lr": null}', "invalid lr=None: must be a number"),
    ('{"lr": true}', "invalid lr=True: must be a number"),
    ('{"lr": [1, 2]}', "invalid lr=(1, 2): must be a number"),
    ('{"lr": {"a": 1}}', "invalid lr={'a': 1}: must be a number"),
    ('{"lr": 1' + "0" * 400 + "}", "invalid lr=1000"),
    ('{"lr": -0.1}', "invalid lr=-0.1: must satisfy lr >= 0"),
    ('{"eps": null}', "invalid eps=None: must satisfy eps >= 0"),
    ('{"nope": 1}', "adagrad/torch has no hyperparameter 'nope'"),
    ('{"lr": 0.1', "--hparams: not valid JSON"),
    ("[1]", "--hparams must be a JSON object"),
    ('"lr"', "--hparams must be a JSON object"),
    ("[" * 1000 + "]" * 1000, "--hparams: JSON nested 1000 levels deep"),
    ('{"lr": "\udcff"}', "--hparams: not UTF-8"),
]


@pytest.mark.parametrize(("hparams", "message"), BAD_HPARAMS, ids=[b[1][:40] for b in BAD_HPARAMS])
def test_trace_hparams_are_strictly_typed(capsys, hparams, message):
    assert_usage_error(cli(capsys, "trace", *TRACE, "--hparams", hparams), "trace", message)


def test_trace_pairs_are_typed_element_by_element(capsys):
    args = ["rprop/torch", "--params", "[1]", "--grads", "[[1]]", "--hparams"]
    assert_usage_error(cli(capsys, "trace", *args, '{"etas": ["a", 1.2]}'), "trace", "invalid etas[0]='a'")
    assert_usage_error(cli(capsys, "trace", *args, '{"etas": "ab"}'), "trace", "invalid etas='ab': must be a pair")
    assert cli(capsys, "trace", *args, '{"etas": ["0.4", 1.3]}')[0] == 0  # numeric strings, as the corpus stores


BAD_TENSORS = [
    ("--params", "[true]", "--params must hold numbers or numeric strings: true is not a number"),
    ("--params", "null", "null is not a number"),
    ("--params", '{"a": 1}', "an object is not a number"),
    ("--params", '"abc"', "could not convert string to float: 'abc'"),
    ("--params", "[[1], [1, 2]]", "--params must hold numbers"),
    ("--params", "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1), f"shape has {MAX_DEPTH - 1} dimensions"),
    ("--params", "[" * 100 + "]" * 100, "--params: JSON nested 100 levels deep"),
    ("--grads", "[[null, 1]]", "--grads must hold numbers or numeric strings: null is not a number"),
    ("--grads", "[[1, 1]]", None),  # valid: a control for the row below
    ("--grads", json.dumps([[1, 1]] * (MAX_STEPS + 1)), f"at most {MAX_STEPS} are accepted"),
    ("--grads", '{"a": 1}', "--grads must be a non-empty JSON list"),
]


@pytest.mark.parametrize(("option", "value", "message"), BAD_TENSORS, ids=[f"{b[0]}-{b[1][:20]}" for b in BAD_TENSORS])
def test_trace_tensors_hold_numbers_or_numeric_strings(capsys, option, value, message):
    args = dict(zip(TRACE[1::2], TRACE[2::2], strict=True)) | {option: value}
    result = cli(capsys, "trace", TRACE[0], *[x for pair in args.items() for x in pair])
    if message is None:
        assert result[0] == 0
    else:
        assert_usage_error(result, "trace", message)


def test_trace_losses_are_numbers(capsys):
    args = ["rprop/irprop+", "--params", "[0]", "--grads", "[[1], [-1]]", "--losses"]
    assert_usage_error(cli(capsys, "trace", *args, "[1, false]"), "trace", "--losses must hold numbers")
    assert cli(capsys, "trace", *args, '["1", 2]')[0] == 0


def assert_traced_or_one_line(result):
    code, out, err = result
    if code == 0:
        assert json.loads(out)["steps"] and err == ""
    else:
        assert_usage_error(result, "trace")


@FIXTURE_HEALTH
@given(JSON_VALUES)
def test_any_json_learning_rate_traces_or_is_one_line(capsys, value):
    assert_traced_or_one_line(cli(capsys, "trace", *TRACE, "--hparams", json.dumps({"lr": value})))


@FIXTURE_HEALTH
@given(JSON_VALUES)
def test_any_json_params_trace_or_are_one_line(capsys, value):
    assert_traced_or_one_line(cli(capsys, "trace", "rprop/irprop-", "--params", json.dumps(value), "--grads", "[0]"))


def test_hparams_are_typed_for_every_entry_point_in_the_reference():
    torch = get("adagrad/torch")
    with pytest.raises(ValueError, match=r"invalid lr='0\.1': must be a number"):
        torch.hparams({"lr": "0.1"})  # the Python API takes numbers; only stored text is decoded
    with pytest.raises(ValueError, match=r"invalid maximize='no': must be true or false"):
        torch.hparams({"maximize": "no"})
    with pytest.raises(ValueError, match=r"must map names to values, not be a list"):
        torch.hparams([("lr", 0.1)])
    hp = torch.hparams({"lr": np.float32(0.5), "maximize": np.bool_(True), "lr_decay": 1})
    assert (hp.lr, hp.maximize, hp.decay) == (0.5, True, 1.0) and type(hp.decay) is float
    assert get("adagrad/tf-keras-v2").hparams({"epsilon": None}).eps == 1e-7  # tf.keras's own rewrite, kept
    assert get("adagrad/keras3").hparams({"learning_rate": 0.1, "weight_decay": None}).weight_decay is None


# --- optconf explain --case-json -------------------------------------------------------------------------------


@pytest.fixture
def saved_case():
    """A case as fuzzing saves it: the corpus's rprop/torch tc0001, as {dialect, dtype, record}."""
    case = next(c for c in load(ROOT, ["rprop/torch"]) if c.tc_id == 1)
    return {"dialect": case.dialect, "dtype": case.dtype, "record": copy.deepcopy(case.record)}


def with_record(edit):
    def apply(doc):
        edit(doc["record"])
        return doc

    return apply


CASE_DAMAGE = [
    ("a list", lambda doc: [doc], "must be a JSON object with dialect, dtype and record, not a list"),
    ("null", lambda doc: None, "not null"),
    ("no record", lambda doc: {k: v for k, v in doc.items() if k != "record"}, "$: record is missing"),
    ("extra field", lambda doc: doc | {"x": 1}, '$: unknown field "x"'),
    ("dialect a number", lambda doc: doc | {"dialect": 5}, "$: dialect must be a dialect id, not 5"),
    ("unknown dialect", lambda doc: doc | {"dialect": "adagrad/nope"}, 'dialect id, not "adagrad/nope"'),
    ("dtype a list", lambda doc: doc | {"dtype": ["float32"]}, "$: dtype must be a format name, not a list"),
    ("dtype unsupported", lambda doc: doc | {"dtype": "float8"}, "$.dtype: rprop/torch has no format 'float8'"),
    ("record a list", lambda doc: doc | {"record": []}, "$: record must be a test case object, not a list"),
    ("record lacks expected", with_record(lambda r: r.pop("expected")), "schema violation: $.record must contain"),
    ("maximize no", with_record(lambda r: r["hparams"].__setitem__("maximize", "no")), "$.record.hparams.maximize"),
    ("checkpoint", with_record(lambda r: r.__setitem__("checkpoint", 99)), "$.record.checkpoint: 99 is not one"),
    ("given false", with_record(lambda r: r["initialState"].__setitem__("given", False)), "initialState.given"),
    ("huge shape", with_record(lambda r: r["initialParams"][0].__setitem__("shape", [2**70])), "initialParams[0]"),
]


@pytest.mark.parametrize(("what", "edit", "message"), CASE_DAMAGE, ids=[d[0] for d in CASE_DAMAGE])
def test_a_malformed_case_file_is_one_line(tmp_path, monkeypatch, capsys, saved_case, what, edit, message):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(edit(saved_case)))
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert_usage_error(cli(capsys, "explain", "--case-json", str(path)), "explain", str(path), message)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe[]", "not UTF-8"),
        (b"[" * 200 + b"]" * 200, "JSON nested 200 levels deep"),
        (b'{"dialect": ', "not valid JSON (Expecting value"),
        (b"", "not valid JSON"),
    ],
)
def test_a_case_file_that_is_not_json_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "case.json"
    path.write_bytes(content)
    assert_usage_error(cli(capsys, "explain", "--case-json", str(path)), "explain", f"{path}: {message}")


def test_a_case_file_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo.json")
    assert_usage_error(cli(capsys, "explain", "--case-json", str(tmp_path / "fifo.json")), "explain", "a FIFO")
    assert_usage_error(cli(capsys, "explain", "--case-json", str(tmp_path)), "explain", "a directory")
    assert_usage_error(cli(capsys, "explain", "--case-json", str(tmp_path / "no.json")), "explain", "no such file")
    result = run_cli("explain", "--case-json", "fifo.json", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "optconf explain: error: fifo.json: a FIFO, not a regular file\n"


def test_a_well_formed_case_file_still_explains(tmp_path, capsys, saved_case):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(saved_case))
    code, out, err = cli(capsys, "explain", "--case-json", str(path), "--impl", "reference")
    assert (code, err) == (0, "") and out.rstrip().endswith("conforms")


@given(JSON_VALUES)
def test_any_json_document_is_a_case_or_one_line(value):
    read_or_refuse_in_one_line(lambda: case_from_json(value, "F"), CorpusError, "F: ")


def test_a_key_given_twice_is_refused_wherever_json_is_read(corpus_copy, tmp_path, capsys):
    relative = "adagrad/torch.json"
    text = (corpus_copy / relative).read_text()
    (corpus_copy / relative).write_text(text.replace('"family": ', '"family": "rprop", "family": ', 1))
    pin(corpus_copy, relative)
    expect_problems(corpus_copy, (relative, "the key 'family' is given twice in one object"))
    case = tmp_path / "case.json"
    case.write_text('{"dialect": "adagrad/torch", "dialect": "rprop/torch"}')
    assert_usage_error(
        cli(capsys, "explain", "--case-json", str(case), "--impl", "reference"),
        "explain",
        "the key 'dialect' is given twice in one object",
    )


def test_generate_check_refuses_a_corpus_file_that_is_not_regular_without_blocking(corpus_copy):
    os.remove(corpus_copy / "rprop/torch.json")
    os.mkfifo(corpus_copy / "rprop/torch.json")
    result = run_cli("generate", "--check", "--quiet", "--dialect", "rprop/torch", "--out", str(corpus_copy))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("optconf generate: error: ") and "a FIFO, not a regular file" in result.stderr
    assert len(result.stderr.splitlines()) == 1
