"""Keras models on disk → layers and weights, without TensorFlow.

Three sources, one result (:class:`KerasModel`: layers in ``model.layers`` order, each with its
variables by path, and its class, config and inbound layers where the file records them):

* a TensorFlow **SavedModel** directory (``model.save(path)``): variables read with
  :mod:`crmnet.zoo.tfbundle`, layers and their order from ``keras_metadata.pb`` (``layer-i`` of the object
  graph is config layer ``i``), each layer's variables named by their object path
  (``att/_query_dense/kernel``);
* a Keras-2 **HDF5** file, weights only (``model.save_weights``) or full model (``model.save``), read with
  h5py: layers from ``layer_names``, weights by their HDF5 names minus the layer prefix;
* a TensorFlow **object-graph checkpoint** (``model.save_weights(prefix)`` in TF format:
  ``prefix.index`` + ``prefix.data-*``): layers are the ``layer_with_weights-i`` children of the root,
  in order; there is no model config.

Optimizer slots, optimizer hyper-parameters and metric variables are ignored (and counted); every
malformed or truncated input is an :class:`~crmnet.errors.InputError` naming the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crmnet.errors import CrmnetError, InputError
from crmnet.zoo.tfbundle import (
    OBJECT_GRAPH_KEY,
    TensorBundle,
    is_savedmodel,
    read_keras_metadata,
    savedmodel_bundle,
)

# Object-graph children that are views of a layer's variables, not the layer's own sub-objects.
_VIEW_CHILDREN = {
    "variables",
    "trainable_variables",
    "non_trainable_variables",
    "keras_api",
    "layer_metrics",
    "layer_regularization_losses",
    "regularization_losses",
}
_IGNORED_KEY = re.compile(r"(^optimizer/|/\.OPTIMIZER_SLOT/|^keras_api/metrics/|^save_counter/)")

@dataclass
class KerasLayer:
    """One Keras layer: its variables (in the layer's own order) and, if known, its class and inputs.

    weights: (path inside the layer, array) pairs, e.g. ``("att/_query_dense/kernel", (256, 12, 256))``.
    inbound: names of the layers feeding it, ``None`` when the source has no graph (HDF5 weights file).
    """

    name: str
    class_name: str | None = None
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)
    inbound: list[str] | None = None
    config: dict = field(default_factory=dict)


@dataclass
class KerasModel:
    """A Keras model as read from disk: layers in ``model.layers`` order, and where they came from."""

    source: Path
    format: str  # "savedmodel", "hdf5" or "tf-checkpoint"
    layers: list[KerasLayer]
    files: list[Path]
    ignored_variables: int = 0

    @property
    def has_graph(self) -> bool:
        """Whether every layer knows its inputs (the file holds the model's graph)."""
        return all(layer.inbound is not None for layer in self.layers)


# ----------------------------------------------------------------------------------------------------
# Readers


def _inbound_names(nodes) -> list[str]:
    """Layer names referenced by a config's ``inbound_nodes`` (plain lists or TFOpLambda call nodes)."""
    names: list[str] = []

    def visit(item) -> None:
        if isinstance(item, list):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                names.append(item[0])
                for rest in item[3:]:
                    visit(rest)
            else:
                for sub in item:
                    visit(sub)
        elif isinstance(item, dict):
            for sub in item.values():
                visit(sub)

    visit(nodes)
    return names


def _model_layers_config(config: dict, source: Path) -> list[dict]:
    layers = config.get("config", {}).get("layers") if isinstance(config.get("config"), dict) else None
    if not isinstance(layers, list):
        raise InputError(source, "the Keras model config has no layer list (not a functional Keras model)")
    return layers


def read_savedmodel(path: str | Path, verify: bool = True) -> KerasModel:
    """Read a Keras SavedModel directory's layers and variables (CRC32C-checked if ``verify``).

    Parameters
    ----------
    path : path-like
        The SavedModel directory.
    verify : bool
        Check every variable's CRC32C against the bundle's index.

    Returns
    -------
    KerasModel
        The layers in ``model.layers`` order with their weights.
    """
    path = Path(path)
    bundle = savedmodel_bundle(path)
    objects = read_keras_metadata(path / "keras_metadata.pb")
    root_meta = next((o.metadata for o in objects if o.path == "root"), None)
    if root_meta is None:
        raise InputError(path / "keras_metadata.pb", "no entry for the root object (the Keras model)")
    layer_configs = _model_layers_config(root_meta, path / "keras_metadata.pb")
    graph = bundle.object_graph()
    if not graph:
        raise InputError(bundle.index_path, "the checkpoint object graph is empty")

    def resolve(object_path: str) -> int | None:
        node = 0
        for part in object_path.split(".")[1:]:
            node = graph[node].children.get(part)
            if node is None:
                return None
        return node

    # keras_metadata names the objects by path; check each config layer sits where the graph says.
    meta_names = {resolve(o.path): o.metadata.get("name") for o in objects if o.path.startswith("root.")}
    layers: list[KerasLayer] = []
    layer_keys: list[list[tuple[str, str]]] = []
    used: set[str] = set()
    for i, cfg in enumerate(layer_configs):
        name = cfg.get("config", {}).get("name") or cfg.get("name")
        node = graph[0].children.get(f"layer-{i}")
        if node is None:
            raise InputError(bundle.index_path, f"object graph has no 'layer-{i}' for Keras layer {name!r}")
        if meta_names.get(node, name) != name:
            raise InputError(
                path, f"object graph 'layer-{i}' is {meta_names[node]!r} but the model config says {name!r}"
            )
        keys = _layer_variable_keys(graph, node)
        missing = [k for _, k in keys if k not in bundle.entries]
        if missing:
            raise InputError(
                bundle.index_path,
                f"variable {missing[0]!r} of Keras layer {name!r} is missing from the bundle",
            )
        used.update(k for _, k in keys)
        layer_keys.append(keys)
        layers.append(
            KerasLayer(
                name=name,
                class_name=cfg.get("class_name"),
                inbound=_inbound_names(cfg.get("inbound_nodes", [])),
                config=cfg.get("config", {}),
            )
        )
    ignored = {k for k in bundle.entries if _IGNORED_KEY.search(k)} | {OBJECT_GRAPH_KEY}
    extra = sorted(set(bundle.entries) - used - ignored)
    if extra:
        raise InputError(
            bundle.index_path, f"{len(extra)} variable(s) belong to no Keras layer, e.g. {extra[0]!r}"
        )
    arrays = bundle.read(sorted(used), verify=verify)
    for layer, keys in zip(layers, layer_keys, strict=True):
        layer.weights = [(p, arrays[k]) for p, k in keys]
    return KerasModel(
        path,
        "savedmodel",
        layers,
        [bundle.index_path, *bundle.data_files(), path / "keras_metadata.pb", path / "saved_model.pb"],
        ignored_variables=len(ignored) - 1,
    )


def _layer_variable_keys(graph, node: int) -> list[tuple[str, str]]:
    """(path inside the layer, checkpoint key) of a layer object's variables, in the layer's order.

    Paths come from a walk over the object's own children (``att/_query_dense/kernel``); the order from
    its ``variables`` list when saved (that is ``layer.weights`` order), otherwise the walk's order.
    """
    found: dict[str, str] = {}  # checkpoint key → first path reaching it

    def walk(n: int, prefix: str, seen: set[int]) -> None:
        key = graph[n].attributes.get("VARIABLE_VALUE")
        if key is not None:
            found.setdefault(key, prefix)
            return
        # Sequential/functional sub-models list a layer twice (layer-0 and layer_with_weights-0).
        children = sorted(graph[n].children.items(), key=lambda kv: (kv[0].startswith("layer-"), kv[0]))
        for child, target in children:
            if child in _VIEW_CHILDREN or child.isdigit() or target in seen:
                continue
            seen.add(target)
            walk(target, f"{prefix}/{child}" if prefix else child, seen)

    walk(node, "", {node})
    order: list[str] = []
    listing = graph[node].children.get("variables")
    if listing is not None:
        items = sorted(((int(c), t) for c, t in graph[listing].children.items() if c.isdigit()))
        order = [graph[t].attributes.get("VARIABLE_VALUE") for _, t in items]
        order = [k for k in order if k is not None]
    order += [k for k in found if k not in order]
    return [(found.get(k, k), k) for k in order]


def _decode_attr(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_hdf5(path: str | Path) -> KerasModel:
    """Read a Keras-2 HDF5 weights file (or the ``model_weights`` of a full-model HDF5 file).

    Parameters
    ----------
    path : path-like
        The ``.h5`` file (needs h5py, the ``keras`` extra).

    Returns
    -------
    KerasModel
        The layers in ``model.layers`` order with their weights.
    """
    path = Path(path)
    try:
        import h5py
    except ImportError:
        raise CrmnetError(
            f"{path}: reading Keras HDF5 files needs h5py (pip install 'crmnet[keras]')"
        ) from None
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"cannot be read as HDF5 ({exc}); the file is truncated or not HDF5") from None
    with fh:
        group = fh.get("model_weights", fh)
        if "layer_names" not in group.attrs:
            raise InputError(path, "no 'layer_names' attribute: not a Keras-2 HDF5 weights file")
        graph: dict[str, dict] = {}
        if "model_config" in fh.attrs:
            try:
                config = json.loads(_decode_attr(fh.attrs["model_config"]))
            except ValueError as exc:
                raise InputError(path, f"the model_config attribute is not valid JSON ({exc})") from None
            graph = {
                c.get("config", {}).get("name") or c.get("name"): c
                for c in _model_layers_config(config, path)
            }
        layers = []
        try:
            for raw_name in group.attrs["layer_names"]:
                name = _decode_attr(raw_name)
                if name not in group:
                    raise InputError(path, f"layer {name!r} is listed in layer_names but has no group")
                g = group[name]
                weights = []
                for raw_weight in g.attrs.get("weight_names", []):
                    wname = _decode_attr(raw_weight)
                    if wname not in g:
                        raise InputError(path, f"weight {wname!r} of layer {name!r} is listed but missing")
                    rel = wname.removesuffix(":0")
                    rel = rel[len(name) + 1 :] if rel.startswith(name + "/") else rel
                    weights.append((rel, np.asarray(g[wname][()])))
                cfg = graph.get(name, {})
                layers.append(
                    KerasLayer(
                        name=name,
                        class_name=cfg.get("class_name"),
                        weights=weights,
                        inbound=_inbound_names(cfg.get("inbound_nodes", [])) if cfg else None,
                        config=cfg.get("config", {}),
                    )
                )
        except (OSError, KeyError, RuntimeError) as exc:
            raise InputError(path, f"HDF5 read failed ({exc}); the file is truncated or corrupt") from None
    return KerasModel(path, "hdf5", layers, [path])


def read_keras(path: str | Path, verify: bool = True) -> KerasModel:
    """Read a SavedModel directory or an HDF5 file, whichever ``path`` is.

    Parameters
    ----------
    path : path-like
        A SavedModel directory or an HDF5 file.
    verify : bool
        Check the SavedModel variables' CRC32C checksums.

    Returns
    -------
    KerasModel
        The layers in ``model.layers`` order with their weights, and the files they came from.
    """
    path = Path(path)
    if path.is_dir():
        if not is_savedmodel(path):
            raise InputError(
                path, "directory is not a SavedModel (needs saved_model.pb and variables/variables.index)"
            )
        return read_savedmodel(path, verify=verify)
    if not path.exists():
        raise InputError(path, "not found")
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic != b"\x89HDF\r\n\x1a\n":
        raise InputError(path, "not an HDF5 file nor a SavedModel directory")
    return read_hdf5(path)


# A Keras model's own variables in an object-graph checkpoint: layer_with_weights-<i>/<path>/.ATTRIBUTES/...
_LAYER_KEY = re.compile(r"^layer_with_weights-(\d+)/(.+)/\.ATTRIBUTES/VARIABLE_VALUE$")


def tf_checkpoint_prefix(path: str | Path) -> Path | None:
    """The checkpoint prefix ``path`` names (``X.index`` or ``X`` with an ``X.index`` beside it), else None."""
    path = Path(path)
    if path.name.endswith(".index") and path.is_file():
        return path.with_name(path.name.removesuffix(".index"))
    if path.with_name(path.name + ".index").is_file():
        return path
    return None


def _check_shard_sizes(bundle: TensorBundle) -> None:
    """Refuse a shard shorter than its tensors (optimizer slots included), even where they are not read."""
    for shard, path in enumerate(bundle.data_files()):
        need = max((e.offset + e.size for e in bundle.entries.values() if e.shard == shard), default=0)
        if not path.is_file():
            raise InputError(path, "checkpoint data shard not found")
        if path.stat().st_size < need:
            raise InputError(
                path, f"data shard holds {path.stat().st_size} bytes but the index needs {need}: the file is truncated"
            )


def read_tf_checkpoint(prefix: str | Path, verify: bool = True) -> KerasModel:
    """Read a Keras model's TF object-graph checkpoint (``model.save_weights(prefix)``, TF format).

    prefix: the path without ``.index`` (``.../DeepAtt``). Layers are the root's ``layer_with_weights-i``
    children in ``i`` order (``model.layers`` order restricted to layers with weights); each layer's
    variables are named by their object path inside it (``forward_layer/cell/kernel``), sorted. The
    checkpoint stores no layer classes or configs.
    """
    bundle = TensorBundle(prefix)
    _check_shard_sizes(bundle)
    keys: dict[int, list[tuple[str, str]]] = {}
    ignored, foreign = 0, []
    for key in bundle.entries:
        if key == OBJECT_GRAPH_KEY:
            continue
        if _IGNORED_KEY.search(key):
            ignored += 1
            continue
        match = _LAYER_KEY.match(key)
        if match is None:
            foreign.append(key)
        else:
            keys.setdefault(int(match[1]), []).append((match[2], key))
    if foreign:
        raise InputError(
            bundle.index_path, f"{len(foreign)} variable(s) belong to no Keras layer, e.g. {foreign[0]!r}"
        )
    if not keys:
        raise InputError(bundle.index_path, "no layer_with_weights-<i> variables: not a Keras model checkpoint")
    if sorted(keys) != list(range(len(keys))):
        gap = min(set(range(len(keys))) - set(keys))
        raise InputError(bundle.index_path, f"layer_with_weights-{gap} is missing from the checkpoint")
    arrays = bundle.read([k for layer in keys.values() for _, k in layer], verify=verify)
    layers = [
        KerasLayer(name=f"layer_with_weights-{i}", weights=[(rel, arrays[k]) for rel, k in sorted(keys[i])])
        for i in sorted(keys)
    ]
    return KerasModel(
        Path(prefix), "tf-checkpoint", layers, [bundle.index_path, *bundle.data_files()], ignored_variables=ignored
    )
