"""The flag glossary: what each case flag tests, and the real bug it guards against where one is known."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FLAGS", "Note"]


@dataclass(frozen=True)
class Note:
    description: str
    bug: str | None = None  # the real defect this catches, where one is known
    links: tuple[str, ...] = ()


FLAGS: dict[str, Note] = {
    "RANDOM": Note("A seeded random trajectory of at least 10 steps."),
    "FUZZ": Note("Drawn live by `pytest --fuzz=N`; never stored in the corpus."),
    "SCALAR": Note("A 0-d parameter tensor."),
    "ZERO_SIZE": Note(
        "A parameter with no elements: the update must run and change nothing.",
        "Optimizers that index element 0 or divide by the element count.",
        ("https://github.com/pytorch/pytorch/issues/100701",),
    ),
    "MULTI_TENSOR": Note("Several parameter tensors stepped together (global norms span all of them)."),
    "CHECKPOINT": Note(
        "The runner saves after step `checkpoint`, loads into a fresh optimizer and continues; the result must be "
        "bit-identical to the uninterrupted run.",
        "State lost or re-initialised on save/load (accumulators recreated each step; step sizes not restored).",
    ),
    "ZERO_ACCUMULATOR_EPS0": Note(
        "A = 0, eps = 0 and a zero gradient: 0/0 is NaN unless the dialect masks it (optax moves nothing).",
        "NaN on the first step with a zero accumulator.",
        ("https://github.com/lisa-lab/pylearn2/issues/1496",),
    ),
    "ZERO_GRADIENT": Note("Steps whose gradient is exactly zero."),
    "EPS_DECIDES": Note(
        "Gradients so small that where epsilon sits (inside or outside the square root) changes the result.",
        "An implementation claiming one epsilon placement but using the other.",
        ("https://github.com/keras-team/keras/issues/17391",),
    ),
    "EPS_BELOW_FORMAT": Note(
        "The dialect's epsilon is below the format's smallest subnormal, with A = g = 0: exact arithmetic moves "
        "nothing; an implementation that adds epsilon in the parameter format divides 0 by 0.",
        "torch Adagrad in float16 with the default eps=1e-10 produces NaN.",
    ),
    "EPS_ZERO_REWRITE": Note(
        "epsilon=0 given to a dialect that silently replaces it (tf.keras OptimizerV2 uses 1e-7).",
        "Porting code that relies on epsilon=0 being honoured.",
    ),
    "SQUARE_OVERFLOW": Note("A gradient whose square overflows the format: the stored accumulator is +inf."),
    "SUBNORMAL": Note("Subnormal parameters and gradients of the format."),
    "DECAY_LARGE_STEP": Note(
        "Inverse-time decay starting at a large step count (the state's counter starts late).",
        "Counting t after the increment, or keeping the counter in a format that loses integers.",
    ),
    "INITIAL_STATE": Note(
        "The state before the first step is an input, given per element (a different accumulator in each element), "
        "not what the hyperparameters build: the implementation is set to it before the first step.",
        "Ignoring the state handed in, or reading it only through a scalar initial value.",
    ),
    "WEIGHT_DECAY": Note("Weight decay, coupled or decoupled as the dialect says."),
    "CLIPPING": Note("Gradient clipping by value, per-tensor norm or global norm, in the dialect's order."),
    "MAXIMIZE": Note("maximize=True: the gradient is negated first."),
    "ALIASES": Note(
        "Two keywords of one hyperparameter given together, with different values: the one the framework prefers "
        "applies (tf_keras's legacy optimizers read `lr` over `learning_rate`).",
        "An optimizer that takes whichever alias comes last, or silently drops one.",
    ),
    "INITIAL_ACCUMULATOR": Note(
        "The initial accumulator set by its keyword to a value other than the dialect's default of 0.",
        "An optimizer that ignores initial_accumulator_value: with the default of 0 every other case passes.",
    ),
    "MOMENTUM": Note("Momentum on the preconditioned gradient: the parameters keep moving on zero gradients."),
    "UPDATE_SLOTS_FALSE": Note("update_slots=False: the accumulator is used but never updated."),
    "NAN_GRADIENT": Note("A NaN gradient element, under the dialect's NaN policy."),
    "INF_GRADIENT": Note("An infinite gradient element."),
    "SPARSE_DUPLICATES": Note(
        "A row-sparse gradient with repeated indices: summed first, or applied one after another, as the dialect "
        "says; untouched rows must not change.",
        "Duplicates applied without merging (A grows by the sum of squares, not the square of the sum).",
        ("https://github.com/keras-team/keras/issues/18692",),
    ),
    "SIGN_FLIPS": Note("Gradients that change sign repeatedly."),
    "CLAMP_MAX": Note("The step size saturates at the maximum step."),
    "CLAMP_MIN": Note("The step size saturates at the minimum step."),
    "INITIAL_STEP_OUTSIDE": Note(
        "An initial step outside [min step, max step]: dialects that clamp in the m = 0 branch clamp it at step 1.",
        "Treating step-size bounds as applying only after growth or shrinkage (torch lr=60 moves 50).",
    ),
    "PRODUCT_UNDERFLOW": Note(
        "g * p underflows to 0 in the parameter format, so the product test sees no sign information.",
        "A sign test where the dialect specifies the product (or the reverse).",
    ),
    "PRODUCT_SUBNORMAL": Note("g * p is subnormal but not zero: the product test still sees its sign."),
    "LOSS_RISE_FALL_TIE": Note("iRprop+ losses that rise, fall and tie (a tie is not a rise)."),
    "BOUNDARY": Note(
        "Deliberately within a few ulps of a branch or clamp edge; expected exactly as the oracle decides."
    ),
}
