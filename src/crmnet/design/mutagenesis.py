"""Saturation mutagenesis: every single-base substitution of every sequence, batched on the device.

For each sequence and each position of its *window* (by default the 80-nt variable region between the
construct's constant flanks when the sequence carries both flanks, else the whole sequence), every base
other than the reference is substituted (3 per A/C/G/T position, 4 at an N) and predicted. Mutants are
made on the device from the ``uint8`` codes of many sequences at once (:func:`single_mutants`), so one
forward pass evaluates mutants of many sequences together.

Result (:class:`Saturation`): ``delta`` (N, L, 4) float32, ``Δ = prediction(mutant) − prediction(reference)``
in window coordinates, channels ``A C G T``, 0 at the reference base and NaN beyond a sequence's window
(``L`` is the longest window); ``reference`` (N, L) uint8 codes (4 = N or outside); ``start`` (N,) the
0-based sequence position of window column 0; ``length`` (N,) window lengths; ``prediction`` (N,).

:func:`mutagenesis_file` streams a FASTA/TSV/CSV through this with bounded memory and writes a directory
(see :mod:`crmnet.design.outputs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.design.oracle import ModelPredictor, encode_sequences
from crmnet.errors import InputError

BASES = "ACGT"
_LEFT = np.frombuffer(LEFT_FLANK.encode(), np.uint8)
_RIGHT = np.frombuffer(RIGHT_FLANK.encode(), np.uint8)
_CODE_OF = {b: i for i, b in enumerate("ACGTN")}


@dataclass
class Saturation:
    """Saturation mutagenesis of N sequences (shapes in the module docstring)."""

    delta: np.ndarray
    reference: np.ndarray
    start: np.ndarray
    length: np.ndarray
    prediction: np.ndarray

    def __len__(self) -> int:
        return len(self.delta)


def as_predictor(model_or_predictor, batch_size: int = 4096, device=None):
    """A model (anything with ``.encoding``) becomes a :class:`ModelPredictor`; a predictor stays."""
    if hasattr(model_or_predictor, "encoding") and hasattr(model_or_predictor, "parameters"):
        return ModelPredictor(model_or_predictor, batch_size=batch_size, device=device)
    return model_or_predictor


def default_windows(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(n, 2) [start, end): the variable region where a sequence carries both flanks, else all of it."""
    n = len(codes)
    out = np.stack([np.zeros(n, np.int64), lengths], axis=1)
    flanked = lengths > len(_LEFT) + len(_RIGHT)
    if not flanked.any():
        return out
    letters = np.frombuffer(b"ACGTN", np.uint8)
    left = (letters[codes[:, : len(_LEFT)]] == _LEFT).all(axis=1) if codes.shape[1] >= len(_LEFT) else flanked
    rows = np.flatnonzero(flanked & left)
    tail = lengths[rows, None] - len(_RIGHT) + np.arange(len(_RIGHT))
    right = (letters[codes[rows[:, None], tail]] == _RIGHT).all(axis=1)
    rows = rows[right]
    out[rows, 0] = len(_LEFT)
    out[rows, 1] = lengths[rows] - len(_RIGHT)
    return out


def resolve_windows(codes: np.ndarray, lengths: np.ndarray, window: tuple[int, int] | None,
                    source: str | None = None, lines: Sequence[int] | None = None) -> np.ndarray:
    """Windows (n, 2) [start, end) for ``window`` (0-based, half-open, in sequence coordinates) or the default.

    A window reaching past a sequence's end is an :class:`InputError` naming ``--window`` and the line.
    """
    if window is None:
        return default_windows(codes, lengths)
    start, end = window
    if start < 0 or end <= start:
        raise InputError(None, f"--window {start + 1}-{end}: must be 1-based START-END with START <= END")
    short = np.flatnonzero(lengths < end)
    if len(short):
        i = int(short[0])
        raise InputError(source, f"--window {start + 1}-{end} lies outside this {int(lengths[i])}-nt sequence",
                         line=None if lines is None else int(lines[i]))
    return np.tile(np.array([start, end], np.int64), (len(codes), 1))


def single_mutants(codes, windows):
    """All single-base substitutions inside the windows, made on the codes' device.

    Parameters
    ----------
    codes : (B, W) uint8 tensor
        Sequence-space codes.
    windows : (B, 2) int64 tensor
        [start, end) per sequence.

    Returns
    -------
    row, position, base : (M,) int64 tensors
        Which sequence was mutated, where, and to which base (0-3).
    mutants : (M, W) uint8 tensor
    """
    import torch

    pos = torch.arange(codes.shape[1], device=codes.device)
    inside = (pos >= windows[:, :1]) & (pos < windows[:, 1:])
    alt = torch.arange(4, device=codes.device, dtype=codes.dtype)
    candidate = inside[:, :, None] & (codes[:, :, None] != alt)
    row, position, base = torch.nonzero(candidate, as_tuple=True)
    mutants = codes.index_select(0, row)
    mutants[torch.arange(len(row), device=codes.device), position] = base.to(codes.dtype)
    return row, position, base, mutants


def saturate_codes(predictor, codes: np.ndarray, lengths: np.ndarray, windows: np.ndarray) -> Saturation:
    """Saturation mutagenesis of sequence-space codes (see the module docstring).

    Parameters
    ----------
    predictor : a predictor (:mod:`crmnet.design.oracle`)
    codes : (n, W) uint8; lengths : (n,) int64; windows : (n, 2) int64 [start, end)

    Returns
    -------
    Saturation
    """
    import torch

    device = getattr(predictor, "device", "cpu")
    t_codes = torch.as_tensor(codes).to(device)
    row, position, base, mutants = single_mutants(t_codes, torch.as_tensor(windows).to(device))
    if hasattr(predictor, "variants"):  # reuses what the references share with their mutants
        ref_pred, mut_pred = predictor.variants(t_codes, lengths, row, mutants)
    else:
        ref_pred = predictor(codes, lengths)
        mut_pred = predictor(mutants, torch.as_tensor(lengths).to(device).index_select(0, row))
    ref_pred = np.asarray(ref_pred, dtype=np.float32)
    row, position, base = (t.cpu().numpy() for t in (row, position, base))
    n, width = len(codes), int(max(1, (windows[:, 1] - windows[:, 0]).max(initial=1)))
    column = position - windows[row, 0]
    delta = np.full((n, width, 4), np.nan, dtype=np.float32)
    delta[row, column, base] = mut_pred - ref_pred[row]
    reference = np.full((n, width), 4, dtype=np.uint8)
    j = np.arange(width)
    inside = j < (windows[:, 1] - windows[:, 0])[:, None]
    at = np.minimum(windows[:, :1] + j, codes.shape[1] - 1)
    reference[inside] = np.take_along_axis(codes, at, axis=1)[inside]
    is_base = inside & (reference < 4)
    r, c = np.nonzero(is_base)
    delta[r, c, reference[r, c]] = 0.0
    return Saturation(delta, reference, windows[:, 0].copy(), windows[:, 1] - windows[:, 0], ref_pred)


def saturation_mutagenesis(model, sequences: Sequence[str], window: tuple[int, int] | None = None, *,
                           batch_size: int = 4096, device=None) -> Saturation:
    """Saturation mutagenesis of ``sequences`` under ``model`` (a registered model or any predictor).

    Parameters
    ----------
    model : nn.Module or predictor
    sequences : list of str (lengths may differ)
    window : (start, end) 0-based half-open positions, or None for the default window
    batch_size, device : forward-pass size and device of a model

    Returns
    -------
    Saturation
        ``delta`` (N, L, 4) etc.
    """
    predictor = as_predictor(model, batch_size, device)
    codes, lengths = encode_sequences(sequences)
    return saturate_codes(predictor, codes, lengths, resolve_windows(codes, lengths, window))


def mutation_label(reference: int, position: int, base: int) -> str:
    """``A23G``: reference base, 1-based position, new base."""
    return f"{'ACGTN'[reference]}{position + 1}{BASES[base]}"


def parse_window(text: str | None) -> tuple[int, int] | None:
    """``START-END`` (1-based, inclusive) → (start, end) 0-based half-open; None stays None."""
    if text is None:
        return None
    parts = text.replace(":", "-").split("-")
    try:
        start, end = (int(p) for p in parts)
    except ValueError:
        raise InputError(None, f"--window {text!r}: expected START-END, 1-based inclusive (e.g. 18-97)") from None
    if start < 1 or end < start:
        raise InputError(None, f"--window {text!r}: expected 1 <= START <= END")
    return start - 1, end
