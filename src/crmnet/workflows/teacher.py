"""Teacher mode: a trained model is the expression landscape, so realistic data with known truth exist at any size.

``crmnet simulate --teacher CKPT`` draws random promoters exactly as the calibrated preset does (real
flanks, an 80-nt variable region with the real composition and its between-sequence variation,
:func:`crmnet.data.calibrated.random_variable_regions`), takes the teacher's prediction as the noise-free
expression and adds the calibrated label noise (:func:`crmnet.data.calibrated.measure`: training-style
read-count noise with integer low-count labels, or low-noise test-style labels). Any checkpoint crmnet can
load works as a teacher, e.g. a model imported from the authors' Keras files.

The ground truth for interpretation is the teacher's own in-silico saturation mutagenesis
(:func:`crmnet.interpret.attribution.attribute` with ``method="ism"``), stored for the first ``truth_ism``
sequences as an :class:`~crmnet.interpret.attribution.Attributions` file: a student's attributions of the
same sequences are scored against it by :func:`crmnet.interpret.teacher_score.score_against_teacher`
(`benchmarks/bench_teacher.py` runs the whole teacher → student → attribution benchmark).

This module sits in ``workflows`` because it needs models, prediction and attribution, all later layers
than ``data``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from crmnet.data.calibrated import CalibratedConfig, measure, random_variable_regions, with_flanks
from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK, VARIABLE_LENGTH
from crmnet.data.encoding import ALPHABET, decode
from crmnet.data.simulate import SimulatedData, _rounded, _summary

TRUTH_FORMAT = "crmnet-teacher-truth"
TRUTH_VERSION = 1


def ism_path(out: str | os.PathLike) -> Path:
    """Where the teacher's ISM truth of ``out`` goes: ``out`` + ``.ism.npz``."""
    out = Path(out)
    return out.with_name(out.name + ".ism.npz")


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def simulate_teacher(model, n: int, seed: int = 0, config: CalibratedConfig | None = None,
                     batch_size: int = 1024, checkpoint: str | os.PathLike | None = None) -> SimulatedData:
    """Label ``n`` random promoters with ``model`` plus calibrated noise; deterministic given the inputs.

    Parameters
    ----------
    model : a crmnet model (``model.encoding`` set), e.g. from :func:`crmnet.models.checkpoint.load_checkpoint`;
        it runs where its parameters are.
    n : number of sequences; seed : random seed (sequences and noise).
    config : composition and label noise (:class:`CalibratedConfig`; its landscape fields are unused).
    batch_size : prediction batch size (does not change the result).
    checkpoint : the teacher's file, recorded (with its SHA-256) in the truth.

    Returns
    -------
    SimulatedData: codes (n, 110) uint8, expression (labels) and noise_free (teacher output) (n,) float32.
    """
    from crmnet.evaluation.predict import predict

    config = config or CalibratedConfig()
    if n < 1:
        raise ValueError(f"number of sequences must be positive, not {n}")
    rng = np.random.default_rng(seed)
    codes = with_flanks(random_variable_regions(rng, n, config.composition, config.composition_spread))
    noise_free = predict(model, decode(codes), batch_size=batch_size).astype(np.float64)
    if not np.isfinite(noise_free).all():
        raise ValueError("the teacher predicted non-finite values")
    labels, reads = measure(noise_free, rng, config)
    meta = getattr(model, "checkpoint_meta", {}) or {}
    teacher = {"model": meta.get("model", type(model).__name__), "encoding": model.encoding.to_dict()}
    if checkpoint is not None:
        teacher.update(checkpoint=str(checkpoint), sha256=_sha256(checkpoint))
    r = float(np.corrcoef(noise_free, labels)[0, 1]) if labels.std() > 0 and noise_free.std() > 0 else 1.0
    truth = {
        "format": TRUTH_FORMAT, "format_version": TRUTH_VERSION, "n": n, "seed": seed,
        "config": config.to_dict(), "teacher": teacher,
        "construct": {"left_flank": LEFT_FLANK, "right_flank": RIGHT_FLANK, "variable_length": VARIABLE_LENGTH,
                      "variable_start": len(LEFT_FLANK), "alphabet": ALPHABET[:4]},
        "noise_free": _rounded(noise_free, 4),
        "reads": reads.tolist() if config.labels == "train" else None,
        "summary": {"measured": _summary(labels), "noise_free": _summary(noise_free),
                    "pearson_noise_free_measured": round(r, 5),
                    "frac_integer": round(float(np.mean(labels == np.round(labels))), 5)},
    }
    return SimulatedData(codes, labels.astype(np.float32), noise_free.astype(np.float32), truth)


def teacher_ism(model, data: SimulatedData, count: int, batch_size: int = 1024):
    """The teacher's saturation mutagenesis of the first ``count`` sequences of ``data`` (variable region only).

    Returns
    -------
    :class:`crmnet.interpret.attribution.Attributions` with (count, 4, 110) hypothetical scores.
    """
    from crmnet.interpret.attribution import AttributionConfig, attribute

    attr = attribute(model, data.sequences[:count], AttributionConfig(method="ism", batch_size=batch_size))
    attr.meta.update(teacher=data.truth["teacher"], seed=data.truth["seed"], first=0, count=count)
    return attr
