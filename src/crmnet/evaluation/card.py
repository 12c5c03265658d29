"""A model card's reference distribution: the model's own predictions on the published test sets.

:func:`attach_reference` predicts the test sets of the card's medium (complex-native + complex-random, or
the defined pair) found under the data directory, and stores their 101 quantiles in the checkpoint's
card, so that every later prediction can carry its percentile (:func:`crmnet.models.card.percentiles`).
For the released models these predictions are the published ones (``crmnet import`` reproduces them).
"""

from __future__ import annotations

import os

import numpy as np

from crmnet.data.catalogue import TEST_SETS
from crmnet.errors import InputError
from crmnet.models.card import MEDIA, ModelCard, card_of, quantiles


def reference_card(model, card: ModelCard, directory: str | os.PathLike | None = None,
                   batch_size: int = 1024) -> ModelCard | None:
    """``card`` with the quantiles of ``model``'s predictions on its medium's test sets.

    Parameters
    ----------
    model : nn.Module
        A loaded model.
    card : ModelCard
        Its card (the medium picks the test sets).
    directory : path, optional
        The data directory (default: ``$CRMNET_DATA_DIR``, else ``./data``).
    batch_size : int
        Prediction batch size.

    Returns
    -------
    ModelCard or None
        None when the medium is not recorded or none of its test sets is under ``directory``.
    """
    from crmnet.evaluation.evaluate import load_test_set
    from crmnet.evaluation.predict import predict

    medium = next((k for k, v in MEDIA.items() if v == card.medium), None)
    preds, used = [], []
    for name, test in TEST_SETS.items():
        if test.medium != medium:
            continue
        try:
            loaded = load_test_set(name, directory)
        except InputError:  # not downloaded
            continue
        preds.append(predict(model, loaded.sequences, batch_size))
        used.append(name)
    if not preds:
        return None
    values = np.concatenate(preds)
    return card.replace(reference=quantiles(values),
                        reference_set=f"the {' + '.join(used)} test sets ({len(values):,} sequences)")


def attach_reference(path: str | os.PathLike, directory: str | os.PathLike | None = None) -> ModelCard | None:
    """Store the reference distribution in the card of the checkpoint at ``path`` (rewritten atomically).

    Parameters
    ----------
    path : path
        A checkpoint crmnet wrote (import, download).
    directory : path, optional
        The data directory holding the test sets.

    Returns
    -------
    ModelCard or None
        The new card, or None (nothing rewritten) when the checkpoint has no medium or no test set was found.
    """
    from crmnet.models.checkpoint import load_checkpoint, write_card

    model = load_checkpoint(path)
    card = reference_card(model, card_of(model), directory)
    if card is not None:
        write_card(path, card.to_dict())
    return card
