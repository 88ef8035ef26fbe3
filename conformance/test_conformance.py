"""The conformance checks, one test function per check, parametrized by the plugin over (implementation, case).

Run with `pytest --impl=SPEC` from a checkout, or `pytest --pyargs conformance --impl=SPEC` once installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from conformance.checks import BY_NAME, CHECKS, CheckFailure, CheckSkip, Context, Outcome, check_invalid_hparams
from conformance.manifest import KnownFailure, diagnosis_of
from conformance.plugin import K_KEY, KNOWN_KEY, entry_note, session_of
from conformance.session import Item

pytestmark = pytest.mark.optconf

T = TypeVar("T")


def _judged(request: pytest.FixtureRequest, check: Callable[[], T]) -> T:
    """Run a check and turn what it raised into the test's verdict.

    A divergence fails the test with its diagnosis alone: the message names the case, the values and the repro,
    and the checker's own stack says nothing more. An error raised by the implementation keeps its traceback.
    Where manifest xfail entries select the test, a failure whose one-line diagnosis matches an entry's `expect`
    becomes a KnownFailure (the xfail); any other failure escapes the entries and fails, saying so.
    """
    try:
        return check()
    except CheckSkip as exc:
        pytest.skip(str(exc))
    except Exception as exc:
        failure = exc
    diagnosis = diagnosis_of(failure)
    request.node.user_properties.append(("optconf_diagnosis", diagnosis))
    known = request.node.stash.get(KNOWN_KEY, [])
    matched = [entry for entry in known if entry.expects(diagnosis)]
    if matched:
        request.node.user_properties.append(("optconf_known", entry_note(matched[0])))
        raise KnownFailure(f"{diagnosis}\n  the known failure recorded by {matched[0].origin}") from None
    if known:
        expected = "; ".join(f"{e.origin} expects /{e.expect.pattern if e.expect else ''}/" for e in known)
        escape = f"optconf: this failure is not the one the manifest records ({expected})"
        if not isinstance(failure, CheckFailure):
            failure.add_note(escape)
            raise failure
        pytest.fail(f"{type(failure).__name__}: {failure}\n  {escape}", pytrace=False)
    if isinstance(failure, CheckFailure):
        pytest.fail(f"{type(failure).__name__}: {failure}", pytrace=False)
    raise failure


def _run(request: pytest.FixtureRequest, item: Item) -> None:
    session = session_of(request.config)
    case = item.case
    assert case is not None
    if case.dtype not in item.adapter.capabilities.dtypes:
        pytest.skip(f"{case.dtype} not claimed")
    k = request.node.stash.get(K_KEY, None)
    ctx = Context(item.adapter, case, session.repro(item.adapter, case.test_id, BY_NAME[item.check].forced), k)
    outcome = Outcome()
    try:
        _judged(request, lambda: CHECKS[item.check](ctx, outcome, session.case_cache(item.adapter, case)))
    finally:
        request.node.user_properties.append(
            (
                "optconf_outcome",
                {
                    "worst_ulp": outcome.worst_ulp,
                    "worst_k": {quantity: round(k, 4) for quantity, k in outcome.worst_k.items()},
                    "first_divergence": outcome.first_divergence,
                },
            )
        )


def test_trajectory(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """Free-running: parameters and every state slot at every step, within k·u·S + tiny."""
    _run(request, optconf_item)


def test_teacher_forced(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """Load the expected state at step t, take one step, compare with step t + 1."""
    _run(request, optconf_item)


def test_counter_and_slots(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """The step counter is exact; slot names, shapes and dtypes are the dialect's."""
    _run(request, optconf_item)


def test_config_round_trip(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """get_config -> from_config keeps every value and behaves bit-identically."""
    _run(request, optconf_item)


def test_checkpoint(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """Save at the case's checkpoint, load into a fresh optimizer, continue: bit-identical."""
    _run(request, optconf_item)


def test_inputs_not_mutated(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """The gradients handed to the optimizer are unchanged after each step."""
    _run(request, optconf_item)


def test_replicas(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """Gradients split over two replicas aggregate (sum) to the case's gradient."""
    _run(request, optconf_item)


def test_invalid_hparams(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """Out-of-range hyperparameters are refused by the optimizer itself, which steps with a valid setting."""
    session = session_of(request.config)
    item = optconf_item
    assert item.setting is not None
    if item.dtype not in item.adapter.capabilities.dtypes:
        pytest.skip(f"{item.dtype} not claimed")
    import reference

    repro = f"pytest --impl={session.settings.impl} -k '{item.dialect}-{item.dtype}-{item.label}'"
    dialect = reference.get(item.dialect)
    setting = item.setting
    refusal = _judged(request, lambda: check_invalid_hparams(item.adapter, dialect, item.dtype, setting, repro))
    request.node.user_properties.append(("optconf_outcome", {"refusal": refusal}))


def test_fuzz(request: pytest.FixtureRequest, optconf_item: Item) -> None:
    """Fresh hypothesis cases of one dialect, evaluated live by the oracle; a failure shrinks to a minimal case.

    The manifest's entries apply to each case found: a failure they record (by `expect`) is noted and fuzzing
    goes on; the test is then an xfail naming them, unless fuzzing also found a failure nobody recorded."""
    from conformance.fuzz import fuzz

    session = session_of(request.config)
    settings = session.settings
    item = optconf_item
    entries = [e for e in session.entries if e.mode == "xfail"]
    absorbed = _judged(
        request,
        lambda: fuzz(item.adapter, item.dialect, settings.fuzz, settings.fuzz_seed, settings.impl, entries),
    )
    if absorbed:
        pytest.xfail("fuzzing found only recorded failures: " + "; ".join(absorbed))
