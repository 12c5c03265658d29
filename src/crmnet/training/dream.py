"""The DREAM 2022 training recipe of the Prix Fixe networks (dream-cnn, dream-rnn, dream-attn) as a TrainConfig.

The organisers' ``AutosomeTrainer`` (de-Boer-Lab/random-promoter-dream-challenge-2022,
``prixfixe/autosome/trainer.py`` and the DREAMNets notebook): AdamW with weight decay 0.01; ``OneCycleLR``
with max_lr 0.005 (0.001 for the attention core), div_factor 25 (start at max_lr / 25), pct_start 0.3, two
cosine phases, final_div_factor 1e4 (end at max_lr / 25 / 1e4); batch 1024; 80 epochs of 1,000 batches =
80,000 steps (81.92 M samples, 12.2 passes over the 6,739,258 training sequences); the loss is the soft
classification of :meth:`crmnet.models.legnet.SoftBinModel.compute_loss` (the model's own); the best
validation epoch is kept. crmnet counts epochs as passes over the store, so the same number of samples
is ``max_epochs = 12`` with the warm-up at 30 % of it. Not reproduced: OneCycleLR's momentum cycling of
AdamW's beta1 (0.95 → 0.85 → 0.95).
"""

from __future__ import annotations

from typing import Any

from crmnet.training.config import TrainConfig

DREAM_MODELS = ("dream-cnn", "dream-rnn", "dream-attn")
MAX_LR = {"dream-cnn": 0.005, "dream-rnn": 0.005, "dream-attn": 0.001}
DIV_FACTOR, FINAL_DIV_FACTOR, PCT_START = 25.0, 1e4, 0.3


def dream_recipe(model: str, max_epochs: int = 12) -> dict[str, Any]:
    """The DREAM 2022 recipe's TrainConfig fields for one of :data:`DREAM_MODELS`.

    Parameters
    ----------
    model : str
        ``dream-cnn``, ``dream-rnn`` or ``dream-attn``.
    max_epochs : int
        Passes over the store (12: the organisers' 80,000 steps of 1,024 on the 6.74 M sequences).

    Returns
    -------
    dict
        TrainConfig fields (model, optimizer, weight decay, schedule and its rates, epochs, batch size).
    """
    if model not in MAX_LR:
        raise ValueError(f"the DREAM 2022 recipe is for {', '.join(DREAM_MODELS)}, not {model!r}")
    peak = MAX_LR[model]
    return {
        "model": model, "optimizer": "adamw", "weight_decay": 0.01, "schedule": "onecycle",
        "lr_start": peak / DIV_FACTOR, "lr_peak": peak, "lr_end": peak / DIV_FACTOR / FINAL_DIV_FACTOR,
        "warmup_epochs": round(PCT_START * max_epochs, 6), "max_epochs": max_epochs, "patience": max_epochs,
        "batch_size": 1024, "loss": "auto", "val_metric": "pearson_r",
    }


def dream_config(model: str, store: str, max_epochs: int = 12, **overrides: Any) -> TrainConfig:
    """A :class:`~crmnet.training.config.TrainConfig` of :func:`dream_recipe` on ``store`` (+ ``overrides``)."""
    return TrainConfig.from_dict({**dream_recipe(model, max_epochs), "store": store, **overrides})
