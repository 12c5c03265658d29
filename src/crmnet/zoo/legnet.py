"""LegNet's released weights (autosome-ru/LegNet ``models/{complex,defined}/model_*.pth``) → crmnet.

The authors' ``train.py`` saved ``model.state_dict()`` of a ``SeqNN`` (``legnet/model.py``) from a CUDA
model: an ordered dict of 219 tensors. :func:`import_file` reads it with ``torch.load(weights_only=True,
map_location="cpu")`` — a pickle that would build anything but tensors and plain containers (run code)
is refused before anything is executed — renames the authors' keys to those of
:class:`~crmnet.models.legnet.LegNet` (the ``legnet-released`` preset, built from
:data:`~crmnet.models.legnet.RELEASED_HPARAMS`), and checks every key and shape: a missing, extra or
mis-shaped tensor is a one-line error naming the file and the keys.

Parity (``tests/test_zoo_legnet.py``, the authors' architecture with seeded weights and their test.py
outputs): the inputs are identical and the model performs the authors' float32 operations in their
order, so with the CPU kernels the reference was computed with (AVX2) logits and per-strand
expectations are identical and predictions differ only by the float32 strand average (4.8e-7). With
other kernels (AVX-512) the convolutions round differently: 1.1e-5 on logits, 1.5e-5 on predictions,
as for the authors' own code there.

Key correspondence (block ``i``; ``seqextractor.`` omitted on the left)::

    blc0.{0,1}                      stem.{0,1}                  stem conv, BN
    inv_res_blc{i}.{0,1}            blocks.{i}.inverted.0.{0,1} expand 1×1 conv, BN
    inv_res_blc{i}.{3,4}            blocks.{i}.inverted.1.{0,1} grouped conv, BN
    inv_res_blc{i}.6.fc.{0,2,5}     blocks.{i}.inverted.2.fc{1,2,3}
    inv_res_blc{i}.6.fc.3.mod.trl   blocks.{i}.inverted.2.bilinear (bias; weight.weights → weights;
                                    weight.factors.factor_k → factor_k)
    inv_res_blc{i}.{7,8}            blocks.{i}.inverted.3.{0,1} 1×1 conv back, BN
    resize_blc{i}.{0,1}             blocks.{i}.resize.{0,1}     resize conv, BN
    mapper.0                        mapper.0                    1×1 conv to the 18 bins
    bins                            (checked to be 0..17; the model's own non-persistent bin values)
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from crmnet.errors import InputError
from crmnet.models.legnet import RELEASED_HPARAMS
from crmnet.models.registry import build_model

SOURCE = "autosome-ru/LegNet legnet/model.py SeqNN state_dict (train.py: torch.save(model.state_dict()))"
_BLOCK_PARTS = {  # crmnet sub-module of blocks.{i} → the authors' module under seqextractor
    "inverted.0.0": "inv_res_blc{i}.0",
    "inverted.0.1": "inv_res_blc{i}.1",
    "inverted.1.0": "inv_res_blc{i}.3",
    "inverted.1.1": "inv_res_blc{i}.4",
    "inverted.2.fc1": "inv_res_blc{i}.6.fc.0",
    "inverted.2.fc2": "inv_res_blc{i}.6.fc.2",
    "inverted.2.bilinear": "inv_res_blc{i}.6.fc.3.mod.trl",
    "inverted.2.fc3": "inv_res_blc{i}.6.fc.5",
    "inverted.3.0": "inv_res_blc{i}.7",
    "inverted.3.1": "inv_res_blc{i}.8",
    "resize.0": "resize_blc{i}.0",
    "resize.1": "resize_blc{i}.1",
}
_TRL_LEAVES = {"bias": "bias", "weights": "weight.weights"}
_REFUSAL = re.compile(r"GLOBAL [\w.]+|Unsupported operand \d+")
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)\.([^.]+)")


def authors_key(key: str) -> str:
    """The authors' state_dict key of a crmnet ``legnet-released`` state_dict key."""
    if key.startswith("stem."):
        return "seqextractor.blc0." + key.removeprefix("stem.")
    if key.startswith("mapper."):
        return key
    match = _BLOCK_KEY.fullmatch(key)
    if match is None or match[2] not in _BLOCK_PARTS:
        raise KeyError(key)
    module = _BLOCK_PARTS[match[2]].format(i=match[1])
    leaf = match[3]
    if match[2] == "inverted.2.bilinear":
        leaf = _TRL_LEAVES.get(leaf) or "weight.factors." + leaf
    return f"seqextractor.{module}.{leaf}"


def _load_state_dict(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    """The file's tensors, unpickled with ``weights_only=True`` (nothing but tensors and containers)."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on foreign files; all mean one thing here
        text = str(exc)
        found = _REFUSAL.search(text)
        if found or text.startswith("Weights only load failed"):
            # torch's message around the reason advises weights_only=False: only the reason is shown.
            reason = found[0] if found else "objects other than tensors and plain containers"
            raise InputError(
                path,
                f"refused by torch's weights-only unpickler, nothing was executed ({reason}): a file holding more "
                "than tensors and plain containers could run code when unpickled",
            ) from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        first = lines[0] if lines else type(exc).__name__
        raise InputError(path, f"not a PyTorch state_dict (torch.load failed: {first})") from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InputError(path, "not a LegNet state_dict: expected a mapping of parameter names to tensors")
    return dict(state)


def _listed(what: str, items: list[str], show: int = 3) -> str:
    """``"2 missing (a, b)"``: a count and the first few names."""
    more = ", ..." if len(items) > show else ""
    return f"{len(items)} {what} ({', '.join(items[:show])}{more})"


def _match(path: Path, model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' tensors under crmnet's keys; a one-line error naming what does not fit."""
    own = model.state_dict()
    names = {authors_key(k): k for k in own}
    missing = [a for a in ("bins", *names) if a not in state]
    extra = [k for k in state if k not in names and k != "bins"]
    shapes = [
        f"{a} {tuple(state[a].shape)} (expected {tuple(own[k].shape)})"
        for a, k in names.items()
        if a in state and state[a].shape != own[k].shape
    ]
    problems = [
        _listed(what, items, show)
        for what, items, show in (("missing", missing, 3), ("unexpected", extra, 3), ("of another shape", shapes, 2))
        if items
    ]
    if problems:
        raise InputError(path, f"not the released LegNet (Vaishnav data) state_dict: tensors {'; '.join(problems)}")
    bins = state["bins"]
    if bins.shape != (18,) or not torch.equal(bins.to(torch.int64), torch.arange(18)):
        raise InputError(path, f"not the released LegNet state_dict: its bins buffer is not 0..17 ({bins.tolist()})")
    return {k: state[a] for a, k in names.items()}


def import_file(path: Path) -> tuple[nn.Module, dict]:
    """Load a released LegNet ``model_*.pth`` state_dict as crmnet's ``legnet-released`` model.

    Parameters
    ----------
    path : Path
        The authors' ``torch.save(model.state_dict())`` file (saved on CUDA; loaded on the CPU).

    Returns
    -------
    model : LegNet
        In eval mode (predictions average both strands), CPU, float32; x (B, 4, 150) → (B,).
    provenance : dict
        Plain types: source description, file name and path, its SHA-256, the authors' SeqNN arguments
        and how the singleton channel is set.

    Raises
    ------
    InputError
        One line naming the file: missing file, a pickle that is refused (nothing is executed), not a
        state_dict, or missing / unexpected / mis-shaped tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "not a file")
    data = path.read_bytes()  # once: the digest is of the bytes that are loaded
    state = _load_state_dict(path, data)
    model = build_model("legnet-released")
    model.load_state_dict(_match(path, model, state), strict=True)
    model.eval()
    provenance = {
        "imported_from": str(path.resolve()),
        "source": SOURCE,
        "source_format": "pytorch state_dict (.pth)",
        "source_sha256": {path.name: hashlib.sha256(data).hexdigest()},
        "hparams": dict(RELEASED_HPARAMS),
        "singleton_channel": "0 at prediction (test.py: 1 only where the input's measured bin is an integer)",
    }
    return model, provenance
