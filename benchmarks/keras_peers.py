"""The Keras side of the crmnet-vs-Keras benchmarks: runs in a Python with TensorFlow and tf-keras, never torch.

``python keras_peers.py crmnet SAVEDMODEL`` or ``python keras_peers.py {deepatt,transformer} H5 [CSV ...]``
starts a worker that answers requests on stdin, one per line, with one JSON line each (the first, unasked,
says it is ready; for the transformer it holds ``reference_max_abs_diff``, the largest difference from
the outputs of the authors' code in the fixture's ``reference_io.npz`` beside the HDF5 file):

* ``data BATCH`` — make a seeded batch: answers its codes (DeepATT, transformer: A C G T N = 0..4, N = [1,1,1,1],
  rows drawn from the ``sequence`` column of the CSV files given, e.g. the authors' test sets, the last
  110 nt left-padded with N as their ``seq2feature``; random bases without files. CRMnet: the index of
  the hot channel of its 5-channel input, random) and the outputs of the Keras model.
* ``time CONTENDER BATCH REPEATS`` — time ``REPEATS`` calls of ``keras`` (``predict_on_batch``) or
  ``keras-xla`` (the model's call compiled with XLA, ``tf.function(jit_compile=True)``, the strongest
  Keras path on a CPU) on that batch after one warm-up; answers CPU times (``time.process_time`` of
  this process, every thread) and wall times.

DeepATT is built from its HDF5 file's ``model_config`` layers with tf-keras layers, the keras-multi-head
attention (ReLU on q, k, v and output projections; contiguous heads; scores / sqrt(E / heads); softmax
over keys) written here, the LSTM with ``recurrent_activation='hard_sigmoid'``, and the file's weights.
The transformer is built by walking its HDF5 file's ``model_config`` graph: tf-keras layers from their
stored configs, and its custom layers (reverse-complement convolution, attention with the softmax
``exp(e − max) / (sum + 1e-7)``, feed-forward, layer norm with the stored epsilon, and the Lambdas, which
add or drop the strand axis) written here; each layer then takes the file's weights in their stored order.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _deepatt(h5: str):
    import h5py
    import tensorflow as tf
    import tf_keras as keras

    layers = keras.layers

    class MultiHead(layers.Layer):
        def __init__(self, heads: int):
            super().__init__()
            self.heads = heads

        def build(self, shape):
            e = int(shape[-1])
            self.w = {n: self.add_weight(name=f"W{n}", shape=(e, e)) for n in "qkvo"}
            self.b = {n: self.add_weight(name=f"b{n}", shape=(e,)) for n in "qkvo"}

        def call(self, x):
            b, t, e = tf.shape(x)[0], x.shape[1], x.shape[2]
            d = e // self.heads

            def split(n):
                y = tf.nn.relu(tf.tensordot(x, self.w[n], 1) + self.b[n])
                return tf.transpose(tf.reshape(y, (b, t, self.heads, d)), (0, 2, 1, 3))

            q, k, v = split("q"), split("k"), split("v")
            a = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / float(d) ** 0.5, axis=-1)
            y = tf.reshape(tf.transpose(tf.matmul(a, v), (0, 2, 1, 3)), (b, t, e))
            return tf.nn.relu(tf.tensordot(y, self.w["o"], 1) + self.b["o"])

    inp = keras.Input((110, 4))
    h = layers.Conv1D(256, 30, activation="relu")(inp)
    h = layers.MaxPooling1D(3)(h)
    lstm = layers.LSTM(16, return_sequences=True, recurrent_activation="hard_sigmoid")
    h = layers.Bidirectional(lstm)(h)
    h = MultiHead(16)(h)
    h = layers.Flatten()(h)
    h = layers.Dense(16, activation="relu")(h)
    h = layers.Dense(16, activation="relu")(h)
    model = keras.Model(inp, layers.Dense(1)(h))
    with h5py.File(h5, "r") as f:
        w = f["model_weights"]

        def get(layer, name):
            return w[layer][layer][name + ":0"][()]

        bi = [get("bidirectional", f"{d}_lstm/{p}") for d in ("forward", "backward")
              for p in ("kernel", "recurrent_kernel", "bias")]
        att = [get("multi_head_attention", f"multi_head_attention_{p}{n}") for p in "Wb" for n in "qkvo"]
        weights = [get("conv1d", "kernel"), get("conv1d", "bias"), *bi, *att]
        for d in ("dense", "dense_1", "dense_2"):
            weights += [get(d, "kernel"), get(d, "bias")]
    model.set_weights(weights)
    return model


def _transformer(h5: str):
    """The transformer rebuilt from the HDF5 file's ``model_config`` graph, layer by layer, with its weights."""
    import h5py
    import tensorflow as tf
    import tf_keras as keras

    layers = keras.layers

    class RcConv1D(layers.Conv1D):  # one kernel W and its reverse complement W[::-1, ::-1]: two outputs
        def call(self, x):
            w = tf.concat([self.kernel, self.kernel[::-1, ::-1, :]], axis=-1)
            y = tf.nn.conv1d(x, w, stride=1, padding=self.padding.upper())
            return [y[..., : self.filters], y[..., self.filters :]]

    class MultiHead(layers.Layer):  # ReLU on q, k, v and output; softmax exp(e - max) / (sum + 1e-7)
        def __init__(self, head_num: int, **kwargs):
            super().__init__(name=kwargs.get("name"))
            self.heads = head_num

        def build(self, shape):
            e = int(shape[-1])
            for n in "qkvo":  # the file's weight order: Wq, bq, Wk, bk, ...
                setattr(self, f"W{n}", self.add_weight(name=f"W{n}", shape=(e, e)))
                setattr(self, f"b{n}", self.add_weight(name=f"b{n}", shape=(e,)))

        def call(self, x):
            b, t, e = tf.shape(x)[0], x.shape[1], x.shape[2]
            d = e // self.heads

            def split(n):
                y = tf.nn.relu(tf.tensordot(x, getattr(self, f"W{n}"), 1) + getattr(self, f"b{n}"))
                return tf.transpose(tf.reshape(y, (b, t, self.heads, d)), (0, 2, 1, 3))

            q, k, v = split("q"), split("k"), split("v")
            s = tf.matmul(q, k, transpose_b=True) / float(d) ** 0.5
            s = tf.exp(s - tf.reduce_max(s, axis=-1, keepdims=True))
            a = s / (tf.reduce_sum(s, axis=-1, keepdims=True) + 1e-7)
            y = tf.reshape(tf.transpose(tf.matmul(a, v), (0, 2, 1, 3)), (b, t, e))
            return tf.nn.relu(tf.tensordot(y, self.Wo, 1) + self.bo)

    class FeedForward(layers.Layer):  # Dense(units, ReLU) then Dense(E), biases
        def __init__(self, units: int, **kwargs):
            super().__init__(name=kwargs.get("name"))
            self.units = units

        def build(self, shape):
            e = int(shape[-1])
            self.W1, self.b1 = self.add_weight(name="W1", shape=(e, self.units)), self.add_weight(name="b1", shape=(self.units,))
            self.W2, self.b2 = self.add_weight(name="W2", shape=(self.units, e)), self.add_weight(name="b2", shape=(e,))

        def call(self, x):
            return tf.tensordot(tf.nn.relu(tf.tensordot(x, self.W1, 1) + self.b1), self.W2, 1) + self.b2

    class LayerNorm(layers.Layer):  # (x − mean) / sqrt(biased variance + epsilon) · gamma + beta
        def __init__(self, epsilon: float, **kwargs):
            super().__init__(name=kwargs.get("name"))
            self.epsilon = epsilon

        def build(self, shape):
            self.gamma = self.add_weight(name="gamma", shape=shape[-1:])
            self.beta = self.add_weight(name="beta", shape=shape[-1:])

        def call(self, x):
            mean = tf.reduce_mean(x, axis=-1, keepdims=True)
            var = tf.reduce_mean(tf.square(x - mean), axis=-1, keepdims=True)
            return (x - mean) / tf.sqrt(var + self.epsilon) * self.gamma + self.beta

    class StrandAxis(layers.Layer):  # the file's Lambdas (marshalled bytecode, not loaded): a strand axis at 1
        def call(self, x):
            return tf.expand_dims(x, 1) if x.shape.rank == 3 else tf.squeeze(x, 1)

    custom = {"rc_Conv1D": RcConv1D, "MultiHeadAttention": MultiHead, "FeedForward": FeedForward,
              "LayerNormalization": LayerNorm, "Lambda": lambda name, **_: StrandAxis(name=name)}
    with h5py.File(h5, "r") as f:
        graph = json.loads(f.attrs["model_config"])["config"]
        tensors, made = {}, []
        for spec in graph["layers"]:
            kind, config = spec["class_name"], spec["config"]
            if kind == "InputLayer":
                tensors[config["name"]] = [keras.Input(config["batch_input_shape"][1:])]
                continue
            layer = custom[kind](**config) if kind in custom else getattr(layers, kind).from_config(config)
            args = [tensors[name][index] for name, _, index, *_ in spec["inbound_nodes"][0]]
            out = layer(args if len(args) > 1 else args[0])
            tensors[config["name"]] = out if isinstance(out, list) else [out]
            made.append(layer)
        (out_name, _, out_index), = graph["output_layers"]
        model = keras.Model(tensors[graph["input_layers"][0][0]][0], tensors[out_name][out_index])
        weights = f["model_weights"]
        for layer in made:
            names = [n.decode() if isinstance(n, bytes) else n for n in weights[layer.name].attrs["weight_names"]]
            layer.set_weights([weights[layer.name][n][()] for n in names])
    return model


def _crmnet(savedmodel: str):
    try:
        import tf_keras as keras  # Keras 2, which reads the authors' SavedModel format
    except ImportError:
        import tensorflow as tf

        keras = tf.keras
    return keras.models.load_model(savedmodel, compile=False)


def _sequences(paths: list[str]):
    """(n, 110) codes of the ``sequence`` column of CSV files: the last 110 nt, left-padded with N."""
    import csv

    import numpy as np

    lookup = np.full(256, 4, np.int64)
    for i, base in enumerate(b"ACGT"):
        lookup[base] = lookup[base + 32] = i
    rows = []
    for path in paths:
        with open(path, newline="") as fh:
            rows += [r["sequence"][-110:].rjust(110, "N").encode() for r in csv.DictReader(fh)]
    return lookup[np.frombuffer(b"".join(rows), np.uint8).reshape(-1, 110)]


def _batch(kind: str, batch: int, pool=None):
    import numpy as np

    rng = np.random.default_rng(batch)
    if pool is not None:
        codes = pool[rng.integers(0, len(pool), batch)]
    else:
        codes = rng.integers(0, 5 if kind == "crmnet" else 4, (batch, 112 if kind == "crmnet" else 110))
    if kind != "crmnet":
        x = np.eye(4, dtype=np.float32)[np.minimum(codes, 3)]
        x[codes == 4] = 1.0
    else:
        x = np.eye(5, dtype=np.float32)[codes]
    return codes, x


def serve(kind: str, path: str, sequences: list[str]) -> int:
    """Answer requests on stdin (module docstring) for the ``kind`` model at ``path``."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = {"deepatt": _deepatt, "transformer": _transformer, "crmnet": _crmnet}[kind](path)
    xla = tf.function(lambda x: model(x, training=False), jit_compile=True)
    calls = {"keras": model.predict_on_batch, "keras-xla": lambda x: xla(x).numpy()}
    ready = {"ready": True, "tensorflow": tf.__version__, "params": model.count_params()}
    reference = os.path.join(os.path.dirname(path), "reference_io.npz")
    if kind == "transformer" and os.path.isfile(reference):
        import numpy as np

        ref = np.load(reference)
        y = model.predict_on_batch(ref["inputs"].astype(np.float32))
        ready["reference_max_abs_diff"] = float(np.abs(y - ref["outputs"]).max())
    print(json.dumps(ready), flush=True)
    data = {}
    pool = _sequences(sequences) if sequences else None
    for line in sys.stdin:
        verb, *rest = line.split()
        if verb == "data":
            batch = int(rest[0])
            codes, x = data[batch] = _batch(kind, batch, pool)
            y = model.predict_on_batch(x)[:, 0]
            print(json.dumps({"codes": codes.tolist(), "y": y.tolist()}), flush=True)
            continue
        name, batch, repeats = rest[0], int(rest[1]), int(rest[2])
        x = data[batch][1]
        calls[name](x)  # warm-up: traces (and compiles) for this batch size
        cpu, wall = [], []
        for _ in range(repeats):
            c, w = time.process_time(), time.perf_counter()
            calls[name](x)
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
        print(json.dumps({"cpu": cpu, "wall": wall}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1], sys.argv[2], sys.argv[3:]))
