"""Deliberately broken implementations for the runner's own tests: each keeps exactly one defect."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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
    def __init__(self, live: type[ReferenceLive], name: str) -> None:
        super().__init__(["rprop/torch"], name=name)
        self._live = live

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> ReferenceLive:
        return self._live(self._dialect(dialect), hparams, params)

    @staticmethod
    def _dialect(dialect: str) -> Any:
        import reference

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
