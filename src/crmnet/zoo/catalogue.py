"""The released trained models crmnet can run: what each is, what its authors measured, how to get it.

One :class:`ReleasedModel` per released weight file. ``download`` is the ``crmnet download`` name that
fetches the file (pinned and verified, see :mod:`crmnet.data.catalogue`) and imports it as a checkpoint;
``proven`` says on what the import was checked against the authors' own outputs: on the **real** released
weights, or on a **fixture** (the authors' architecture and file format with seeded random weights, whose
outputs were produced by the authors' own code) when the real file is not reachable offline. Published
metrics are Pearson r on the Vaishnav et al. (2022) test sets, with where the number comes from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from crmnet.config import Config

VAISHNAV_FILES = "computed by crmnet from the authors' published per-sequence predictions (1edv/evolution @ bf4a419)"
LEGNET_FILES = "computed by crmnet from LegNet's published predictions (autosome-ru/LegNet @ 63773bb)"
COMPLEX_DATA = "30.7 M random promoters, complex medium (YPD), Vaishnav et al. 2022"
DREAM_DATA = "6.74 M random promoters, Chardonnay grape must, Random Promoter DREAM Challenge 2022"
DREAM_SCORES = "published final scores (Rafi et al. 2025; gautammalik-git/Camformer sota.csv @ 1931eb3)"
DEFINED_DATA = "20.6 M random promoters, defined medium (SC-Ura), Vaishnav et al. 2022"


@dataclass(frozen=True)
class ReleasedModel(Config):
    """A released model: identity, architecture, data, size, published metrics, licence, provenance.

    model: the registered crmnet model the weights are imported as (:data:`crmnet.models.MODELS`); its
    parameter count is :func:`parameters`, counted on the model itself so ``crmnet zoo`` and ``crmnet
    models`` cannot disagree. metrics: the published test numbers as text; metrics_source: where they come
    from. proven: ``real weights`` or ``fixture`` followed by the evidence.
    """

    name: str
    architecture: str
    medium: str
    trained_on: str
    model: str
    metrics: str
    metrics_source: str
    licence: str
    download: str
    proven: str


RELEASED: dict[str, ReleasedModel] = {
    m.name: m
    for m in (
        ReleasedModel(
            "deepatt-complex", "DeepATT (regression adaptation): conv 256x30, BiLSTM 2x16 (Keras-2), "
            "keras-multi-head attention (16 heads), dense 16-16-1", "complex", COMPLEX_DATA, "deepatt-keras",
            "r 0.910 native, 0.958 random (complex)", VAISHNAV_FILES, "MIT", "deepatt-complex",
            "real weights: the released DeepAtt_model.h5 (and its TF checkpoint) against the 6,687 published "
            "predictions"),
        ReleasedModel(
            "vaishnav-transformer-complex", "Vaishnav transformer (fitness_function): reverse-complement conv "
            "256x30, 2 attention layers of 8 heads, BiLSTM, dense", "complex", COMPLEX_DATA,
            "vaishnav-transformer-keras",
            "r 0.961 native, 0.978 random (complex)", VAISHNAV_FILES, "MIT", "vaishnav-transformer-complex",
            "fixture: the authors' code and HDF5 format with random weights (tests/test_zoo_vaishnav.py)"),
        ReleasedModel(
            "vaishnav-transformer-defined", "Vaishnav transformer (fitness_function), same hyper-parameters as "
            "the complex model", "defined", DEFINED_DATA, "vaishnav-transformer-keras",
            "r 0.950 native, 0.969 random (defined)", VAISHNAV_FILES, "MIT", "vaishnav-transformer-defined",
            "fixture: the authors' code and HDF5 format with random weights (tests/test_zoo_vaishnav.py)"),
        ReleasedModel(
            "legnet-complex", "LegNet (EfficientNetV2-style blocks, low-rank bilinear SE, 18-bin expectation "
            "head), 150 nt with plasmid prefix, forward/reverse average", "complex", COMPLEX_DATA, "legnet-released",
            "r 0.971 native (complex)", LEGNET_FILES, "MIT", "legnet-complex",
            "fixture: the authors' code and state_dict format with random weights (tests/test_zoo_legnet.py)"),
        ReleasedModel(
            "legnet-dream2022", "LegNet, as legnet-complex (the DREAM 2022 winning model, autosome.org)",
            "chardonnay", DREAM_DATA, "legnet-released",
            "Pearson score 0.8184, Spearman score 0.8541 (DREAM 2022 final)", DREAM_SCORES, "MIT",
            "legnet-dream2022",
            "fixture: the authors' code and state_dict format with random weights (tests/test_zoo_legnet_dream2022.py)"),
        ReleasedModel(
            "legnet-defined", "LegNet, as legnet-complex", "defined", DEFINED_DATA, "legnet-released",
            "r 0.964 native (defined)", LEGNET_FILES, "MIT", "legnet-defined",
            "fixture: the authors' code and state_dict format with random weights (tests/test_zoo_legnet.py)"),
        ReleasedModel(
            "crmnet-authors", "CRMnet (Ding et al. 2023): U-Net encoder-decoder with transformer blocks",
            "complex", "Vaishnav et al. 2022 training data (per the CRMnet paper)", "crmnet",
            "r 0.971 native, 0.987 random (complex); 0.955, 0.973 (defined)",
            "Ding et al. 2023 (CRMnet paper; native set not public)", "see Zenodo record 7375243",
            "crmnet-authors",
            "fixture: Keras SavedModel and HDF5 models built with the authors' layers (tests/test_keras_import.py)"),
    )
}

COLUMNS = ("name", "architecture", "medium", "trained on", "parameters", "published test metrics", "source",
           "licence", "how to get it", "import proven on")


@functools.cache
def parameters(model: str) -> int:
    """Trainable parameters of the registered model ``model`` (as the ``params`` column of ``crmnet models``).

    Parameters
    ----------
    model : a name in :data:`crmnet.models.MODELS`.

    Returns
    -------
    int
        The count, from the model built on the meta device (no memory, no initialisation).
    """
    import torch

    from crmnet.models import build_model, count_parameters

    with torch.device("meta"):
        return count_parameters(build_model(model))[0]


def zoo_rows() -> list[list[str]]:
    """One row per released model, in :data:`COLUMNS` order.

    Returns
    -------
    list of list of str
        One list of :data:`COLUMNS` cells per entry of :data:`RELEASED`.
    """
    return [[m.name, m.architecture, m.medium, m.trained_on, f"{parameters(m.model):,}",
             m.metrics, m.metrics_source, m.licence, f"crmnet download {m.download}", m.proven]
            for m in RELEASED.values()]
