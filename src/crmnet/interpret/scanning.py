"""Known-motif scanning: memelite's FIMO over ACGT one-hot sequences, hits kept as parallel arrays.

Sequences are ``(n, 4, W)`` ACGT one-hot in sequence coordinates
(:func:`crmnet.interpret.attribution.sequence_onehot`); both strands are scanned and a hit is kept when its
p-value is at most the threshold (default 1e-4) and, when a ``region`` ``(n, W)`` is given, it lies wholly
inside it (the 80-nt variable region by default: the constant flanks are the same in every sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmnet.data.jaspar import Motif

_DTYPES = {"motif": np.int64, "seq": np.int64, "start": np.int64, "end": np.int64, "strand": np.int8,
           "score": np.float64, "pvalue": np.float64}


@dataclass
class Hits:
    """FIMO hits as parallel arrays of length ``h``.

    motifs: the scanned motifs; motif: (h,) index into ``motifs``; seq: (h,) sequence index;
    start, end: (h,) 0-based, end exclusive; strand: (h,) +1 / -1; score, pvalue: (h,) FIMO's.
    n_sequences, width: the scanned ``(n, W)``.
    """

    motifs: list[Motif]
    motif: np.ndarray
    seq: np.ndarray
    start: np.ndarray
    end: np.ndarray
    strand: np.ndarray
    score: np.ndarray
    pvalue: np.ndarray
    n_sequences: int
    width: int

    def contains(self) -> np.ndarray:
        """Which sequences hold each motif.

        Returns
        -------
        ndarray, shape (n_motifs, n), bool
            At least one hit of motif ``k`` in sequence ``i``.
        """
        out = np.zeros((len(self.motifs), self.n_sequences), dtype=bool)
        out[self.motif, self.seq] = True
        return out

    def covered(self, k: int) -> np.ndarray:
        """Positions covered by a hit of one motif.

        Parameters
        ----------
        k : int
            Index into ``motifs``.

        Returns
        -------
        ndarray, shape (n, W), bool
        """
        sel = self.motif == k
        diff = np.zeros((self.n_sequences, self.width + 1), dtype=np.int32)
        np.add.at(diff, (self.seq[sel], self.start[sel]), 1)
        np.add.at(diff, (self.seq[sel], self.end[sel]), -1)
        return np.cumsum(diff, axis=1)[:, : self.width] > 0

    def rows(self, ids: list[str] | None = None) -> list[dict]:
        """The hits as table rows, ordered by motif, sequence and start.

        Parameters
        ----------
        ids : list of str, optional
            Sequence names (length ``n``); default the sequence index.

        Returns
        -------
        list of dict
            motif, matrix_id, sequence, start_1based, end_1based, strand (``+``/``-``), score, p_value:
            the site's first and last position, **1-based** and inclusive, as the column names say (tables
            are read by people; the arrays stay 0-based, end exclusive).
        """
        order = np.lexsort((self.start, self.seq, self.motif))
        return [
            {
                "motif": self.motifs[self.motif[i]].name, "matrix_id": self.motifs[self.motif[i]].matrix_id,
                "sequence": ids[self.seq[i]] if ids is not None else int(self.seq[i]),
                "start_1based": int(self.start[i]) + 1, "end_1based": int(self.end[i]), "strand": "+" if self.strand[i] > 0 else "-",
                "score": float(self.score[i]), "p_value": float(self.pvalue[i]),
            }
            for i in order
        ]


def scan(motifs: list[Motif], onehot: np.ndarray, threshold: float = 1e-4, region: np.ndarray | None = None) -> Hits:
    """FIMO (memelite) of ``motifs`` over both strands of the sequences.

    Parameters
    ----------
    motifs : list of Motif
        The known motifs (their :attr:`Motif.pwm`).
    onehot : ndarray, shape (n, 4, W)
        ACGT one-hot sequences; an all-zero column (N, padding) matches nothing.
    threshold : float
        Largest FIMO p-value kept.
    region : ndarray, shape (n, W), bool, optional
        Keep only hits lying wholly inside it.

    Returns
    -------
    Hits
    """
    from memelite import fimo

    n, _, width = onehot.shape
    keys = [f"{i}" for i in range(len(motifs))]  # unique even when two motifs share a name
    tables = fimo({k: m.pwm for k, m in zip(keys, motifs)}, onehot.astype(np.float32), threshold=threshold)
    cols: dict[str, list[np.ndarray]] = {c: [] for c in _DTYPES}
    for k, table in enumerate(tables):
        if len(table) == 0:
            continue
        cols["motif"].append(np.full(len(table), k, dtype=np.int64))
        cols["seq"].append(table["sequence_name"].to_numpy(dtype=np.int64))
        cols["start"].append(table["start"].to_numpy(dtype=np.int64))
        cols["end"].append(table["end"].to_numpy(dtype=np.int64))
        cols["strand"].append(np.where(table["strand"].to_numpy() == "+", 1, -1).astype(np.int8))
        cols["score"].append(table["score"].to_numpy(dtype=np.float64))
        cols["pvalue"].append(table["p-value"].to_numpy(dtype=np.float64))
    arrays = {c: np.concatenate(v) if v else np.zeros(0, _DTYPES[c]) for c, v in cols.items()}
    if region is not None and len(arrays["seq"]):
        csum = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(region, axis=1)], axis=1)
        covered = csum[arrays["seq"], arrays["end"]] - csum[arrays["seq"], arrays["start"]]
        inside = covered == arrays["end"] - arrays["start"]
        arrays = {c: v[inside] for c, v in arrays.items()}
    return Hits(list(motifs), n_sequences=n, width=width, **arrays)
