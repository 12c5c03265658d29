"""Self-describing checkpoints: everything needed to rebuild and use a model, and nothing pickled.

A checkpoint is a ``torch.save``d dict of plain Python types and tensors, readable with
``torch.load(weights_only=True)``::

    format          "crmnet.models.checkpoint"
    format_version  1
    model           registry name (crmnet.models.MODELS), or "ensemble" (crmnet.models.ensemble)
    model_config    the resolved config (dict): rebuilds the exact architecture
    encoding        the input Encoding (dict): how sequences become the model's input
    state_dict      parameters and saved buffers
    provenance      where the weights came from (data, run, source file ...), a dict
    metrics         evaluation results, a dict
    extra           anything else the caller stores (plain types); a calibrated checkpoint holds its
                    conformal calibration here (crmnet.evaluation.conformal)

``load_checkpoint(path)`` returns the model in eval mode with the payload minus ``state_dict`` as
``model.checkpoint_meta``; a file that is not a crmnet checkpoint, an unknown model name, a
state_dict that does not fit the config, or weights holding NaN or infinity (a model that would
predict NaN for everything: refused at load, so ``predict``, ``evaluate``, ``--init`` and the
interpretation commands all stop with one line) is an :class:`~crmnet.errors.InputError` naming the
file. Files are read with ``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from crmnet.errors import InputError
from crmnet.fsutil import atomic_file
from crmnet.models.registry import ENSEMBLE, registry_name

FORMAT = "crmnet.models.checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("format", "format_version", "model", "model_config", "encoding", "state_dict")


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    provenance: dict | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``model`` to ``path`` atomically; an existing file is refused unless ``overwrite``.

    Tensors are saved on the CPU so the file loads anywhere.

    Parameters
    ----------
    path : path-like
        The checkpoint file to write.
    model : nn.Module
        A registered model (its ``config`` and registry name are saved with the weights).
    provenance : dict, optional
        Where the weights came from (sources and their sha256 for imports).
    metrics : dict, optional
        Validation or test metrics to keep with the weights.
    extra : dict, optional
        Further plain-typed entries for the payload.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    None
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": registry_name(model),
        "model_config": model.config.to_dict(),
        "encoding": model.encoding.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "provenance": dict(provenance or {}),
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
    }
    buffer = io.BytesIO()  # torch's C++ writer aborts on a full disk: serialise here, write with Python
    torch.save(payload, buffer)
    with atomic_file(path, overwrite=overwrite, mode="wb") as fh:
        fh.write(buffer.getbuffer())


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint's payload (no model is built; ``state_dict`` not yet checked).

    Parameters
    ----------
    path : path-like
        A crmnet checkpoint.
    map_location : str or torch.device
        Where tensors are loaded.

    Returns
    -------
    dict
        ``format``, ``format_version``, ``model``, ``model_config``, ``encoding``, ``state_dict``,
        ``provenance`` and ``metrics`` (see docs/architecture.md, "Checkpoint").
    """
    from crmnet.models.registry import MODELS

    src = str(path)
    if not os.path.isfile(src):
        raise InputError(src, "checkpoint file not found")
    payload = load_weights_only(src, src, "crmnet checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(src, f"not a crmnet checkpoint (no format {FORMAT!r} marker)")
    if payload.get("format_version") != FORMAT_VERSION:
        raise InputError(
            src,
            f"checkpoint format version {payload.get('format_version')!r} is not supported (this crmnet reads {FORMAT_VERSION})",
        )
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise InputError(src, f"incomplete crmnet checkpoint: missing {', '.join(missing)}")
    if payload["model"] not in MODELS and payload["model"] != ENSEMBLE:
        raise InputError(src, f"unknown model {payload['model']!r}; known models: {', '.join(MODELS)}")
    return payload


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_weights_only(source: str | os.PathLike, file, what: str, map_location="cpu"):
    """``torch.load(file, weights_only=True)``, every failure one :class:`InputError` naming ``source``.

    A file holding Python objects (a pickle that would run code) is told apart from bytes torch cannot
    read (random, truncated or another format); torch's advice to retry with ``weights_only=False``,
    which would run code from the file, is never repeated.

    Parameters
    ----------
    source : str or os.PathLike
        The name in the error (the file the user gave).
    file : str, os.PathLike or file object
        What torch reads.
    what : str
        What the file should be, e.g. ``"crmnet checkpoint"``.
    map_location : str or torch.device
        Where tensors are loaded.

    Returns
    -------
    object
        The unpickled plain types and tensors.
    """
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        if found:
            raise InputError(source, f"not a {what}: it holds Python objects ({found[1]}), which crmnet never "
                                     "unpickles (nothing was run)") from None
        raise InputError(source, f"not a {what}: not a file torch wrote (random, truncated or another "
                                 "format)") from None
    except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on foreign files; all mean one thing here
        lines = [line for line in str(exc).strip().splitlines() if "weights_only" not in line]
        first = lines[0] if lines else type(exc).__name__
        raise InputError(source, f"not a {what} (not a file torch can read: {first})") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved at ``path``, in eval mode, with ``model.checkpoint_meta`` attached.

    Parameters
    ----------
    path : path-like
        A crmnet checkpoint (``best.ckpt`` of a run, ``.pt`` of ``crmnet import``); read with
        ``torch.load(weights_only=True)``, so opening it runs no code from it.
    map_location : str or torch.device
        Where the weights are loaded.

    Returns
    -------
    nn.Module
        The model in eval mode; ``checkpoint_meta`` holds the checkpoint's ``model``, ``provenance`` and
        ``metrics``. A bad file, or weights holding NaN or infinity, is an ``InputError`` naming it.
    """
    from crmnet.data.encoding import Encoding
    from crmnet.models.ensemble import Ensemble
    from crmnet.models.registry import model_from_config

    src = str(path)
    payload = read_checkpoint(path, map_location=map_location)
    try:
        if payload["model"] == ENSEMBLE:
            model = Ensemble.from_config(payload["model_config"])
        else:
            model = model_from_config(payload["model"], payload["model_config"])
    except (AttributeError, TypeError, ValueError) as exc:  # AttributeError: model_config is not a dict
        raise InputError(src, f"invalid model_config for {payload['model']!r}: {exc}") from None
    try:
        encoding = Encoding.from_dict(payload["encoding"])
    except (AttributeError, TypeError, ValueError) as exc:
        raise InputError(src, f"invalid encoding: {exc}") from None
    if encoding != model.encoding:
        raise InputError(src, "the checkpoint's encoding does not match its model_config")
    _check_state_dict(src, payload["model"], model.state_dict(), payload["state_dict"])
    check_finite(src, payload["state_dict"])
    model.load_state_dict(payload["state_dict"])
    model.to(map_location)
    model.eval()
    model.checkpoint_meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model


def check_finite(src: str | os.PathLike, state: dict) -> None:
    """Refuse weights holding NaN or infinity: such a model predicts NaN for every input."""
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise InputError(src, f"{len(bad)} of {len(state)} tensors hold NaN or infinite values (e.g. {bad[0]}); "
                              "refusing a model that would predict NaN")


def _check_state_dict(src: str, name: str, own: dict, saved: dict) -> None:
    """Raise an InputError naming what differs between the model's and the saved state_dict."""
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    shapes = [
        f"{k} {tuple(saved[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in saved and saved[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {shapes[0]}, saved vs model)")
    if problems:
        raise InputError(src, f"state_dict does not match model {name!r}: {'; '.join(problems)}")


def load_models(paths: Sequence[str]) -> nn.Module:
    """One checkpoint's model, or an :class:`Ensemble` of several (their calibrations are not carried over).

    Parameters
    ----------
    paths : sequence of str
        Checkpoint files; an ensemble checkpoint among them contributes its members.

    Returns
    -------
    nn.Module
        In eval mode, with ``checkpoint_meta`` (an ensemble's ``provenance`` lists each member's file,
        SHA-256, model and provenance).
    """
    from crmnet.fsutil import file_digest
    from crmnet.models.ensemble import Ensemble

    if len(paths) == 1:
        return load_checkpoint(paths[0])
    models = [load_checkpoint(p) for p in paths]
    try:
        ensemble = Ensemble(models)
    except ValueError as exc:
        raise InputError(paths[-1], str(exc)) from None
    members = [{"checkpoint": str(p), "sha256": file_digest(p), "model": m.checkpoint_meta["model"],
                "provenance": m.checkpoint_meta.get("provenance")} for p, m in zip(paths, models)]
    ensemble.checkpoint_meta = {"model": ENSEMBLE, "provenance": {"ensemble_of": members}, "metrics": {},
                                "extra": {}}
    return ensemble.eval()
