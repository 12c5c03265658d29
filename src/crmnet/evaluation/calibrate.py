"""Models with intervals: ensemble mean and spread, calibrating a checkpoint, predicting with intervals.

* :func:`predict_spread` — the mean and the members' spread of a model or ensemble (spread 0 for one model).
* :func:`predict_interval` — the library call behind ``crmnet predict --interval``: prediction, lower and
  upper at any level in (0, 1), for a calibrated checkpoint (:mod:`crmnet.evaluation.conformal`).
* :func:`calibrate_checkpoint` — ``crmnet calibrate``: predict a labelled file (any file ``evaluate`` reads,
  with its column options, or a registered test set by name), fit the calibration and write an ordinary
  checkpoint that carries it.

Variant effects are calibrated in :mod:`crmnet.design.uncertainty` (``crmnet calibrate --pairs``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from crmnet.evaluation.conformal import (
    KEYS,
    Calibration,
    fit_calibration,
    mean_and_spread,
    require_calibration,
)


def predict_spread(model, sequences, batch_size: int = 1024, device=None, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Mean prediction and members' spread of ``model`` (an ensemble, or one model: spread 0).

    Parameters
    ----------
    model : nn.Module
    sequences : list of str, or (n, L) uint8 codes in the model's encoding
    batch_size, device, kwargs : as :func:`crmnet.evaluation.predict.predict`

    Returns
    -------
    prediction, spread : (n,) float64
    """
    from crmnet.evaluation.predict import predict

    return mean_and_spread(predict(model, sequences, batch_size, device, members=True, **kwargs))


def predict_interval(model, sequences, level: float, *, batch_size: int = 1024, device=None,
                     checkpoint: str | None = None) -> dict[str, np.ndarray]:
    """Predictions with their conformal interval at ``level`` (a calibrated model; see ``crmnet calibrate``).

    Parameters
    ----------
    model : nn.Module
        Loaded from a calibrated checkpoint (``model.checkpoint_meta`` holds the calibration).
    sequences : list of str
    level : float in (0, 1)
    batch_size : sequences per forward pass
    device : torch device (None: where the model is)
    checkpoint : the file name for the error when the model has no calibration

    Returns
    -------
    dict
        ``prediction``, ``lower``, ``upper`` and ``spread``, each (n,) float64.
    """
    cal = require_calibration(model, checkpoint)
    pred, spread = predict_spread(model, sequences, batch_size, device)
    lower, upper = cal.interval(pred, level, spread)
    return {"prediction": pred, "lower": lower, "upper": upper, "spread": spread}


def describe_source(cal: Calibration, path, test_set: str | None = None, medium: str | None = None) -> Calibration:
    """``cal`` with its calibration set's file name, SHA-256, test-set name and medium filled in."""
    from crmnet.data.catalogue import TEST_SETS
    from crmnet.fsutil import file_digest

    if medium is None and test_set in TEST_SETS:
        medium = TEST_SETS[test_set].medium
    return cal.replace(source=Path(path).name, sha256=file_digest(path), test_set=test_set, medium=medium)


def save_calibrated(model, cal: Calibration, out, overwrite: bool = False) -> None:
    """Write ``model`` with ``cal`` added to its checkpoint's ``extra`` (other calibrations are kept)."""
    from crmnet.models.checkpoint import save_checkpoint

    meta = getattr(model, "checkpoint_meta", None) or {}
    extra = {**(meta.get("extra") or {}), KEYS[cal.target]: cal.to_dict()}
    save_checkpoint(out, model, provenance=meta.get("provenance"), metrics=meta.get("metrics"), extra=extra,
                    overwrite=overwrite)


def calibrate_checkpoint(model, data: str, out: str | os.PathLike, *, data_dir=None, columns=None,
                         medium: str | None = None, method: str = "auto", seed: int = 0,
                         batch_size: int = 1024, device=None, overwrite: bool = False,
                         progress: bool = False) -> Calibration:
    """Calibrate ``model`` on a labelled set and write the calibrated checkpoint ``out``.

    Parameters
    ----------
    model : nn.Module
        A loaded checkpoint (an ensemble gets a normalised score where it pays, see
        :func:`crmnet.evaluation.conformal.fit_calibration`).
    data : a registered test-set name or a labelled file (as ``crmnet evaluate --test`` reads it)
    data_dir, columns : as :func:`crmnet.evaluation.testsets.resolve_test`
    medium : the calibration set's medium (default: the registered test set's, else unknown)
    method, seed : as :func:`crmnet.evaluation.conformal.fit_calibration`
    out : the calibrated checkpoint to write
    batch_size : sequences per forward pass
    device : torch device (None: where the model is)
    overwrite : replace an existing ``out``
    progress : show the prediction's progress

    Returns
    -------
    Calibration
    """
    from crmnet.data.catalogue import TEST_SETS
    from crmnet.evaluation.predict import predict_at_lines
    from crmnet.evaluation.testsets import resolve_test
    from crmnet.progress import progress as progress_bar

    test = resolve_test(data, data_dir, columns)
    with progress_bar(total=len(test), desc=f"predict {test.name}", unit="seq", enable=progress) as bar:
        members = predict_at_lines(model, test.sequences, test.lines, batch_size=batch_size, device=device,
                                   source=str(test.source), on_batch=bar.update, members=True)
    pred, spread = mean_and_spread(members)
    cal = fit_calibration(test.measured, pred, spread if members.shape[1] > 1 else None, method, seed)
    cal = describe_source(cal.replace(members=int(members.shape[1])), test.source,
                          data if data in TEST_SETS else None, medium)
    save_calibrated(model, cal, out, overwrite)
    return cal


def delta_interval(model, effects, level: float, checkpoint: str | None = None) -> dict:
    """Intervals for the Δ of :func:`crmnet.design.variants.variant_effects`.

    From the checkpoint's Δ calibration where it has one, else the union bound of its expression calibration
    (:mod:`crmnet.design.uncertainty` explains both).

    Parameters
    ----------
    model : nn.Module
        The model that predicted ``effects``, loaded from a calibrated checkpoint.
    effects : VariantEffects
        With the members' predictions (``ref_members``, ``alt_members``: (n, K)).
    level : float in (0, 1)
    checkpoint : its file name, for the error when it has no calibration

    Returns
    -------
    dict
        ``lower``, ``upper``, ``spread`` (the members' Δ spread), each (n,) float64, and ``basis``: a
        sentence saying which interval this is.
    """
    from crmnet.evaluation.conformal import check_level

    level = check_level(level)
    delta, spread = mean_and_spread(effects.alt_members - effects.ref_members)
    cal = require_calibration(model, checkpoint, "delta")
    if cal.target == "delta":
        lower, upper = cal.interval(delta, level, spread)
        basis = (f"Δ calibration ({cal.method}) on {cal.n:,} measured pairs of {cal.source}: covers the measured Δ "
                 f"with probability ≥ {level:g} for pairs exchangeable with those")
        return {"lower": lower, "upper": upper, "spread": spread, "basis": basis}
    half_level = 1 - (1 - level) / 2
    _, ref_spread = mean_and_spread(effects.ref_members)
    _, alt_spread = mean_and_spread(effects.alt_members)
    half = cal.halfwidth(half_level, ref_spread) + cal.halfwidth(half_level, alt_spread)
    basis = (f"no Δ calibration: union bound of two expression intervals at {half_level:g} (calibrated on "
             f"{cal.n:,} sequences of {cal.source}); covers the difference of two independent measurements with "
             f"probability ≥ {level:g}, conservative because it ignores errors the two sequences share; "
             f"calibrate on measured pairs (crmnet calibrate --pairs) for tighter intervals")
    return {"lower": delta - half, "upper": delta + half, "spread": spread, "basis": basis}

