"""The runner's self-tests drive pytest in this process (pytester), and pytester forgets every module a run
imported: a framework imported, or lazily loaded, inside one run is imported again by the next, which torch and
TensorFlow refuse. So whether a test passed depended on which ran before it. Every framework, its adapter, and
torch's lazily loaded step machinery are therefore loaded here, once, before any run.
"""

import contextlib
import importlib
import os

# Keras runs on TensorFlow here unless told otherwise.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
for _name in ("torch", "conformance.adapters.torch", "conformance.adapters._tf_common"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)
with contextlib.suppress(ImportError):
    importlib.import_module("conformance.adapters._tf_common").import_tensorflow()  # first: it splits the CPU
for _name in ("keras", "tf_keras", "conformance.adapters.keras", "conformance.adapters.tf_keras", "jax", "optax"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)
with contextlib.suppress(ImportError):
    importlib.import_module("conformance.adapters.optax")


def _load_torch_step_machinery() -> None:
    """torch imports some 800 modules at an optimizer's first step, one of which registers an operator library
    that a second import refuses ("Only a single TORCH_LIBRARY can be used to register the namespace"): one step of
    each flavour loads them all."""
    try:
        import torch
    except ImportError:
        return
    param = torch.nn.Parameter(torch.ones(2))
    param.grad = torch.ones(2)
    for options in ({}, {"foreach": True}, {"fused": True}):
        torch.optim.Adagrad([param], **options).step()
    torch.optim.Rprop([param]).step()


_load_torch_step_machinery()
