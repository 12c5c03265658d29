"""Deployment exports: a model as an ONNX graph or a TorchScript program, checked against PyTorch.

Both take the model's own input, one-hot ``(B, C, L)`` in its :class:`~crmnet.data.encoding.Encoding`
(the batch size is free), and return ``(B,)`` predictions. Each file carries what a serving process needs
to build that input: the registry name, the encoding (JSON) and the crmnet version — ONNX in its
``metadata_props``, TorchScript as the extra file ``crmnet.json``. :func:`parity` runs the file and the
PyTorch model on the same one-hot encoded random sequences and reports the largest difference.

* ``onnx``: ``torch.onnx.export`` (the ``torch.export``-based exporter by default; ``dynamo=False`` selects
  PyTorch's older TorchScript-based exporter, deprecated upstream but several times faster), run with
  onnxruntime. Needs the ``export`` extra (onnx, onnxscript, onnxruntime).
* ``torchscript``: ``torch.jit.trace`` in eval mode (no Python control flow depends on the input in any
  registered model, so the trace is the model); needs nothing beyond torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crmnet.data.encoding import Encoding, encode, onehot
from crmnet.errors import CrmnetError, InputError
from crmnet.fsutil import atomic_path

FORMATS = ("onnx", "torchscript")
_EXTRA = "crmnet.json"


def example_input(model: nn.Module, n: int = 8, seed: int = 0) -> torch.Tensor:
    """A (n, C, L) example input of ``n`` random sequences, as the model sees them.

    (n, C, L) one-hot of ``n`` random sequences (about 2 % N, lengths around the model's) as the model
    sees them: its encoding's padding, prefix and flank included.
    """
    rng = np.random.default_rng(seed)
    enc: Encoding = model.encoding
    lengths = rng.integers(max(enc.body_length - 20, 1), enc.body_length + 20, size=n)
    seqs = ["".join(rng.choice(list("ACGTN"), p=[0.245] * 4 + [0.02], size=k)) for k in lengths]
    codes, _ = encode(seqs, enc)
    return onehot(torch.as_tensor(codes), enc)


def export_meta(model: nn.Module) -> dict:
    """What a serving process needs besides the graph: model name, encoding, crmnet version."""
    from crmnet.models.checkpoint import registry_name
    from crmnet.version import __version__

    return {"model": registry_name(model), "encoding": model.encoding.to_dict(), "crmnet_version": __version__,
            "input": "one-hot (batch, channels, length) in the encoding; output (batch,) predictions"}


def export_model(model: nn.Module, path: str | os.PathLike, fmt: str = "onnx", *, overwrite: bool = False,
                 dynamo: bool = True, opset: int | None = None, check=None) -> Path:
    """Write ``model`` to ``path`` as ``fmt`` (:data:`FORMATS`), atomically.

    Parameters
    ----------
    model : nn.Module
        A registered crmnet model (it is exported in eval mode, on the CPU).
    path : path
        Output file; an existing one is refused unless ``overwrite``.
    fmt : {"onnx", "torchscript"}
    overwrite : bool
        Replace an existing file.
    dynamo : bool
        ONNX only: the ``torch.export``-based exporter (True) or the TorchScript-based one (False).
    opset : int or None
        ONNX only: the opset version (None: the exporter's default); see :func:`opset_range`.
    check : callable, optional
        Called with the written temporary file before it is renamed to ``path`` (e.g. a parity check); an
        error it raises leaves nothing under ``path``.

    Returns
    -------
    Path
        ``path``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {FORMATS}, not {fmt!r}")
    model = model.eval().cpu()
    x = example_input(model, n=2)
    meta = export_meta(model)
    if fmt == "onnx" and opset is not None:
        low, high = opset_range(dynamo)
        if not low <= opset <= high:
            raise InputError("--opset", f"the {'dynamo' if dynamo else 'torchscript'} ONNX exporter writes opsets "
                                        f"{low} to {high}, not {opset}")
    with atomic_path(path, overwrite=overwrite) as tmp, torch.no_grad():
        if fmt == "torchscript":
            _export_torchscript(model, x, tmp, meta)
        else:
            _export_onnx(model, x, tmp, meta, dynamo, opset)
        if check is not None:
            check(tmp)
    return Path(path)


@contextlib.contextmanager
def _output_silenced():
    """Silence file descriptors 1 and 2, where torch's C++ code prints."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def opset_range(dynamo: bool) -> tuple[int, int]:
    """The ONNX opsets the installed torch exporter writes: (lowest, highest)."""
    from torch.onnx import _constants

    # the torch.export-based exporter starts at opset 18 (its onnxscript functions need it)
    low = 18 if dynamo else getattr(_constants, "ONNX_MIN_OPSET", 7)
    high = getattr(_constants, "ONNX_MAX_OPSET" if dynamo else "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20)
    return low, high


def _export_torchscript(model: nn.Module, x: torch.Tensor, tmp: Path, meta: dict) -> None:
    try:
        with warnings.catch_warnings():
            # Shapes read in Python (Keras 'same' padding) become constants: right, as the length is
            # the encoding's; the batch size stays free (check_inputs runs another batch size).
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, x, check_inputs=[(example_input(model, n=3, seed=1),)])
    except torch.jit.TracingCheckError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise CrmnetError(f"{type(model).__name__} cannot be exported to TorchScript by tracing: the traced "
                          f"program differs from the model on another batch ({first}); use --format onnx") from None
    buffer = io.BytesIO()  # torch's C++ writer aborts on a full disk: serialise here, write with Python
    torch.jit.save(traced, buffer, _extra_files={_EXTRA: json.dumps(meta)})
    tmp.write_bytes(buffer.getbuffer())


def _export_onnx(model: nn.Module, x: torch.Tensor, tmp: Path, meta: dict, dynamo: bool, opset: int | None):
    import logging

    import onnx

    # One self-contained file (every registered model is far below protobuf's 2 GB limit): external data
    # would be a second file named after the temporary one.
    kwargs: dict = {"input_names": ["onehot"], "output_names": ["prediction"], "opset_version": opset,
                    "external_data": False}
    if dynamo:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1)},)
    else:
        kwargs["dynamic_axes"] = {"onehot": {0: "batch"}, "prediction": {0: "batch"}}
    # The exporters narrate each stage and log about unrelated optional packages (torchvision): quiet
    # them; a failure still raises.
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        # the TorchScript-based exporter prints its whole graph on stdout before raising (its log switch is
        # always on in torch 2.7+): the error below says what went wrong
        with warnings.catch_warnings(), _output_silenced():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(tmp), dynamo=dynamo, verbose=False, **kwargs)
    except torch.onnx.errors.OnnxExporterError as exc:  # e.g. an operator the chosen opset does not have
        first = str(exc).strip().splitlines()[0].split(" [Caused by")[0] if str(exc).strip() else type(exc).__name__
        raise CrmnetError(f"the ONNX exporter cannot write this model{f' at opset {opset}' if opset else ''}: "
                          f"{first}") from None
    finally:
        log.setLevel(level)
    graph = onnx.load(str(tmp))
    graph.metadata_props.add(key="crmnet", value=json.dumps(meta))
    onnx.save(graph, str(tmp))


class Exported:
    """An exported file loaded for inference: ``exported(x)`` maps (B, C, L) float32 to (B,) numpy.

    ``meta`` is what :func:`export_meta` stored; ``fmt`` the detected format.
    """

    def __init__(self, path: str | os.PathLike):
        src = str(path)
        if not os.path.isfile(src):
            raise InputError(src, "exported model not found")
        self.fmt = "torchscript" if zipfile.is_zipfile(src) else "onnx"
        try:
            if self.fmt == "torchscript":
                extra = {_EXTRA: ""}
                self._module = torch.jit.load(src, map_location="cpu", _extra_files=extra)
                self.meta = json.loads(extra[_EXTRA])
            else:
                import onnxruntime

                self._session = onnxruntime.InferenceSession(src, providers=["CPUExecutionProvider"])
                self.meta = json.loads(self._session.get_modelmeta().custom_metadata_map["crmnet"])
        except Exception as exc:  # noqa: BLE001 - torch.jit.load and onnxruntime fail in many ways on foreign files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(src, f"not a crmnet ONNX or TorchScript export ({first})") from None

    def __call__(self, x) -> np.ndarray:
        """Predict x (B, C, L) float32 (numpy or torch) → (B,) numpy."""
        x = np.ascontiguousarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, np.float32)
        if self.fmt == "torchscript":
            with torch.no_grad():
                return self._module(torch.from_numpy(x)).numpy()
        return self._session.run(None, {self._session.get_inputs()[0].name: x})[0]


def parity(model: nn.Module, path: str | os.PathLike, n: int = 64, seed: int = 1) -> dict:
    """Run the export at ``path`` and ``model`` on the same ``n`` one-hot inputs (:func:`example_input`).

    Returns
    -------
    dict
        ``max_abs`` and ``max_rel`` (relative to the largest |prediction|) differences, ``n``, ``format``.
    """
    x = example_input(model, n=n, seed=seed)
    with torch.no_grad():
        expected = model.eval().cpu()(x).numpy().astype(np.float64)
    exported = Exported(path)
    got = exported(x).astype(np.float64)
    if got.shape != expected.shape:
        raise ValueError(f"the export returns shape {got.shape}, the model {expected.shape}")
    diff = float(np.abs(got - expected).max())
    return {"format": exported.fmt, "n": n, "max_abs": diff,
            "max_rel": diff / max(float(np.abs(expected).max()), 1e-12)}
