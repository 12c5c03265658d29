"""The prediction table, built one way for ``crmnet predict`` and the web page's Predictions.

A row is ``id, sequence``, then for each model: ``prediction``; ``spread`` for an ensemble (its members'
standard deviation); ``lower, upper`` with a conformal interval (:mod:`crmnet.evaluation.conformal`); and
what the model card adds, ``percentile`` and ``range_flag`` (:func:`crmnet.models.card.card_columns`).
Numbers keep 7 significant digits (a float32's precision); lines are written by
:func:`crmnet.tables.tsv_row`. :func:`crmnet.evaluation.predict.predict_file` streams these rows chunk by
chunk; the page (:func:`crmnet.serve.analyses.predict_job`) builds the same rows, one model's columns
after another (suffixed ``_<model>`` when there are several), so its download for one model is the file
``crmnet predict`` writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crmnet.models.card import ModelCard, card_columns, card_of
from crmnet.tables import tsv_row

ID_COLUMNS = ("id", "sequence")


@dataclass(frozen=True)
class PredictionColumns:
    """The columns one model contributes to a prediction table.

    card: the model's card. ensemble: add ``spread``. calibration, level: the model's conformal
    calibration and the interval's level (None: no interval). suffix: appended to every column name.
    """

    card: ModelCard
    ensemble: bool = False
    calibration: Any = None
    level: float | None = None
    suffix: str = ""

    @classmethod
    def of(cls, model, interval: float | None = None, suffix: str = "") -> PredictionColumns:
        """The columns of ``model``'s predictions.

        Parameters
        ----------
        model : nn.Module
            A loaded model or ensemble (its card from :func:`crmnet.models.card.card_of`).
        interval : float, optional
            A level in (0, 1): add ``lower`` and ``upper`` (the model must carry a calibration).
        suffix : str
            Appended to each column name (``_<model>`` on a page with several models).

        Returns
        -------
        PredictionColumns
        """
        from crmnet.evaluation.conformal import check_level, require_calibration
        from crmnet.models.ensemble import n_members

        cal = None if interval is None else require_calibration(model, None)
        level = None if interval is None else check_level(interval)
        return cls(card_of(model), n_members(model) > 1, cal, level, suffix)

    @property
    def names(self) -> list[str]:
        """The column names, in table order."""
        base = ["prediction", *(["spread"] if self.ensemble else []),
                *(["lower", "upper"] if self.calibration is not None else []), *card_columns(self.card, [])]
        return [f"{name}{self.suffix}" for name in base]

    def cells(self, members: np.ndarray) -> tuple[np.ndarray, dict[str, list[str]]]:
        """The model's predictions and their cells.

        Parameters
        ----------
        members : (n, K) array of float
            Each of the K ensemble members' predictions (K = 1 for one model), as
            :func:`crmnet.evaluation.predict.predict` returns them with ``members=True``.

        Returns
        -------
        preds : (n,) float64
            The members' mean: the prediction.
        cells : dict
            Column name (as :attr:`names`) → (n,) cells as text, in table order.
        """
        from crmnet.evaluation.conformal import mean_and_spread

        preds, spread = mean_and_spread(members)
        numbers = [preds, *([spread] if self.ensemble else []),
                   *(self.calibration.interval(preds, self.level, spread) if self.calibration is not None else [])]
        texts = [[f"{v:.7g}" for v in np.asarray(col).tolist()] for col in numbers]
        texts += list(card_columns(self.card, preds).values())
        return preds, dict(zip(self.names, texts, strict=True))


def header_line(tables: Sequence[PredictionColumns]) -> str:
    """The table's header line: ``id, sequence`` and each model's column names.

    Parameters
    ----------
    tables : sequence of PredictionColumns
        One per model, in table order.

    Returns
    -------
    str
        A TSV line ending in a newline.
    """
    return tsv_row([*ID_COLUMNS, *(name for table in tables for name in table.names)])


def row_cells(columns: Sequence[dict[str, list[str]]]) -> list[list[str]]:
    """Each row's prediction cells (without id and sequence): the models' columns side by side.

    Parameters
    ----------
    columns : sequence of dict
        Each model's :meth:`PredictionColumns.cells`, in table order.

    Returns
    -------
    list of list of str
        (n,) rows of cells.
    """
    flat = [cells for model in columns for cells in model.values()]
    return [list(row) for row in zip(*flat, strict=True)]


def prediction_lines(ids: Sequence[str], sequences: Sequence[str], columns: Sequence[dict[str, list[str]]]) -> list[str]:
    """The table's data lines.

    Parameters
    ----------
    ids, sequences : (n,) sequences of str
        Each row's identifier and sequence (as given).
    columns : sequence of dict
        Each model's :meth:`PredictionColumns.cells`, in table order.

    Returns
    -------
    list of str
        (n,) TSV lines ending in newlines.
    """
    return [tsv_row([i, s, *cells]) for i, s, cells in zip(ids, sequences, row_cells(columns), strict=True)]
