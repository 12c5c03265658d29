"""Any crmnet model seen from plain ``A, C, G, T`` one-hot.

The input tangermeme, captum and most genomics tools pass.

:class:`ACGTAdapter` wraps a model so that ``adapter(x)`` takes ``x`` (B, 4, L) one-hot in channel order
``A, C, G, T`` (an all-zero column is ``N``) and returns (B, 1) predictions (tangermeme's
``(batch, n_targets)`` contract). It re-lays the input into the model's own
:class:`~crmnet.data.encoding.Encoding` inside ``forward``, with differentiable tensor operations only:

* **channels** — reordered to the model's order; an ``N`` column becomes the model's ``N`` channel, or
  ``unknown_fill`` in every base channel for models without one;
* **layout** (``coordinates="sequence"``, the default) — the L columns are the sequence itself, base
  ``j`` of the string in column ``j``; truncation, padding side, ``prefix``, ``trim_start`` and
  ``flank`` are applied as :func:`crmnet.data.encoding.encode` applies them to text, so
  ``adapter(one-hot of s)`` equals ``model(onehot(encode([s], model.encoding)))``. Sequences of several
  lengths in one batch: pass their true ``lengths`` (columns beyond a sequence's length are ignored);
* ``coordinates="model"`` — the columns are already the model's positions (L = ``encoding.length``):
  only the channels are mapped (what in-silico mutagenesis on stored, laid-out codes needs).

Constant positions (prefix, flank, padding) never come from ``x``, so attributions to them are zero and
every attribution lands on a base of the sequence.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from crmnet.data.encoding import CODE_N, Encoding, onehot, relayout

BASES = "ACGT"
# Layout markers: relayout moves codes 0..4; column j of the sequence is tagged with code _MARK + j, so
# the re-laid row says, per model position, which sequence column (or which constant code) lands there.
_MARK = CODE_N + 1

Coordinates = Literal["sequence", "model"]


class ACGTAdapter(nn.Module):
    """A crmnet model taking ``A, C, G, T`` one-hot in sequence coordinates; see the module docstring.

    Parameters
    ----------
    model : nn.Module
        Any registered crmnet model (has ``.encoding`` and ``forward(x: (B, C, L)) -> (B,)``).
    coordinates : {"sequence", "model"}
        What the input's columns are: the sequence's bases (re-laid as the model wants) or the
        model's positions (channels mapped only).

    The adapter is put in eval mode; it holds no parameters of its own.
    """

    def __init__(self, model: nn.Module, coordinates: Coordinates = "sequence"):
        super().__init__()
        if coordinates not in ("sequence", "model"):
            raise ValueError(f"coordinates must be 'sequence' or 'model', not {coordinates!r}")
        self.model = model
        self.encoding: Encoding = model.encoding
        self.coordinates = coordinates
        enc = self.encoding
        # Model channel c takes ACGT channel source[c]; -1 is the N channel.
        self._source = [BASES.index(ch) if ch != "N" else -1 for ch in enc.channels]
        self._fill = 0.0 if "N" in enc.channels else enc.unknown_fill
        self._layouts: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.eval()

    def model_channels(self, x: torch.Tensor) -> torch.Tensor:
        """Map ACGT one-hot x (B, 4, L) to the model's channels (B, C, L), column by column."""
        missing = 1.0 - x.sum(dim=1, keepdim=True)  # 1 where the column is N
        columns = []
        for src in self._source:
            if src < 0:
                columns.append(missing)
            else:
                base = x[:, src : src + 1]
                columns.append(base + self._fill * missing if self._fill else base)
        return torch.cat(columns, dim=1)

    def layout(self, width: int, lengths: torch.Tensor | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Where each model position comes from, for sequences in ``width`` columns.

        Parameters
        ----------
        width : int
            Columns of the input (L).
        lengths : (B,) integer tensor or None
            True sequence lengths (each ``<= width``); None: every sequence is ``width`` long.

        Returns
        -------
        column : (B or 1, encoding.length) int64
            The input column feeding each model position, -1 for a constant position.
        constant : (B or 1, encoding.length) int64
            The code (A0 C1 G2 T3 N4) of each constant position (prefix, flank, padding; N elsewhere).
        """
        device = device if device is not None else torch.device("cpu")
        key = (width, str(device))
        if lengths is None and key in self._layouts:
            return self._layouts[key]
        rows = 1 if lengths is None else len(lengths)
        lens = torch.full((rows,), width, dtype=torch.long, device=device) if lengths is None else lengths.to(device)
        if bool((lens > width).any()) or bool((lens < 0).any()):
            raise ValueError(f"sequence lengths must lie in [0, {width}] (the input's columns)")
        marks = (torch.arange(width, device=device) + _MARK).expand(rows, width)
        src = Encoding(length=width, channels="ACGT")  # the sequence itself: left-aligned, untruncated
        placed = relayout(marks, lens, src, self.encoding)
        column = torch.where(placed >= _MARK, placed - _MARK, -1)
        constant = torch.where(placed >= _MARK, CODE_N, placed)
        if lengths is None:
            self._layouts[key] = (column, constant)
        return column, constant

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, 4, L) ACGT one-hot → (B, 1) predictions; ``lengths`` (B,) see :meth:`layout`."""
        xc = self.model_channels(x)
        if self.coordinates == "model":
            if x.shape[-1] != self.encoding.length:
                raise ValueError(
                    f"coordinates='model' needs the model's {self.encoding.length} positions, got {x.shape[-1]}"
                )
            return self.model(xc).reshape(len(x), 1)
        column, constant = self.layout(x.shape[-1], lengths, x.device)
        batch, channels = xc.shape[:2]
        index = column.clamp(min=0).unsqueeze(1).expand(batch, channels, -1)
        taken = torch.gather(xc, 2, index)
        background = onehot(constant, self.encoding).to(xc.dtype)
        inputs = torch.where((column >= 0).unsqueeze(1), taken, background)
        return self.model(inputs).reshape(len(x), 1)
