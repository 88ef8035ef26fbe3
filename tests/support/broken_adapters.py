"""Deliberately broken implementations for the runner's own tests: each keeps exactly one defect.

The second half are adversaries of the verdict machinery: each would have earned a pass (or hidden a failure, or
changed another check's outcome) if a verdict could be had without comparing.
tests/runner/test_verdicts.py runs them."""

from __future__ import annotations

import ctypes
import os
import pathlib
import signal
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import reference
from conformance.adapter import Capabilities, LiveOptimizer
from conformance.adapters.reference import ReferenceAdapter, ReferenceLive


class DriftingParams(ReferenceLive):
    """Reports parameters 0.1 % too large."""

    def params(self) -> list[np.ndarray]:
        return [(p.astype(np.float64) * 1.001).astype(p.dtype) for p in super().params()]


class RenamedSlot(ReferenceLive):
    """Calls torch's `step_size` slot `steps`."""

    def state(self) -> dict[str, list[np.ndarray]]:
        state = super().state()
        if "step_size" in state:
            state["steps"] = state.pop("step_size")
        return state


class FrozenCounter(ReferenceLive):
    """Never increments the step counter."""

    def count(self) -> int | None:
        return 0


class MutatesGradient(ReferenceLive):
    """Zeroes the caller's gradient arrays after using them (as Lua torch's rprop did)."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        super().step([np.array(g, copy=True) for g in grads], loss)
        for g in grads:
            g[...] = 0


class ForgetfulConfig(ReferenceLive):
    """Writes the learning rate into its config doubled, so from_config(get_config()) drifts."""

    def config(self) -> dict[str, Any]:
        config = super().config()
        lr = float(config["hparams"].get("lr", 0.01))
        config["hparams"] = config["hparams"] | {"lr": repr(2 * lr)}
        return config


class Broken(ReferenceAdapter):
    def __init__(self, live: type[ReferenceLive], name: str, dialects: Sequence[str] = ("rprop/torch",)) -> None:
        super().__init__(dialects, name=name)
        self._live = live

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> ReferenceLive:
        return self._live(self._dialect(dialect), hparams, params)

    @staticmethod
    def _dialect(dialect: str) -> Any:
        return reference.get(dialect)


class LosesStateOnLoad(Broken):
    """Loads a fresh optimizer instead of the saved state."""

    def __init__(self) -> None:
        super().__init__(ReferenceLive, "loses-state-on-load")

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> Any:
        return self.create(dialect, hparams, params)


class AcceptsAnything(Broken):
    """Never validates its hyperparameters."""

    def __init__(self) -> None:
        super().__init__(ReferenceLive, "accepts-anything")

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> ReferenceLive:
        return ReferenceLive(self._dialect(dialect), {}, params)


drifting = Broken(DriftingParams, "drifting-params")
renamed = Broken(RenamedSlot, "renamed-slot")
frozen = Broken(FrozenCounter, "frozen-counter")
mutates = Broken(MutatesGradient, "mutates-gradient")
forgetful = Broken(ForgetfulConfig, "forgetful-config")
loses_state = LosesStateOnLoad()
accepts = AcceptsAnything()
IMPLEMENTATIONS = [drifting]


# -----------------------------------------------------------------------------------------------------------------
# Adversaries of the verdicts


class CounterLess(ReferenceLive):
    """Numerically exact, but keeps no step counter (as PaddlePaddle's optimizers and optax's RProp do)."""

    def count(self) -> int | None:
        return None


class NeverSteps(ReferenceLive):
    """Every step raises: before, it passed every invalid-hyperparameter check."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        raise RuntimeError("this optimizer cannot step")


class UnsupportedValues(ReferenceLive):
    """Says NotImplementedError for a negative learning rate, which is not refusing it."""

    def __init__(self, dialect: reference.Dialect, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> None:
        if float(hparams.get("lr", 0.01)) < 0:
            raise NotImplementedError("negative learning rates are not implemented")
        super().__init__(dialect, hparams, params)


class KeepsAndWrites(ReferenceLive):
    """Keeps every array it is given (state for teacher forcing, gradients, row-sparse values) and writes into
    them after each step: with the corpus shared and writable, later checks would have seen other expectations."""

    def set_state(self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: Any) -> None:
        super().set_state(params, state, count)
        self._kept = [*params, *(a for arrays in state.values() for a in arrays)]

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        super().step(grads, loss)
        for kept in getattr(self, "_kept", []):
            kept[...] = 7
        for g in grads:
            (g if isinstance(g, np.ndarray) else g.values)[...] = 7


class MutatesSparse(ReferenceLive):
    """Zeroes the values of the row-sparse gradients it is given, after using them."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        super().step(grads, loss)
        for g in grads:
            if not isinstance(g, np.ndarray):
                g.values[...] = 0


class SlipsLate(ReferenceLive):
    """Exact for five steps; from the sixth on, each stored accumulator lands 5 ulp high. A late step's error of a
    few u·|A| hides within the S that the earlier steps accumulated, but not within the S of the step alone."""

    SLIP_FROM, ULPS = 6, 5

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        super().step(grads, loss)
        if self._state.count >= self.SLIP_FROM:
            self._state = self._state._replace(accumulator=tuple(_up(a, self.ULPS) for a in self._state.accumulator))


def _up(values: np.ndarray, ulps: int) -> np.ndarray:
    for _ in range(ulps):
        values = np.nextafter(values, np.inf)
    return values


class Hangs(ReferenceLive):
    """Never returns from a step (a deadlock, an endless loop)."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        time.sleep(3600)


class Aborts(ReferenceLive):
    """Kills its process in a step, as a native crash (a segfault, a failed assertion in C++) does."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        os.abort()


class Segfaults(ReferenceLive):
    """Reads address 0 in a step: a segmentation fault."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        ctypes.string_at(0)


class HangsNatively(ReferenceLive):
    """Never returns from a step, in a way no signal handler interrupts (SIGALRM blocked), as native code can."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)


class Warns(ReferenceLive):
    """Correct, and warns at every step."""

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        warnings.warn("this optimizer is deprecated", DeprecationWarning, stacklevel=1)
        super().step(grads, loss)


class _Accepting:
    """An optimizer that takes any setting (the reference with the dialect's defaults)."""

    def __init__(self, names: Sequence[str], name: str) -> None:
        self.name = name
        self.capabilities = Capabilities(dialects=tuple(names))

    def _optimizer(self, dialect: str, params: Sequence[np.ndarray]) -> LiveOptimizer:
        return ReferenceLive(reference.get(dialect), {}, params)


class ValidatesInTheAdapter(_Accepting):
    """The adapter refuses bad settings with its own ValueError; the optimizer behind it accepts anything."""

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        if any(isinstance(v, int | float) and v < 0 for v in hparams.values()):
            raise ValueError(f"refusing {dict(hparams)}")
        return self._optimizer(dialect, params)


class BorrowsTheSpec(_Accepting):
    """The adapter asks optconf's own reference whether the setting is valid; the optimizer accepts anything."""

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        reference.get(dialect).hparams(hparams)
        return self._optimizer(dialect, params)


class NoKeywords(_Accepting):
    """Raises NotImplementedError for every keyword but the learning rate, as a half-written adapter does."""

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        unmapped = sorted(set(hparams) - {"lr"})
        if unmapped:
            raise NotImplementedError(f"keywords {unmapped} are not mapped yet")
        return ReferenceLive(reference.get(dialect), hparams, params)


counterless = Broken(CounterLess, "counter-less")
never_steps = Broken(NeverSteps, "never-steps")
unsupported_values = Broken(UnsupportedValues, "unsupported-values")
keeps_and_writes = Broken(KeepsAndWrites, "keeps-and-writes", ("rprop/torch", "adagrad/torch"))
mutates_sparse = Broken(MutatesSparse, "mutates-sparse", ("adagrad/torch",))
validates_in_the_adapter = ValidatesInTheAdapter(["rprop/torch"], "validates-in-the-adapter")
borrows_the_spec = BorrowsTheSpec(["rprop/torch"], "borrows-the-spec")
no_keywords = NoKeywords(["rprop/torch"], "no-keywords")
slips_late = Broken(SlipsLate, "slips-late", ("adagrad/torch",))
hangs = Broken(Hangs, "hangs")
aborts = Broken(Aborts, "aborts")
segfaults = Broken(Segfaults, "segfaults")
hangs_natively = Broken(HangsNatively, "hangs-natively")
warns = Broken(Warns, "warns")
misspelt_dtype = Broken(ReferenceLive, "misspelt-dtype")
misspelt_dtype.capabilities = Capabilities(dialects=("rprop/torch",), dtypes=("flaot32",))
