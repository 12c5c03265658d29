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
from crmnet.data.jaspar import information_content
from crmnet.errors import InputError
from crmnet.fsutil import atomic_file

BASES = "ACGT"
METHODS = ("saliency", "ism")


@dataclass
class AttributionConfig(Config):
    """How attributions are computed and shown.

    method: ``"saliency"`` (input × gradient) or ``"ism"`` (saturation mutagenesis).
    batch_size: sequences (saliency) or substituted sequences (ISM) per pass; results do not depend on it.
    drop_below_mean, min_value: the paper's display rule, keep a value only if it is at least the
        sequence's mean and at least ``min_value`` (``None``: no absolute floor).
    zero_flanks: zero the ``flanks`` (left, right) constant positions of every sequence.
    ism_variable_only: ISM mutates only the positions between the flanks (the others get 0).
    gradient_correction: saliency only; subtract the mean gradient over A, C, G, T at each position
        (Majdandzic et al. 2023) before the projection. Off by default: the paper used the plain gradient.
    """

    method: str = "saliency"
    batch_size: int = 1024
    drop_below_mean: bool = True
    min_value: float | None = 0.1
    zero_flanks: bool = True
    flanks: tuple[int, int] = FLANKS
    ism_variable_only: bool = True
    gradient_correction: bool = False

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
        """Write a compressed ``.npz`` atomically."""
        with atomic_file(path, overwrite=overwrite, mode="wb") as fh:
            np.savez_compressed(
                fh, onehot=self.onehot.astype(np.int8), hypothetical=self.hypothetical, lengths=self.lengths,
                mask=self.mask, method=np.array(self.method), meta=np.array(json.dumps(self.meta)),
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Attributions:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    onehot=z["onehot"].astype(np.float32), hypothetical=z["hypothetical"], lengths=z["lengths"],
                    mask=z["mask"], method=str(z["method"]), meta=json.loads(str(z["meta"])),
                )
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise InputError(path, f"not a crmnet attributions file ({exc})") from None


def sequence_onehot(sequences: list[str], width: int | None = None, source: str | None = None) -> np.ndarray:
    """(n, 4, W) float32 ACGT one-hot of the sequences as given, left-aligned, ``N`` and padding all zero."""
    width = width or max(len(s) for s in sequences)
    enc = Encoding(length=width, channels="ACGT")  # unknown_fill 0: N and padding are all-zero columns
    codes, _ = encode(sequences, enc, source=source)
    return onehot_table(enc)[codes].transpose(0, 2, 1).copy()


def model_positions(lengths: np.ndarray, enc: Encoding, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each sequence base sits in the model's input.

    lengths: (n,) true lengths. Returns ``index`` (n, width) int64, the model position of base ``j``
    (clipped into range where the base is not seen), and ``seen`` (n, width) bool.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    body = enc.body_length
    kept = np.minimum(lengths, body)
    first = np.zeros_like(kept) if enc.truncate == "end" else lengths - kept  # first base the model keeps
    put = np.zeros_like(kept) if enc.pad == "end" else body - kept  # where it goes in the body
    j = np.arange(width, dtype=np.int64)[None, :]
    seen = (j >= first[:, None]) & (j < (first + kept)[:, None])
    index = len(enc.prefix) + put[:, None] + j - first[:, None]
    return np.clip(index, 0, enc.length - 1), seen


def _to_sequence_coords(values: np.ndarray, index: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """values (n, 4, L) in model positions → (n, 4, W) in sequence positions, 0 where unseen."""
    out = np.take_along_axis(values, np.broadcast_to(index[:, None, :], (len(index), 4, index.shape[1])), axis=2)
    return np.where(seen[:, None, :], out, 0.0).astype(np.float32)


def _acgt_channels(enc: Encoding) -> list[int]:
    return [enc.channels.index(b) for b in BASES]


def gradients(model, codes: np.ndarray, batch_size: int = 1024):
    """Gradient of the prediction w.r.t. the one-hot input, per sample.

    codes: (n, L) uint8 in the model's layout. Returns (n, C, L) float32 in the model's channel order.
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
    return out


def _acgt_view(model):
    """The model seen from ACGT one-hot: x (B, 4, L), N = all-zero column → (B, 1) prediction."""
    import torch
    from torch import nn

    enc: Encoding = model.encoding

    class AcgtView(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            missing = 1.0 - x.sum(dim=1, keepdim=True)  # 1 where the column is N
            columns = []
            for ch in enc.channels:
                if ch == "N":
                    columns.append(missing)
                else:
                    base = x[:, BASES.index(ch) : BASES.index(ch) + 1]
                    columns.append(base if "N" in enc.channels else base + enc.unknown_fill * missing)
            return self.model(torch.cat(columns, dim=1)).unsqueeze(-1)

    return AcgtView().eval()


def ism(model, codes: np.ndarray, batch_size: int = 1024, span: tuple[int, int] | None = None):
    """Saturation mutagenesis: for every position and base, prediction(substituted) − prediction(original),
    centred over the four bases at each position (tangermeme).

    codes: (n, L) uint8 in the model's layout; span: model positions [start, end) to mutate (default all).
    Returns (n, 4, L) float32, channels ``A, C, G, T``, zero outside ``span``.
    """
    import torch
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    x = onehot(torch.as_tensor(codes), Encoding(length=codes.shape[1], channels="ACGT"))  # N: all-zero column
    device = next(model.parameters()).device
    start, end = span or (0, codes.shape[1])
    attr = saturation_mutagenesis(
        _acgt_view(model), x, start=start, end=end, batch_size=batch_size, hypothetical=True, device=device,
        verbose=False,
    )
    out = np.zeros((len(codes), 4, codes.shape[1]), dtype=np.float32)
    out[:, :, start:end] = attr.float().cpu().numpy()
    return out


def attribute(model, sequences: list[str], config: AttributionConfig | None = None, source: str | None = None) -> Attributions:
    """Attributions of ``sequences`` under ``model`` (see the module docstring for the contract)."""
    config = config or AttributionConfig()
    if not sequences:
        raise InputError(source, "no sequences to attribute")
    enc: Encoding = model.encoding
    codes, _ = encode(sequences, enc, source=source)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max())
    index, seen = model_positions(lengths, enc, width)
    if config.method == "saliency":
        grad = gradients(model, codes, config.batch_size)[:, _acgt_channels(enc)]
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
        hyp = _to_sequence_coords(ism(model, codes, config.batch_size, span), index, seen)
    x = sequence_onehot(sequences, width, source=source)
    mask = seen & (np.arange(width)[None, :] < lengths[:, None])
    x = np.where(mask[:, None, :], x, 0.0).astype(np.float32)
    return Attributions(x, hyp, lengths, mask, config.method, {"encoding": enc.to_dict()})


def display_filter(attr: Attributions, config: AttributionConfig | None = None) -> np.ndarray:
    """(n, W) per-position attributions after the paper's display rules (``config`` says which apply).

    The per-sequence mean is taken over the positions that remain shown (the variable region when the
    flanks are zeroed), so the constant flanks do not shift the threshold.
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


def site_saliency_ratio(per_position: np.ndarray, site_mask: np.ndarray, region: np.ndarray,
                        off_mask: np.ndarray | None = None) -> dict:
    """Ground-truth check: attribution on planted-site positions versus positions off every site.

    per_position, site_mask, region: (n, W); off_mask: positions counted as "elsewhere" (default: region
    minus ``site_mask``). Returns the mean |attribution| on and off the sites and their ratio (the
    headline: signed maps put repressor sites below zero), the signed means, and a one-sided Mann-Whitney
    p-value of |attribution| on > off.
    """
    from scipy.stats import mannwhitneyu

    on = per_position[site_mask & region]
    off = per_position[(~site_mask if off_mask is None else off_mask) & region]
    if len(on) == 0 or len(off) == 0:
        raise ValueError("need positions both on and off the planted sites")
    p = float(mannwhitneyu(np.abs(on), np.abs(off), alternative="greater").pvalue)
    abs_on, abs_off = float(np.abs(on).mean()), float(np.abs(off).mean())
    return {
        "abs_on_sites": abs_on, "abs_elsewhere": abs_off, "ratio": abs_on / abs_off if abs_off else float("inf"),
        "mean_on_sites": float(on.mean()), "mean_elsewhere": float(off.mean()),
        "n_on": len(on), "n_off": len(off), "mannwhitney_p": p,
    }


def ground_truth_saliency(values: np.ndarray, truth: dict, region: np.ndarray) -> dict:
    """:func:`site_saliency_ratio` for all planted sites, and per direction when the truth has effects
    (activators: signed mean expected > 0, repressors: < 0); "elsewhere" is always off every site."""
    n, width = values.shape
    every = planted_site_mask(truth, n, width)
    out = {"all_sites": site_saliency_ratio(values, every, region)}
    effects = [m.get("effect") for m in truth["motifs"]]
    if all(e is not None for e in effects):
        for label, chosen in (("activator_sites", [k for k, e in enumerate(effects) if e > 0]),
                              ("repressor_sites", [k for k, e in enumerate(effects) if e < 0])):
            mask = planted_site_mask(truth, n, width, chosen)
            if chosen and (mask & region).any():
                out[label] = site_saliency_ratio(values, mask, region, off_mask=~every)
    return out


def logo_figure(values: np.ndarray, motif, offset: int, strand: int, title: str, first_position: int = 0):
    """Figure 5A–E panel: a sequence's attribution logo above the matched JASPAR motif, aligned.

    values: (4, w) attributions of the shown window (observed bases only); the motif (a
    :class:`crmnet.data.jaspar.Motif`) is drawn as information content starting at column ``offset`` of the
    window, reverse-complemented when the hit is on the ``-`` strand. ``first_position`` labels the x axis
    in sequence coordinates.
    """
    from matplotlib.figure import Figure
    from tangermeme.plot import plot_logo

    width = values.shape[1]
    pwm = motif.pwm if strand > 0 else motif.pwm[::-1, ::-1]
    track = np.zeros((4, width))
    cols = slice(max(offset, 0), min(offset + pwm.shape[1], width))
    track[:, cols] = information_content(pwm)[:, cols.start - offset : cols.stop - offset]
    fig = Figure(figsize=(max(6.0, 0.28 * width), 3.8), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.3, 1.0])
    if np.any(values):
        plot_logo(values, ax=top)
    else:  # every value removed by the display rules: an empty panel, said so
        top.text(0.5, 0.5, "no value passes the display rules", ha="center", va="center", transform=top.transAxes)
    top.set_ylabel("saliency")
    top.set_title(title, fontsize=10)
    plot_logo(track, ax=bottom)
    bottom.set_ylabel("bits")
    bottom.set_ylim(0, 2)
    bottom.set_title(f"JASPAR {motif.matrix_id} {motif.name} ({'+' if strand > 0 else '-'} strand)", fontsize=9)
    ticks = np.arange(0, width, 5)
    bottom.set_xticks(ticks, [str(first_position + t) for t in ticks])
    bottom.set_xlabel("position in the sequence (0-based)")
    return fig


def read_truth(path: str | os.PathLike, n: int) -> dict:
    """A simulation's ``FILE.truth.json`` (:func:`crmnet.data.simulate.write_simulation`), checked against ``n``."""
    try:
        truth = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the simulation truth ({exc})") from None
    if not isinstance(truth, dict) or "planted_sites" not in truth or "motifs" not in truth:
        raise InputError(path, "not a crmnet simulation truth file (no 'planted_sites' / 'motifs')")
    if truth.get("n") != n:
        raise InputError(path, f"the truth describes {truth.get('n')} sequences but {n} were read")
    return truth


def planted_site_mask(truth: dict, n: int, width: int, motifs: list[int] | None = None) -> np.ndarray:
    """(n, width) bool: positions covered by a planted site (sequence coordinates), of ``motifs`` (indices
    into ``truth["motifs"]``) when given."""
    sites = truth["planted_sites"]
    widths = np.array([m["width"] for m in truth["motifs"]], dtype=np.int64)
    kind = np.asarray(sites["motif"], dtype=np.int64)
    keep = np.ones(len(kind), bool) if motifs is None else np.isin(kind, motifs)
    seq = np.asarray(sites["seq"], dtype=np.int64)[keep]
    start = np.asarray(sites["start"], dtype=np.int64)[keep]
    end = np.minimum(start + widths[kind[keep]], width)
    diff = np.zeros((n, width + 1), dtype=np.int32)
    np.add.at(diff, (seq, start), 1)
    np.add.at(diff, (seq, end), -1)
    return np.cumsum(diff, axis=1)[:, :width] > 0


def _best_hit(hits, k: int, shown: np.ndarray) -> int | None:
    """Index of motif ``k``'s hit with the highest mean displayed attribution (ties: lowest p)."""
    idx = np.flatnonzero(hits.motif == k)
    if len(idx) == 0:
        return None
    means = np.array([shown[hits.seq[i], hits.start[i] : hits.end[i]].mean() for i in idx])
    return int(idx[np.lexsort((hits.pvalue[idx], -means))[0]])


def figure5(
    attr: Attributions,
    motifs: list,
    out: str | os.PathLike,
    *,
    measured: np.ndarray | None = None,
    ids: list[str] | None = None,
    config: AttributionConfig | None = None,
    threshold: float = 1e-4,
    truth: dict | None = None,
    overwrite: bool = False,
    logo_pad: int = 6,
) -> dict:
    """Figure 5A–G of the paper, its tables and a Markdown summary, written atomically into directory ``out``.

    Known ``motifs`` are scanned (FIMO, p ≤ ``threshold``) in the variable region of every sequence;
    5A–E: for each motif, the best-attributed hit's logo over the JASPAR logo; 5F: attributions at motif
    positions versus all positions; 5G (when ``measured`` is given): expression with versus all. With a
    simulation ``truth``, the planted-site attribution ratio is reported too. Returns the summary dict.
    """
    from crmnet.fsutil import atomic_path, write_text_atomic
    from crmnet.interpret.motifs import (
        enrichment_figure,
        expression_enrichment,
        saliency_enrichment,
        scan,
        write_tsv,
    )
    from crmnet.plot import save_figure

    config = config or AttributionConfig()
    region = attr.mask & variable_region(attr.lengths, attr.mask.shape[1], config.flanks)
    shown = display_filter(attr, config)
    raw = attr.per_position
    hits = scan(motifs, attr.onehot, threshold=threshold, region=region)
    summary: dict = {"n_sequences": len(attr), "method": attr.method, "threshold": threshold,
                     "config": config.to_dict(), "motifs": [m.matrix_id + " " + m.name for m in motifs]}
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        attr.save(tmp / "attributions.npz")
        write_tsv(tmp / "known_motif_hits.tsv", hits.rows(ids))
        letters = "ABCDE"
        panels = []
        for k, m in enumerate(motifs):
            i = _best_hit(hits, k, shown)
            if i is None:
                panels.append({"motif": m.name, "figure": None})
                continue
            s, start, end = int(hits.seq[i]), int(hits.start[i]), int(hits.end[i])
            lo, hi = max(0, start - logo_pad), min(int(attr.lengths[s]), end + logo_pad)
            window = attr.onehot[s, :, lo:hi] * shown[s, lo:hi][None, :]
            label = ids[s] if ids is not None else f"sequence {s}"
            title = f"{label}: {m.name} site {start}-{end} (p = {hits.pvalue[i]:.2g})"
            if measured is not None:
                title += f", measured {measured[s]:.2f}"
            fig = logo_figure(window, m, start - lo, int(hits.strand[i]), title, first_position=lo)
            stem = f"fig5{letters[k]}_{m.name}" if k < len(letters) else f"fig5_logo_{m.name}"
            save_figure(fig, tmp / stem)
            panels.append({"motif": m.name, "figure": stem, "sequence": label, "start": start, "end": end})
        summary["logos"] = panels
        f_rows = saliency_enrichment(hits, raw, region)
        write_tsv(tmp / "table5F_saliency.tsv", f_rows)
        save_figure(enrichment_figure(f_rows, "mean_matched", "mean_all", f"mean {attr.method} per position",
                                      "all positions", "Figure 5F: attribution at motif matches"), tmp / "fig5F_saliency")
        summary["fig5F"] = f_rows
        if measured is not None:
            g_rows = expression_enrichment(hits, measured)
            write_tsv(tmp / "table5G_expression.tsv", g_rows)
            save_figure(enrichment_figure(g_rows, "mean_with", "mean_all", "mean measured expression",
                                          "all sequences", "Figure 5G: expression of sequences with the motif"),
                        tmp / "fig5G_expression")
            summary["fig5G"] = g_rows
        if truth is not None:
            summary["ground_truth"] = {"raw": ground_truth_saliency(raw, truth, region),
                                       "displayed": ground_truth_saliency(shown, truth, region)}
        write_text_atomic(tmp / "summary.json", json.dumps(summary, indent=2, default=float))
        write_text_atomic(tmp / "summary.md", _figure5_markdown(summary))
    return summary


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _figure5_markdown(s: dict) -> str:
    lines = [f"# Figure 5: {s['method']} attributions of {s['n_sequences']} sequences", "",
             f"Known motifs scanned with FIMO (memelite), p ≤ {s['threshold']:g}, variable region only.", ""]
    lines += ["## 5F: attribution at motif matches versus all positions", "",
              "| motif | hits | mean at matches | mean at all positions | ratio | Mann-Whitney p | BH q |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['motif']} | {r['n_hits']} | {_fmt(r['mean_matched'])} | {_fmt(r['mean_all'])} | "
              f"{_fmt(r['ratio'])} | {_fmt(r['mannwhitney_p'])} | {_fmt(r['q_value'])} |" for r in s["fig5F"]]
    if "fig5G" in s:
        lines += ["", "## 5G: measured expression of sequences containing the motif", "",
                  ("| motif | sequences | mean with | mean of all | mean without | Mann-Whitney p | BH q "
                   "| mHG p (high first) | mHG p (low first) |"), "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['motif']} | {r['n_sequences']} | {_fmt(r['mean_with'])} | {_fmt(r['mean_all'])} | "
                  f"{_fmt(r['mean_without'])} | {_fmt(r['mannwhitney_p'])} | {_fmt(r['q_value'])} | "
                  f"{_fmt(r['mhg_p_top'])} | {_fmt(r['mhg_p_bottom'])} |" for r in s["fig5G"]]
    if "ground_truth" in s:
        lines += ["", "## Ground truth (simulation): attribution on planted sites versus off every site", "",
                  ("| maps | sites | mean abs on | mean abs off | ratio | signed mean on | signed mean off "
                   "| Mann-Whitney p (abs) |"), "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {maps} | {k} | {_fmt(v['abs_on_sites'])} | {_fmt(v['abs_elsewhere'])} | {_fmt(v['ratio'])} | "
                  f"{_fmt(v['mean_on_sites'])} | {_fmt(v['mean_elsewhere'])} | {_fmt(v['mannwhitney_p'])} |"
                  for maps, groups in s["ground_truth"].items() for k, v in groups.items()]
    lines += ["", "Logos (5A–E): " + ", ".join(
        f"{p['motif']} → {p['figure']}" if p["figure"] else f"{p['motif']}: no hit" for p in s["logos"]), ""]
    return "\n".join(lines)
