"""The ONNX adapter: the `ai.onnx.preview.training` Adagrad operator (opset 1), run by `onnx.reference`.

The operator is stateless: R (the learning rate), T (the update count), every X, G and H are its inputs, and X_new
and H_new its outputs (onnx/defs/training/defs.cc). A training loop keeps X, H and T between calls and counts T
itself, from 0 at the first update as ONNX's own backend test does; this adapter is that loop and nothing more.
One node updates every parameter tensor at once (the operator is variadic: R, T, X_1..X_n, G_1..G_n, H_1..H_n),
built with `onnx.helper` and run with `onnx.reference.ReferenceEvaluator`.

- Hyperparameters: `R` becomes a 0-d tensor in the parameters' format (R's type may be float or double whatever
  X's is; the dialect takes the parameters' own); `epsilon`, `decay_factor` and `norm_coefficient` become the
  node's FLOAT attributes, so ONNX rounds them to float32 itself.
- State: slot `H` (the accumulated squared gradient) and the counter `T`. Both are inputs, so the initial H
  starts at zero (the dialect's default: ONNX has no initial-accumulator attribute) unless `set_state` gives it,
  as a case whose initial state is an input does.
- `set_state` replaces X, H and T: they are what the next call feeds.
- `config` is the node's attributes and R, read back from the model; `from_config` builds the node from them.
- `save` writes the model (`adagrad.onnx`) and the state as ONNX TensorProto files (`X_i.pb`, `H_i.pb`, `T.pb`);
  `load` builds the node afresh from the case's hyperparameters and reads H and T back. No pickle.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..adapter import Capabilities, LiveOptimizer
from ..kit import check_arity, check_dialect, check_state, common_dtype, framework_kwargs, json_config, to_numpy
from ..registry import manifest_path

__all__ = ["DIALECT", "DOMAIN", "OnnxAdagradAdapter", "subjects"]

DIALECT = "adagrad/onnx"
DOMAIN = "ai.onnx.preview.training"
SLOT = "H"
MODEL_FILE = "adagrad.onnx"
_ELEMENT_TYPES = {"float32": 1, "float64": 11}  # TensorProto.FLOAT, TensorProto.DOUBLE: the types T3 allows


def _onnx() -> Any:
    import onnx

    return onnx


def build_model(hparams: Mapping[str, Any], params: Sequence[np.ndarray], dtype: str) -> Any:
    """The one-node model: Adagrad over every parameter tensor, the attributes as given (ONNX stores FLOAT)."""
    onnx = _onnx()
    helper = onnx.helper
    attributes = {name: value for name, value in hparams.items() if name != "R"}
    n = len(params)
    xs, gs, hs = ([f"{kind}{i}" for i in range(n)] for kind in "XGH")
    node = helper.make_node(
        "Adagrad",
        ["R", "T", *xs, *gs, *hs],
        [f"X{i}_new" for i in range(n)] + [f"H{i}_new" for i in range(n)],
        domain=DOMAIN,
        **attributes,
    )
    element = _ELEMENT_TYPES[dtype]

    def tensor(name: str, shape: Sequence[int], element_type: int = element) -> Any:
        return helper.make_tensor_value_info(name, element_type, list(shape))

    shapes = [p.shape for p in params]
    inputs = [tensor("R", []), tensor("T", [], onnx.TensorProto.INT64)]
    inputs += [tensor(name, s) for names in (xs, gs, hs) for name, s in zip(names, shapes, strict=True)]
    outputs = [tensor(name, s) for name, s in zip(node.output, shapes + shapes, strict=True)]
    graph = helper.make_graph([node], "adagrad", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(DOMAIN, 1)])


class OnnxAdagradLive:
    """The training loop around one Adagrad node: it holds X, H and T and feeds them to every call."""

    def __init__(self, model: Any, learning_rate: Any, params: Sequence[np.ndarray], dtype: str) -> None:
        from onnx.reference import ReferenceEvaluator

        self.model = model
        self.dtype = dtype
        self._evaluator = ReferenceEvaluator(model)
        # R is a tensor of the parameters' format: the dialect's `lr` rounding.
        self._r = np.array(learning_rate, dtype=np.dtype(dtype))
        self._x = [np.asarray(p) for p in params]
        self._h = [np.zeros_like(p) for p in self._x]
        self._t = 0

    def step(self, grads: Sequence[Any], loss: float | None = None) -> None:
        check_arity(grads, len(self._x), "gradient")
        n = len(self._x)
        feeds = {"R": self._r, "T": np.array(self._t, dtype=np.int64)}
        for i in range(n):
            feeds |= {f"X{i}": self._x[i], f"G{i}": np.asarray(grads[i]), f"H{i}": self._h[i]}
        outputs: list[Any] = list(self._evaluator.run(None, feeds))
        # A 0-d input comes back as a NumPy scalar; the loop keeps arrays, as it feeds them back.
        self._x = [np.asarray(x) for x in outputs[:n]]
        self._h = [np.asarray(h) for h in outputs[n:]]
        self._t += 1  # the caller counts T: the operator only reads it

    def params(self) -> list[np.ndarray]:
        return [to_numpy(x, self.dtype) for x in self._x]

    def state(self) -> dict[str, list[np.ndarray]]:
        return {SLOT: [to_numpy(h, self.dtype) for h in self._h]}

    def count(self) -> int | None:
        return self._t

    def gradients(self) -> list[np.ndarray] | None:
        return None  # the operator keeps no gradients

    def set_state(
        self, params: Sequence[np.ndarray], state: Mapping[str, Sequence[np.ndarray]], count: int | None
    ) -> None:
        # X, H and T are the next call's inputs: replacing them is all there is to set.
        check_arity(params, len(self._x), "parameter")
        check_state([SLOT], state, len(self._x))
        for index, (held, x, h) in enumerate(zip(self._x, params, state[SLOT], strict=True)):
            if np.shape(x) != held.shape or np.shape(h) != held.shape:
                raise ValueError(f"tensor {index}: shapes {np.shape(x)} and {np.shape(h)} for one of {held.shape}")
        self._x = [np.array(x) for x in params]
        self._h = [np.array(h) for h in state[SLOT]]
        if count is not None:
            self._t = int(count)

    def config(self) -> dict[str, Any]:
        helper = _onnx().helper
        node = self.model.graph.node[0]
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return json_config({"R": self._r.item(), **attributes})

    def save(self, directory: pathlib.Path) -> None:
        onnx = _onnx()
        onnx.save_model(self.model, str(directory / MODEL_FILE))
        tensors = {f"X{i}": x for i, x in enumerate(self._x)} | {f"H{i}": h for i, h in enumerate(self._h)}
        tensors["T"] = np.array(self._t, dtype=np.int64)
        for name, value in tensors.items():
            (directory / f"{name}.pb").write_bytes(onnx.numpy_helper.from_array(value, name).SerializeToString())

    def load_state(self, directory: pathlib.Path) -> None:
        onnx = _onnx()

        def read(name: str) -> np.ndarray:
            proto = onnx.TensorProto()
            proto.ParseFromString((directory / f"{name}.pb").read_bytes())
            return np.asarray(onnx.numpy_helper.to_array(proto))

        n = len(self._x)
        self.set_state(self._x, {SLOT: [read(f"H{i}") for i in range(n)]}, int(read("T")))


class OnnxAdagradAdapter:
    """ai.onnx.preview.training Adagrad (opset 1) under onnx.reference, as an implementation of adagrad/onnx."""

    def __init__(self, name: str = "onnx.reference Adagrad", manifest: pathlib.Path | None = None) -> None:
        self.name = name
        self.manifest = manifest
        self.capabilities = Capabilities(
            dialects=(DIALECT,), dtypes=tuple(_ELEMENT_TYPES), set_state=True, config=True, serialize=True
        )

    def create(self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray]) -> OnnxAdagradLive:
        check_dialect(self.name, DIALECT, dialect)
        return self._build(framework_kwargs(DIALECT, hparams), params)

    def _build(self, kwargs: Mapping[str, Any], params: Sequence[np.ndarray]) -> OnnxAdagradLive:
        dtype = common_dtype(params)
        if "R" not in kwargs:
            raise TypeError("the Adagrad operator needs the input R (the learning rate)")
        attributes = {name: value for name, value in kwargs.items() if name != "R"}
        return OnnxAdagradLive(build_model(attributes, params, dtype), kwargs["R"], params, dtype)

    def from_config(self, dialect: str, config: Mapping[str, Any], params: Sequence[np.ndarray]) -> LiveOptimizer:
        check_dialect(self.name, DIALECT, dialect)
        return self._build(config, params)

    def load(
        self, dialect: str, hparams: Mapping[str, Any], params: Sequence[np.ndarray], directory: pathlib.Path
    ) -> LiveOptimizer:
        live = self.create(dialect, hparams, params)
        live.load_state(pathlib.Path(directory))
        return live

    def versions(self) -> dict[str, str]:
        import onnx

        return {"onnx": onnx.__version__, "numpy": np.__version__}


def subjects() -> list[OnnxAdagradAdapter]:
    """ONNX's reference runtime as the conformance subject of adagrad/onnx, with its known-failure manifest."""
    return [OnnxAdagradAdapter(manifest=manifest_path("onnx"))]
