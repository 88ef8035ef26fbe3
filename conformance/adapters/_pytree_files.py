"""A JAX state pytree saved and loaded without pickle: each leaf's bytes in one .npz, the layout (tree structure,
each leaf's dtype and shape) in JSON beside it. Shared by the optax and jax.example_libraries adapters."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["load_leaves", "save_leaves"]

_LAYOUT_VERSION = 1


def _files(directory: pathlib.Path, stem: str) -> tuple[pathlib.Path, pathlib.Path]:
    """The leaves' .npz and the layout's JSON, named `stem` in `directory`."""
    return pathlib.Path(directory) / f"{stem}.npz", pathlib.Path(directory) / f"{stem}.json"


def save_leaves(jax: Any, state: Any, directory: pathlib.Path, stem: str, header: Mapping[str, Any]) -> None:
    """`state`'s leaves into `directory` (STEM.npz, and the layout in STEM.json), with `header` (the format, a
    counter) in the layout. Leaves are stored as raw bytes, so every format (bfloat16 included) round-trips bit
    for bit."""
    arrays_file, layout_file = _files(directory, stem)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    arrays, layout = {}, []
    for index, leaf in enumerate(leaves):
        value = np.asarray(leaf)
        layout.append({"dtype": value.dtype.name, "shape": list(value.shape)})
        arrays[f"leaf{index}"] = np.frombuffer(value.tobytes(order="C"), dtype=np.uint8)
    # mypy matches the ** names against savez's `allow_pickle: bool` too; they are leaf0, leaf1, ...
    np.savez(arrays_file, **arrays)  # type: ignore[arg-type]
    document = {"version": _LAYOUT_VERSION, **header, "treedef": str(treedef), "leaves": layout}
    layout_file.write_text(json.dumps(document, indent=1), encoding="utf-8")


def load_leaves(
    jax: Any,
    like: Any,
    directory: pathlib.Path,
    stem: str,
    header: Mapping[str, Any],
    to_array: Callable[[np.ndarray], Any],
) -> tuple[Any, dict[str, Any]]:
    """The state `save_leaves` wrote, shaped like the fresh state `like`, and the saved layout document. Refuses
    another version, another `header` (the format), another tree or a leaf of another dtype or shape."""
    arrays_file, layout_file = _files(directory, stem)
    where = layout_file.parent
    document = json.loads(layout_file.read_text(encoding="utf-8"))
    leaves, treedef = jax.tree_util.tree_flatten(like)
    saved_header = {key: document.get(key) for key in header}
    if document.get("version") != _LAYOUT_VERSION or saved_header != dict(header):
        saved_for = ", ".join(str(v) for v in saved_header.values())
        raise ValueError(f"{where}: saved for {saved_for}, version {document.get('version')}")
    if document["treedef"] != str(treedef) or len(document["leaves"]) != len(leaves):
        raise ValueError(f"{where}: the saved state is {document['treedef']}, this one is {treedef}")
    loaded = []
    with np.load(arrays_file, allow_pickle=False) as saved:
        for index, (leaf, spec) in enumerate(zip(leaves, document["leaves"], strict=True)):
            dtype = np.dtype(spec["dtype"])
            if dtype != leaf.dtype or tuple(spec["shape"]) != tuple(leaf.shape):
                raise ValueError(f"{where}: leaf {index} is {spec}, this state's is {leaf.dtype}{leaf.shape}")
            loaded.append(to_array(saved[f"leaf{index}"].view(dtype).reshape(spec["shape"])))
    return jax.tree_util.tree_unflatten(treedef, loaded), document
