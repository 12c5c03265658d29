"""The model card travels with every prediction: checkpoint, import, training, predict, serve and report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crmnet.cli import main
from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK
from crmnet.models import build_model
from crmnet.models.card import (
    VAISHNAV_RANGE,
    ModelCard,
    card_from_manifest,
    card_of,
    percentiles,
    quantiles,
    range_flags,
)
from crmnet.models.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _seqs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [LEFT_FLANK + "".join(rng.choice(list("ACGT"), 80)) + RIGHT_FLANK for _ in range(n)]


def constant_model(value: float):
    """crmnet-tiny whose every prediction is ``value`` (last layer: zero weights, bias ``value``)."""
    torch.manual_seed(0)
    model = build_model("crmnet-tiny")
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(value)
    return model


def test_percentiles_follow_the_reference_distribution(rng):
    values = rng.normal(9.0, 3.0, 20_000)
    card = ModelCard(reference=quantiles(values))
    assert len(card.reference) == 101
    new = rng.normal(9.0, 3.0, 2_000)
    ecdf = (values[None, :] < new[:, None]).mean(1) * 100
    assert np.abs(percentiles(card, new) - ecdf).max() < 1.5  # 101 quantiles: within ~1 percentile point
    assert percentiles(card, [-100.0, 100.0]).tolist() == [0.0, 100.0]
    assert np.isnan(percentiles(ModelCard(), [1.0])).all()


def test_values_outside_the_assay_range_are_flagged():
    card = ModelCard(assay_range=VAISHNAV_RANGE)
    assert range_flags(card, [17.32, 16.9, -0.2]) == ["above assay range", "", "below assay range"]
    assert range_flags(ModelCard(), [17.32]) == [""]


def test_old_checkpoints_load_with_a_not_recorded_card(tmp_path):
    save_checkpoint(tmp_path / "old.pt", constant_model(5.0))  # no card, as before cards existed
    model = load_checkpoint(tmp_path / "old.pt")
    assert "card" not in model.checkpoint_meta and card_of(model) == ModelCard()
    bad = tmp_path / "bad.pt"
    save_checkpoint(bad, constant_model(5.0), card={"assay": 3})
    with pytest.raises(Exception, match="invalid model card: assay"):
        load_checkpoint(bad)


def test_training_card_comes_from_the_store_and_says_simulated(tmp_path):
    data = tmp_path / "train.txt"
    data.write_text("")
    manifest = {"media": ["complex"], "n_train": 1234, "target": "measured expression",
                "sources": [{"path": str(data)}]}
    real = card_from_manifest(manifest)
    assert not real.simulated and real.medium.startswith("complex medium") and "1,234" in real.training_data
    assert real.assay_range == VAISHNAV_RANGE
    (tmp_path / "train.txt.truth.json").write_text("{}")  # what write_simulation leaves beside its output
    sim = card_from_manifest(manifest)
    assert sim.simulated and "simulated" in sim.assay and sim.assay_range == ()
    assert card_from_manifest(manifest, False) == real
    # a checkpoint from before cards: derived from the manifest in its provenance, simulated included
    assert card_of({"provenance": {"store_manifest": manifest}}) == sim


def test_predict_writes_percentile_range_flag_and_card_json(tmp_path, capsys):
    card = ModelCard(assay="a sort-seq assay", medium="complex medium (YPD, glucose)", units="units",
                     published_r="r 0.9", assay_range=VAISHNAV_RANGE, reference=quantiles(np.linspace(0, 20, 101)),
                     reference_set="a test set")
    save_checkpoint(tmp_path / "m.pt", constant_model(17.32), card=card.to_dict())
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(_seqs(3))))
    assert main(["predict", str(fasta), "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "p.tsv"),
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "model card: assay: a sort-seq assay; medium: complex medium" in err
    assert "3 of 3 predictions lie outside the assay's range 0 to 17" in err
    rows = list(csv.DictReader((tmp_path / "p.tsv").open(), delimiter="\t"))
    assert list(rows[0]) == ["id", "sequence", "prediction", "percentile", "range_flag"]
    assert {r["range_flag"] for r in rows} == {"above assay range"}
    assert {r["percentile"] for r in rows} == {"86.6"}  # 17.32 on an even 0-20 grid
    doc = json.loads((tmp_path / "p.card.json").read_text())
    assert doc["above_assay_range"] == 3 and ModelCard.from_dict(doc["card"]) == card
    # the companion is refused like the table itself
    (tmp_path / "p.tsv").unlink()
    assert main(["predict", str(fasta), "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "p.tsv"),
                 "--quiet"]) == 2
    assert "p.card.json" in capsys.readouterr().err and not (tmp_path / "p.tsv").exists()


def test_an_ensemble_keeps_its_members_card_and_standard_output_has_no_companion(tmp_path, capsys):
    card = ModelCard(medium="complex medium (YPD, glucose)", units="units", published_r="r 0.9",
                     assay_range=VAISHNAV_RANGE, reference=quantiles(np.linspace(0, 20, 101)), reference_set="a set")
    for name, value in (("a.pt", 3.0), ("b.pt", 5.0)):
        save_checkpoint(tmp_path / name, constant_model(value), card=card.to_dict())
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(_seqs(2))))
    both = ["--checkpoint", str(tmp_path / "a.pt"), "--checkpoint", str(tmp_path / "b.pt")]
    assert main(["predict", str(fasta), *both, "--out", str(tmp_path / "e.tsv"), "--quiet"]) == 0
    rows = list(csv.DictReader((tmp_path / "e.tsv").open(), delimiter="\t"))
    # the members' reference quantiles are not the mean's distribution: no percentile for the ensemble
    assert list(rows[0]) == ["id", "sequence", "prediction", "spread", "range_flag"]
    assert {(r["prediction"], r["spread"], r["range_flag"]) for r in rows} == {("4", "1", "")}
    doc = json.loads((tmp_path / "e.card.json").read_text())
    assert list(doc["columns"]) == ["prediction", "spread", "range_flag"]
    assert doc["card"]["medium"] == card.medium and doc["card"]["published_r"] == "each member: r 0.9"
    capsys.readouterr()
    assert main(["predict", str(fasta), "--checkpoint", str(tmp_path / "a.pt"), "--out", "-", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split("\t") == ["id", "sequence", "prediction", "percentile", "range_flag"]
    assert not list(tmp_path.glob("-*")) and len(out.splitlines()) == 3


@pytest.fixture(scope="module")
def small_data_dir(shared: Path, tmp_path_factory) -> Path:
    """A data directory holding the first 300 rows of each complex test set (the layout of crmnet download)."""
    out = tmp_path_factory.mktemp("data")
    (out / "vaishnav2022" / "test").mkdir(parents=True)
    for name in ("Native_complex.csv", "Random_complex_raw.csv"):
        lines = (shared / "data" / "vaishnav2022" / "test" / name).read_text().splitlines(keepends=True)
        (out / "vaishnav2022" / "test" / name).write_text("".join(lines[:301]))
    return out


def test_import_fills_the_card_from_the_zoo_and_the_reference_from_the_test_sets(shared, small_data_dir, tmp_path,
                                                                                 capsys):
    src = shared / "models" / "vaishnav2022" / "deepatt_complex" / "DeepAtt_model.h5"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    out = tmp_path / "deepatt.pt"
    assert main(["import", str(src), "--out", str(out), "--data-dir", str(small_data_dir)]) == 0
    assert "reference distribution: predictions on the complex-native + complex-random test sets (600 " \
           "sequences)" in capsys.readouterr().out
    model = load_checkpoint(out)
    card = card_of(model)
    assert card.medium == "complex medium (YPD, glucose)" and "0.910 native, 0.958 random" in card.published_r
    assert not card.simulated and card.assay_range == VAISHNAV_RANGE and len(card.reference) == 101
    assert "30.7 M random promoters" in card.training_data
    # without test sets: the card, and a line saying the reference is missing
    empty = tmp_path / "empty"  # a data directory without test sets (the output may not lie inside an input)
    empty.mkdir()
    assert main(["import", str(src), "--out", str(tmp_path / "bare.pt"), "--data-dir", str(empty)]) == 0
    assert "no reference distribution" in capsys.readouterr().out
    bare = card_of(load_checkpoint(tmp_path / "bare.pt"))
    assert bare.reference == () and bare.medium == card.medium


def test_evaluate_and_report_show_the_card(tmp_path, capsys):
    card = ModelCard(medium="defined medium (SC-Ura)", units="units", simulated=True, assay="simulated data")
    save_checkpoint(tmp_path / "m.pt", constant_model(3.0), card=card.to_dict())
    test = tmp_path / "test.csv"
    rng = np.random.default_rng(1)
    test.write_text("sequence,Measured Expression\n" + "".join(f"{s},{v:.3f}\n" for s, v in
                                                                zip(_seqs(20, 1), rng.normal(9, 2, 20))))
    # a constant model has no r; a model with random weights predicts something
    torch.manual_seed(3)
    save_checkpoint(tmp_path / "m.pt", build_model("crmnet-tiny"), card=card.to_dict(), overwrite=True)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "m.pt"), "--test", str(test), "--out",
                 str(tmp_path / "ev"), "--bootstrap", "0", "--quiet"]) == 0
    assert main(["report", str(tmp_path / "ev"), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    capsys.readouterr()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Model cards" in md and "**simulated data** — simulated data" in md
    assert "defined medium (SC-Ura)" in md and "defined medium (SC-Ura)" in (tmp_path / "rep" / "report.html").read_text()


def test_a_trained_model_gets_percentiles_against_its_validation_split(tmp_path, capsys):
    from crmnet.data.store import open_store
    from crmnet.evaluation.predict import predict
    from crmnet.training.run import fit
    from test_train import make_store, tiny_config

    store = make_store(tmp_path, n=300)
    fit(tiny_config(store, max_epochs=1), tmp_path / "run")
    model = load_checkpoint(tmp_path / "run" / "best.ckpt")
    card = card_of(model)
    assert len(card.reference) == 101 and card.reference_set == (
        "the validation split of the crmnet store 'store' (60 sequences)")  # 20 % of 300
    opened = open_store(store)
    val = opened.sequences(opened.indices("val"))
    preds = predict(model, val)
    # the stored quantiles are those of the best weights' predictions (5 significant digits)
    assert np.allclose(card.reference, np.quantile(preds, np.linspace(0, 1, 101)), rtol=1e-4, atol=1e-4)
    fasta = tmp_path / "val.fa"
    fasta.write_text("".join(f">v{i}\n{s}\n" for i, s in enumerate(val)))
    assert main(["predict", str(fasta), "--checkpoint", str(tmp_path / "run" / "best.ckpt"), "--out",
                 str(tmp_path / "p.tsv"), "--quiet"]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader((tmp_path / "p.tsv").open(), delimiter="\t"))
    assert list(rows[0]) == ["id", "sequence", "prediction", "percentile", "range_flag"]
    pct = np.array([float(r["percentile"]) for r in rows])
    # the reference set itself ranks evenly over 0-100
    assert pct.min() < 5 and pct.max() > 95 and abs(np.median(pct) - 50) < 5
    assert "validation split" in json.loads((tmp_path / "p.card.json").read_text())["columns"]["percentile"]


@pytest.mark.slow  # ~14 s on a loaded 2-core machine: simulate, prepare, train one epoch
def test_a_quickstart_model_says_it_learned_simulated_data(tmp_path):
    from crmnet.workflows.quickstart import QuickstartConfig, run_quickstart

    cfg = QuickstartConfig(n=400, n_test=50)
    cfg = cfg.replace(train=cfg.train.replace(max_epochs=1, batch_size=64, progress=False))
    run_quickstart(cfg, tmp_path / "q")
    card = card_of(load_checkpoint(tmp_path / "q" / "run" / "best.ckpt"))
    assert card.simulated and "simulated" in card.assay and "SIMULATED DATA" in card.summary()
