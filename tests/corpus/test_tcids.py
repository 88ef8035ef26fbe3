"""Stable tcIds: a case keeps its id across regeneration and growth, and no id is ever given to another case."""

from __future__ import annotations

import pytest

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
