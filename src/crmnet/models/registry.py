"""The model registry: every model crmnet can build, by name.

``MODELS`` maps a name to a :class:`ModelEntry` (config class, model class, preset overrides of the
config defaults, one-line description). ``build_model(name, **overrides)`` builds the preset with any
config field overridden; an unknown name or field is an error that lists the valid ones.
``model_from_config(name, config_dict)`` rebuilds a model from a saved, fully resolved config (what
checkpoints store).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from crmnet.models.baselines import (
    DanQ,
    DanQConfig,
    DeepATT,
    DeepATTConfig,
    DeepSEA,
    DeepSEAConfig,
    VaishnavCNN,
    VaishnavCNNConfig,
    VaishnavTransformer,
    VaishnavTransformerConfig,
)
from crmnet.models.blocks import ModelConfig
from crmnet.models.crmnet import CRMnet, CRMnetConfig
from crmnet.models.dream import DreamAttn, DreamAttnConfig, DreamCNN, DreamCNNConfig, DreamRNN, DreamRNNConfig
from crmnet.models.legnet import LegNet, LegNetConfig, released_preset
from crmnet.models.vaishnav import (
    DeepATTKeras,
    DeepATTKerasConfig,
    VaishnavTransformerKeras,
    VaishnavTransformerKerasConfig,
)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its config and module classes, a one-line description and the preset.

    ``preset`` holds the config fields that differ from the config class' defaults (e.g. the narrower
    CPU-sized CRMnets); :meth:`config` applies them.
    """

    config_class: type[ModelConfig]
    model_class: type[nn.Module]
    description: str
    preset: dict[str, Any] = field(default_factory=dict)

    def config(self, **overrides: Any) -> ModelConfig:
        """The preset's config with ``overrides`` applied (unknown fields are errors)."""
        return self.config_class().replace(**{**self.preset, **overrides})


# CPU-friendly CRMnet: the same module, narrower and shallower (kernel 7, small heads, fewer
# transformers). crmnet-small: 208,077 parameters, 8.2 MFLOP per sequence (full model: 1,303 MFLOP);
# crmnet-tiny: 80,743 parameters, 3.2 MFLOP. `crmnet models` prints them.
_SMALL = {
    "encoder_channels": (16, 24, 32, 48),
    "kernel_size": 7,
    "heads": 4,
    "head_dim": 8,
    "ff_dim": 48,
    "transformer_pairs": 1,
    "decoder_channels": 16,
    "head_channels": (16, 8),
    "mlp_units": (64, 32),
    "mlp_dropout": (0.1, 0.1),
}
_TINY = {
    "encoder_channels": (8, 16, 32, 32),
    "kernel_size": 7,
    "heads": 2,
    "head_dim": 16,
    "ff_dim": 32,
    "transformer_pairs": 0,
    "decoder_channels": 8,
    "head_channels": (8, 4),
    "mlp_units": (32,),
    "mlp_dropout": (0.1,),
}

MODELS: dict[str, ModelEntry] = {
    "crmnet": ModelEntry(CRMnetConfig, CRMnet, "CRMnet as released by the authors (Ding et al. 2023)"),
    "crmnet-small": ModelEntry(CRMnetConfig, CRMnet, "CPU-friendly CRMnet (narrow, 4 transformers)", _SMALL),
    "crmnet-tiny": ModelEntry(
        CRMnetConfig, CRMnet, "smallest CRMnet for tests and demos (2 transformers)", _TINY
    ),
    "crmnet-no-transformer": ModelEntry(
        CRMnetConfig, CRMnet, "CRMnet ablation: no transformer bottleneck", {"transformer": False}
    ),
    "crmnet-no-se": ModelEntry(CRMnetConfig, CRMnet, "CRMnet ablation: no squeeze-excitation", {"se": False}),
    "crmnet-additive-pe": ModelEntry(
        CRMnetConfig,
        CRMnet,
        "CRMnet with the paper text's additive sinusoidal positions",
        {"position": "additive"},
    ),
    "vaishnav-transformer": ModelEntry(
        VaishnavTransformerConfig, VaishnavTransformer, "Vaishnav et al. 2022 transformer ('tpu model')"
    ),
    "vaishnav-cnn": ModelEntry(
        VaishnavCNNConfig, VaishnavCNN, "Vaishnav et al. 2022 strand-aware CNN ('gpu model')"
    ),
    "deepsea": ModelEntry(DeepSEAConfig, DeepSEA, "DeepSEA adapted to regression"),
    "danq": ModelEntry(DanQConfig, DanQ, "DanQ adapted to regression"),
    "deepatt": ModelEntry(DeepATTConfig, DeepATT, "DeepATT adapted to regression"),
    "legnet": ModelEntry(
        LegNetConfig, LegNet, "LegNet (Penzar et al. 2023): soft classification over 18 bins"
    ),
    "legnet-released": ModelEntry(
        LegNetConfig,
        LegNet,
        "LegNet as released for Vaishnav data: bilinear SE, the authors' 150-nt plasmid encoding",
        released_preset(),
    ),
    # The DREAM 2022 community baselines (Rafi et al. 2025, Prix Fixe): autosome.org's input, loss and output.
    "dream-cnn": ModelEntry(DreamCNNConfig, DreamCNN, "DREAM-CNN (Rafi et al. 2025): BHI convs + LegNet core"),
    "dream-rnn": ModelEntry(DreamRNNConfig, DreamRNN, "DREAM-RNN (Rafi et al. 2025): BHI convs + BiLSTM core"),
    "dream-attn": ModelEntry(DreamAttnConfig, DreamAttn, "DREAM-Attn (Rafi et al. 2025): conformer core"),
    # Keras semantics of the released weights (crmnet import); outputs in expression units.
    "deepatt-keras": ModelEntry(
        DeepATTKerasConfig, DeepATTKeras, "DeepATT as released by Vaishnav et al. 2022 (Keras semantics)"
    ),
    "vaishnav-transformer-keras": ModelEntry(
        VaishnavTransformerKerasConfig,
        VaishnavTransformerKeras,
        "Vaishnav et al. 2022 transformer as released (Keras semantics)",
    ),
}


#: the ``model`` name of an ensemble checkpoint (:mod:`crmnet.models.ensemble`; not an entry of MODELS)
ENSEMBLE = "ensemble"


def registry_name(model: nn.Module) -> str:
    """The registry name of ``model``: the one it was built under, else the first entry of its class.

    Any entry of the same class rebuilds it exactly, because the checkpoint stores the full config.
    """
    name = getattr(model, "model_name", None)
    if name in MODELS or name == ENSEMBLE:
        return name
    for key, entry in MODELS.items():
        if type(model) is entry.model_class:
            return key
    raise ValueError(
        f"{type(model).__name__} is not a registered model class; cannot save it as a crmnet checkpoint"
    )


def list_models() -> list[str]:
    """Registered model names, in registry order.

    Returns
    -------
    list of str
        The keys of :data:`MODELS`.
    """
    return list(MODELS)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; a ValueError listing the known names (and the closest) otherwise."""
    if isinstance(name, str) and name in MODELS:
        return MODELS[name]
    close = difflib.get_close_matches(str(name), MODELS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown model {name!r}; {hint}known models: {', '.join(MODELS)}")


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with config fields ``overrides`` replacing the preset's.

    Parameters
    ----------
    name : str
        A name in :data:`MODELS` (``crmnet models`` lists them).
    **overrides
        Config fields of that model (e.g. ``se=False``, ``length=110``); an unknown field or a wrong type is
        an error naming the field.

    Returns
    -------
    nn.Module
        The model in training mode, initialised from torch's current RNG state (seed it for reproducible
        weights). ``model.config`` is the resolved config, ``model.encoding`` its input encoding; its
        ``forward`` maps one-hot ``(B, C, L)`` in that encoding to ``(B,)`` predictions.
    """
    entry = get_entry(name)
    try:
        config = entry.config(**overrides)
    except ValueError as exc:
        raise ValueError(f"model {name!r}: {exc}") from None
    model = entry.model_class(config)
    model.model_name = name
    return model


def model_from_config(name: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild model ``name`` from a full config dict (as saved in a checkpoint or ``config.json``).

    Parameters
    ----------
    name : str
        A name in :data:`MODELS`.
    config : dict
        Every field of the model's config (strictly typed: unknown keys and wrong types are errors).

    Returns
    -------
    nn.Module
        The model, freshly initialised, in training mode.
    """
    entry = get_entry(name)
    model = entry.model_class(entry.config_class.from_dict(config))
    model.model_name = name
    return model
