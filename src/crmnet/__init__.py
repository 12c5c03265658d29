"""crmnet: CRMnet (Ding et al. 2023) and its peer models in PyTorch, from raw Vaishnav et al. 2022 data
to predictions, metrics and motifs.

The public API is re-exported here and imported lazily, so ``import crmnet`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# ``crmnet.predict`` must be the function, not the submodule of the same name (importing the submodule
# would otherwise rebind the attribute), so it alone is imported eagerly; it needs only numpy at import.
from crmnet.predict import predict as predict

# public name -> module that defines it
_API = {
    "Encoding": "crmnet.encoding",
    "encode": "crmnet.encoding",
    "onehot": "crmnet.encoding",
    "InputError": "crmnet.errors",
    "read_records": "crmnet.io",
    "read_fasta": "crmnet.io",
    "write_fasta": "crmnet.io",
    "SequenceTable": "crmnet.io",
    "prepare": "crmnet.store",
    "open_store": "crmnet.store",
    "Store": "crmnet.store",
    "BatchLoader": "crmnet.loader",
    "load_yeast_motifs": "crmnet.jaspar",
    "Motif": "crmnet.jaspar",
    "PAPER_MOTIFS": "crmnet.jaspar",
    "SimulatorConfig": "crmnet.simulate",
    "write_simulation": "crmnet.simulate",
    "build_model": "crmnet.models.registry",
    "list_models": "crmnet.models.registry",
    "MODELS": "crmnet.models.registry",
    "CRMnet": "crmnet.models.crmnet",
    "CRMnetConfig": "crmnet.models.crmnet",
    "count_parameters": "crmnet.models.blocks",
    "flops_per_sample": "crmnet.models.blocks",
    "read_checkpoint": "crmnet.checkpoint",
    "load_checkpoint": "crmnet.checkpoint",
    "save_checkpoint": "crmnet.checkpoint",
    "compute_metrics": "crmnet.metrics",
    "bootstrap_ci": "crmnet.metrics",
    "compare_models": "crmnet.metrics",
    "evaluate_model": "crmnet.evaluate",
    "peer_table": "crmnet.evaluate",
    "load_test_set": "crmnet.evaluate",
    "TEST_SETS": "crmnet.evaluate",
    "build_report": "crmnet.report",
    "AttributionConfig": "crmnet.interpret",
    "attribute": "crmnet.interpret",
    "figure5": "crmnet.interpret",
    "scan": "crmnet.motifs",
    "discover": "crmnet.motifs",
    "DiscoveryConfig": "crmnet.motifs",
    "tomtom_match": "crmnet.motifs",
    "TrainConfig": "crmnet.train",
    "TrainResult": "crmnet.train",
    "fit": "crmnet.train",
    "run_recipe": "crmnet.train",
    "WarmupCosine": "crmnet.schedule",
    "QuickstartConfig": "crmnet.quickstart",
    "run_quickstart": "crmnet.quickstart",
    "import_keras": "crmnet.keras_import",
    "read_keras": "crmnet.keras_import",
}

__all__ = ["predict", "__version__", *_API]  # noqa: PLE0604 (the names are _API's string keys)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'crmnet' has no attribute {name!r}")


def __dir__():
    return __all__
