"""Each dialect's formula, knobs, defaults, slots and sources as Markdown, rendered from the dialect table.

The text is derived from the same knob values the evaluators run, so the documentation cannot drift.
"""

from __future__ import annotations

from dataclasses import fields
from enum import Enum
from typing import Any

from ._hparams import HparamRounding
from .dialects import DIALECTS, Dialect

__all__ = ["dialect_markdown", "dialects_section"]


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
    lines = d.family.describe(d)
    exposed = d.exposed
    defaults = ", ".join(
        f"`{d.framework_name(name)}`={value!r}" for name, value in d.defaults.items() if name in exposed
    )
    # A default without a keyword (keras2's initial accumulator, MindSpore's kernel ε) is a constant of the dialect.
    fixed = [
        f"{name.replace('_', ' ')} fixed at {value!r}" for name, value in d.defaults.items() if name not in exposed
    ]
    defaults = "; ".join([defaults, *fixed]) if defaults else "; ".join(fixed)
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
        *(
            [f"- **Aliases given together:** {', '.join(f'`{k}`' for k in sorted(d.alias_winners))} wins over the rest"]
            if d.alias_winners
            else []
        ),
        *(
            [f"- **Cases with the initial state as an input** (`INITIAL_STATE`): {', '.join(d.given_state)}"]
            if d.given_state
            else []
        ),
        f"- **Source:** {'; '.join(d.sources)}",
        "",
    ]
    return "\n".join(out)


def dialects_section() -> str:
    return "\n".join(dialect_markdown(d) for d in DIALECTS.values()).rstrip() + "\n"
