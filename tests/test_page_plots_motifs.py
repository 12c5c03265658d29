"""Finding 6 of issue 20: the evolve page, trajectory legends, and what `crmnet motifs` says about its input."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from crmnet.data.jaspar import Motif
from crmnet.errors import InputError
from crmnet.interpret.attribution import Attributions, matching_attributions
from crmnet.interpret.denovo import _logo_title, discovery_markdown

pytestmark = pytest.mark.usefixtures("one_thread")


def _lines(ax) -> dict[str, int]:
    """Legend label → points drawn, for every labelled line of ``ax``."""
    return {line.get_label(): len(line.get_xdata()) for line in ax.get_lines() if not line.get_label().startswith("_")}


def test_sswm_and_drift_trajectories_have_a_legend_of_their_lines():
    from crmnet.plot.design import trajectory_figure

    gen = np.repeat(np.arange(4), 3)
    lineage = np.tile(np.arange(3), 4)
    ax = trajectory_figure(gen, lineage, gen * 0.5 + lineage, "sswm").axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["lineage 0", "lineage 1", "lineage 2"] and set(_lines(ax)) == set(legend)
    # a lineage that stopped at generation 0 (nothing better to take) is a visible point
    ax = trajectory_figure(np.zeros(2, int), np.arange(2), np.zeros(2), "sswm").axes[0]
    assert all(line.get_marker() == "o" for line in ax.get_lines())


def test_ga_legend_lists_only_lines_drawn():
    from crmnet.plot.design import trajectory_figure

    gen = np.repeat(np.arange(3), 1)  # a population of one per generation: no separate mean
    ax = trajectory_figure(gen, np.zeros(3, int), np.array([1.0, 2.0, 3.0]), "ga", target=3.0, tolerance=0.1).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["start 0: closest to target", "target ± tolerance"]
    gen = np.repeat(np.arange(3), 4)  # a population of four: closest and mean
    obj = np.arange(12, dtype=float)
    ax = trajectory_figure(gen, np.zeros(12, int), obj, "ga", target=5.0, tolerance=0.1).axes[0]
    assert set(_lines(ax)) == {"start 0: closest to target", "start 0: mean"}


def test_too_few_attribution_maps_suggest_limit():
    attr = Attributions(np.zeros((2, 4, 10), np.float32), np.zeros((2, 4, 10), np.float32), np.full(2, 10),
                        np.ones((2, 10), bool), "saliency", {})
    with pytest.raises(InputError, match=r"2 attribution maps for 5 sequences: the maps cover only the first 2 "
                                         r"\(computed with interpret --limit 2\?\); pass --limit 2"):
        matching_attributions(attr, ["ACGTACGTAC"] * 5, "attr.npz")


def test_non_significant_motif_matches_are_listed_as_such():
    motif = Motif("kmer_up_1", "k", np.ones((4, 6)))
    row = {"consensus": "ACGTAC", "best_match": "AZF1", "best_match_id": "MA0001.1", "q_value": 0.32,
           "e_value": 12.0, "p_value": 0.01, "motif": "kmer_up_1", "significant_match": False}
    title = _logo_title(motif, row, 0.05)
    assert "no significant JASPAR match at q < 0.05" in title and "~" not in title and "closest AZF1" in title
    sig = {**row, "q_value": 1e-4, "significant_match": True}
    assert "~ AZF1" in _logo_title(motif, sig, 0.05)
    md = discovery_markdown({"n_sequences": 10, "n_targets": 3, "config": {"alpha": 0.05}, "methods": {
        "kmer": {"n_motifs": 2, "n_matched": 1, "motifs": [row, sig]}}})
    assert "## kmer: 2 motifs, 1 with a significant JASPAR match (TOMTOM q < 0.05)" in md
    assert "none significant (closest: MA0001.1 AZF1)" in md


# ----------------------------------------------------------------------------------------- the evolve page
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    pytest.importorskip("multipart")
    import torch

    from crmnet.models import build_model
    from crmnet.models.checkpoint import save_checkpoint
    from crmnet.serve.app import create_app
    from crmnet.serve.config import ServeConfig
    from crmnet.serve.models import load_models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    out = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    save_checkpoint(out / "alpha.pt", build_model("crmnet-tiny"))
    models = load_models([out / "alpha.pt"], data_dir=out / "no-data")
    with TestClient(create_app(models, ServeConfig())) as c:
        yield c


SEQ = "TGCATTTTTTTCACATC" + "ACGT" * 20 + "GGTTACGGCTGTT"


def _error(html: str) -> str:
    import html as htmllib

    return htmllib.unescape(re.search(r'id="error">(.*?)</p>', html, re.DOTALL).group(1))


def test_evolve_page_shows_the_chosen_modes_settings(client):
    html = client.get("/evolve").text  # SSWM by default
    boxes = dict(re.findall(r'<div class="mode-params" data-modes="([a-z ]+)"( hidden)?>', html))
    assert boxes == {"sswm": "", "ga": " hidden", "drift": " hidden", "ga drift": " hidden"}
    assert "followMode" in client.get("/static/app.js").text


@pytest.mark.parametrize(("form", "message"), [
    ({"mode": "ga"}, "GA target is needed with the genetic algorithm"),
    ({"mode": "ga", "target": "5", "population": "1"}, "population 1 is too small for a GA: give at least 2"),
    ({"model_b": "alpha"}, "Model A and Model B are both alpha: an objective comparing a model with itself"),
])
def test_evolve_page_errors_speak_the_pages_words(client, form, message):
    r = client.post("/evolve", data={"sequences": SEQ, "model_a": "alpha", **form})
    text = _error(r.text)
    assert message in text and "--" not in text
    if "mode" in form:  # the form comes back with the chosen mode's settings shown
        assert re.search(r'data-modes="ga">', r.text)


def test_invalid_character_errors_name_the_pages_option_not_the_flag(client):
    bad = SEQ[:20] + "X" + SEQ[21:]
    text = _error(client.post("/predict", data={"sequences": bad, "model": "alpha"}).text)
    assert "invalid character 'X' at position 21" in text and "tick 'map characters" in text and "--" not in text
    text = _error(client.post("/mutate", data={"sequences": bad, "model": "alpha"}).text)
    assert "invalid character 'X'" in text and "--invalid" not in text and "tick" not in text
