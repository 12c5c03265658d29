"""Vaishnav et al.'s released Keras models → :mod:`crmnet.models.vaishnav`, matched by architecture.

The same weights come under different names depending on who saved them: TF 1.14 HDF5
(``bidirectional/forward_lstm/kernel:0``, ``multi_head_attention_Wq:0``), TF 2 HDF5
(``forward_lstm/lstm_cell/kernel:0``, ``Multi-Head0_Wq:0``) and TF object-graph checkpoints
(``layer_with_weights-1/forward_layer/cell/kernel``). So nothing here depends on a layer's name:

1. Each weighted layer gets a **kind** from the *roles* of its variables — the last path component,
   with the ``<layer>_`` prefix of keras-multi-head / feed-forward weights removed (``Wq``, ``b1``) and
   the direction of a bidirectional LSTM kept (``forward/kernel``): ``conv1d``/``conv2d``/``dense`` by
   the kernel's rank, ``bn`` (moving statistics), ``ln`` (gamma and beta only), ``mha`` (Wq ... bo),
   ``ff`` (W1, b1, W2, b2), ``bilstm``.
2. The sequence of kinds names the **architecture**: DeepATT is ``conv1d bilstm mha dense+``, the
   transformer ``conv1d bn bn conv2d bn conv1d bn (mha ln ff ln)+ bilstm dense+``.
3. **Sizes** come from the tensor shapes (filters, widths, LSTM units, feed-forward and dense widths,
   input length from the first dense kernel); the attention head count, which no shape holds, from the
   model config where the file has one (``head_num``), else the released models' value (DeepATT 16,
   transformer 8), recorded in the provenance.
4. Every variable is then placed in the PyTorch module by position and converted to its layout; a
   missing, extra or mis-shaped variable is an error naming the Keras layer and variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from crmnet.errors import InputError
from crmnet.zoo.kerasfile import KerasLayer, KerasModel

DEEPATT, TRANSFORMER = "deepatt-keras", "vaishnav-transformer-keras"
_PATTERNS = {
    DEEPATT: re.compile(r"conv1d bilstm mha( dense)+"),
    TRANSFORMER: re.compile(r"conv1d bn bn conv2d bn conv1d bn( mha ln ff ln)+ bilstm( dense)+"),
}
_EXPECTED = {
    DEEPATT: "Conv1D, BiLSTM, MultiHeadAttention, Dense...",
    TRANSFORMER: "rc_Conv1D, 2 BatchNorm, Conv2D, BatchNorm, Conv1D, BatchNorm, (MultiHeadAttention, "
    "LayerNorm, FeedForward, LayerNorm)..., BiLSTM, Dense...",
}
# Attention heads of the released models, for files without a model config (TF checkpoints).
_DEFAULT_HEADS = {DEEPATT: 16, TRANSFORMER: 8}
_ROLES = {
    "mha": {"Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo"},
    "ff": {"W1", "b1", "W2", "b2"},
    "bn": {"gamma", "beta", "moving_mean", "moving_variance"},
    "ln": {"gamma", "beta"},
    "bilstm": {f"{d}/{w}" for d in ("forward", "backward") for w in ("kernel", "recurrent_kernel", "bias")},
}
_SUFFIX_ROLE = re.compile(r"(?:^|_)(W[qkvo12]|b[qkvo12])$")


@dataclass
class Weighted:
    """A weighted Keras layer with its variables by role (``kernel``, ``Wq``, ``forward/bias`` ...)."""

    layer: KerasLayer
    kind: str
    roles: dict[str, np.ndarray]

    def get(self, role: str, source) -> np.ndarray:
        """The weight of ``role``; a missing one is an InputError naming ``source``."""
        if role not in self.roles:
            raise InputError(source, f"Keras layer {self.layer.name!r} has no {role!r} weight")
        return self.roles[role]


def _role(path: str) -> str:
    leaf = path.rsplit("/", 1)[-1]
    match = _SUFFIX_ROLE.search(leaf)
    if match:
        return match[1]
    first = path.split("/", 1)[0]
    for direction in ("forward", "backward"):
        if direction in first:
            return f"{direction}/{leaf}"
    return leaf


def _kind(roles: dict[str, np.ndarray]) -> str:
    names = set(roles)
    for kind in ("mha", "ff", "bn", "bilstm", "ln"):
        if names == _ROLES[kind]:
            return kind
    if names in ({"kernel"}, {"kernel", "bias"}):
        return {2: "dense", 3: "conv1d", 4: "conv2d"}.get(roles["kernel"].ndim, "unknown")
    return "unknown"


def weighted_layers(keras: KerasModel) -> list[Weighted]:
    """The layers that have weights, in order, each with its kind and variables by role."""
    out = []
    for layer in keras.layers:
        if not layer.weights:
            continue
        roles = {_role(path): array for path, array in layer.weights}
        # Two variables with one role (a squeeze-excitation's two kernels): no layer of these models.
        kind = _kind(roles) if len(roles) == len(layer.weights) else "unknown"
        out.append(Weighted(layer, kind, roles))
    return out


def recognise(keras: KerasModel) -> str | None:
    """``"deepatt-keras"``, ``"vaishnav-transformer-keras"`` or None, from the weighted layers' kinds."""
    kinds = " ".join(w.kind for w in weighted_layers(keras))
    return next((name for name, pattern in _PATTERNS.items() if pattern.fullmatch(kinds)), None)


def is_vaishnav_family(keras: KerasModel) -> bool:
    """Whether the file has layers only Vaishnav-style models have.

    Whether the file has layers only Vaishnav-style models have (an LSTM, keras-multi-head attention,
    a feed-forward layer or a 2-D convolution): then a mismatch is reported against their architectures.
    """
    return any(w.kind in ("bilstm", "mha", "ff", "conv2d") for w in weighted_layers(keras))


def describe_mismatch(keras: KerasModel) -> str:
    """One line: the weighted layers the file has, against what each architecture needs."""
    kinds = ", ".join(f"{w.layer.name}={w.kind}" for w in weighted_layers(keras))
    expected = "; ".join(f"{name}: {text}" for name, text in _EXPECTED.items())
    return f"its weighted layers ({kinds}) form neither known architecture ({expected})"


def _config_value(keras: KerasModel, class_name: str, key: str):
    """``key`` of the first layer of ``class_name`` in the file's model config, or None."""
    for layer in keras.layers:
        if layer.class_name == class_name and key in layer.config:
            return layer.config[key]
    return None


def _input_length(keras: KerasModel) -> int | None:
    shape = _config_value(keras, "InputLayer", "batch_input_shape")
    return int(shape[1]) if shape and len(shape) > 1 and shape[1] is not None else None


def infer_config(name: str, keras: KerasModel) -> tuple[dict, dict]:
    """Config fields of architecture ``name`` read off the weight shapes (and the model config).

    Returns (fields, notes): ``notes`` says which values did not come from the file.
    """
    layers = weighted_layers(keras)
    dense = [w.get("kernel", keras.source) for w in layers if w.kind == "dense"]
    lstm = next(w for w in layers if w.kind == "bilstm").get("forward/recurrent_kernel", keras.source)
    units = lstm.shape[0]
    heads = _config_value(keras, "MultiHeadAttention", "head_num")
    notes = {}
    if heads is None:
        heads = _DEFAULT_HEADS[name]
        notes["heads"] = f"{heads}: the released model's value (the file records no head count)"
    fields = {"heads": int(heads), "lstm_units": units, "dense_units": tuple(k.shape[1] for k in dense[:-1])}
    first = layers[0].get("kernel", keras.source)
    if name == DEEPATT:
        pool = _config_value(keras, "MaxPooling1D", "pool_size")
        fields.update(filters=first.shape[2], width=first.shape[0], pool=int(pool[0]) if pool else 3)
        steps = dense[0].shape[0] // (2 * units)
        length = _input_length(keras) or 110
        if (length - fields["width"] + 1) // fields["pool"] != steps:
            raise InputError(
                keras.source,
                f"the first Dense kernel {dense[0].shape} does not fit a {length}-nt input "
                f"(conv width {fields['width']}, pool {fields['pool']}, {units} LSTM units)",
            )
    else:
        coop = layers[3].get("kernel", keras.source)
        ff = next(w for w in layers if w.kind == "ff").get("W1", keras.source)
        length = _input_length(keras) or dense[0].shape[0] // (2 * units)
        fields.update(
            motif_filters=first.shape[2],
            motif_width=first.shape[0],
            coop_filters=coop.shape[3],
            coop_width=coop.shape[1],
            transformer_layers=sum(w.kind == "mha" for w in layers),
            ff_dim=ff.shape[1],
        )
    if first.shape[1] != 4:
        raise InputError(keras.source, f"the first convolution reads {first.shape[1]} channels, not 4 (A, C, G, T)")
    fields["length"] = length
    return fields, notes


def _placements(name: str, model) -> list[tuple[str, str]]:
    """(kind, PyTorch module path) of each weighted Keras layer of architecture ``name``, in order."""
    from torch import nn

    head = [(
        "dense", f"head.{i}") for i, m in enumerate(model.head) if isinstance(m, nn.Linear)]
    if name == DEEPATT:
        return [("conv1d", "conv"), ("bilstm", "lstm"), ("mha", "attn"), *head]
    stem = [("conv1d", "motif"), ("bn", "bn_fwd"), ("bn", "bn_rev"), ("conv2d", "coop"), ("bn", "bn_coop"),
            ("conv1d", "conv"), ("bn", "bn_conv")]
    blocks = [
        (kind, f"blocks.{i}.{part}")
        for i in range(len(model.blocks))
        for kind, part in (("mha", "attn"), ("ln", "ln1"), ("ff", "ff"), ("ln", "ln2"))
    ]
    return [*stem, *blocks, ("bilstm", "lstm"), *head]


def _torch_arrays(w: Weighted, prefix: str, source) -> dict[str, np.ndarray]:
    """One Keras layer's variables as PyTorch state-dict entries under ``prefix`` (converted layouts)."""
    r = w.roles
    if w.kind in ("conv1d", "conv2d", "dense"):
        # Keras (k, in, out) / (kh, kw, in, out) / (in, out) → torch (out, in, k) / (out, in, kh, kw) / (out, in)
        axes = {"conv1d": (2, 1, 0), "conv2d": (3, 2, 0, 1), "dense": (1, 0)}[w.kind]
        out = {f"{prefix}.weight": r["kernel"].transpose(axes)}
        if "bias" in r:
            out[f"{prefix}.bias"] = r["bias"]
        return out
    if w.kind in ("bn", "ln"):
        names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
        return {f"{prefix}.{names[k]}": v for k, v in r.items()}
    if w.kind == "mha":
        return {f"{prefix}.{p}.{t}": (r[f"W{p}"].T if t == "weight" else r[f"b{p}"])
                for p in "qkvo" for t in ("weight", "bias")}
    if w.kind == "ff":
        return {f"{prefix}.0.weight": r["W1"].T, f"{prefix}.0.bias": r["b1"],
                f"{prefix}.2.weight": r["W2"].T, f"{prefix}.2.bias": r["b2"]}
    return {f"{prefix}.{d}_lstm.{k}": r[f"{d}/{k}"] for d in ("forward", "backward")
            for k in ("kernel", "recurrent_kernel", "bias")}


def load_weights(name: str, model, keras: KerasModel) -> dict[str, str]:
    """Put the file's weights into ``model`` (architecture ``name``); returns Keras layer → module path.

    Raises an InputError naming the Keras layer and variable for anything missing, extra or mis-shaped.
    """
    import torch

    layers = weighted_layers(keras)
    places = _placements(name, model)
    if [w.kind for w in layers] != [kind for kind, _ in places]:
        raise InputError(keras.source, f"the layers do not fit {name} with these sizes: {describe_mismatch(keras)}")
    own = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    layer_map = {}
    for w, (_, prefix) in zip(layers, places, strict=True):
        layer_map[w.layer.name] = prefix
        for key, array in _torch_arrays(w, prefix, keras.source).items():
            if key not in own:
                raise InputError(keras.source, f"Keras layer {w.layer.name!r} has a weight the model lacks ({key})")
            if tuple(array.shape) != tuple(own[key].shape):
                raise InputError(
                    keras.source,
                    f"Keras layer {w.layer.name!r}: weight for {key} has shape {array.shape} after conversion, "
                    f"the model needs {tuple(own[key].shape)}",
                )
            state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise InputError(keras.source, f"no weight in the file for {missing[0]} ({len(missing)} missing)")
    state.update({k: v for k, v in own.items() if k.endswith("num_batches_tracked")})
    model.load_state_dict(state, strict=True)
    return layer_map


def convert(keras: KerasModel, name: str, output: tuple[float, float]):
    """Build architecture ``name`` sized from ``keras`` and load its weights.

    output: (shift, scale) of the authors' target scaler. Returns (model in eval mode, provenance dict).
    """
    from crmnet.models.registry import build_model

    fields, notes = infer_config(name, keras)
    try:
        model = build_model(name, **fields, output_shift=output[0], output_scale=output[1])
    except ValueError as exc:
        raise InputError(keras.source, f"the sizes read from the file do not make a {name} ({exc})") from None
    layer_map = load_weights(name, model, keras)
    model.eval()
    provenance = {
        "source_format": keras.format,
        "keras_to_torch": layer_map,
        "ignored_variables": keras.ignored_variables,
        "assumed": notes,
    }
    return model, provenance
