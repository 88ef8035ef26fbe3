"""Each dialect's formula, knobs, defaults, slots and sources as Markdown, rendered from the dialect table.

The text is derived from the same knob values the evaluators run, so the documentation cannot drift.
"""

from __future__ import annotations

from dataclasses import fields
from enum import Enum
from typing import Any

from ._hparams import HparamRounding
from .adagrad import AdagradKnobs, ClipKind, ClipPolicy, EpsPlacement, LrDecay, WeightDecay
from .dialects import DIALECTS, Dialect
from .rprop import Backtrack, NanPolicy, RpropKnobs, SignTest, Switch

__all__ = ["dialect_markdown", "dialects_section"]

_DENOMINATOR = {
    EpsPlacement.OUTSIDE: "(√A + ε)",
    EpsPlacement.INSIDE: "√(A + ε)",
    EpsPlacement.INSIDE_MASKED: "√(A + ε), and the step is 0 where A = 0",
    EpsPlacement.NONE: "√A",
}
_CLIP = {
    ClipKind.VALUE: "g ← min(max(g, −v), v)  (clipvalue v)",
    ClipKind.NORM: "g ← g·c / max(‖g‖₂, c)  (clipnorm c, each tensor alone)",
    ClipKind.GLOBAL_NORM: "g ← g·c / max(‖G‖₂, c)  (global clipnorm c, G = all tensors together)",
}


def _adagrad_lines(d: Dialect, k: AdagradKnobs) -> list[str]:
    lines = []
    if "maximize" in d.names.values():
        lines.append("g ← −g  (if maximize)")
    clip_note = {
        ClipPolicy.ALL_IN_ORDER: "each one set, in this order",
        ClipPolicy.FIRST_SET_ONLY: "only the first set",
    }
    note = "at most one may be set" if set(k.clip_order) <= k.exclusive_clips else clip_note[k.clip_policy]
    for kind in k.clip_order:
        lines.append(f"{_CLIP[kind]}  [{note}]")
    if k.weight_decay is WeightDecay.COUPLED:
        lines.append("g ← g + λ·θ")
    lines.append("η_t = η / (1 + κ·t)" if k.lr_decay is LrDecay.INVERSE_TIME else "η_t = η")
    slots_note = "  (skipped when update_slots is false)" if "update_slots" in d.names.values() else ""
    lines.append(f"A ← A + g·g{slots_note}")
    if k.weight_decay is WeightDecay.DECOUPLED:
        lines.append("θ ← θ − θ·λ·η_t  (whenever weight_decay is given, even 0)")
    lines.append(f"θ ← θ − (η_t·g) / {_DENOMINATOR[k.eps_placement]}")
    return lines


def _rprop_lines(d: Dialect, k: RpropKnobs) -> list[str]:
    lines = []
    if "maximize" in d.names.values():
        lines.append("g ← −g  (if maximize)")
    test = "m = sign(fl(g·p))  (the product in the parameter format: it can underflow to 0)"
    if k.sign_test is SignTest.SIGNS:
        test = "m = sign(g)·sign(p)"
    if k.nan_policy is NanPolicy.SIGN_ZERO:
        test += "; sign(NaN) = 0"
    lines.append(test)
    lines.append("m > 0: Δ ← min(η⁺·Δ, Δmax); d = −sign(g)·Δ")
    shrink = "m < 0" if k.switch is Switch.THREE_WAY else "m ≤ 0"
    if k.backtrack is Backtrack.ALWAYS:
        move = "d = −d⁻ (backtrack)"
    elif k.backtrack is Backtrack.IF_LOSS_ROSE:
        move = "d = −d⁻ if E > E⁻ else " + ("−sign(g)·Δ" if k.move_on_sign_change else "0")
    else:
        move = "d = −sign(g)·Δ" if k.move_on_sign_change else "d = 0"
    freeze = "; p ← 0" if k.freeze else ""
    lines.append(f"{shrink}: Δ ← max(η⁻·Δ, Δmin); {move}{freeze}")
    if k.switch is Switch.THREE_WAY:
        kept = "Δ ← min(max(Δ, Δmin), Δmax)" if k.clamp_zero_branch else "Δ unchanged"
        lines.append(f"m = 0: {kept}; d = −sign(g)·Δ")
    lines.append("θ ← θ + d;  p ← g (after any freeze);  d⁻ ← d;  E⁻ ← E")
    return lines


def _knob_value(value: Any) -> str:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | frozenset):
        items = [v.value if isinstance(v, Enum) else str(v) for v in value]
        return "(" + ", ".join(sorted(items) if isinstance(value, frozenset) else items) + ")"
    if isinstance(value, HparamRounding):
        parts = []
        if value.to_float32:
            parts.append("float32: " + ", ".join(sorted(value.to_float32)))
        if value.to_param_format:
            parts.append("param format: " + ", ".join(sorted(value.to_param_format)))
        return "; ".join(parts) or "none (exact)"
    return repr(value)


def dialect_markdown(d: Dialect) -> str:
    lines = _adagrad_lines(d, d.knobs) if isinstance(d.knobs, AdagradKnobs) else _rprop_lines(d, d.knobs)
    defaults = ", ".join(
        f"`{d.framework_name(name)}`={value!r}"
        for name, value in d.defaults.items()
        if name != "initial_accumulator" or any(t == name for t in d.names.values())
    )
    if "initial_accumulator" in d.defaults and "initial_accumulator" not in d.names.values():
        defaults += f"; initial accumulator fixed at {d.defaults['initial_accumulator']!r}"
    required = [n for n, t in d.names.items() if t == "lr" and "lr" not in d.defaults]
    names = ", ".join(f"`{n}`→{'/'.join(t) if isinstance(t, tuple) else t}" for n, t in d.names.items())
    knobs = ", ".join(f"{f.name}={_knob_value(getattr(d.knobs, f.name))}" for f in fields(d.knobs))
    slots = ", ".join(f"`{name}` ({canonical})" for canonical, name in d.slots.items())
    if d.keeps_loss:
        slots += ", `prev_loss` (E⁻, a scalar)"
    counter = f"`{d.counter}`" if d.counter else "none"
    out = [
        f"### `{d.id}`",
        "",
        "```",
        *lines,
        "```",
        "",
        f"- **Defaults:** {defaults or 'none'}"
        + (f"; required: {', '.join(f'`{r}`' for r in required)}" if required else ""),
        f"- **Hyperparameters** (framework name → canonical): {names}",
        f"- **Knobs:** {knobs}",
        f"- **State slots:** {slots}; **counter:** {counter}",
        f"- **Formats:** {', '.join(d.dtypes)}" + ("; **needs a loss per step**" if d.needs_loss else ""),
        *(
            [f"- **Refused keywords:** {', '.join(f'`{k}`' for k in d.removed)} (must raise, not be ignored)"]
            if d.removed
            else []
        ),
        f"- **Source:** {'; '.join(d.sources)}",
        "",
    ]
    return "\n".join(out)


def dialects_section() -> str:
    return "\n".join(dialect_markdown(d) for d in DIALECTS.values()).rstrip() + "\n"
