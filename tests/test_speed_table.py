"""README's speed and GPU tables are rendered from the benchmarks' result files, numbers as measured."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def speedlog(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return _load("speedlog", ROOT / "benchmarks" / "speedlog.py")


@pytest.fixture()
def gen(tmp_path, monkeypatch):
    module = _load("docs_generate_speed", ROOT / "docs" / "generate.py")
    monkeypatch.setattr(module, "RESULTS", tmp_path)
    return module


def test_a_ratio_is_the_median_and_range_of_per_round_rate_ratios(speedlog):
    assert speedlog.ratio([10.0, 12.0, 9.0], [5.0, 4.0, 9.0]) == [2.0, 1.0, 3.0]
    row = speedlog.row("deepatt", "inference, batch 64", "keras-xla", "sequences/s",
                       {"cpu": [10.0, 12.0, 9.0], "wall": [5.0, 6.0, 4.0]}, {"cpu": [5.0, 4.0, 9.0], "wall": [5.0] * 3})
    assert row["crmnet_cpu"] == 10.0 and row["peer_cpu"] == 5.0
    assert row["ratio_cpu"] == [2.0, 1.0, 3.0] and row["ratio_wall"] == [1.0, 0.8, 1.2]


def test_speed_rows_come_from_the_result_files(speedlog, gen, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_ism.py", "--models", "crmnet-tiny"])
    row = speedlog.row("crmnet-tiny", "saturation mutagenesis", "tangermeme@1024", "mutants/s",
                       {"cpu": [15000.0, 16000.0, 14000.0], "wall": [1.0] * 3},
                       {"cpu": [7000.0, 8000.0, 7000.0], "wall": [1.0] * 3})
    speedlog.save(tmp_path / "speed-ism.json", "bench_ism", speedlog.conditions("tangermeme 1.6.0"), [row], {})
    assert not list(tmp_path.glob("*.part"))  # written under a temporary name, then renamed
    text = gen._speed()
    line = next(x for x in text.splitlines() if x.startswith("| crmnet-tiny"))
    assert "tangermeme@1024" in line and "15,000 vs 7,000 mutants/s" in line and "**2.00** (2.00–2.14)" in line
    assert "`python benchmarks/bench_ism.py --models crmnet-tiny`" in text and "tangermeme 1.6.0" in text


def test_the_gpu_table_says_when_no_run_is_kept_and_renders_one_when_it_is(gen, tmp_path):
    assert "No GPU run is kept yet" in gen._gpu()
    row = {"batch": 4096, "precision": "bf16-mixed", "s_step": 0.25, "s_step_blocks": {"spread": 0.01},
           "samples_per_s": 16384.0, "s_step_loader": 0.26, "samples_per_s_loader": 15753.8,
           "loader_vs_synthetic": 0.96, "epoch_h": 0.54, "epochs20_h": 10.7, "peak_mib": 30000,
           "clocks_before": {"clocks.sm": 1980}, "clocks_after": {"clocks.sm": 1755}}
    report = {"device": "cuda", "tiny": False, "sections": {
        "env": {"result": {"gpu": {"name": "NVIDIA H100 80GB HBM3"}, "versions": {"torch": "2.11.0"}}},
        "table1": {"result": {"model": "crmnet", "best": "4096 bf16-mixed", "memory_mib": 81000,
                              "rows": [row, {"batch": 16384, "precision": "32", "oom": True}]}}}}
    (tmp_path / "gpu").mkdir()
    (tmp_path / "gpu" / "report.json").write_text(json.dumps(report))
    text = gen._gpu()
    assert text.startswith("Device: NVIDIA H100 80GB HBM3, torch 2.11.0.")
    assert "| 4096 | bf16-mixed | 0.2500 |" in text and "1980/1755" in text
    assert "| 16384 | 32 | out of memory |" in text


def test_batch_rows_compare_with_the_fastest_peer_configuration_of_each_batch(speedlog):
    times = {"keras": {"cpu": [0.4] * 2, "round_cpu": [0.4, 0.4], "round_wall": [0.5, 0.5]},
             "keras-xla": {"cpu": [0.2] * 2, "round_cpu": [0.2, 0.3], "round_wall": [0.2, 0.3]},
             "crmnet-fast": {"cpu": [0.1] * 2, "round_cpu": [0.1, 0.1], "round_wall": [0.1, 0.1]}}
    slow_xla = {**times, "keras-xla": {"cpu": [0.8] * 2, "round_cpu": [0.8, 0.8], "round_wall": [0.8, 0.8]}}
    rows = speedlog.batch_rows("deepatt", {64: {"times": times}, 256: {"times": slow_xla}}, ("keras", "keras-xla"))
    assert [(r["work"], r["peer"]) for r in rows] == [("inference, batch 64", "keras-xla"),
                                                      ("inference, batch 256", "keras")]
    assert rows[0]["ratio_cpu"] == [2.5, 2.0, 3.0] and rows[0]["crmnet_cpu"] == 640.0
    assert rows[1]["ratio_cpu"] == [4.0, 4.0, 4.0]


def test_table_rows_give_each_contender_its_ratio_to_each_peer_that_ran(speedlog):
    times = {"authors": {"cpu": [0.4, 0.4], "wall": [0.4, 0.4], "round_cpu": [0.4, 0.4], "round_wall": [0.4, 0.4]},
             "crmnet": {"cpu": [0.2, 0.1], "wall": [0.2, 0.1], "round_cpu": [0.2, 0.1], "round_wall": [0.2, 0.1]}}
    rows = speedlog.table_rows(64, {"times": times, "max_abs_diff": {"crmnet": 2e-5}}, ("authors", "other"), 0)
    assert rows == ["| 64 | authors | 400 | 400 | 160 | – | – | – |",
                    "| 64 | crmnet | 150 | 150 | 427 | 3.00 (2.00–4.00) / 3.00 (2.00–4.00) | – | 2.0e-05 |"]
