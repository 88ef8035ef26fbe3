"""What an adapter claims for an optimizer class, and how a user claims more (framework-free, shared by the
torch and Keras-style adapters).

A built-in subject (torch.optim.Adagrad, keras.optimizers.Adagrad, ...) is measured, so it claims what it was
measured to take. A user's class claims only what its framework's base class guarantees: dense gradients. That a
subclass of `torch.optim.Optimizer` or `keras.optimizers.Optimizer` takes row-sparse gradients is a property of its
own `step`, which the adapter cannot see; claiming it by default turns a correct dense-only class into a wall of
framework errors. The user opts in with `sparse=True`.
"""

from __future__ import annotations

from collections.abc import Mapping

from reference import Dialect

__all__ = ["sparse_claim"]


def sparse_claim(
    takes: bool | None, *, adapter_type: str, built_in: bool, dialect: Dialect, path_takes_them: bool = True
) -> tuple[bool, Mapping[str, str]]:
    """Whether row-sparse gradients are claimed, and how a user would claim them (capability -> hint; a skip
    reason can quote it).

    They are claimed where the class takes them (`takes`; by default only a built-in subject does), the dialect
    has them, and the framework's code path can hand them over. The hint is given only for a user's class that
    was not said to take them: what a built-in subject does not claim, it does not take.
    """
    has = getattr(dialect.knobs, "sparse", None) is not None  # the dialect names a rule for repeated rows
    claimed = (built_in if takes is None else takes) and has and path_takes_them
    if built_in or takes or not has:
        return claimed, {}
    return claimed, {"sparse": f"pass sparse=True to {adapter_type} if the class takes row-sparse gradients"}
