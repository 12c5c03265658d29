"""crmnet: CRMnet (Ding et al. 2023) and its peer models in PyTorch, from raw Vaishnav et al. 2022 data
to predictions, metrics and motifs.

The public API is re-exported here and imported lazily, so ``import crmnet`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "Encoding": "crmnet.encoding",
    "encode": "crmnet.encoding",
    "onehot": "crmnet.encoding",
    "InputError": "crmnet.errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'crmnet' has no attribute {name!r}")


def __dir__():
    return __all__
