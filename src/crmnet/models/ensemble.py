"""Ensembles: several trained models read as one, predicting their mean and reporting their spread.

An :class:`Ensemble` holds whole member models (each with its own weights, output scaling and, where
its authors used it, its own reverse-complement averaging: that stays inside the member, the ensemble
only averages what the members predict). Its forward pass returns the members' mean, so every consumer
of a model (``crmnet predict``, ``evaluate``, the design analyses) uses an ensemble unchanged;
:meth:`Ensemble.member_outputs` returns each member's prediction, from which :func:`spread` is the
members' standard deviation (population, ``ddof=0``: identical members give exactly 0).

The members must read the same input layout (one :class:`~crmnet.data.encoding.Encoding`), because the
ensemble's input is one one-hot batch; e.g. several seeds of one architecture, or DeepATT with another
model in Vaishnav's 110-nt layout. An ensemble is saved as an ordinary checkpoint (model name
:data:`ENSEMBLE`, ``model_config`` listing each member's registry name and config, the members' weights
under ``members.<i>.``), so ``load_checkpoint`` rebuilds it and it can be calibrated like one model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from crmnet.config import Config
from crmnet.models.registry import ENSEMBLE, model_from_config, registry_name


@dataclass
class EnsembleConfig(Config):
    """members: one ``{"model": registry name, "model_config": its resolved config}`` per member."""

    members: tuple[dict, ...] = ()


class Ensemble(nn.Module):
    """The mean of ``members`` (at least two models with the same ``encoding``).

    Parameters
    ----------
    members : sequence of nn.Module
        Registered models; a member that is itself an ensemble contributes its own members.
    """

    model_name = ENSEMBLE

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        flat = [m for member in members for m in (member.members if isinstance(member, Ensemble) else [member])]
        if len(flat) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(flat)}")
        first = flat[0].encoding
        for k, member in enumerate(flat[1:], start=2):
            if member.encoding != first:
                raise ValueError(f"member {k} reads another input layout than member 1 ({member.encoding.length} "
                                 f"nt, channels {member.encoding.channels}, padded at the {member.encoding.pad} vs "
                                 f"{first.length} nt, {first.channels}, {first.pad}): the members of an ensemble "
                                 "must share one encoding")
        self.members = nn.ModuleList(flat)
        self.encoding = first

    @property
    def config(self) -> EnsembleConfig:
        """Each member's registry name and config (what a checkpoint stores; members must be registered)."""
        return EnsembleConfig(tuple({"model": registry_name(m), "model_config": m.config.to_dict()}
                                    for m in self.members))

    @classmethod
    def from_config(cls, config: dict) -> Ensemble:
        """Rebuild an ensemble (untrained members) from its saved ``model_config``."""
        cfg = EnsembleConfig.from_dict(config)
        return cls([model_from_config(m["model"], m["model_config"]) for m in cfg.members])

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's prediction: x (B, C, L) one-hot → (B, K)."""
        return torch.stack([m(x).reshape(len(x)) for m in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' mean: x (B, C, L) → (B,)."""
        return self.member_outputs(x).mean(dim=1)


def member_outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Every member's prediction (B, K) of an ensemble; a single model's (B, 1).

    Parameters
    ----------
    model : nn.Module
        A registered model or an :class:`Ensemble`.
    x : (B, C, L) tensor
        One-hot input in ``model.encoding``.

    Returns
    -------
    (B, K) tensor
    """
    if isinstance(model, Ensemble):
        return model.member_outputs(x)
    return model(x).reshape(len(x), 1)


def spread(members) -> torch.Tensor:
    """The members' standard deviation (population, ``ddof=0``): (B, K) → (B,); 0 for one member."""
    members = torch.as_tensor(members)
    return members.std(dim=1, correction=0) if members.shape[1] > 1 else members.new_zeros(len(members))



def n_members(model: nn.Module) -> int:
    """How many predictions :func:`member_outputs` gives per sequence: an ensemble's members, else 1."""
    return len(model.members) if isinstance(model, Ensemble) else 1
