"""The broken-optimizer corpus: proof that the conformance suite catches real bugs.

Real optimizer classes written against torch (`torch.optim.Optimizer`) and Keras 3 (`keras.optimizers.Optimizer`),
for both families. Each broken class carries exactly one defect of a kind that happens in real code, and its
docstring names the defect and the check expected to catch it first. The correct classes are the controls: they
must pass every check they are collected for.

    pytest --impl=conformance.selftest                          # every subject (the broken ones fail, by design)
    pytest --impl=conformance.selftest:torch_adagrad_eps_inside_sqrt -x
    pytest --impl=conformance.selftest:CONTROLS                  # the correct classes only: must pass
    pytest --impl=conformance.selftest:TORCH                     # without TensorFlow/Keras installed

`SUBJECTS` lists one `Subject` record per class: its name (the attribute to put after `conformance.selftest:`),
the dialect it claims, the defect (None for a control), the check expected to fail first, and its adapter (built
on first use, so that naming a torch subject never imports Keras). `tests/runner/test_mutation_score.py` runs each one
alone and checks that the first failing check is the expected one.

`GAPS` lists real defects that the level-1 corpus does not catch yet, each with the missing edge or check
(`--impl=conformance.selftest:GAP_PROBES` runs them; today they pass). They are not in SUBJECTS.

The checks run in this order, and a defect is "caught first" by the earliest one that fails: trajectory,
teacher_forced, counter_and_slots, config_round_trip, checkpoint, inputs_not_mutated, replicas, invalid_hparams.
Every subject claims float32 and float64 only, the formats its controls are verified in.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from ..adapter import Adapter
from ..checks import CHECKS

if TYPE_CHECKING:  # imported where used: naming a torch subject must not import Keras, nor the reverse
    from ..adapters.keras import KerasAdapter
    from ..adapters.torch import TorchAdapter

__all__ = ["CHECK_ORDER", "GAPS", "SUBJECTS", "Subject", "by_name"]

# The order in which `pytest --impl=...` runs the checks: the order of the test functions in
# conformance/test_conformance.py, which is that of `CHECKS`, then the invalid-hyperparameter check.
CHECK_ORDER: tuple[str, ...] = (*CHECKS, "invalid_hparams")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Subject:
    """One optimizer class of the corpus and what the suite must say about it."""

    name: str  # the attribute: --impl=conformance.selftest:<name>
    framework: str  # "torch" or "keras" (Keras 3)
    dialect: str  # the dialect the class claims
    target: str  # "module:Class", the module relative to this package
    defect: str | None  # None: a correct control, which must pass
    expected_check: str | None  # the check expected to fail first (None for a control)
    dtypes: tuple[str, ...] = ("float32",)  # the formats the self-test runs it in: where the defect shows
    gap: str | None = None  # GAPS only: the corpus edge or check that is missing for the level-1 run to catch it

    @property
    def family(self) -> str:
        return self.dialect.split("/")[0]

    @property
    def is_control(self) -> bool:
        return self.defect is None

    @property
    def optimizer_class(self) -> type:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)

    @property
    def adapter(self) -> Adapter:
        """The adapter that drives the class under its dialect (built once, on first use)."""
        if self.name not in _ADAPTERS:
            _ADAPTERS[self.name] = _build(self)
        return _ADAPTERS[self.name]


_ADAPTERS: dict[str, Adapter] = {}


def _build(subject: Subject) -> Adapter:
    name = f"selftest.{subject.name}"
    # Every class here takes row-sparse gradients where its dialect has them (the Adagrads densify them), so each
    # claims them, as a user would with sparse=True; a user's class claims dense gradients only by default.
    if subject.framework == "torch":
        from ..adapters.torch import TorchAdapter

        adapter: TorchAdapter | KerasAdapter = TorchAdapter(
            subject.optimizer_class, dialect=subject.dialect, name=name, sparse=True
        )
    elif subject.framework == "keras":
        from ..adapters.keras import KerasAdapter

        adapter = KerasAdapter(subject.optimizer_class, dialect=subject.dialect, name=name, sparse=True)
    else:
        raise ValueError(f"{subject.name}: unknown framework {subject.framework!r}")
    adapter.capabilities = dataclasses.replace(
        adapter.capabilities, dtypes=tuple(d for d in adapter.capabilities.dtypes if d in DTYPES)
    )
    return adapter


def _torch(name: str, dialect: str, target: str, defect: str | None, check: str | None, **kw: Any) -> Subject:
    return Subject(name, "torch", dialect, target, defect, check, **kw)


def _keras(name: str, dialect: str, target: str, defect: str | None, check: str | None, **kw: Any) -> Subject:
    return Subject(name, "keras", dialect, target, defect, check, **kw)


_AT = "adagrad/torch"
_AK = "adagrad/keras3"
_AV2 = "adagrad/tf-keras-v2"
_RT = "rprop/torch"
_RKA = "rprop/keras-answer"
_ALL = DTYPES

SUBJECTS: list[Subject] = [
    # --- the controls: correct classes, which must pass ---------------------------------------------------------
    _torch("torch_adagrad", _AT, "adagrad_torch:SelftestAdagrad", None, None, dtypes=_ALL),
    _torch("torch_rprop", _RT, "rprop_torch:SelftestRprop", None, None, dtypes=_ALL),
    _torch("torch_irprop_minus", "rprop/irprop-", "rprop_torch:SelftestIRpropMinus", None, None, dtypes=_ALL),
    _torch("torch_rprop_minus", "rprop/rprop-", "rprop_torch:SelftestRpropMinus", None, None, dtypes=_ALL),
    _keras("keras_adagrad", _AK, "adagrad_keras:SelftestKerasAdagrad", None, None, dtypes=_ALL),
    _keras("keras_v2_adagrad", _AV2, "adagrad_keras:SelftestKerasV2Adagrad", None, None, dtypes=_ALL),
    _keras("keras_rprop", _RKA, "rprop_keras:SelftestKerasRprop", None, None, dtypes=_ALL),
    # --- Adagrad, torch -----------------------------------------------------------------------------------------
    _torch(
        "torch_adagrad_eps_inside_sqrt",
        _AT,
        "adagrad_torch:EpsInsideSqrt",
        "epsilon inside the square root where the dialect puts it outside",
        "trajectory",
    ),
    _torch(
        "torch_adagrad_eps_zero_replaced",
        _AT,
        "adagrad_torch:EpsZeroReplaced",
        "eps=0 replaced by a default instead of giving 0/0 = NaN at A = 0",
        "trajectory",
    ),
    _torch(
        "torch_adagrad_stale_accumulator",
        _AT,
        "adagrad_torch:StaleAccumulator",
        "divides by the accumulator from before this step's g²",
        "trajectory",
    ),
    _torch(
        "torch_adagrad_weight_decay_not_accumulated",
        _AT,
        "adagrad_torch:WeightDecayNotAccumulated",
        "weight decay in the update but not in the accumulator",
        "trajectory",
    ),
    _torch(
        "torch_adagrad_counter_never_incremented",
        _AT,
        "adagrad_torch:CounterNeverIncremented",
        "the step counter is never incremented",
        "trajectory",
    ),
    _torch(
        "torch_adagrad_state_lost_on_load",
        _AT,
        "adagrad_torch:StateLostOnLoad",
        "per-parameter state lost on save/load",
        "checkpoint",
    ),
    _torch(
        "torch_adagrad_float32_accumulator",
        _AT,
        "adagrad_torch:Float32Accumulator",
        "a float64 parameter's accumulator kept in float32",
        "trajectory",
        dtypes=("float64",),
    ),
    _torch(
        "torch_adagrad_accepts_invalid_hparams",
        _AT,
        "adagrad_torch:AcceptsInvalidHparams",
        "accepts invalid hyperparameters silently",
        "invalid_hparams",
    ),
    # --- Adagrad, Keras 3 ---------------------------------------------------------------------------------------
    _keras(
        "keras_adagrad_accumulator_recreated",
        _AK,
        "adagrad_keras:AccumulatorRecreated",
        "the accumulator re-created (reset to its initial value) at every step",
        "trajectory",
    ),
    _keras(
        "keras_adagrad_eps_outside_sqrt",
        _AK,
        "adagrad_keras:EpsOutsideSqrt",
        "epsilon outside the square root where the dialect puts it inside",
        "trajectory",
    ),
    _keras(
        "keras_adagrad_ignores_initial_accumulator",
        _AK,
        "adagrad_keras:IgnoresInitialAccumulator",
        "initial_accumulator_value ignored (the accumulator starts at 0)",
        "trajectory",
    ),
    _keras(
        "keras_adagrad_config_drops_epsilon",
        _AK,
        "adagrad_keras:ConfigDropsEpsilon",
        "get_config() leaves out epsilon, so from_config() falls back to the default",
        "config_round_trip",
    ),
    _keras(
        "keras_v2_adagrad_decay_after_increment",
        _AV2,
        "adagrad_keras:DecayAfterIncrement",
        "legacy decay reads the counter after its increment instead of before",
        "trajectory",
    ),
    _keras(
        "keras_v2_adagrad_clip_order",
        _AV2,
        "adagrad_keras:ClipNormBeforeValue",
        "clipping in the wrong order (clipnorm before clipvalue)",
        "trajectory",
    ),
    _keras(
        "keras_v2_adagrad_eps_zero_kept",
        _AV2,
        "adagrad_keras:EpsZeroKept",
        "epsilon=0 kept as 0 where the dialect rewrites it to 1e-7",
        "trajectory",
    ),
    # --- RProp, Keras 3: the community question's bugs, each alone ----------------------------------------------
    _keras(
        "keras_rprop_max_step_on_sign_change",
        _RKA,
        "rprop_keras:MaxStepOnSignChange",
        "max step where the min step belongs (on a sign change)",
        "trajectory",
    ),
    _keras(
        "keras_rprop_eta_plus_on_sign_change",
        _RKA,
        "rprop_keras:EtaPlusOnSignChange",
        "eta+ applied on a sign change",
        "trajectory",
    ),
    _keras(
        "keras_rprop_prev_grad_is_param",
        _RKA,
        "rprop_keras:PreviousGradientIsParameter",
        "the previous gradient set to the parameter",
        "trajectory",
    ),
    _keras(
        "keras_rprop_lagged_step",
        _RKA,
        "rprop_keras:LaggedStepSize",
        "one-step-lagged update: moves by the step size from before this step's adaptation",
        "trajectory",
    ),
    # --- RProp, torch -------------------------------------------------------------------------------------------
    _torch(
        "torch_irprop_minus_without_freeze",
        "rprop/irprop-",
        "rprop_torch:IRpropMinusWithoutFreeze",
        "Rprop- bookkeeping where iRprop- is claimed (no freezing of p after a sign change)",
        "trajectory",
    ),
    _torch(
        "torch_rprop_minus_two_way_switch",
        "rprop/rprop-",
        "rprop_torch:RpropMinusTwoWaySwitch",
        "a two-way switch where a three-way one is claimed",
        "trajectory",
    ),
    _torch(
        "torch_rprop_moves_on_sign_change",
        _RT,
        "rprop_torch:MovesOnSignChange",
        "moves on the sign-change step",
        "trajectory",
    ),
    _torch(
        "torch_rprop_grows_on_zero_product",
        _RT,
        "rprop_torch:GrowsOnZeroProduct",
        "grows the step on a zero product",
        "trajectory",
    ),
    _torch(
        "torch_rprop_no_clamp_when_kept",
        _RT,
        "rprop_torch:NoClampWhenKept",
        "no clamp in the m = 0 branch (visible only with the initial step outside the bounds)",
        "trajectory",
    ),
    _torch(
        "torch_rprop_signs_instead_of_product",
        _RT,
        "rprop_torch:SignsInsteadOfProduct",
        "sign(g)·sign(p) instead of the sign of the product (visible only when the product underflows)",
        "trajectory",
    ),
    _torch(
        "torch_rprop_counter_not_exposed",
        _RT,
        "rprop_torch:CounterNotExposed",
        "the step counter is never exposed in the state",
        "counter_and_slots",
    ),
    _torch(
        "torch_rprop_step_sizes_not_restored",
        _RT,
        "rprop_torch:StepSizesNotRestored",
        "step sizes not restored on load",
        "checkpoint",
    ),
    _torch(
        "torch_rprop_mutates_gradient",
        _RT,
        "rprop_torch:MutatesGradient",
        "mutates the gradient it is given",
        "inputs_not_mutated",
    ),
    _torch(
        "torch_rprop_unvalidated_etas",
        _RT,
        "rprop_torch:UnvalidatedEtas",
        "an unvalidated eta range",
        "invalid_hparams",
    ),
    _torch(
        "torch_adagrad_weight_decay_in_place",
        _AT,
        "adagrad_torch:WeightDecayInPlace",
        "mutates the gradient it is given (weight decay added in place)",
        "inputs_not_mutated",
    ),
    _torch(
        "torch_adagrad_maximize_in_place",
        _AT,
        "adagrad_torch:MaximizeInPlace",
        "mutates the gradient it is given (negated in place for maximize)",
        "inputs_not_mutated",
    ),
    _torch(
        "torch_adagrad_ignores_initial_accumulator",
        _AT,
        "adagrad_torch:IgnoresInitialAccumulator",
        "initial_accumulator_value ignored (the accumulator starts at 0)",
        "trajectory",
        dtypes=_ALL,
    ),
]


# Real defects that the level-1 corpus does not catch yet, each with what is missing. Not part of SUBJECTS (nor of
# IMPLEMENTATIONS): they pass the level-1 run. tests/runner/test_mutation_score.py keeps each one as a strict xfail.
# (None now: the last, a torch Adagrad ignoring initial_accumulator_value, is caught by the INITIAL_ACCUMULATOR case.)
GAPS: list[Subject] = []


def by_name(name: str) -> Subject:
    for subject in (*SUBJECTS, *GAPS):
        if subject.name == name:
            return subject
    raise KeyError(name)


def _adapters(framework: str | None = None, controls: bool | None = None, gaps: bool = False) -> list[Adapter]:
    return [
        s.adapter
        for s in (GAPS if gaps else SUBJECTS)
        if (framework is None or s.framework == framework) and (controls is None or s.is_control == controls)
    ]


class _Selection(TypedDict, total=False):
    """The keywords of `_adapters` that pick a group."""

    framework: str
    controls: bool
    gaps: bool


_GROUPS: dict[str, _Selection] = {
    "IMPLEMENTATIONS": {},
    "CONTROLS": {"controls": True},
    "BROKEN": {"controls": False},
    "TORCH": {"framework": "torch"},
    "KERAS": {"framework": "keras"},
    "GAP_PROBES": {"gaps": True},
}


def __getattr__(name: str) -> Any:
    """`IMPLEMENTATIONS` (every subject), `CONTROLS`, `BROKEN`, `TORCH`, `KERAS`, `GAP_PROBES` (lists of adapters),
    or one subject's adapter by its name; each built on first use, so that a torch-only selection never imports
    Keras."""
    if name in _GROUPS:
        return _adapters(**_GROUPS[name])
    try:
        return by_name(name).adapter
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
