"""The dialect table: each dialect is a named preset of one family's knobs, with the framework's own names."""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import Any

from ._hparams import HparamRounding, check_type
from .adagrad import AdagradKnobs, ClipKind, EpsPlacement, LrDecay, Momentum, WeightDecay
from .families import FAMILIES
from .family import Family
from .rprop import STEP_BOUNDS, Backtrack, NanPolicy, RpropKnobs, SignTest, Switch
from .sparse import SparseRule

__all__ = ["DIALECTS", "FAMILIES", "LOSS_SLOT", "Dialect", "Family", "get"]

ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")
LOSS_SLOT = "prev_loss"  # iRprop+'s E_prev, reported as one more slot: a single scalar


@dataclass(frozen=True)
class Dialect:
    """A framework's behaviour as knob settings, plus its own hyperparameter and state-slot names.

    `names` maps each framework keyword to the canonical hyperparameter it sets, or to a tuple of them when the
    framework takes a pair (torch's `etas`). `slots` maps canonical slots to framework slot names; a slot the
    framework does not keep is absent. `counter` names the framework's step counter (None: it keeps none).
    """

    id: str
    knobs: Any
    defaults: Mapping[str, Any]
    names: Mapping[str, str | tuple[str, ...]]
    slots: Mapping[str, str]
    counter: str | None
    sources: tuple[str, ...]
    dtypes: tuple[str, ...] = ALL_DTYPES
    needs_loss: bool = False
    keeps_loss: bool = False  # iRprop+ keeps E_prev as a state slot
    # Keywords the framework's own history used but this dialect refuses (with an example value): passing one
    # must raise, not be silently ignored.
    removed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Framework keywords that win over every other keyword for the same hyperparameter when both are given (tf_keras's
    # legacy optimizers read `kwargs.get("lr", learning_rate)`). Aliases given together and named here by neither are
    # refused: the dialect does not know which one its framework takes.
    alias_winners: frozenset[str] = frozenset()
    # The formats whose corpus holds the family's cases with the initial state as an input (`given_state_cases`);
    # a dialect whose framework takes its state as an input has them in every format.
    given_state: tuple[str, ...] = ()

    @property
    def family(self) -> Family:
        return FAMILIES[self.id.split("/")[0]]

    @property
    def exposed(self) -> frozenset[str]:
        """The canonical hyperparameters the framework has a keyword for (each of a pair's two)."""
        return frozenset(t for v in self.names.values() for t in (v if isinstance(v, tuple) else (v,)))

    @property
    def reported_slots(self) -> tuple[str, ...]:
        """The slots a trajectory reports, by framework name: the per-tensor slots, then the loss slot if kept."""
        return (*self.slots.values(), *((LOSS_SLOT,) if self.keeps_loss else ()))

    def hparams(self, given: Mapping[str, Any] | None = None, *, validate: bool = True) -> Any:
        """Framework-named hyperparameters -> validated canonical hparams, the dialect's defaults filled in.

        Every value given is checked against its hyperparameter's type first (`check_type`), so that the range
        checks compare numbers with numbers. `validate=False` only maps names (for adapters of primitives, such as
        TF's raw ops, that check nothing).
        """
        if given is not None and not isinstance(given, Mapping):
            raise ValueError(f"{self.id}: hyperparameters must map names to values, not be a {type(given).__name__}")
        types = _field_types(self.family.hparams_type)
        canonical = dict(self.defaults)
        for name, value in self._resolve_aliases(given or {}):
            targets = self.names[name]
            if isinstance(targets, tuple):
                if not isinstance(value, list | tuple) or len(value) != len(targets):
                    raise ValueError(f"invalid {name}={value!r}: must be a pair ({', '.join(targets)})")
                settings = [(f"{name}[{i}]", t, v) for i, (t, v) in enumerate(zip(targets, value, strict=True))]
            else:
                settings = [(name, targets, value)]
            for label, target, v in settings:
                canonical[target] = check_type(label, v, types[target]) if validate else v
        required = {f.name for f in fields(self.family.hparams_type) if f.default is MISSING}
        missing = sorted(required - canonical.keys())
        if missing:
            framework = [n for n, t in self.names.items() if t in missing]
            raise ValueError(f"{self.id} needs {', '.join(framework or missing)}")
        hparams = self.family.hparams_type(**canonical)
        return self.family.validate(hparams, self.knobs) if validate else hparams

    def _resolve_aliases(self, given: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """The given keywords in the order they apply: an alias the framework prefers comes last, so it wins."""
        for name in given:
            if name not in self.names:
                accepted = ", ".join(sorted(self.names))
                raise ValueError(f"{self.id} has no hyperparameter {name!r}; accepted: {accepted}")
        by_target: dict[str | tuple[str, ...], list[str]] = {}
        for name in given:
            by_target.setdefault(self.names[name], []).append(name)
        for names in by_target.values():
            if len(names) > 1 and not self.alias_winners & set(names):
                raise ValueError(f"{self.id}: {' and '.join(names)} are aliases of one hyperparameter; give one")
        return sorted(given.items(), key=lambda item: item[0] in self.alias_winners)

    def framework_hparams(self, canonical: Mapping[str, Any]) -> dict[str, Any]:
        """Canonical hyperparameters -> the framework's keywords (the primary name, pairs filled from defaults)."""
        out: dict[str, Any] = {}
        for name, target in self.names.items():
            if isinstance(target, tuple):
                if any(t in canonical for t in target):
                    out[name] = [canonical.get(t, self.defaults.get(t)) for t in target]
            elif target in canonical and self.framework_name(target) == name:
                out[name] = canonical[target]
        unknown = sorted(set(canonical) - self.exposed)
        if unknown:
            raise ValueError(f"{self.id} has no hyperparameter for {', '.join(unknown)}")
        return out

    def framework_name(self, canonical: str) -> str:
        for name, target in self.names.items():
            if target == canonical or (isinstance(target, tuple) and canonical in target):
                return name
        return canonical


@functools.cache
def _field_types(hparams_type: type) -> Mapping[str, Any]:
    """Each canonical hyperparameter's annotated type, read once per family."""
    return MappingProxyType(typing.get_type_hints(hparams_type))


def _table(*dialects: Dialect) -> Mapping[str, Dialect]:
    return MappingProxyType({d.id: d for d in dialects})


# TF turns Python-float thresholds into tensors of the gradient's dtype before clipping.
_CLIPS = frozenset({"clipvalue", "clipnorm", "global_clipnorm"})
_TF_ROUNDING = HparamRounding(
    to_float32=frozenset({"lr", "decay"}), to_param_format=frozenset({"lr", "decay", "eps"}) | _CLIPS
)

DIALECTS: Mapping[str, Dialect] = _table(
    Dialect(
        id="adagrad/keras2",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.OUTSIDE,
            lr_decay=LrDecay.INVERSE_TIME,
            clip_order=(ClipKind.GLOBAL_NORM, ClipKind.VALUE),
            rounding=HparamRounding(to_float32=frozenset({"lr", "decay", "eps"}) | _CLIPS),
        ),
        defaults={"lr": 0.01, "eps": 1e-7, "initial_accumulator": 0.0, "decay": 0.0},
        # Note: Keras 2's `clipnorm` rescales all gradients by their joint norm, i.e. a global clipnorm.
        names={"lr": "lr", "epsilon": "eps", "decay": "decay", "clipnorm": "global_clipnorm", "clipvalue": "clipvalue"},
        slots={"accumulator": "accumulator"},
        counter="iterations",
        dtypes=("float32",),  # its accumulators are always floatx (float32)
        sources=("keras 2.2.5 keras/optimizers.py Adagrad.get_updates",),
    ),
    Dialect(
        id="adagrad/tf-keras-v2",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.OUTSIDE,
            lr_decay=LrDecay.INVERSE_TIME,
            clip_order=(ClipKind.VALUE, ClipKind.NORM, ClipKind.GLOBAL_NORM),
            exclusive_clips=frozenset({ClipKind.NORM, ClipKind.GLOBAL_NORM}),
            rounding=_TF_ROUNDING,
            eps_if_falsy=1e-7,
            sparse=SparseRule.SUMMED,
        ),
        defaults={"lr": 0.001, "eps": 1e-7, "initial_accumulator": 0.1, "decay": 0.0},
        names={
            "learning_rate": "lr",
            "lr": "lr",
            "initial_accumulator_value": "initial_accumulator",
            "epsilon": "eps",
            "decay": "decay",
            "clipvalue": "clipvalue",
            "clipnorm": "clipnorm",
            "global_clipnorm": "global_clipnorm",
        },
        slots={"accumulator": "accumulator"},
        counter="iterations",
        alias_winners=frozenset({"lr"}),
        sources=(
            "tf_keras 2.21 tf_keras/src/optimizers/legacy/adagrad.py",
            "tensorflow 2.21 core/kernels/training_ops.cc ApplyAdagradV2Op",
        ),
    ),
    Dialect(
        id="adagrad/keras3",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.INSIDE,
            weight_decay=WeightDecay.DECOUPLED,
            clip_order=(ClipKind.NORM, ClipKind.GLOBAL_NORM, ClipKind.VALUE),
            exclusive_clips=frozenset(ClipKind),
            sparse=SparseRule.SUMMED,
            rounding=HparamRounding(to_float32=frozenset({"lr"}), to_param_format=frozenset({"lr", "eps"}) | _CLIPS),
        ),
        defaults={"lr": 0.001, "eps": 1e-7, "initial_accumulator": 0.1, "weight_decay": None},
        names={
            "learning_rate": "lr",
            "initial_accumulator_value": "initial_accumulator",
            "epsilon": "eps",
            "weight_decay": "weight_decay",
            "clipnorm": "clipnorm",
            "global_clipnorm": "global_clipnorm",
            "clipvalue": "clipvalue",
        },
        slots={"accumulator": "accumulator"},
        counter="iterations",
        removed=MappingProxyType({"decay": 0.1, "lr": 0.1}),
        sources=("keras 3.15 keras/src/optimizers/adagrad.py", "tf_keras 2.21 tf_keras/src/optimizers/adagrad.py"),
    ),
    Dialect(
        id="adagrad/torch",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.OUTSIDE,
            lr_decay=LrDecay.INVERSE_TIME,
            weight_decay=WeightDecay.COUPLED,
            sparse=SparseRule.SUMMED,
        ),
        defaults={"lr": 0.01, "eps": 1e-10, "initial_accumulator": 0.0, "decay": 0.0, "weight_decay": 0.0},
        names={
            "lr": "lr",
            "lr_decay": "decay",
            "weight_decay": "weight_decay",
            "initial_accumulator_value": "initial_accumulator",
            "eps": "eps",
            "maximize": "maximize",
        },
        slots={"accumulator": "sum"},
        counter="step",
        given_state=("float32", "float64"),
        sources=("torch 2.13 torch/optim/adagrad.py",),
    ),
    Dialect(
        id="adagrad/onnx",
        # ai.onnx.preview.training Adagrad (opset 1): torch's formula, but a stateless operator. R (the learning
        # rate), T (the counter), X, G and H are inputs, X_new and H_new outputs; the caller keeps H and T. Its
        # attributes are FLOAT, so epsilon, decay_factor and norm_coefficient are float32 numbers; R is a tensor,
        # taken in the parameters' format. The initial H is an input too: no hyperparameter builds it.
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.OUTSIDE,
            lr_decay=LrDecay.INVERSE_TIME,
            weight_decay=WeightDecay.COUPLED_ALWAYS,
            rounding=HparamRounding(
                to_float32=frozenset({"eps", "decay", "weight_decay"}), to_param_format=frozenset({"lr"})
            ),
        ),
        defaults={"eps": 1e-6, "initial_accumulator": 0.0, "decay": 0.0, "weight_decay": 0.0},
        names={"R": "lr", "epsilon": "eps", "decay_factor": "decay", "norm_coefficient": "weight_decay"},
        slots={"accumulator": "H"},
        counter="T",
        dtypes=("float32", "float64"),  # X, G and H are tensor(float) or tensor(double)
        given_state=("float32", "float64"),
        sources=(
            "onnx 1.23.2 onnx/defs/training/defs.cc Adagrad (ai.onnx.preview.training, opset 1)",
            "onnx 1.23.2 onnx/reference/ops/aionnx_preview_training/op_adagrad.py",
        ),
    ),
    Dialect(
        id="adagrad/optax",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.INSIDE_MASKED,
            rounding=HparamRounding(to_param_format=frozenset({"lr", "eps"})),
        ),
        defaults={"eps": 1e-7, "initial_accumulator": 0.1},
        names={"learning_rate": "lr", "initial_accumulator_value": "initial_accumulator", "eps": "eps"},
        slots={"accumulator": "sum_of_squares"},
        counter=None,
        sources=("optax 0.2.8 optax/_src/alias.py adagrad", "optax 0.2.8 optax/_src/transform.py scale_by_rss"),
    ),
    Dialect(
        id="adagrad/tf1",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.NONE,
            rounding=HparamRounding(to_float32=frozenset({"lr"}), to_param_format=frozenset({"lr"})),
            initial_accumulator_positive=True,
            sparse=SparseRule.SUMMED,
        ),
        defaults={"initial_accumulator": 0.1},
        names={
            "learning_rate": "lr",
            "initial_accumulator_value": "initial_accumulator",
            "update_slots": "update_slots",
        },
        slots={"accumulator": "accumulator"},
        counter=None,
        sources=(
            "tensorflow 2.21 python/training/adagrad.py AdagradOptimizer",
            "tensorflow 2.21 core/kernels/training_ops.cc ApplyAdagradOp",
        ),
    ),
    Dialect(
        id="adagrad/tf-raw-v2",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.OUTSIDE,
            rounding=HparamRounding(to_param_format=frozenset({"lr", "eps"})),
            sparse=SparseRule.SEQUENTIAL,
        ),
        defaults={"eps": 1e-7, "initial_accumulator": 0.1},
        names={
            "lr": "lr",
            "epsilon": "eps",
            "initial_accumulator_value": "initial_accumulator",
            "update_slots": "update_slots",
        },
        slots={"accumulator": "accum"},
        counter=None,
        sources=("tensorflow 2.21 core/kernels/training_ops.cc ApplyAdagradV2Op",),
    ),
    Dialect(
        id="adagrad/mlx",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.OUTSIDE,
            # The learning rate is an mx.array (float32) cast to the parameter's dtype; eps, a Python scalar, is
            # weakly typed and so takes the parameter's dtype.
            rounding=HparamRounding(to_float32=frozenset({"lr"}), to_param_format=frozenset({"lr", "eps"})),
            eps_positive=True,
        ),
        defaults={"eps": 1e-8, "initial_accumulator": 0.0},
        names={"learning_rate": "lr", "eps": "eps"},
        slots={"accumulator": "v"},
        counter="step",
        sources=(
            "mlx 0.32.4 python/mlx/optimizers/optimizers.py Adagrad, Optimizer",
            "mlx 0.32.4 python/src/utils.cpp to_array, to_arrays (a Python scalar takes the array's dtype)",
        ),
    ),
    Dialect(
        id="adagrad/jax-example",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.NONE_MASKED,
            momentum=Momentum.PRECONDITIONED,
            # step_size and momentum are Python floats, weakly typed: each product takes the parameter's dtype.
            rounding=HparamRounding(to_param_format=frozenset({"lr", "momentum"})),
        ),
        defaults={"momentum": 0.9, "initial_accumulator": 0.0},
        names={"step_size": "lr", "momentum": "momentum"},
        slots={"accumulator": "g_sq", "momentum": "m"},
        counter=None,  # the caller passes the step index i; the state keeps none
        sources=("jax 0.10.2 jax/example_libraries/optimizers.py adagrad",),
    ),
    Dialect(
        id="adagrad/paddle",
        knobs=AdagradKnobs(
            eps_placement=EpsPlacement.OUTSIDE,
            weight_decay=WeightDecay.COUPLED_ALWAYS,
            # The kernel takes epsilon as a C++ float; the learning rate is a tensor of the first parameter's
            # dtype, and L2Decay scales by its coefficient cast to the parameter's dtype.
            rounding=HparamRounding(
                to_float32=frozenset({"eps"}), to_param_format=frozenset({"lr", "eps", "weight_decay"})
            ),
            sparse=SparseRule.SUMMED,
        ),
        # weight_decay None: no regularizer at all (a float, even 0.0, adds an L2Decay term to the gradient).
        defaults={"eps": 1e-6, "initial_accumulator": 0.0, "weight_decay": None},
        names={
            "learning_rate": "lr",
            "epsilon": "eps",
            "initial_accumulator_value": "initial_accumulator",
            "weight_decay": "weight_decay",
        },
        slots={"accumulator": "moment"},
        counter=None,
        sources=(
            "paddlepaddle 3.3.1 python/paddle/optimizer/adagrad.py",
            "paddlepaddle 3.3.1 paddle/phi/kernels/cpu/adagrad_kernel.cc",
        ),
    ),
    Dialect(
        id="adagrad/mindspore",
        knobs=AdagradKnobs(
            # ApplyAdagrad's CPU kernel computes lr·g·(1/√(accum + ε)) with a fixed ε of 1e-8, not a keyword.
            eps_placement=EpsPlacement.INSIDE,
            weight_decay=WeightDecay.COUPLED,
            # The optimizer keeps the learning rate and weight decay as float32 tensors; the decay is then cast to
            # the parameter's format (optimizer.py _apply_decay), and the kernel's ε is a float32 constant.
            rounding=HparamRounding(
                to_float32=frozenset({"lr", "eps", "weight_decay"}), to_param_format=frozenset({"weight_decay"})
            ),
        ),
        defaults={"lr": 0.001, "eps": 1e-8, "initial_accumulator": 0.1, "weight_decay": 0.0},
        names={
            "learning_rate": "lr",
            "accum": "initial_accumulator",
            "update_slots": "update_slots",
            "weight_decay": "weight_decay",
        },
        slots={"accumulator": "accum"},
        counter="global_step",
        sources=(
            "mindspore 2.10.0 mindspore/nn/optim/ada_grad.py Adagrad",
            "mindspore 2.10.0 mindspore/nn/optim/optimizer.py Optimizer",
            "mindspore mindspore/ccsrc/plugin/device/cpu/kernel/apply_adagrad_cpu_kernel.cc ApplyAdagrad (CPU)",
        ),
    ),
    *(
        Dialect(
            id=f"rprop/{variant}",
            knobs=knobs,
            defaults={"lr": 0.1, "eta_minus": 0.5, "eta_plus": 1.2, "step_min": 1e-6, "step_max": 50.0},
            names={
                "delta_0": "lr",
                "eta_minus": "eta_minus",
                "eta_plus": "eta_plus",
                "delta_min": "step_min",
                "delta_max": "step_max",
            },
            slots={"step_size": "delta", "prev_grad": "prev_grad"}
            | ({"prev_update": "prev_update"} if knobs.backtrack is not Backtrack.NEVER else {}),
            counter="t",
            needs_loss=knobs.backtrack is Backtrack.IF_LOSS_ROSE,
            keeps_loss=knobs.backtrack is Backtrack.IF_LOSS_ROSE,
            sources=(source,),
        )
        for variant, knobs, source in (
            ("rprop+", RpropKnobs(backtrack=Backtrack.ALWAYS), "Riedmiller & Braun, ICNN 1993"),
            ("rprop-", RpropKnobs(freeze=False, move_on_sign_change=True), "Riedmiller, CSI 16(5), 1994"),
            ("irprop+", RpropKnobs(backtrack=Backtrack.IF_LOSS_ROSE), "Igel & Husken, NC 2000"),
            ("irprop-", RpropKnobs(), "Igel & Husken, NC 2000"),
        )
    ),
    Dialect(
        id="rprop/torch",
        knobs=RpropKnobs(
            clamp_zero_branch=True,
            nan_policy=NanPolicy.SIGN_ZERO,
            rounding=HparamRounding(to_param_format=frozenset({"eta_minus", "eta_plus"}) | STEP_BOUNDS),
        ),
        defaults={"lr": 0.01, "eta_minus": 0.5, "eta_plus": 1.2, "step_min": 1e-6, "step_max": 50.0},
        names={
            "lr": "lr",
            "etas": ("eta_minus", "eta_plus"),
            "step_sizes": ("step_min", "step_max"),
            "maximize": "maximize",
        },
        slots={"step_size": "step_size", "prev_grad": "prev"},
        counter="step",
        sources=("torch 2.13 torch/optim/rprop.py",),
    ),
    Dialect(
        id="rprop/mindspore",
        # rprop/torch's rule (iRprop-, Δ clamped in every branch, sign(NaN) = 0), plus coupled weight decay.
        knobs=RpropKnobs(
            clamp_zero_branch=True,
            nan_policy=NanPolicy.SIGN_ZERO,
            # The learning rate (Δ₀) is a float32 tensor; etas, bounds and the decay are cast to the compute format.
            rounding=HparamRounding(
                to_float32=frozenset({"lr", "eta_minus", "eta_plus", "weight_decay"}) | STEP_BOUNDS,
                to_param_format=frozenset({"lr", "eta_minus", "eta_plus", "weight_decay"}) | STEP_BOUNDS,
            ),
        ),
        defaults={
            "lr": 0.1,
            "eta_minus": 0.5,
            "eta_plus": 1.2,
            "step_min": 1e-6,
            "step_max": 50.0,
            "weight_decay": 0.0,
        },
        names={
            "learning_rate": "lr",
            "etas": ("eta_minus", "eta_plus"),
            "step_sizes": ("step_min", "step_max"),
            "weight_decay": "weight_decay",
        },
        slots={"step_size": "step_size", "prev_grad": "prev"},
        counter="global_step",
        sources=(
            "mindspore 2.10.0 mindspore/nn/optim/rprop.py Rprop",
            "mindspore 2.10.0 mindspore/nn/optim/optimizer.py Optimizer",
        ),
    ),
    Dialect(
        id="rprop/keras-answer",
        knobs=RpropKnobs(freeze=False, move_on_sign_change=True, switch=Switch.TWO_WAY, sign_test=SignTest.PRODUCT),
        defaults={"lr": 1e-3, "eta_minus": 0.5, "eta_plus": 1.2, "step_min": 1e-6, "step_max": 50.0},
        names={
            "init_alpha": "lr",
            "scale_up": "eta_plus",
            "scale_down": "eta_minus",
            "min_alpha": "step_min",
            "max_alpha": "step_max",
        },
        slots={"step_size": "alphas", "prev_grad": "old_grads"},
        counter="iterations",
        sources=("the accepted answer to the Stack Overflow question 'Keras - implementing Rprop algorithm'",),
    ),
    Dialect(
        id="rprop/paddle",
        knobs=RpropKnobs(
            clamp_zero_branch=True,
            rounding=HparamRounding(to_param_format=frozenset({"eta_minus", "eta_plus"}) | STEP_BOUNDS),
            initial_step_within_bounds=True,
        ),
        defaults={"lr": 0.001, "eta_minus": 0.5, "eta_plus": 1.2, "step_min": 1e-5, "step_max": 50.0},
        names={
            "learning_rate": "lr",
            "etas": ("eta_minus", "eta_plus"),
            "learning_rate_range": ("step_min", "step_max"),
        },
        slots={"step_size": "learning_rates", "prev_grad": "prevs"},
        counter=None,
        sources=(
            "paddlepaddle 3.3.1 python/paddle/optimizer/rprop.py",
            "paddlepaddle 3.3.1 paddle/phi/kernels/cpu/rprop_kernel.cc",
        ),
    ),
)


def get(dialect_id: str) -> Dialect:
    try:
        return DIALECTS[dialect_id]
    except KeyError:
        known = ", ".join(DIALECTS)
        raise ValueError(f"unknown dialect {dialect_id!r}; known dialects: {known}") from None
