"""Intervals for variant effects: Δ calibrated on measured pairs, or bounded from expression intervals.

Two kinds of interval for ``Δ = prediction(variant) − prediction(reference)``, in this order of preference:

* **Δ calibration** (``crmnet calibrate --pairs FILE --measured-column NAME``, :func:`calibrate_pairs`):
  split conformal on ``|Δ_measured − Δ_predicted|`` of pairs with measured effects (e.g. drift or motif
  perturbation pairs), normalised by the spread of the members' Δ for an ensemble where that pays
  (:func:`crmnet.evaluation.conformal.fit_calibration`). Valid for pairs exchangeable with those.
* **Union bound** of the expression calibration, when no pairs were calibrated: each of the two sequences
  gets its expression interval at level ``1 − α/2`` and Δ's interval is their difference, ``Δ ± (h_ref +
  h_alt)``. It holds the difference of two independent measurements of the pair with probability at least
  ``1 − α`` (each misses with probability at most α/2), under the expression calibration's exchangeability.
  It is wide: it ignores that a model's errors on two near-identical sequences are mostly shared, which
  is what a Δ calibration measures.

:func:`crmnet.evaluation.calibrate.delta_interval` computes both and says which one it used (``basis``).
"""

from __future__ import annotations

import os

import numpy as np

from crmnet.errors import InputError
from crmnet.evaluation.conformal import Calibration, fit_calibration, mean_and_spread


def read_measured_pairs(path: str | os.PathLike, ref_column: str, alt_column: str,
                        measured_column: str) -> tuple[list[str], list[str], np.ndarray, str]:
    """Reference and variant sequences with measured deltas from a header TSV/CSV.

    Returns
    -------
    ref, alt : list of str (n,)
    measured : (n,) float64
    source : the file name for messages
    """
    from crmnet.data.readers import parse_value
    from crmnet.design.variants import read_pairs

    source = str(path)
    header, rows, lines = read_pairs(path, ref_column, alt_column, measured_column)
    ri, ai, mi = header.index(ref_column), header.index(alt_column), header.index(measured_column)
    for r, line in zip(rows, lines):
        if not r[ri].strip() or not r[ai].strip():
            raise InputError(path, "empty sequence in a pair", line=line)
    measured = np.array([parse_value(r[mi], f"measured Δ ({measured_column})", source, k)
                         for r, k in zip(rows, lines)], dtype=np.float64)
    return [r[ri].strip() for r in rows], [r[ai].strip() for r in rows], measured, source


def calibrate_pairs(model, pairs, out, *, ref_column: str = "reference", alt_column: str = "variant",
                    measured_column: str = "measured", medium: str | None = None, method: str = "auto",
                    seed: int = 0, batch_size: int = 1024, device=None, overwrite: bool = False) -> Calibration:
    """Calibrate ``model``'s Δ on pairs with measured deltas and write the checkpoint ``out``.

    The expression calibration the checkpoint may carry is kept beside the Δ calibration.

    Returns
    -------
    Calibration
        ``target="delta"``.
    """
    from crmnet.design.variants import variant_effects
    from crmnet.evaluation.calibrate import describe_source, save_calibrated

    ref, alt, measured, source = read_measured_pairs(pairs, ref_column, alt_column, measured_column)
    effects = variant_effects(model, ref, alt, batch_size=batch_size, device=device, source=source)
    k = effects.alt_members.shape[1]
    pred, spread = mean_and_spread(effects.alt_members - effects.ref_members)
    cal = fit_calibration(measured, pred, spread if k > 1 else None, method, seed)
    cal = describe_source(cal.replace(members=k, target="delta"), pairs, None, medium)
    save_calibrated(model, cal, out, overwrite)
    return cal

