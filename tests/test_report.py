"""Figures 2–4 and the report: real images from the shared peer files, readable Markdown/HTML, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from crmnet.cli import main
from crmnet.errors import InputError, OutputExistsError
from crmnet.evaluation.evaluate import Evaluation, evaluate_prediction_file
from crmnet.evaluation.metrics import compute_metrics
from crmnet.evaluation.outputs import write_evaluation
from crmnet.evaluation.report import build_report, load_inputs
from crmnet.evaluation.testsets import load_test_set
from crmnet.plot import ablation_bars, benchmark_bars, figure2, metrics_text, save_figure


def _assert_image(path, min_bytes=5_000):
    """A real PNG (or PDF) with content: right magic bytes, not blank."""
    data = path.read_bytes()
    assert len(data) > min_bytes, path
    if path.suffix == ".png":
        import matplotlib.image as mpimg

        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(path)
        assert img.shape[0] > 200 and img.shape[1] > 200
        assert img[..., :3].std() > 0.05  # not a blank canvas
    else:
        assert data[:5] == b"%PDF-"


def _run(tmp_path, vaishnav_dir, tag: str, label: str):
    """An evaluation directory from a published prediction file (complex native and random)."""
    ev = Evaluation()
    root = vaishnav_dir.parent
    for origin, test in (("Native", "complex-native"), ("Random", "complex-random")):
        evaluate_prediction_file(vaishnav_dir / "peer_predictions" / f"{origin}_complex_{tag}_model.csv",
                                 load_test_set(test, root), ev, label=label, n_boot=50)
    return write_evaluation(ev, tmp_path / label, {"command": "test"})


def test_metrics_text_names_both_r2_kinds():
    text = metrics_text(compute_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 5.0]))
    assert "r² (paper's R²) = 0.6914" in text and "R² (1 − SS_res/SS_tot) = 0.4000" in text
    assert "MSE = 0.7500" in text and "N = 4" in text and "(p = 0.17)" in text


def test_figures_render_headless(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(8, 3, 500)
    p = y + rng.normal(0, 1, 500)
    m = compute_metrics(y, p)
    table = {"a": {"t1": m, "t2": m}, "b": {"t1": {**m, "pearson_r": 0.8, "mse": 2.0}}}
    figs = {
        "f2": figure2([("t1", y, p, compute_metrics(y, p)), ("t2", y, p * 0.9, compute_metrics(y, p * 0.9))],
                      suptitle="model"),
        "f3": benchmark_bars(table),
        "f4": ablation_bars(table),
    }
    for name, fig in figs.items():
        for path in save_figure(fig, tmp_path / name):
            _assert_image(path)
    with pytest.raises(FileExistsError):
        save_figure(figs["f3"], tmp_path / "f3")
    with pytest.raises(ValueError, match="at least one panel"):
        figure2([])


def test_report_from_runs_and_peers(tmp_path, vaishnav_dir):
    run_a = _run(tmp_path, vaishnav_dir, "tpu", "transformer-run")
    run_b = _run(tmp_path, vaishnav_dir, "DanQ", "danq-run")
    out = build_report([run_a, run_b, run_b / "metrics.json"], tmp_path / "report", n_boot=100)
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "report.html", "fig3_benchmark.png", "fig3_benchmark.pdf", "fig4_ablation.png",
            "fig4_ablation.pdf", "fig2_transformer-run.png", "fig2_danq-run.pdf"} <= names
    for name in {n for n in names if not n.startswith(".")} - {"report.md", "report.html"}:  # .crmnet-output: fsutil
        _assert_image(out / name)
    md = (out / "report.md").read_text()
    # The transformer's reference numbers (data.md) appear in the benchmark table.
    assert "| transformer-run | 0.9608; 1.327 (3,733) | 0.9776; 1.425 (2,954) |" in md
    assert "r² (paper's R²)" in md and "R² (1 − SS_res/SS_tot)" in md
    assert "| transformer-run | 2,954 | 100.0% of 2,954 | 0.9776 [" in md  # coverage from metrics.json
    # The bare metrics.json of run B joins as its own row, named after its directory.
    assert "| danq-run (2) |" in md
    # Paired tests between the runs: transformer beats DanQ on complex random (data.md: 0.9776 vs 0.9632).
    line = next(ln for ln in md.splitlines() if ln.startswith("| complex-random | transformer-run | danq-run |"))
    assert "+0.0144" in line
    assert "![Figure 2: transformer-run, predicted vs measured](fig2_transformer-run.png)" in md
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and '<img src="fig3_benchmark.png"' in html
    assert "<td>0.9776; 1.425 (2,954)</td>" in html
    with pytest.raises(OutputExistsError):
        build_report([run_a], tmp_path / "report")


def test_report_cli_on_a_peer_table(tmp_path, shared, capsys):
    data = shared / "data"
    assert main(["evaluate", "--peers", "--test", "defined-native", "defined-random", "--data-dir", str(data),
                 "--out", str(tmp_path / "peers"), "--bootstrap", "20"]) == 0
    assert main(["report", str(tmp_path / "peers"), "--out", str(tmp_path / "rep"), "--bootstrap", "50"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| LegNet | 0.9638; 1.730 (3,782) | — |" in md
    # A peer table alone: Figure 2 of the first peer as the reference, no Figure 4 (needs runs).
    assert (tmp_path / "rep" / "fig2_vaishnav-transformer.png").is_file()
    assert not (tmp_path / "rep" / "fig4_ablation.png").exists()
    assert "Figure 4 (ablations) needs two or more runs" in md
    # LegNet vs the transformer on defined native: every pair is tested when no run is given.
    assert "| defined-native | Vaishnav transformer | LegNet |" in md
    capsys.readouterr()


def test_bad_report_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_inputs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a `crmnet evaluate` output"):
        load_inputs([tmp_path / "empty"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1}')
    with pytest.raises(InputError, match="not a metrics.json"):
        load_inputs([bad])
    broken = tmp_path / "broken.json"
    broken.write_text("{\n  nope")
    with pytest.raises(InputError, match=r"broken.json:2: not valid JSON"):
        load_inputs([broken])
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()
