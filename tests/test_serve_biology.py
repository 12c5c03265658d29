"""The web page: the flanks checkbox (on by default) and the model card next to predictions."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytest.importorskip("multipart")

with warnings.catch_warnings():  # Starlette 1.x suggests httpx2; httpx is what it still runs on
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.models.card import VAISHNAV_RANGE, ModelCard, quantiles
from crmnet.serve.app import create_app
from crmnet.serve.config import ServeConfig
from crmnet.serve.models import load_models
from test_serve import run

pytestmark = pytest.mark.usefixtures("one_thread")

REGION = "".join(np.random.default_rng(0).choice(list("ACGT"), 80))


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import torch

    from crmnet.models import build_model
    from crmnet.models.checkpoint import save_checkpoint

    out = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    real = ModelCard(assay="sort-seq", medium="complex medium (YPD, glucose)", units="expression units",
                     published_r="r 0.91", assay_range=VAISHNAV_RANGE, reference=quantiles(np.linspace(-1, 1, 50)),
                     reference_set="a reference set")
    save_checkpoint(out / "real.pt", build_model("crmnet-tiny"), card=real.to_dict())
    save_checkpoint(out / "sim.pt", build_model("crmnet-tiny"), card=ModelCard(simulated=True).to_dict())
    models = load_models([out / "real.pt", out / "sim.pt"], data_dir=out / "no-data")
    with TestClient(create_app(models, ServeConfig(max_sequences=10, max_length=300))) as c:
        yield c


def _tsv(client, location: str) -> list[list[str]]:
    return [line.split("\t") for line in client.get(location + "/files/predictions.tsv").text.splitlines()]


def test_flanks_box_is_on_by_default_and_completes_80nt(client):
    form = client.get("/predict").text
    assert re.search(r'name="flanks" value="1"\s+checked', form)
    location, html = run(client, "/predict", {"sequences": REGION, "model": "real", "flanks": "1"})
    assert "1 sequence of exactly 80 nt" in html and "untick" in html and "--no-flanks" not in html
    flanked = _tsv(client, location)
    location, _ = run(client, "/predict", {"sequences": LEFT_FLANK + REGION + RIGHT_FLANK, "model": "real"})
    full = _tsv(client, location)
    assert abs(float(flanked[1][2]) - float(full[1][2])) < 1e-5
    location, html = run(client, "/predict", {"sequences": REGION, "model": "real"})  # box unticked
    assert "exactly 80 nt" not in html
    assert abs(float(_tsv(client, location)[1][2]) - float(full[1][2])) > 1e-6


def test_predictions_come_with_the_card_percentile_and_range_flag(client):
    location, html = run(client, "/predict", {"sequences": LEFT_FLANK + REGION + RIGHT_FLANK,
                                              "model": ["real", "sim"]})
    assert "medium: complex medium (YPD, glucose)" in html and "percentiles against: a reference set" in html
    assert "SIMULATED DATA" in html
    header = _tsv(client, location)[0]
    assert header == ["id", "sequence", "prediction_real", "percentile_real", "range_flag_real", "prediction_sim"]


def test_simulated_models_say_so_wherever_offered(client):
    for path in ("/predict", "/evolve", "/models"):
        text = client.get(path).text
        assert "simulated data" in text, path
    models = client.get("/models").text
    assert "r 0.91" in models and "expression units" in models


def test_evolve_page_completes_regions_and_says_so(client):
    location, html = run(client, "/evolve", {"sequences": REGION, "model_a": "real", "flanks": "1",
                                             "generations": "2"})
    assert "1 sequence of exactly 80 nt" in html
    rows = client.get(location + "/files/trajectory.tsv").text.splitlines()
    assert len(rows[1].split("\t")[4]) == 110  # evolved in the construct, flanks fixed
