"""The training loss, owned here alone: Huber (configurable δ), MSE, or the model's own ``compute_loss``.

Which loss ``"auto"`` means is decided once, by :func:`resolve_loss`:

* a model with a ``compute_loss(x, y) -> (loss, prediction)`` method trains with it: LegNet's
  Kullback-Leibler loss on soft bin labels, which needs the bin logits and cannot be written on
  ``forward``'s output;
* otherwise the model's config names it (``default_loss``, a class attribute): the Keras-born peers
  (:class:`~crmnet.models.baselines.PeerConfig` models: Vaishnav et al.'s two models, DeepSEA, DanQ,
  DeepATT) train with MSE, as their authors did; CRMnet with Huber, as the CRMnet paper (the
  :class:`~crmnet.models.blocks.ModelConfig` default, also used for a model without a config).

``--loss huber --huber-delta D`` applies to every model, LegNet included (on its expected-bin output).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crmnet.errors import CrmnetError


def resolve_loss(model: nn.Module, loss: str = "auto", huber_delta: float = 1.0) -> str:
    """The loss a model trains with: ``"own"`` (its ``compute_loss``), ``"huber"`` or ``"mse"``.

    Parameters
    ----------
    model : nn.Module
        The model to train.
    loss : {"auto", "huber", "mse"}
        The configured loss (:attr:`crmnet.training.config.TrainConfig.loss`).
    huber_delta : float
        The configured Huber δ: anything but 1 with a loss that is not Huber is refused, so a setting is
        never silently ignored.

    Returns
    -------
    str
        ``"own"``, ``"huber"`` or ``"mse"``.
    """
    kind = loss
    if loss == "auto":
        if callable(getattr(model, "compute_loss", None)):
            kind = "own"
        else:
            kind = getattr(getattr(model, "config", None), "default_loss", "huber")
    if kind != "huber" and huber_delta != 1.0:
        raise CrmnetError(f"huber_delta {huber_delta} has no effect: {type(model).__name__} trains with "
                          f"{'its own loss' if kind == 'own' else kind} (loss {loss!r}); pass --loss huber")
    return kind


class LossModule(nn.Module):
    """The module a training step runs (and DDP wraps, so DDP sees one forward per step).

    ``forward(x: (B, C, L), y: (B,)) -> (scalar float32 loss, (B,) predictions)``. Its ``state_dict``
    keys gain a ``model.`` prefix: save the model's own state, not this wrapper's.

    Parameters
    ----------
    model : nn.Module
        The model.
    kind : {"own", "huber", "mse"}
        From :func:`resolve_loss`.
    huber_delta : float
        δ of the Huber loss.
    """

    def __init__(self, model: nn.Module, kind: str, huber_delta: float = 1.0):
        super().__init__()
        if kind not in ("own", "huber", "mse"):
            raise ValueError(f"loss kind must be own, huber or mse, not {kind!r}")
        self.model = model
        self.kind = kind
        self.huber_delta = float(huber_delta)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and predictions of a batch: x (B, C, L), y (B,) → (scalar float32 loss, (B,) predictions)."""
        if self.kind == "own":
            value, pred = self.model.compute_loss(x, y)
            return value.float(), pred
        pred = self.model(x)
        if self.kind == "mse":
            return F.mse_loss(pred.float(), y), pred
        return F.huber_loss(pred.float(), y, delta=self.huber_delta), pred


def loss_module(model: nn.Module, loss: str = "auto", huber_delta: float = 1.0) -> LossModule:
    """:class:`LossModule` for ``model`` with the loss :func:`resolve_loss` chooses.

    Parameters
    ----------
    model : nn.Module
        The model to train.
    loss : {"auto", "huber", "mse"}
        The configured loss.
    huber_delta : float
        δ of the Huber loss.

    Returns
    -------
    LossModule
        ``forward(x, y) -> (loss, predictions)``.
    """
    return LossModule(model, resolve_loss(model, loss, huber_delta), huber_delta)
