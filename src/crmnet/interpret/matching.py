"""Discovered motifs against known ones: TOMTOM (memelite) p-, E- and q-values, best match per motif.

E-value = p × number of targets; q-value = Benjamini-Hochberg over all query × target pairs of one call.
The best match of a query is the target with the smallest p-value (ties: the first, targets in the
order given).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmnet.data.jaspar import Motif
from crmnet.interpret.stats import bh_adjust


@dataclass
class Matches:
    """TOMTOM of ``nq`` queries against ``nt`` targets: p, e, q arrays, each (nq, nt)."""

    p: np.ndarray
    e: np.ndarray
    q: np.ndarray

    def best(self) -> np.ndarray:
        """(nq,) int64 index of each query's best target (smallest p); -1 when there are no targets."""
        if self.p.shape[1] == 0:
            return np.full(self.p.shape[0], -1, dtype=np.int64)
        return np.argmin(self.p, axis=1).astype(np.int64)


def tomtom_match(queries: list[Motif], targets: list[Motif]) -> Matches:
    """TOMTOM (memelite) of every query against every target, both strands.

    Parameters
    ----------
    queries, targets : list of Motif
        Discovered and known motifs (their :attr:`Motif.pwm`).

    Returns
    -------
    Matches
        p-values, E-values (p × number of targets) and q-values (BH over all pairs), each (nq, nt).
    """
    from memelite import tomtom

    if not queries or not targets:
        z = np.zeros((len(queries), len(targets)))
        return Matches(z, z, z)
    p = tomtom([q.pwm for q in queries], [t.pwm for t in targets])[0].astype(np.float64)
    p = np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)
    return Matches(p, p * len(targets), bh_adjust(p))


def match_rows(queries: list[Motif], targets: list[Motif], source: str, matches: Matches | None = None) -> list[dict]:
    """One table row per discovered motif: its best known match with p, E and q.

    Parameters
    ----------
    queries, targets : list of Motif
    source : str
        The discovery method, written in each row.
    matches : Matches, optional
        :func:`tomtom_match` of ``queries`` against ``targets`` when already computed.

    Returns
    -------
    list of dict
        source, motif, detail, consensus, width, best_match, best_match_id, p_value, e_value, q_value
        (the match fields None when there are no targets).
    """
    matches = matches if matches is not None else tomtom_match(queries, targets)
    rows = []
    for i, (m, j) in enumerate(zip(queries, matches.best())):
        found = j >= 0
        rows.append({
            "source": source, "motif": m.name, "detail": m.matrix_id, "consensus": m.consensus, "width": m.width,
            "best_match": targets[j].name if found else None, "best_match_id": targets[j].matrix_id if found else None,
            "p_value": float(matches.p[i, j]) if found else None, "e_value": float(matches.e[i, j]) if found else None,
            "q_value": float(matches.q[i, j]) if found else None,
        })
    return rows
