"""A model card's reference distribution: the model's own predictions on a named set of sequences.

:func:`attach_reference` predicts the test sets of the card's medium (complex-native + complex-random, or
the defined pair) found under the data directory, and stores their 101 quantiles in the checkpoint's
card, so that every later prediction can carry its percentile (:func:`crmnet.models.card.percentiles`).
For the released models these predictions are the published ones (``crmnet import`` reproduces them).
A model crmnet trains gets its reference from its store's validation split instead
(:func:`split_reference_card`, called when training ends).
"""

from __future__ import annotations

import os
from pathlib import Path

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


def split_reference_card(model, card: ModelCard, store, split: str = "val", batch_size: int = 1024,
                         device=None) -> ModelCard:
    """``card`` with the quantiles of ``model``'s predictions on one split of a crmnet store.

    Parameters
    ----------
    model : nn.Module
        The model (eval mode during the pass; its training flag is restored).
    card : ModelCard
        Its card so far.
    store : crmnet.data.store.Store or path
        The store the model was trained on.
    split : {"val", "train", "all"}
        Which rows (the validation split: sequences the weights were not fitted to).
    batch_size : int
        Sequences per forward pass.
    device : str or torch.device, optional
        Where to run; None: where the model's parameters are.

    Returns
    -------
    ModelCard
        With ``reference`` (101 quantiles) and ``reference_set`` naming the store, the split and its size.
    """
    import torch

    from crmnet.data.loader import BatchLoader
    from crmnet.evaluation.predict import device_of

    dev = device_of(model, device)
    loader = BatchLoader(store, split, batch_size, encoding=model.encoding, shuffle=False, device=dev)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():  # fp32, as crmnet.evaluation.predict runs it
            values = np.concatenate([model(x).float().reshape(-1).cpu().numpy() for x, _ in loader])
    finally:
        model.train(was_training)
    name = {"val": "validation", "train": "training", "all": "whole"}[split]
    where = Path(loader.store.path).resolve().name
    return card.replace(reference=quantiles(values),
                        reference_set=f"the {name} split of the crmnet store '{where}' ({len(values):,} sequences)")


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
