"""The committed corpus: valid, complete, bit-identical on regeneration, and refused when corrupted."""

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.corpus_copy import ROOT, copy_corpus, flip_hex, rewrite

from conformance.cli import main
from conformance.corpus import MIN_TESTS_PER_DIALECT, CorpusError, load, problems
from reference import DIALECTS
from reference._numerics import DTYPES
from reference.sparse import SparseGrad
from reference.vectors import tcids
from reference.vectors.codec import decode_tensor, encode_input
from reference.vectors.generate import Selection, build, diff_summary


def test_committed_corpus_is_valid():
    assert problems(ROOT) == []


def committed_registry() -> tcids.Registry:
    return tcids.parse(json.loads((ROOT / tcids.REGISTRY_FILE).read_text()), tcids.REGISTRY_FILE)


def test_regeneration_is_bit_identical_to_the_committed_corpus():
    files = build(jobs=2, progress=False, registry=committed_registry())
    assert diff_summary(ROOT, files) == []


def test_generation_twice_gives_identical_bytes_with_any_number_of_workers():
    selection = Selection(dialects=("rprop/irprop+", "adagrad/optax"))
    registry = committed_registry()
    assert build(selection, jobs=1, progress=False, registry=registry) == build(
        selection, jobs=2, progress=False, registry=registry
    )


def test_every_dialect_and_format_is_covered_at_level_1():
    corpus = load(ROOT)
    level1 = {(c.dialect, c.dtype) for c in corpus if c.level == 1}
    assert level1 == {(d, t) for d, dialect in DIALECTS.items() for t in dialect.dtypes}
    flags_by_dialect: dict[str, set[str]] = {}
    for case in corpus:
        flags_by_dialect.setdefault(case.dialect, set()).update(case.flags)
    for dialect, flags in flags_by_dialect.items():
        assert {"RANDOM", "CHECKPOINT", "NAN_GRADIENT", "ZERO_SIZE", "SCALAR"} <= flags, dialect
    assert "SPARSE_DUPLICATES" in flags_by_dialect["adagrad/torch"]
    assert "EPS_BELOW_FORMAT" in flags_by_dialect["adagrad/torch"]
    assert "LOSS_RISE_FALL_TIE" in flags_by_dialect["rprop/irprop+"]
    assert {"PRODUCT_UNDERFLOW", "PRODUCT_SUBNORMAL", "INITIAL_STEP_OUTSIDE"} <= flags_by_dialect["rprop/torch"]


def test_given_state_cases_are_marked_and_numbered_after_every_earlier_case():
    """Vector set 1.1.0 added cases whose initial state is an input: each is flagged, marked `given`, at level 1,
    and numbered after every case of 1.0, whose tcIds (torch's 81) are therefore unchanged."""
    corpus = load(ROOT)
    by_dialect: dict[str, list] = {}
    for case in corpus:
        by_dialect.setdefault(case.dialect, []).append(case)
    for dialect, cases in by_dialect.items():
        given = [c for c in cases if c.record["initialState"].get("given")]
        assert all("INITIAL_STATE" in c.flags and c.state_given and c.level == 1 for c in given), dialect
        assert {c.tc_id for c in cases if "INITIAL_STATE" in c.flags} == {c.tc_id for c in given}, dialect
        assert {c.dtype for c in given} == set(DIALECTS[dialect].given_state), dialect
    # They came after the 1.0.1 cases (tc0001-tc0081 of adagrad/torch), and took new ids, renumbering none.
    assert sorted(c.tc_id for c in by_dialect["adagrad/torch"] if "INITIAL_STATE" in c.flags) == [82, 83, 84, 85]


def test_a_steps_own_scale_never_exceeds_the_trajectorys_and_is_much_smaller_late():
    """stepScale (vector set 2.0.0) is S with the previous state handed over exactly: the same propagation from
    error-free inputs, so never above the trajectory's S; by step 10 of a random Adagrad trajectory, where S has
    accumulated nine steps, it is several times smaller."""
    ratios = []
    for case in load(ROOT):
        for step, expected in enumerate(case.expected, start=1):
            for quantity, scales in expected.scales.items():
                for full, alone in zip(scales, expected.step_scales[quantity], strict=True):
                    assert (alone <= full).all(), f"{case.test_id} step {step} {quantity}"
                    if step == 10 and "RANDOM" in case.flags and case.dialect.startswith("adagrad/"):
                        positive = full > 0
                        ratios.extend((full[positive] / alone[positive]).ravel())
    assert np.median(ratios) > 4, np.median(ratios)


def test_corpus_stays_within_budget():
    size = sum(p.stat().st_size for p in ROOT.rglob("*.json"))
    assert size < 20 * 2**20, f"{size / 2**20:.1f} MiB"


@given(st.sampled_from(sorted(DTYPES)), st.data())
def test_tensor_codec_round_trips_every_bit_pattern(name, data):
    fmt = DTYPES[name]
    raw = data.draw(st.lists(st.integers(0, 2**fmt.bits - 1), min_size=0, max_size=6))
    values = np.array(raw, dtype=fmt.uint_dtype).view(fmt.np_dtype)
    back = decode_tensor(json.loads(json.dumps(encode_input(values, fmt))), fmt)
    assert back.view(fmt.uint_dtype).tolist() == raw
    sparse = SparseGrad(tuple(range(len(raw))), values.reshape(-1, 1))
    back = decode_tensor(encode_input(sparse, fmt), fmt)
    assert back.indices == sparse.indices and back.values.view(fmt.uint_dtype).ravel().tolist() == raw


@pytest.fixture
def corpus_copy(tmp_path):
    return copy_corpus(tmp_path)


CORRUPTIONS = [
    ("flipped hex digit", flip_hex, False, "SHA-256 does not match MANIFEST.json"),
    ("changed count", lambda t: t.replace('"numberOfTests": ', '"numberOfTests": 1', 1), True, "numberOfTests says"),
    (
        "undefined flag",
        lambda t: t.replace('"flags": ["', '"flags": ["NOT_A_FLAG", "', 1),
        True,
        "flag NOT_A_FLAG is used but not defined in notes",
    ),
    ("truncated file", lambda t: t[: len(t) // 2], False, "not valid JSON"),
    (
        "wrong type",
        lambda t: t.replace('"level": 1', '"level": "1"', 1),
        True,
        "schema violation: $.testGroups[0].tests[0].level must be one of [1, 2]",
    ),
    ("short hex", lambda t: t.replace('"hex": ["0x', '"hex": ["0x0', 1), True, "schema violation"),
]


@pytest.mark.parametrize(("what", "edit", "rehash", "message"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_file_is_refused_with_the_reason(corpus_copy, what, edit, rehash, message):
    rewrite(corpus_copy, "adagrad/torch.json", edit, rehash)
    found = problems(corpus_copy)
    assert any(message in p and "adagrad/torch.json" in p for p in found), found
    with pytest.raises(CorpusError, match=r"refusing the corpus: .*adagrad/torch\.json"):
        load(corpus_copy)


def test_shrunken_corpus_is_refused(corpus_copy):
    def drop_cases(text):
        doc = json.loads(text)
        for group in doc["testGroups"]:
            group["tests"] = group["tests"][:2]
        doc["numberOfTests"] = sum(len(g["tests"]) for g in doc["testGroups"])
        used = {f for g in doc["testGroups"] for t in g["tests"] for f in t["flags"]}
        doc["notes"] = {k: v for k, v in doc["notes"].items() if k in used}
        return json.dumps(doc)

    rewrite(corpus_copy, "rprop/torch.json", drop_cases, rehash=True)
    assert any(f"fewer than the minimum {MIN_TESTS_PER_DIALECT}" in p for p in problems(corpus_copy))


def test_unlisted_and_missing_files_are_reported(corpus_copy):
    (corpus_copy / "rprop" / "extra.json").write_text("{}")
    (corpus_copy / "adagrad" / "tf1.json").unlink()
    found = problems(corpus_copy)
    assert any("extra.json: not listed in MANIFEST.json" in p for p in found)
    assert any("tf1.json: listed in MANIFEST.json but missing" in p for p in found)


def test_a_run_reads_only_the_files_of_its_dialects(corpus_copy):
    (corpus_copy / "adagrad" / "tf1.json").write_text("not even JSON")  # another dialect's file, broken
    corpus = load(corpus_copy, ["rprop/torch", "adagrad/torch"])
    assert {case.dialect for case in corpus} == {"rprop/torch", "adagrad/torch"}
    listed = json.loads((corpus_copy / "MANIFEST.json").read_text())["files"]
    assert len(corpus.cases) == sum(listed[f"{d}.json"]["numberOfTests"] for d in ("rprop/torch", "adagrad/torch"))
    with pytest.raises(CorpusError, match=r"adagrad/tf1\.json: SHA-256 does not match"):
        load(corpus_copy, ["adagrad/tf1"])
    with pytest.raises(CorpusError, match="unknown dialect 'adagrad/nope'"):
        load(corpus_copy, ["adagrad/nope"])


def test_a_manifest_that_misnames_a_files_dialect_is_refused(corpus_copy):
    doc = json.loads((corpus_copy / "MANIFEST.json").read_text())
    entry = doc["files"]["rprop/torch.json"]
    entry["dialects"] = {"rprop/irprop-": entry["numberOfTests"]}
    (corpus_copy / "MANIFEST.json").write_text(json.dumps(doc))
    assert any("rprop/torch.json: MANIFEST.json lists dialects" in p for p in problems(corpus_copy))
    with pytest.raises(CorpusError):  # rprop/torch's cases are no longer found where the manifest points
        load(corpus_copy, ["rprop/torch"])


def test_manifest_pins_every_file():
    doc = json.loads((ROOT / "MANIFEST.json").read_text())
    for relative, entry in doc["files"].items():
        assert hashlib.sha256((ROOT / relative).read_bytes()).hexdigest() == entry["sha256"]
        assert sum(entry["levels"].values()) == entry["numberOfTests"]


def test_cli_lint_and_check(corpus_copy, capsys):
    assert main(["lint", "--root", str(corpus_copy)]) == 0
    assert main(["generate", "--check", "--quiet", "--out", str(corpus_copy), "--dialect", "rprop/torch"]) == 0
    rewrite(corpus_copy, "rprop/torch.json", flip_hex, rehash=False)
    assert main(["lint", "--root", str(corpus_copy)]) == 1
    # Re-hashed, the edited input still disagrees with the id's registered fingerprint: lint refuses the case as
    # another case under an old id, and regeneration shows the changed value.
    rewrite(corpus_copy, "rprop/torch.json", lambda t: t, rehash=True)
    capsys.readouterr()
    assert main(["lint", "--root", str(corpus_copy)]) == 1
    assert "rprop/torch tc0001 is registered for other inputs" in capsys.readouterr().err
    assert main(["generate", "--check", "--quiet", "--out", str(corpus_copy), "--dialect", "rprop/torch"]) == 1
    err = capsys.readouterr().err
    assert "rprop/torch.json: 1 changed, 0 added, 0 removed test cases" in err
    assert "tc0001: initialParams[0].hex[0]" in err


def test_cli_refuses_a_partial_write_over_the_corpus(capsys):
    assert main(["generate", "--dtype", "float32"]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert main(["generate", "--check", "--level", "1"]) == 2
    assert main(["generate", "--dialect", "adagrad/nope", "--out", "/tmp/x"]) == 2


def test_cli_writes_a_filtered_corpus(tmp_path):
    out = tmp_path / "subset"
    assert (
        main(
            ["generate", "--quiet", "--out", str(out), "--dialect", "rprop/torch", "--level", "1", "--dtype", "float32"]
        )
        == 0
    )
    doc = json.loads((out / "rprop" / "torch.json").read_text())
    assert {g["dtype"] for g in doc["testGroups"]} == {"float32"}
    assert {t["level"] for g in doc["testGroups"] for t in g["tests"]} == {1}
    assert list(json.loads((out / "MANIFEST.json").read_text())["files"]) == ["rprop/torch.json"]


def test_compiled_validator_agrees_with_a_reference_json_schema_validator():
    import jsonschema

    schema = json.loads((ROOT / "schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    doc = json.loads((ROOT / "rprop" / "irprop+.json").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(doc)) == []
    doc["testGroups"][0]["tests"][0]["expected"][0]["params"][0]["scale"][0] = "1.0"
    assert list(jsonschema.Draft7Validator(schema).iter_errors(doc))
