"""The CRMnet authors' Keras model (as read by :mod:`crmnet.zoo.kerasfile`) → a PyTorch CRMnet.

Sources: a TensorFlow SavedModel directory (what the authors' ``model.save(path)`` wrote; Zenodo record
7375243), a classic Keras-2 HDF5 weights file (``model.save_weights('x.h5')``) or a full-model HDF5
file (``model.save('x.h5')``). SavedModel variables are read with :mod:`crmnet.zoo.tfbundle`, HDF5 with h5py.

How weights are matched (never by checkpoint indices, which differ between TF versions):

1. **Layers** come in ``model.layers`` order (the graph's topological order): from the model config in
   ``keras_metadata.pb`` (SavedModel: ``layer-i`` of the object graph is config layer ``i``) or the
   ``layer_names`` attribute (HDF5). Each layer's variables are named by their object path
   (``att/_query_dense/kernel``) or HDF5 weight name (``multi_head_attention/query/kernel:0``).
2. **Kinds** come from the variables' names and shapes (a ``moving_mean`` → BatchNormalization, q/k/v/out
   kernels → a transformer block, a 3-D kernel → a convolution, two 2-D kernels → squeeze-excitation), and
   the Keras class name where the source records it (Conv1D vs Conv1DTranspose).
3. **Graph position**: a small parser walks the weighted layers in order — encoder blocks
   (conv SE BN conv SE BN [stride-2 conv]), the transformer stages, decoder blocks (transposed conv, conv
   SE BN conv SE BN), head (conv SE) blocks, the Dense stack — and names the first layer that does not fit.
   The transformer wiring (which blocks read the same input and are summed) comes from the graph's
   inbound nodes (SavedModel, full HDF5) or from where the ``add`` layers sit in the layer order (weights
   HDF5); the decoder's ``[up, skip]`` concatenation order is checked where the graph is known.
4. **Sizes** (widths, kernel size, attention heads and head size, MLP units, input length) are read off
   the tensor shapes and give the :class:`~crmnet.models.crmnet.CRMnetConfig`; the resulting state dict
   must then match the PyTorch model's names and shapes exactly, so a missing, extra or mis-shaped
   variable is an error that names it.

Optimizer slots, optimizer hyper-parameters and metric variables are ignored (and counted). The
checkpoint records the ``[N, A, C, G, T]`` input order in its config and the import's provenance
(source, format, SHA-256 of the source files, Keras layer → PyTorch module map).
"""

from __future__ import annotations

import numpy as np

from crmnet.errors import InputError
from crmnet.zoo.kerasfile import KerasLayer, KerasModel

# The authors' StringLookup(['A','C','G','T'], output_mode='one_hot') puts the out-of-vocabulary slot first.
KERAS_CHANNELS = "NACGT"

_KIND_NAMES = {
    "conv": "a Conv1D",
    "conv_transpose": "a Conv1DTranspose",
    "conv?": "a Conv1D or Conv1DTranspose",
    "bn": "a BatchNormalization",
    "se": "a squeeze-excitation layer",
    "transformer": "a transformer block",
    "dense": "a Dense layer",
}

# ----------------------------------------------------------------------------------------------------
# Structure: Keras layers → CRMnet blocks


def _leaf(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _mha_part(path: str) -> str | None:
    """'query'/'key'/'value'/'output' for an attention projection's variable path, else None."""
    parts = path.split("/")
    if len(parts) < 2:
        return None
    owner = parts[-2].strip("_").removesuffix("_dense")
    return {"query": "q", "key": "k", "value": "v", "output": "out", "attention_output": "out"}.get(owner)


def _kind(layer: KerasLayer) -> str | None:
    """What a layer is, from its variables (and class name for the conv/transposed-conv distinction)."""
    if not layer.weights:
        return None
    leaves = [_leaf(p) for p, _ in layer.weights]
    kernels = [a for p, a in layer.weights if _leaf(p) == "kernel"]
    if "moving_mean" in leaves:
        return "bn"
    if any(_mha_part(p) for p, _ in layer.weights):
        return "transformer"
    if len(layer.weights) == 2 and len(kernels) == 1:
        if kernels[0].ndim == 3:
            return {"Conv1DTranspose": "conv_transpose", "Conv1D": "conv"}.get(
                layer.class_name or "", "conv?"
            )
        if kernels[0].ndim == 2:
            return "dense"
    if len(layer.weights) == 4 and len(kernels) == 2 and all(k.ndim == 2 for k in kernels):
        return "se"
    return "unknown"


def _is_add(layer: KerasLayer) -> bool:
    if layer.class_name == "Add":
        return True
    if layer.class_name == "TFOpLambda":
        return layer.config.get("function") in ("__operators__.add", "math.add")
    return layer.class_name is None and not layer.weights and "add" in layer.name


class _Builder:
    """Walks the weighted Keras layers in order and fills a PyTorch state dict (numpy arrays).

    Each layer method (``conv``, ``se``, ``bn``, ``dense``, ``transformer``) takes the next layer through
    :meth:`take`, which checks its kind, and records where each variable went (``origin``, ``layer_map``).
    """

    def __init__(self, model: KerasModel):
        self.model = model
        self.tokens = [(layer, _kind(layer)) for layer in model.layers if layer.weights]
        self.pos = 0
        self.state: dict[str, np.ndarray] = {}
        self.origin: dict[str, str] = {}  # torch key → "keras layer/variable"
        self.layer_map: dict[str, str] = {}  # keras layer → torch module
        self.kernel_sizes: set[int] = set()  # every conv block's kernel size: must agree
        self.ratios: set[int] = set()  # every SE layer's reduction ratio: must agree

    # -- helpers ----------------------------------------------------------------------------------
    def error(self, message: str) -> InputError:
        return InputError(self.model.source, f"not the CRMnet architecture: {message}")

    def peek(self, offset: int = 0) -> str | None:
        i = self.pos + offset
        return self.tokens[i][1] if i < len(self.tokens) else None

    def is_conv(self, offset: int = 0) -> bool:
        return self.peek(offset) in ("conv", "conv?")

    def take(self, kind: str, role: str) -> KerasLayer:
        if self.pos >= len(self.tokens):
            raise self.error(
                f"expected {_KIND_NAMES[kind]} ({role}) but the Keras model has no more weighted layers"
            )
        layer, got = self.tokens[self.pos]
        ok = got == kind or (got == "conv?" and kind in ("conv", "conv_transpose"))
        if not ok:
            what = _KIND_NAMES.get(got or "", f"an unrecognised layer ({len(layer.weights)} variables)")
            cls = layer.class_name or "class not recorded"
            raise self.error(
                f"Keras layer #{self.pos + 1} with weights, {layer.name!r} ({cls}), "
                f"is {what}; expected {_KIND_NAMES[kind]} ({role})"
            )
        self.pos += 1
        return layer

    def put(self, torch_key: str, layer: KerasLayer, var: str, array: np.ndarray) -> None:
        self.state[torch_key] = np.ascontiguousarray(array, dtype=np.float32)
        self.origin[torch_key] = f"{layer.name}/{var}"

    def named(self, layer: KerasLayer, *leaves: str) -> list[tuple[str, np.ndarray]]:
        out = []
        for leaf in leaves:
            hits = [(p, a) for p, a in layer.weights if _leaf(p) == leaf]
            if len(hits) != 1:
                raise self.error(f"layer {layer.name!r} has {len(hits)} variables named {leaf!r}, expected 1")
            out.append(hits[0])
        return out

    # -- layers -----------------------------------------------------------------------------------
    def conv(self, prefix: str, role: str, transpose: bool = False) -> int:
        """Conv1D kernel (k, in, out) / Conv1DTranspose kernel (k, out, in) → torch (·, ·, k). Returns out."""
        layer = self.take("conv_transpose" if transpose else "conv", role)
        (kp, kernel), (bp, bias) = self.named(layer, "kernel", "bias")
        out_axis = 1 if transpose else 2
        if bias.shape != (kernel.shape[out_axis],):
            raise self.error(
                f"layer {layer.name!r} ({role}): bias {bias.shape} does not fit kernel {kernel.shape}"
            )
        self.put(f"{prefix}.weight", layer, kp, kernel.transpose(2, 1, 0))
        self.put(f"{prefix}.bias", layer, bp, bias)
        self.layer_map[layer.name] = prefix
        return int(kernel.shape[out_axis])

    def dense(self, prefix: str, role: str) -> int:
        layer = self.take("dense", role)
        (kp, kernel), (bp, bias) = self.named(layer, "kernel", "bias")
        self.put(f"{prefix}.weight", layer, kp, kernel.T)
        self.put(f"{prefix}.bias", layer, bp, bias)
        self.layer_map[layer.name] = prefix
        return int(kernel.shape[1])

    def se(self, prefix: str, role: str) -> int:
        """Squeeze (C → C/r) then excite (C/r → C); told apart by shape, not by order. Returns r."""
        layer = self.take("se", role)
        pairs = [(layer.weights[i], layer.weights[i + 1]) for i in (0, 2)]
        if any(_leaf(k[0]) != "kernel" or _leaf(b[0]) != "bias" for k, b in pairs):
            raise self.error(f"layer {layer.name!r} ({role}): expected kernel, bias, kernel, bias")
        pairs.sort(key=lambda kb: kb[0][1].shape[1])  # the squeeze has the narrower output
        (sq_k, sq_b), (ex_k, ex_b) = pairs
        c, h = sq_k[1].shape
        if ex_k[1].shape != (h, c) or h == 0 or c % h:
            raise self.error(
                f"layer {layer.name!r} ({role}): kernels {sq_k[1].shape} and {ex_k[1].shape} are not "
                "a squeeze-excitation pair"
            )
        for sub, (k, b) in (("fc1", (sq_k, sq_b)), ("fc2", (ex_k, ex_b))):
            self.put(f"{prefix}.{sub}.weight", layer, k[0], k[1].T)
            self.put(f"{prefix}.{sub}.bias", layer, b[0], b[1])
        self.layer_map[layer.name] = prefix
        return c // h

    def bn(self, prefix: str, role: str) -> None:
        layer = self.take("bn", role)
        names = ("gamma", "beta", "moving_mean", "moving_variance")
        for (var, array), torch_name in zip(
            self.named(layer, *names), ("weight", "bias", "running_mean", "running_var")
        ):
            self.put(f"{prefix}.{torch_name}", layer, var, array)
        self.layer_map[layer.name] = prefix
        eps = layer.config.get("epsilon")
        if eps is not None and abs(eps - 1e-3) > 1e-9:
            raise self.error(f"layer {layer.name!r} uses BatchNormalization epsilon {eps}, CRMnet uses 0.001")

    def transformer(self, layer: KerasLayer, prefix: str) -> tuple[int, int, int]:
        """Attention q/k/v/out by name, the feed-forward Dense pair and the two LayerNorms by order.

        Returns (heads, head_dim, ff_dim).
        """
        attn = {}
        rest = []
        for var, array in layer.weights:
            part = _mha_part(var)
            if part is not None:
                attn[(part, _leaf(var))] = (var, array)
            else:
                rest.append((var, array))
        wanted = [(p, leaf) for p in ("q", "k", "v", "out") for leaf in ("kernel", "bias")]
        missing = [f"{p}/{leaf}" for p, leaf in wanted if (p, leaf) not in attn]
        if missing or len(attn) != len(wanted):
            raise self.error(
                f"transformer layer {layer.name!r}: attention variables missing or extra ({missing})"
            )
        q_kernel = attn[("q", "kernel")][1]
        if q_kernel.ndim != 3:
            raise self.error(
                f"transformer layer {layer.name!r}: query kernel {q_kernel.shape} is not (E, heads, head_dim)"
            )
        embed, heads, head_dim = q_kernel.shape
        for p in ("q", "k", "v"):
            (kv, kernel), (bv, bias) = attn[(p, "kernel")], attn[(p, "bias")]
            if kernel.shape != (embed, heads, head_dim) or bias.shape != (heads, head_dim):
                raise self.error(
                    f"transformer layer {layer.name!r}: {kv} {kernel.shape} / {bv} {bias.shape} do not "
                    f"match the query's ({embed}, {heads}, {head_dim})"
                )
            self.put(f"{prefix}.attn.{p}.weight", layer, kv, kernel.reshape(embed, -1).T)
            self.put(f"{prefix}.attn.{p}.bias", layer, bv, bias.reshape(-1))
        (ov, out_kernel), (obv, out_bias) = attn[("out", "kernel")], attn[("out", "bias")]
        if out_kernel.shape != (heads, head_dim, embed):
            raise self.error(
                f"transformer layer {layer.name!r}: {ov} is {out_kernel.shape}, "
                f"expected ({heads}, {head_dim}, {embed})"
            )
        self.put(f"{prefix}.attn.out.weight", layer, ov, out_kernel.reshape(-1, embed).T)
        self.put(f"{prefix}.attn.out.bias", layer, obv, out_bias)
        leaves = [_leaf(v) for v, _ in rest]
        if leaves != ["kernel", "bias", "kernel", "bias", "gamma", "beta", "gamma", "beta"]:
            raise self.error(
                f"transformer layer {layer.name!r}: expected two Dense and two LayerNorm layers after "
                f"the attention, found variables {leaves}"
            )
        ff_dim = int(rest[0][1].shape[1])
        for i, sub in enumerate(("ff1", "ff2")):
            (kv, kernel), (bv, bias) = rest[2 * i], rest[2 * i + 1]
            self.put(f"{prefix}.{sub}.weight", layer, kv, kernel.T)
            self.put(f"{prefix}.{sub}.bias", layer, bv, bias)
        for i, sub in enumerate(("ln1", "ln2")):
            (gv, gamma), (bv, beta) = rest[4 + 2 * i], rest[5 + 2 * i]
            self.put(f"{prefix}.{sub}.weight", layer, gv, gamma)
            self.put(f"{prefix}.{sub}.bias", layer, bv, beta)
        self.layer_map[layer.name] = prefix
        return heads, head_dim, ff_dim

    # -- transformer wiring -----------------------------------------------------------------------
    def transformer_stages(self, run: list[KerasLayer]) -> list[list[KerasLayer]]:
        """Group the transformer blocks into stages: one block, or two that read one input and are summed."""
        by_name = {layer.name: layer for layer in self.model.layers}
        if self.model.has_graph:
            blocks = {t.name: t for t in run}
            adds = [layer for layer in self.model.layers if _is_add(layer)]
            current = run[0].inbound[0] if run[0].inbound else None
            stages: list[list[KerasLayer]] = []
            left = set(blocks)
            while True:
                users = [t for t in run if t.name in left and t.inbound == [current]]
                if not users:
                    break
                if len(users) == 1:
                    stages.append(users)
                    current = users[0].name
                elif len(users) == 2:
                    add = next(
                        (a for a in adds if sorted(a.inbound or []) == sorted(u.name for u in users)), None
                    )
                    if add is None:
                        raise self.error(
                            f"transformer blocks {[u.name for u in users]} read the same input but are "
                            "not summed"
                        )
                    stages.append([blocks[n] for n in add.inbound])
                    current = add.name
                else:
                    raise self.error(
                        f"{len(users)} transformer blocks read {current!r}; CRMnet has at most 2"
                    )
                left -= {u.name for u in users}
            if left:
                raise self.error(f"transformer blocks {sorted(left)} are not on the main path")
            return stages
        # No graph (HDF5 weights): model.layers order puts each sum right after the two blocks it adds.
        names = [layer.name for layer in self.model.layers]
        first, last = names.index(run[0].name), names.index(run[-1].name)
        pending: list[KerasLayer] = []
        stages = []
        for name in names[first : last + 1]:
            layer = by_name[name]
            if layer.weights:
                pending.append(layer)
            elif _is_add(layer):
                if len(pending) < 2:
                    raise self.error(f"{name!r} adds fewer than two transformer outputs")
                stages.extend([p] for p in pending[:-2])
                stages.append(pending[-2:])
                pending = []
        stages.extend([p] for p in pending)
        return stages

    # -- skip connections -------------------------------------------------------------------------
    def check_concat(self, up: str, skip_bn: str) -> None:
        """Where the graph is known: the decoder concatenates [up, skip] with skip = that encoder's output."""
        if not self.model.has_graph:
            return
        by_name = {layer.name: layer for layer in self.model.layers}
        concat = next(
            (
                layer
                for layer in self.model.layers
                if layer.inbound and up in layer.inbound and layer.class_name == "Concatenate"
            ),
            None,
        )
        if concat is None or len(concat.inbound) != 2 or concat.inbound[0] != up:
            raise self.error(f"the output of {up!r} is not the first input of a two-way Concatenate")
        source = concat.inbound[1]
        while source in by_name and not by_name[source].weights and len(by_name[source].inbound or []) == 1:
            source = by_name[source].inbound[0]  # through Dropout
        if source != skip_bn:
            raise self.error(
                f"{concat.name!r} concatenates {concat.inbound[1]!r}, expected the encoder output "
                f"after {skip_bn!r}"
            )

    # -- the whole model --------------------------------------------------------------------------
    def build(self) -> dict:
        """Walk every weighted layer; returns the CRMnetConfig fields read off the shapes."""
        self.check_input()
        encoder, skips = self.encoder()
        fields = {"encoder_channels": tuple(encoder), **self.transformers()}
        fields["decoder_channels"] = self.decoder(skips, len(encoder))
        fields.update(self.head_and_mlp())
        for name, values in (("kernel_size", self.kernel_sizes), ("se_ratio", self.ratios)):
            if len(values) != 1:
                raise self.error(f"layers differ in {name}: {sorted(values)}")
            fields[name] = next(iter(values))
        fields["channels"] = KERAS_CHANNELS
        return fields

    def check_input(self) -> None:
        if self.peek() is None:
            raise self.error("the Keras model has no weights")
        first = self.tokens[0][0]
        in_kernel = dict(first.weights).get("kernel")
        if in_kernel is None or in_kernel.ndim != 3 or in_kernel.shape[1] != len(KERAS_CHANNELS):
            raise self.error(
                f"the first layer {first.name!r} is not a Conv1D over {len(KERAS_CHANNELS)} one-hot channels"
            )

    def conv_pair(self, prefix: str, what: str) -> int:
        """Map conv SE BN conv SE BN, the body of every encoder and decoder block; returns its width."""
        width = self.conv(f"{prefix}.conv1", f"{what}, first convolution")
        self.ratios.add(self.se(f"{prefix}.se1", f"{what}, first SE"))
        self.bn(f"{prefix}.bn1", f"{what}, first batch norm")
        self.conv(f"{prefix}.conv2", f"{what}, second convolution")
        self.ratios.add(self.se(f"{prefix}.se2", f"{what}, second SE"))
        self.bn(f"{prefix}.bn2", f"{what}, second batch norm")
        return width

    def encoder(self) -> tuple[list[int], list[str]]:
        """Encoder blocks until the transformers: (widths, names of the batch norms the skips leave from)."""
        encoder: list[int] = []
        bn_names: list[str] = []
        while True:
            i = len(encoder)
            self.kernel_sizes.add(int(self.tokens[self.pos][0].weights[0][1].shape[0]))
            encoder.append(self.conv_pair(f"encoder.{i}", f"encoder block {i + 1}"))
            bn_names.append(self.tokens[self.pos - 1][0].name)
            if not (self.is_conv() and self.is_conv(1)):
                return encoder, bn_names[:-1]
            self.conv(f"encoder.{i}.down", f"encoder block {i + 1}, stride-2 convolution")

    def transformers(self) -> dict:
        """The transformer stages: heads, head_dim, ff_dim and transformer_pairs."""
        run = []
        while self.peek() == "transformer":
            run.append(self.tokens[self.pos][0])
            self.pos += 1
        if not run:
            raise self.error("no transformer blocks after the encoder")
        stages = self.transformer_stages(run)
        sizes = [len(s) for s in stages]
        if len(stages) < 2 or sizes[0] != 1 or sizes[-1] != 1 or any(n != 2 for n in sizes[1:-1]):
            raise self.error(
                f"transformer wiring {sizes} (blocks per stage) is not CRMnet's [1, 2, ..., 2, 1]"
            )
        shapes = set()
        index = [0]
        # Pair p is torch blocks (j, j + 1), j = 2p + 1, computed as blocks[j + 1](t) + blocks[j](t); the Keras
        # stage lists the add's operands (x, y) of x + y, so x → j + 1 and y → j.
        for p in range(len(stages) - 2):
            index += [2 * p + 2, 2 * p + 1]
        index.append(2 * (len(stages) - 2) + 1)
        for layer, i in zip([t for s in stages for t in s], index):
            shapes.add(self.transformer(layer, f"transformer.{i}"))
        if len(shapes) != 1:
            raise self.error(f"transformer blocks differ in size: {sorted(shapes)}")
        heads, head_dim, ff_dim = shapes.pop()
        return {"heads": heads, "head_dim": head_dim, "ff_dim": ff_dim, "transformer_pairs": len(stages) - 2}

    def decoder(self, skips: list[str], n_encoder: int) -> int:
        """Decoder blocks (transposed conv, concatenation with a skip, conv pair); returns their width."""
        decoder = []
        while self.peek() in ("conv_transpose", "conv?") and self.is_conv(1):
            d = len(decoder)
            up_layer = self.tokens[self.pos][0]
            decoder.append(
                self.conv(f"decoder.{d}.up", f"decoder block {d + 1}, transposed convolution", transpose=True)
            )
            if not skips:
                raise self.error(f"decoder block {d + 1} has no encoder block left to take its skip from")
            self.check_concat(up_layer.name, skips.pop())
            self.conv_pair(f"decoder.{d}", f"decoder block {d + 1}")
        if skips:
            raise self.error(f"{n_encoder - 1} encoder skips but {len(decoder)} decoder blocks")
        if len(set(decoder)) != 1:
            raise self.error(f"decoder blocks differ in width: {decoder}")
        return decoder[0]

    def head_and_mlp(self) -> dict:
        """Head (conv + SE) blocks and the Dense stack: head_channels, mlp_units and the input length."""
        head = []
        while self.is_conv():
            h = len(head)
            head.append(self.conv(f"head.{h}.conv", f"head block {h + 1}, convolution"))
            self.ratios.add(self.se(f"head.{h}.se", f"head block {h + 1}, SE"))
        if not head:
            raise self.error("no convolution + SE head after the decoder")
        units = []
        while self.peek() is not None:
            units.append(self.dense(f"mlp.{len(units)}", f"Dense layer {len(units) + 1} of the MLP"))
        if not units or units[-1] != 1:
            raise self.error(f"the MLP must end in a Dense(1), found widths {units}")
        flat = self.state["mlp.0.weight"].shape[1]
        if flat % head[-1]:
            raise self.error(
                f"the first Dense takes {flat} inputs, not a multiple of the head's {head[-1]} channels"
            )
        return {"head_channels": tuple(head), "mlp_units": tuple(units[:-1]), "length": flat // head[-1]}

def convert(keras: KerasModel):
    """A read Keras model → (CRMnet module in eval mode with the weights loaded, provenance dict).

    Parameters
    ----------
    keras : KerasModel
        The CRMnet authors' model as :func:`crmnet.zoo.kerasfile.read_keras` read it.

    Returns
    -------
    model : nn.Module
        ``crmnet`` with the hyper-parameters the weights imply, in eval mode.
    provenance : dict
        The source files with their sha256 and the format recognised.
    """
    import torch

    from crmnet.fsutil import file_digest
    from crmnet.models.registry import build_model

    builder = _Builder(keras)
    fields = builder.build()
    try:
        model = build_model("crmnet", **fields)
    except ValueError as exc:
        raise InputError(
            keras.source, f"the sizes read from the Keras model do not make a CRMnet ({exc})"
        ) from None
    target = model.state_dict()
    wanted = {k: v.shape for k, v in target.items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(wanted) - set(builder.state))
    extra = sorted(set(builder.state) - set(wanted))
    if missing or extra:
        raise InputError(
            keras.source,
            f"weights do not match the PyTorch CRMnet: missing {missing[:5]}, unexpected {extra[:5]}",
        )
    for key, array in builder.state.items():
        if tuple(array.shape) != tuple(wanted[key]):
            raise InputError(
                keras.source,
                f"{builder.origin[key]} has shape {array.shape} after conversion but "
                f"{key} needs {tuple(wanted[key])}",
            )
    state = {k: torch.from_numpy(v) for k, v in builder.state.items()}
    state.update({k: v for k, v in target.items() if k.endswith("num_batches_tracked")})
    model.load_state_dict(state, strict=True)
    model.eval()
    provenance = {
        "imported_from": str(keras.source.resolve()),
        "source_format": keras.format,
        "source_sha256": {
            str(p.relative_to(keras.source) if p != keras.source else p.name): file_digest(p, "sha256")
            for p in keras.files
        },
        "keras_to_torch": builder.layer_map,
        "ignored_variables": keras.ignored_variables,
        "input_channels": KERAS_CHANNELS,
    }
    return model, provenance
