"""crmnet's models: CRMnet, its ablations and presets, and the peer models.

crmnet's models: CRMnet (exact port of the authors' model, its ablations and CPU presets) and the
peer models, all built by name through the registry.

>>> from crmnet.models import build_model
>>> model = build_model("crmnet-small", encoder_dropout=0.2)
"""

from crmnet.models.blocks import ModelConfig, count_parameters, flops_per_sample
from crmnet.models.crmnet import CRMnet, CRMnetConfig
from crmnet.models.registry import MODELS, ModelEntry, build_model, list_models, model_from_config

__all__ = [
    "MODELS",
    "CRMnet",
    "CRMnetConfig",
    "ModelConfig",
    "ModelEntry",
    "build_model",
    "count_parameters",
    "flops_per_sample",
    "list_models",
    "model_from_config",
]
