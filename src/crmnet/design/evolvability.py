"""Evolvability measures from saturation mutagenesis (Vaishnav et al. 2022).

Per sequence, over its single mutants (every non-reference base of its window):

* **mutational robustness**: the fraction of mutants with ``|Δ| < ε`` (ε = 0.1616 by default, the value
  of Vaishnav et al.'s app: mutations smaller than it are taken as neutral);
* the **evolvability vector**: the sorted Δ of all mutants (ascending);
* the largest **gain** and **loss** one mutation reaches, and the mutations that reach them;
* the mean |Δ|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmnet.design.mutagenesis import Saturation, mutation_label

EPSILON = 0.1616


@dataclass
class Evolvability:
    """Evolvability of N sequences.

    robustness, max_gain, max_loss, mean_abs_delta, prediction : (N,) float64
    n_mutants : (N,) int64
    gain_mutation, loss_mutation : list of str (``A23G``, 1-based sequence positions)
    vector : (N, M) float32, each row's sorted Δ, NaN-padded to the longest row
    epsilon : float
    """

    robustness: np.ndarray
    max_gain: np.ndarray
    max_loss: np.ndarray
    mean_abs_delta: np.ndarray
    prediction: np.ndarray
    n_mutants: np.ndarray
    gain_mutation: list
    loss_mutation: list
    vector: np.ndarray
    epsilon: float

    COLUMNS = ("prediction", "n_mutants", "robustness", "max_gain", "max_gain_mutation", "max_loss",
               "max_loss_mutation", "mean_abs_delta")

    def rows(self) -> list[tuple]:
        """One tuple per sequence, in :attr:`COLUMNS` order."""
        return list(zip(self.prediction, self.n_mutants, self.robustness, self.max_gain, self.gain_mutation,
                        self.max_loss, self.loss_mutation, self.mean_abs_delta))


def evolvability(sat: Saturation, epsilon: float = EPSILON) -> Evolvability:
    """Evolvability measures of every sequence in ``sat`` (see the module docstring).

    Parameters
    ----------
    sat : Saturation
        ``delta`` (N, L, 4) with 0 at reference bases and NaN outside windows.
    epsilon : float
        Neutrality threshold on |Δ| (> 0).

    Returns
    -------
    Evolvability
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    n = len(sat.delta)
    is_ref = np.zeros_like(sat.delta, dtype=bool)
    r, c = np.nonzero(sat.reference < 4)
    is_ref[r, c, sat.reference[r, c]] = True
    mutant = np.isfinite(sat.delta) & ~is_ref
    flat = np.where(mutant, sat.delta, np.nan).reshape(n, -1)
    count = mutant.reshape(n, -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        robust = (np.abs(np.nan_to_num(flat, nan=np.inf)) < epsilon).sum(axis=1) / count
        mean_abs = np.nansum(np.abs(flat), axis=1) / count
    safe = np.where(np.isnan(flat), -np.inf, flat)
    best = safe.argmax(axis=1)
    worst = np.where(np.isnan(flat), np.inf, flat).argmin(axis=1)
    vector = np.sort(flat, axis=1)[:, : int(count.max(initial=0))]  # NaN sorts last

    def label(i: int, k: int) -> str:
        if count[i] == 0:
            return ""
        pos, base = divmod(int(k), 4)
        return mutation_label(int(sat.reference[i, pos]), int(sat.start[i]) + pos, base)

    has = count > 0
    return Evolvability(
        robustness=np.where(has, robust, np.nan), max_gain=np.where(has, flat[np.arange(n), best], np.nan),
        max_loss=np.where(has, flat[np.arange(n), worst], np.nan), mean_abs_delta=np.where(has, mean_abs, np.nan),
        prediction=sat.prediction.astype(np.float64), n_mutants=count.astype(np.int64),
        gain_mutation=[label(i, best[i]) for i in range(n)], loss_mutation=[label(i, worst[i]) for i in range(n)],
        vector=vector.astype(np.float32), epsilon=float(epsilon),
    )
