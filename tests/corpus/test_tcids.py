"""Stable tcIds: a case keeps its id across regeneration and growth, and no id is ever given to another case."""

from __future__ import annotations

import pytest

import reference
from reference.vectors import tcids

RECORD = {"hparams": {"lr": 0.1}, "initialParams": [["1.0"]], "grads": [[["0.5"]]], "expected": [{"p": 1}]}


def test_the_fingerprint_is_the_inputs_not_the_answer_or_the_words() -> None:
    same = tcids.fingerprint("float32", RECORD | {"expected": [{"p": 2}], "comment": "reworded", "flags": ["X"]})
    assert same == tcids.fingerprint("float32", RECORD)
    assert tcids.fingerprint("float64", RECORD) != tcids.fingerprint("float32", RECORD)
    assert tcids.fingerprint("float32", RECORD | {"grads": [[["0.25"]]]}) != tcids.fingerprint("float32", RECORD)


def test_a_new_case_takes_the_next_id_and_the_others_keep_theirs() -> None:
    registry: tcids.Registry = {}
    assert tcids.assign(registry, "adagrad/x", ["a" * 64, "b" * 64, "c" * 64]) == [1, 2, 3]
    # A case inserted in the middle, and one removed: nothing is renumbered, and id 2 is never given again.
    assert tcids.assign(registry, "adagrad/x", ["a" * 64, "d" * 64, "c" * 64]) == [1, 4, 3]
    assert registry["adagrad/x"] == {1: "a" * 64, 2: "b" * 64, 3: "c" * 64, 4: "d" * 64}
    assert tcids.assign(registry, "adagrad/x", ["e" * 64]) == [5]
    assert tcids.assign(registry, "rprop/y", ["a" * 64]) == [1]  # ids are per dialect


def test_two_cases_with_the_same_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="two cases have the same inputs"):
        tcids.assign({}, "adagrad/x", ["a" * 64, "a" * 64])


def test_an_id_reused_for_other_inputs_is_reported() -> None:
    registry: tcids.Registry = {"adagrad/x": {1: "a" * 64, 2: "b" * 64}}
    assert tcids.mismatches(registry, "adagrad/x", [(1, "a" * 64), (2, "b" * 64)]) == []
    (reused,) = tcids.mismatches(registry, "adagrad/x", [(2, "c" * 64)])
    assert reused.startswith("tc0002 is registered for other inputs")
    (unknown,) = tcids.mismatches(registry, "adagrad/x", [(3, "c" * 64)])
    assert unknown.startswith("tc0003 is not in tcids.json")


def test_the_registry_round_trips_and_refuses_malformed_entries() -> None:
    import json

    registry: tcids.Registry = {"rprop/y": {2: "b" * 64, 1: "a" * 64}, "adagrad/x": {1: "c" * 64}}
    assert tcids.parse(json.loads(tcids.dumps(registry)), "t") == registry
    for bad in ([], {"a": []}, {"a": {"0": "a" * 64}}, {"a": {"x": "a" * 64}}, {"a": {"1": "A" * 64}}):
        with pytest.raises(ValueError, match=r"^t: "):
            tcids.parse(bad, "t")


# ---------------------------------------------------------------- the corpus, generated and linted


def _ids_by_fingerprint(doc: dict) -> dict[str, int]:
    return {tcids.fingerprint(g["dtype"], t): t["tcId"] for g in doc["testGroups"] for t in g["tests"]}


def test_adding_a_case_to_a_dialect_leaves_every_other_tcid_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new case put first in adagrad/keras2's catalogue: every case keeps its committed id, the new one takes the
    next id, and the registry grows by exactly that one."""
    import json

    from conformance.corpus import default_root
    from reference.vectors import generate
    from reference.vectors.casespec import edge

    root = default_root()
    committed = tcids.parse(json.loads((root / tcids.REGISTRY_FILE).read_text()), "registry")
    before = json.loads((root / "adagrad/keras2.json").read_text())
    original = generate.catalogue

    def grown(dialect_id: str, dtype: str) -> list:
        dialect, fmt = reference.get(dialect_id), reference.format_of(dtype)
        new = edge(dialect, fmt, ("RANDOM",), "a case added later", {"lr": 0.25}, [[0.5, -2.0]], [[[1.0, 3.0]]])
        return [new, *original(dialect_id, dtype)]

    monkeypatch.setattr(generate, "catalogue", grown)
    files = generate.build(generate.Selection(("adagrad/keras2",)), jobs=1, progress=False, registry=committed)
    after = json.loads(files["adagrad/keras2.json"])
    old_ids, new_ids = _ids_by_fingerprint(before), _ids_by_fingerprint(after)
    assert {f: new_ids[f] for f in old_ids} == old_ids
    (added,) = set(new_ids) - set(old_ids)
    assert new_ids[added] == max(committed["adagrad/keras2"]) + 1
    grown_registry = tcids.parse(json.loads(files[tcids.REGISTRY_FILE]), "registry")
    assert grown_registry == committed | {"adagrad/keras2": committed["adagrad/keras2"] | {new_ids[added]: added}}


def test_lint_refuses_an_id_silently_reused_for_another_case(tmp_path) -> None:
    from support.corpus_copy import copy_corpus, edit_json

    from conformance.corpus import problems

    root = copy_corpus(tmp_path)
    assert problems(root) == []

    def change_tc3(doc: dict) -> None:
        test = next(t for g in doc["testGroups"] for t in g["tests"] if t["tcId"] == 3)
        test["hparams"]["lr"] = "0.5"  # another case under the old id (a careless edit, rehashed)

    edit_json(root, "adagrad/keras2.json", change_tc3)
    assert any("adagrad/keras2 tc0003 is registered for other inputs" in p for p in problems(root))
    (root / tcids.REGISTRY_FILE).unlink()
    assert any("tcids.json: missing" in p for p in problems(root))
