"""The model card: what a model's numbers mean, carried in its checkpoint and shown next to its predictions.

A card states the assay and medium the model predicts, the data it learned from, the units of its output,
its published test r, whether it learned **simulated** data, the assay's measurable range, and a compact
reference distribution (101 quantiles of the model's own predictions on a named set, e.g. the published
test sets) against which each new prediction gets a percentile. Values outside the assay's range (the
sort-seq assay of Vaishnav et al. 2022 measures about 0–17; ``../shared/docs/data.md``) are flagged: a
model extrapolates there.

Checkpoints without a card (written before cards existed) still load: their card is derived from what the
checkpoint does record (a training store's manifest) or says "not recorded".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crmnet.config import Config

VAISHNAV_ASSAY = ("sort-seq of a fluorescent reporter driven by random 80-nt promoters in yeast "
                  "(S. cerevisiae; Vaishnav et al. 2022)")
VAISHNAV_UNITS = "Vaishnav et al.'s expression units (log-scale sort-seq bins, about 0-17)"
VAISHNAV_RANGE = (0.0, 17.0)  # the assay's bins; measured test values lie within 1.5-16.6
SIMULATED_ASSAY = "simulated data (crmnet's planted-motif simulator), not a measurement"
N_QUANTILES = 101
DREAM_ASSAY = ("sort-seq of a fluorescent reporter driven by random 80-nt promoters in yeast (S. cerevisiae) "
               "grown in Chardonnay grape must (Random Promoter DREAM Challenge 2022; Rafi et al. 2025)")
DREAM_UNITS = "the challenge's training expression units (sort-seq bins, about 0-17)"
MEDIA = {"complex": "complex medium (YPD, glucose)", "defined": "defined medium (SC-Ura)",
         "chardonnay": "Chardonnay grape must (DREAM 2022)"}


@dataclass(frozen=True)
class ModelCard(Config):
    """What a model predicts and how to read its numbers (every field optional: "not recorded").

    assay, medium, training_data, units, published_r: text for people. simulated: the model learned
    simulated data. assay_range: (low, high) of what the assay can measure, or () when unknown.
    reference: (101,) quantiles (0 %, 1 %, ..., 100 %) of the model's predictions on ``reference_set``,
    or () when none was computed.
    """

    assay: str = "not recorded"
    medium: str = "not recorded"
    training_data: str = "not recorded"
    units: str = "the model's output (units not recorded)"
    published_r: str = "not recorded"
    simulated: bool = False
    assay_range: tuple[float, ...] = ()
    reference: tuple[float, ...] = ()
    reference_set: str = ""

    def summary(self) -> str:
        """One line for people: assay, medium, units, published r, reference and range."""
        parts = [f"assay: {self.assay}", f"medium: {self.medium}", f"trained on: {self.training_data}",
                 f"units: {self.units}", f"published test r: {self.published_r}"]
        if self.reference:
            parts.append(f"percentiles against: {self.reference_set}")
        if self.assay_range:
            parts.append(f"assay range: {self.assay_range[0]:g} to {self.assay_range[1]:g}")
        if self.simulated:
            parts.insert(0, "SIMULATED DATA: this model never saw a measurement")
        return "; ".join(parts)


def card_of(model) -> ModelCard:
    """The card of a loaded model (``model.checkpoint_meta``), or of a checkpoint's payload dict.

    Parameters
    ----------
    model : nn.Module or dict
        A model from :func:`crmnet.models.checkpoint.load_checkpoint` (a model built in memory has no
        card), or the checkpoint payload itself.

    Returns
    -------
    ModelCard
        The stored card; for a checkpoint without one, what its training store's manifest says, else the
        "not recorded" card.
    """
    meta = model if isinstance(model, dict) else getattr(model, "checkpoint_meta", None) or {}
    if meta.get("card"):
        return ModelCard.from_dict(meta["card"])
    manifest = (meta.get("provenance") or {}).get("store_manifest")
    return card_from_manifest(manifest) if manifest else ModelCard()


def card_from_manifest(manifest: dict, simulated: bool | None = None) -> ModelCard:
    """The card of a model trained on a store (its ``manifest.json``).

    Parameters
    ----------
    manifest : dict
        The store's manifest (``media``, ``n_train``, ``sources``, ``target``).
    simulated : bool, optional
        The store was prepared from crmnet's simulator output; None: so when a source still has the
        simulator's ``.truth.json`` beside it.

    Returns
    -------
    ModelCard
    """
    if simulated is None:
        from crmnet.data.simulate import truth_path

        simulated = any(truth_path(s["path"]).exists() for s in manifest.get("sources", []) if "path" in s)
    media = list(manifest.get("media") or [])
    n = manifest.get("n_train")
    rows = f"{n:,} sequences" if isinstance(n, int) else "sequences"
    what = "simulated" if simulated else str(manifest.get("target", "measured expression"))
    dream = media == ["chardonnay"]  # the DREAM 2022 training data (crmnet.data.dream2022)
    return ModelCard(
        assay=SIMULATED_ASSAY if simulated else DREAM_ASSAY if dream else VAISHNAV_ASSAY,
        medium=" + ".join(MEDIA.get(m, m) for m in media) or "not recorded",
        training_data=f"{rows} of {what} from a crmnet store ({', '.join(media) or 'one medium'})",
        units="simulated expression (the simulator's scale)" if simulated else DREAM_UNITS if dream else VAISHNAV_UNITS,
        published_r="none (trained with crmnet; see its evaluation)",
        simulated=simulated, assay_range=() if simulated else VAISHNAV_RANGE)


def quantiles(values) -> tuple[float, ...]:
    """(101,) quantiles 0 %, 1 %, ..., 100 % of ``values`` (finite ones), rounded to 5 significant digits.

    Parameters
    ----------
    values : (n,) array-like of float

    Returns
    -------
    tuple of float
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return ()
    return tuple(float(f"{q:.5g}") for q in np.quantile(v, np.linspace(0, 1, N_QUANTILES)))


def percentiles(card: ModelCard, values) -> np.ndarray:
    """Percentile (0-100) of each value within the card's reference distribution (NaN without one).

    Parameters
    ----------
    card : ModelCard
    values : (n,) array-like of float

    Returns
    -------
    (n,) float64
        Linear interpolation between the stored quantiles; below the lowest 0, above the highest 100.
    """
    v = np.asarray(values, dtype=np.float64)
    if not card.reference:
        return np.full(v.shape, np.nan)
    ref = np.maximum.accumulate(np.asarray(card.reference, dtype=np.float64))
    grid = np.linspace(0.0, 100.0, len(ref))
    # Ties in the reference (a flat stretch) get the middle of their percentiles, not one end.
    low = np.interp(v, ref, grid, left=0.0, right=100.0)
    high = 100.0 - np.interp(-v, -ref[::-1], grid, left=0.0, right=100.0)
    return (low + high) / 2


def range_flags(card: ModelCard, values) -> list[str]:
    """``above assay range`` / ``below assay range`` / ``""`` for each value (all ``""`` without a range).

    Parameters
    ----------
    card : ModelCard
    values : (n,) array-like of float

    Returns
    -------
    list of str
    """
    v = np.asarray(values, dtype=np.float64)
    if not card.assay_range:
        return [""] * len(v)
    low, high = card.assay_range
    return ["above assay range" if x > high else "below assay range" if x < low else "" for x in v.tolist()]


def header_lines(card: ModelCard, model_name: str) -> list[str]:
    """``#`` comment lines for the top of a prediction table: the card, one field per line.

    Parameters
    ----------
    card : ModelCard
    model_name : str
        The model's name (registry name or file), shown first.

    Returns
    -------
    list of str
        Lines ending in a newline.
    """
    lines = [f"model: {model_name}"]
    if card.simulated:
        lines.append("SIMULATED DATA: this model learned simulated expression, not measurements")
    lines += [f"assay: {card.assay}", f"medium: {card.medium}", f"training data: {card.training_data}",
              f"units: {card.units}", f"published test r: {card.published_r}"]
    if card.reference:
        lines.append(f"percentile: within the model's predictions on {card.reference_set} ({N_QUANTILES} "
                     "quantiles stored in the checkpoint)")
    if card.assay_range:
        lines.append(f"range_flag: a prediction outside {card.assay_range[0]:g} to {card.assay_range[1]:g}, what "
                     "the assay can measure (the model extrapolates there)")
    return [f"# {line}\n" for line in lines]


def card_columns(card: ModelCard, values) -> dict[str, list[str]]:
    """The columns a card adds beside predictions: ``percentile`` and ``range_flag``, where the card has them.

    Parameters
    ----------
    card : ModelCard
    values : (n,) array-like of float
        Predictions.

    Returns
    -------
    dict
        Column name → (n,) cells as text, in table order (empty for a card with neither).
    """
    columns = {}
    if card.reference:
        columns["percentile"] = [f"{p:.1f}" for p in percentiles(card, values).tolist()]
    if card.assay_range:
        columns["range_flag"] = range_flags(card, values)
    return columns
