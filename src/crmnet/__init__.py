"""crmnet: CRMnet (Ding et al. 2023) and its peer models in PyTorch.

From raw Vaishnav et al. 2022 data to predictions, metrics and motifs.

The public API is re-exported here and imported lazily, so ``import crmnet`` stays cheap.
"""

from __future__ import annotations

import importlib

from crmnet.version import __version__

# public name -> module that defines it
_API = {
    "predict": "crmnet.evaluation.predict",
    "Encoding": "crmnet.data.encoding",
    "encode": "crmnet.data.encoding",
    "onehot": "crmnet.data.encoding",
    "InputError": "crmnet.errors",
    "read_records": "crmnet.data.readers",
    "read_fasta": "crmnet.data.readers",
    "write_fasta": "crmnet.data.readers",
    "SequenceTable": "crmnet.data.readers",
    "prepare": "crmnet.data.store",
    "open_store": "crmnet.data.store",
    "Store": "crmnet.data.store",
    "BatchLoader": "crmnet.data.loader",
    "load_yeast_motifs": "crmnet.data.jaspar",
    "Motif": "crmnet.data.jaspar",
    "PAPER_MOTIFS": "crmnet.data.jaspar",
    "SimulatorConfig": "crmnet.data.simulate",
    "write_simulation": "crmnet.data.simulate",
    "build_model": "crmnet.models.registry",
    "list_models": "crmnet.models.registry",
    "MODELS": "crmnet.models.registry",
    "CRMnet": "crmnet.models.crmnet",
    "CRMnetConfig": "crmnet.models.crmnet",
    "count_parameters": "crmnet.models.blocks",
    "flops_per_sample": "crmnet.models.blocks",
    "read_checkpoint": "crmnet.models.checkpoint",
    "load_checkpoint": "crmnet.models.checkpoint",
    "save_checkpoint": "crmnet.models.checkpoint",
    "compute_metrics": "crmnet.evaluation.metrics",
    "bootstrap_ci": "crmnet.evaluation.metrics",
    "compare_models": "crmnet.evaluation.metrics",
    "adjust_pvalues": "crmnet.evaluation.metrics",
    "multimodality": "crmnet.evaluation.modality",
    "evaluate_model": "crmnet.evaluation.evaluate",
    "peer_table": "crmnet.evaluation.evaluate",
    "load_test_set": "crmnet.evaluation.testsets",
    "TEST_SETS": "crmnet.data.catalogue",
    "build_report": "crmnet.evaluation.report",
    "AttributionConfig": "crmnet.interpret.attribution",
    "attribute": "crmnet.interpret.attribution",
    "figure5": "crmnet.interpret.figure5",
    "scan": "crmnet.interpret.scanning",
    "discover": "crmnet.interpret.denovo",
    "DiscoveryConfig": "crmnet.interpret.kmers",
    "tomtom_match": "crmnet.interpret.matching",
    "TrainConfig": "crmnet.training.config",
    "TrainResult": "crmnet.training.config",
    "fit": "crmnet.training.run",
    "run_recipe": "crmnet.training.recipe",
    "WarmupCosine": "crmnet.training.schedule",
    "QuickstartConfig": "crmnet.workflows.quickstart",
    "run_quickstart": "crmnet.workflows.quickstart",
    "import_keras": "crmnet.zoo.keras",
    "variant_effects": "crmnet.design.variants",
    "saturation_mutagenesis": "crmnet.design.mutagenesis",
    "evolvability": "crmnet.design.evolvability",
    "evolve": "crmnet.design.evolve",
    "EvolveConfig": "crmnet.design.evolve",
    "ConstraintConfig": "crmnet.design.constraints",
    "Constraints": "crmnet.design.constraints",
    "DesignConfig": "crmnet.design.library",
    "LibraryScorer": "crmnet.design.library",
    "design_library": "crmnet.design.library",
    "write_library": "crmnet.design.library_io",
    "Objective": "crmnet.design.oracle",
    "ModelPredictor": "crmnet.design.oracle",
    "SimulatorPredictor": "crmnet.design.oracle",
    "noise_free_expression": "crmnet.data.simulate",
    "read_keras": "crmnet.zoo.keras",
    "import_model": "crmnet.zoo.importer",
    "ACGTAdapter": "crmnet.models.adapter",
    "export_model": "crmnet.models.export",
    "deep_lift_shap": "crmnet.interpret.methods",
    "integrated_gradients": "crmnet.interpret.methods",
    # uncertainty: docs/uncertainty.md
    "predict_interval": "crmnet.evaluation.calibrate",
    "calibrate_checkpoint": "crmnet.evaluation.calibrate",
    "fit_calibration": "crmnet.evaluation.conformal",
    "Calibration": "crmnet.evaluation.conformal",
    "Ensemble": "crmnet.models.ensemble",
    "load_models": "crmnet.models.checkpoint",
    "Penalty": "crmnet.design.oracle",
}

__all__ = ["__version__", *_API]  # noqa: PLE0604 (the names are _API's string keys)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'crmnet' has no attribute {name!r}")


def __dir__():
    return __all__
