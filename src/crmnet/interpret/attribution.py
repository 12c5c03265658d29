"""Attributions for any registered model: input × gradient (saliency) and in-silico saturation mutagenesis.

Contract:

* **Input.** A model with ``.encoding`` and ``forward(x: (B, C, L)) -> (B,)`` and a list of DNA strings.
  The strings are laid out as the model wants (:func:`crmnet.data.encoding.encode` with ``model.encoding``), so
  padding side, length, prefix and channel order are the model's business, not the caller's.
* **Output.** :class:`Attributions` in *sequence coordinates*: position ``j`` is base ``j`` of the string
  as given (``0 <= j < length``), channels ``A, C, G, T``, whatever the model's layout. Positions the model
  never sees (truncated) and padding are masked out (``mask``), so every later step (motif scanning,
  statistics, logos) works on the sequences themselves.
* **Saliency** is the paper's "input-masked gradient": the gradient of the prediction with respect to
  the one-hot input, in the model's own channel space, times the input. ``hypothetical`` keeps the
  gradient of all four bases (what TF-MoDISco needs); ``scores`` is the projection onto the observed base.
* **ISM** substitutes every base at every position (``tangermeme.saturation_mutagenesis``) on a view of
  the model that takes ``A, C, G, T`` one-hot (an all-zero column is ``N``), so the substitutions are the
  four bases, never the ``N`` channel. ``hypothetical`` is the change in prediction for each substitution,
  centred over the four bases at each position (tangermeme's convention).
* Both are **batch-independent**: the model runs in eval mode and each sample's result depends on that
  sample only (the gradient of the batch sum is the per-sample gradient).
* **Display rules** of the paper (:func:`display_filter`): drop values below the per-sequence mean and
  below 0.1, and zero the constant flanks (17 nt left, 13 nt right) so only the 80-nt variable region shows.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crmnet.config import Config
from crmnet.data.construct import FLANKS, variable_region
from crmnet.data.encoding import Encoding, encode, onehot, onehot_table
from crmnet.errors import InputError
from crmnet.fsutil import atomic_file
from crmnet.progress import progress as progress_bar

BASES = "ACGT"
METHODS = ("saliency", "ism", "deeplift_shap", "integrated_gradients")
#: sequences per tangermeme / captum call (ISM, DeepLIFT/SHAP, integrated gradients): the progress bar moves
#: per chunk, and each sequence's result does not depend on the others in its chunk
CHUNK = 64


@dataclass
class AttributionConfig(Config):
    """How attributions are computed and shown.

    method: ``"saliency"`` (input × gradient), ``"ism"`` (saturation mutagenesis), ``"deeplift_shap"``
        (tangermeme, against dinucleotide shuffles) or ``"integrated_gradients"`` (captum, from all-N).
    batch_size: sequences (saliency) or substituted sequences (ISM) per pass; results do not depend on it.
    drop_below_mean, min_value: the paper's display rule, keep a value only if it is at least the
        sequence's mean and at least ``min_value`` (``None``: no absolute floor).
    zero_flanks: zero the ``flanks`` (left, right) constant positions of every sequence.
    ism_variable_only: ISM mutates only the positions between the flanks (the others get 0).
    gradient_correction: saliency only; subtract the mean gradient over A, C, G, T at each position
        (Majdandzic et al. 2023) before the projection. Off by default: the paper used the plain gradient.
    ig_steps: integrated gradients only; integration points (the sum converges to f(x) − f(baseline)).
    """

    method: str = "saliency"
    batch_size: int = 1024
    drop_below_mean: bool = True
    min_value: float | None = 0.1
    zero_flanks: bool = True
    flanks: tuple[int, int] = FLANKS
    ism_variable_only: bool = True
    gradient_correction: bool = False
    ig_steps: int = 64

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"attribution method must be one of {METHODS}, not {self.method!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {self.batch_size}")
        if len(self.flanks) != 2 or min(self.flanks) < 0:
            raise ValueError(f"flanks must be two non-negative lengths, not {self.flanks}")


@dataclass
class Attributions:
    """Attributions of ``n`` sequences in sequence coordinates (``W`` = longest sequence).

    onehot: (n, 4, W) float32, ``A, C, G, T``; all zero at ``N``, padding and unseen positions.
    hypothetical: (n, 4, W) float32, the attribution each base would get at each position.
    lengths: (n,) int64 true sequence lengths. mask: (n, W) bool, positions the model saw.
    """

    onehot: np.ndarray
    hypothetical: np.ndarray
    lengths: np.ndarray
    mask: np.ndarray
    method: str
    meta: dict = field(default_factory=dict)

    @property
    def scores(self) -> np.ndarray:
        """(n, 4, W) attributions projected onto the observed bases."""
        return self.onehot * self.hypothetical

    @property
    def per_position(self) -> np.ndarray:
        """(n, W) attribution of the observed base at each position (0 outside ``mask``)."""
        return np.where(self.mask, self.scores.sum(axis=1), 0.0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.lengths)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write a compressed ``.npz`` atomically.

        Parameters
        ----------
        path : path-like
        overwrite : bool
            Replace an existing file.

        Returns
        -------
        Path
        """
        with atomic_file(path, overwrite=overwrite, mode="wb") as fh:
            np.savez_compressed(
                fh, onehot=self.onehot.astype(np.int8), hypothetical=self.hypothetical, lengths=self.lengths,
                mask=self.mask, method=np.array(self.method), meta=np.array(json.dumps(self.meta)),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Attributions:
        """Read a file written by :meth:`save`; anything else raises :class:`InputError` naming the file."""
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    onehot=z["onehot"].astype(np.float32), hypothetical=z["hypothetical"], lengths=z["lengths"],
                    mask=z["mask"], method=str(z["method"]), meta=json.loads(str(z["meta"])),
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise InputError(path, f"not a crmnet attributions file ({exc})") from None


def sequence_onehot(sequences: list[str], width: int | None = None, source: str | None = None) -> np.ndarray:
    """ACGT one-hot of the sequences as given, left-aligned.

    Parameters
    ----------
    sequences : list of str, length n
    width : int, optional
        ``W`` (default: the longest sequence).
    source : str, optional
        Where the sequences came from, for error messages.

    Returns
    -------
    ndarray, shape (n, 4, W), float32
        ``N`` and padding are all-zero columns.
    """
    width = width or max(len(s) for s in sequences)
    enc = Encoding(length=width, channels="ACGT")  # unknown_fill 0: N and padding are all-zero columns
    codes, _ = encode(sequences, enc, source=source)
    return onehot_table(enc)[codes].transpose(0, 2, 1).copy()


def model_positions(lengths: np.ndarray, enc: Encoding, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each sequence base sits in the model's input.

    Parameters
    ----------
    lengths : ndarray, shape (n,)
        True sequence lengths.
    enc : Encoding
        The model's input layout.
    width : int
        ``W``, sequence coordinates computed.

    Returns
    -------
    index : ndarray, shape (n, W), int64
        Model position of base ``j`` (clipped into range where the base is not seen).
    seen : ndarray, shape (n, W), bool
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    body = enc.body_length
    usable = np.maximum(lengths - enc.trim_start, 0)  # the model drops the first trim_start bases
    kept = np.minimum(usable, body)
    first = enc.trim_start + (np.zeros_like(kept) if enc.truncate == "end" else usable - kept)
    put = np.zeros_like(kept) if enc.pad == "end" else body - kept  # where it goes in the body
    j = np.arange(width, dtype=np.int64)[None, :]
    seen = (j >= first[:, None]) & (j < (first + kept)[:, None])
    index = len(enc.prefix) + put[:, None] + j - first[:, None]
    return np.clip(index, 0, enc.length - 1), seen


def _to_sequence_coords(values: np.ndarray, index: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Move values (n, 4, L) in model positions → (n, 4, W) in sequence positions, 0 where unseen."""
    out = np.take_along_axis(values, np.broadcast_to(index[:, None, :], (len(index), 4, index.shape[1])), axis=2)
    return np.where(seen[:, None, :], out, 0.0).astype(np.float32)


def _acgt_channels(enc: Encoding) -> list[int]:
    return [enc.channels.index(b) for b in BASES]


def gradients(model, codes: np.ndarray, batch_size: int = 1024, on_batch=None):
    """Gradient of the prediction w.r.t. the one-hot input, per sample.

    Parameters
    ----------
    model : torch.nn.Module
        With ``.encoding``; run in eval mode.
    codes : ndarray, shape (n, L), uint8
        Sequences in the model's layout.
    batch_size : int
    on_batch : callable, optional
        Called with the number of sequences after each batch (progress).

    Returns
    -------
    ndarray, shape (n, C, L), float32
        In the model's channel order.
    """
    import torch

    model.eval()
    device = next(model.parameters()).device
    out = np.empty((len(codes), model.encoding.n_channels, codes.shape[1]), dtype=np.float32)
    for s in range(0, len(codes), batch_size):
        x = onehot(torch.as_tensor(codes[s : s + batch_size], device=device), model.encoding).requires_grad_(True)
        # In eval mode sample i's output depends on x[i] only, so d(sum)/dx[i] is its own gradient.
        (grad,) = torch.autograd.grad(model(x).sum(), x)
        out[s : s + batch_size] = grad.detach().cpu().numpy()
        if on_batch is not None:
            on_batch(len(x))
    return out


def ism(model, codes: np.ndarray, batch_size: int = 1024, span: tuple[int, int] | None = None, on_chunk=None,
        chunk: int = CHUNK):
    """Saturation mutagenesis (tangermeme), centred over the four bases.

    Saturation mutagenesis (tangermeme): prediction(substituted) − prediction(original) for every
    position and base, centred over the four bases at each position.

    Parameters
    ----------
    model : torch.nn.Module
        With ``.encoding``.
    codes : ndarray, shape (n, L), uint8
        Sequences in the model's layout.
    batch_size : int
        Substituted sequences per pass.
    span : (int, int), optional
        Model positions ``[start, end)`` mutated (default all).
    on_chunk : callable, optional
        Called with the number of sequences after each tangermeme call (progress).
    chunk : int
        Sequences per tangermeme call; like ``batch_size``, it changes results only by float rounding.

    Returns
    -------
    ndarray, shape (n, 4, L), float32
        Channels ``A, C, G, T``; zero outside ``span``.
    """
    import torch
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    from crmnet.models.adapter import ACGTAdapter

    x = onehot(torch.as_tensor(codes), Encoding(length=codes.shape[1], channels="ACGT"))  # N: all-zero column
    device = next(model.parameters()).device
    start, end = span or (0, codes.shape[1])
    adapter = ACGTAdapter(model, coordinates="model").eval()
    out = np.zeros((len(codes), 4, codes.shape[1]), dtype=np.float32)
    for s in range(0, len(codes), chunk):
        attr = saturation_mutagenesis(adapter, x[s : s + chunk], start=start, end=end, batch_size=batch_size,
                                      hypothetical=True, device=device, verbose=False,
                                      fast=False)  # tangermeme 1.6's fast path assumes per-position outputs
        out[s : s + chunk, :, start:end] = attr.float().cpu().numpy()
        if on_chunk is not None:
            on_chunk(len(attr))
    return out


def attribute(model, sequences: list[str], config: AttributionConfig | None = None, source: str | None = None,
              progress: bool = False) -> Attributions:
    """Attributions of ``sequences`` under ``model`` (see the module docstring for the contract).

    Parameters
    ----------
    model : torch.nn.Module
        Any registered model (``.encoding``, ``forward(x: (B, C, L)) -> (B,)``).
    sequences : list of str, length n
    config : AttributionConfig, optional
    source : str, optional
        Where the sequences came from, for error messages.
    progress : bool
        Show sequences attributed (rate, ETA): a bar on a terminal, periodic log lines elsewhere.

    Returns
    -------
    Attributions
        In sequence coordinates, ``W`` = the longest sequence.
    """
    config = config or AttributionConfig()
    if not sequences:
        raise InputError(source, "no sequences to attribute")
    with progress_bar(total=len(sequences), desc=config.method, unit="seq", enable=progress) as bar:
        return _attribute(model, sequences, config, source, bar.update)


def _attribute(model, sequences: list[str], config: AttributionConfig, source, on_done) -> Attributions:
    """:func:`attribute`; ``on_done(k)`` is called as each ``k`` sequences are attributed."""
    if config.method in ("deeplift_shap", "integrated_gradients"):
        options = {"n_steps": config.ig_steps} if config.method == "integrated_gradients" else {}
        return _attribute_by_method(model, sequences, config.method, source=source, on_done=on_done,
                                    batch_size=config.batch_size, **options)
    enc: Encoding = model.encoding
    codes, _ = encode(sequences, enc, source=source)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max())
    index, seen = model_positions(lengths, enc, width)
    if config.method == "saliency":
        grad = gradients(model, codes, config.batch_size, on_done)[:, _acgt_channels(enc)]
        if config.gradient_correction:
            # A one-hot input can only move within the simplex; the common component of the four
            # base gradients points off it and is unconstrained by training.
            grad -= grad.mean(axis=1, keepdims=True)
        hyp = _to_sequence_coords(grad, index, seen)
    else:
        span = None
        if config.ism_variable_only:
            # Mutating the constant flanks costs 30 of 110 positions and tells nothing about the promoter.
            inner = seen & variable_region(lengths, width, config.flanks)
            if inner.any():
                span = (int(index[inner].min()), int(index[inner].max()) + 1)
        hyp = _to_sequence_coords(ism(model, codes, config.batch_size, span, on_done), index, seen)
    x = sequence_onehot(sequences, width, source=source)
    mask = seen & (np.arange(width)[None, :] < lengths[:, None])
    x = np.where(mask[:, None, :], x, 0.0).astype(np.float32)
    return Attributions(x, hyp, lengths, mask, config.method, {"encoding": enc.to_dict()})


def display_filter(attr: Attributions, config: AttributionConfig | None = None) -> np.ndarray:
    """Per-position attributions after the paper's display rules (``config`` says which apply).

    The per-sequence mean is taken over the positions that remain shown (the variable region when the
    flanks are zeroed), so the constant flanks do not shift the threshold.

    Parameters
    ----------
    attr : Attributions
    config : AttributionConfig, optional

    Returns
    -------
    ndarray, shape (n, W), float32
        Values removed by the rules are 0.
    """
    config = config or AttributionConfig()
    values = attr.per_position.astype(np.float64)
    shown = attr.mask.copy()
    if config.zero_flanks:
        shown &= variable_region(attr.lengths, values.shape[1], config.flanks)
    keep = shown.copy()
    if config.drop_below_mean:
        mean = np.where(shown, values, 0.0).sum(1) / np.maximum(shown.sum(1), 1)
        keep &= values >= mean[:, None]
    if config.min_value is not None:
        keep &= values >= config.min_value
    return np.where(keep, values, 0.0).astype(np.float32)


def matching_attributions(attr: Attributions, sequences: list[str], source: str | os.PathLike) -> Attributions:
    """The maps of ``sequences`` from a saved file computed on them (or on a longer file they begin).

    Parameters
    ----------
    attr : Attributions
        Maps read from ``source``.
    sequences : list of str, length n
        The sequences the maps must belong to: the first ``n`` of ``attr``, checked base by base.
    source : path-like
        The attributions file, for error messages.

    Returns
    -------
    Attributions
        The first ``n`` maps.
    """
    n = len(sequences)
    if len(attr) < n:
        raise InputError(source, f"{len(attr):,} attribution maps for {n:,} sequences: the maps cover only the "
                                 f"first {len(attr):,} (computed with interpret --limit {len(attr)}?); pass --limit "
                                 f"{len(attr)} to use those sequences")
    width = attr.onehot.shape[2]
    if max(len(s) for s in sequences) > width:
        raise InputError(source, "the attribution maps are shorter than the sequences: not computed on this file")
    x = sequence_onehot(sequences, width)
    seen = attr.mask[:n]
    if not np.array_equal(x.argmax(1)[seen], attr.onehot[:n].argmax(1)[seen]):
        raise InputError(source, "the attribution maps were computed on other sequences than --sequences")
    return Attributions(attr.onehot[:n], attr.hypothetical[:n], attr.lengths[:n], attr.mask[:n], attr.method,
                        dict(attr.meta))


def _attribute_by_method(model, sequences: list[str], method: str, source: str | None = None, on_done=None,
                         **options) -> Attributions:
    """:class:`Attributions` of ``sequences`` by DeepLIFT/SHAP or integrated gradients.

    Sequences are grouped by length (one layout per group) and attributed :data:`CHUNK` at a time
    (``on_done(k)`` after each chunk: progress); ``options`` go to :func:`deep_lift_shap` or
    :func:`integrated_gradients`. ``hypothetical`` holds DeepLIFT/SHAP's hypothetical contributions, or
    integrated gradients' attributions (observed bases only). ``meta`` records each sequence's
    ``difference`` and the largest budget gap.
    """
    import torch

    from crmnet.interpret.methods import deep_lift_shap, integrated_gradients
    from crmnet.models.adapter import ACGTAdapter

    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max())
    onehot = sequence_onehot(sequences, width, source=source)
    hyp = np.zeros_like(onehot)
    difference = np.zeros(len(sequences), dtype=np.float64)
    gap = 0.0
    adapter = ACGTAdapter(model)
    mask = np.zeros((len(sequences), width), dtype=bool)
    for length in np.unique(lengths):
        group = np.flatnonzero(lengths == length)
        for s in range(0, len(group), CHUNK):
            rows = group[s : s + CHUNK]
            x = torch.as_tensor(onehot[rows, :, :length])
            if method == "deeplift_shap":
                res = deep_lift_shap(model, x, hypothetical=True, **options)
            else:
                res = integrated_gradients(model, x, **options)
            hyp[rows, :, :length] = res.attributions
            difference[rows] = res.difference
            gap = max(gap, float(res.delta.max()))
            if on_done is not None:
                on_done(len(rows))
        column, _ = adapter.layout(int(length))
        seen = np.zeros(int(length), dtype=bool)
        seen[column[column >= 0].numpy()] = True
        mask[group, :length] = seen
    onehot = np.where(mask[:, None, :], onehot, 0.0).astype(np.float32)
    enc: Encoding = model.encoding
    meta = {"encoding": enc.to_dict(), "difference": difference.tolist(), "max_budget_gap": gap, **options}
    return Attributions(onehot, np.where(mask[:, None, :], hyp, 0.0).astype(np.float32), lengths, mask,
                        method, meta)
