"""The runner's self-tests drive pytest in this process (pytester), which forgets every module a run imported."""

import importlib.util

import pytest


@pytest.fixture(scope="session", autouse=True)
def torch_lazy_modules_loaded() -> None:
    """torch imports some 800 modules lazily at an optimizer's first step, and one of them registers an operator
    library that a second import refuses ("Only a single TORCH_LIBRARY can be used to register the namespace").
    An in-process run that steps torch first would import them, lose them, and fail every later run that steps
    torch; so whether these tests pass depended on which ran before. One step of each flavour here, before any
    run, keeps them loaded for the whole session."""
    if importlib.util.find_spec("torch") is None:
        return
    import torch

    param = torch.nn.Parameter(torch.ones(2))
    param.grad = torch.ones(2)
    for options in ({}, {"foreach": True}, {"fused": True}):
        torch.optim.Adagrad([param], **options).step()
    torch.optim.Rprop([param]).step()
