"""The quickstart end to end, scaled down: simulate → prepare → train → evaluate → report."""

from __future__ import annotations

import json

import pytest
import torch

from crmnet.errors import CrmnetError, OutputExistsError
from crmnet.workflows.quickstart import TEST_SET, QuickstartConfig, run_quickstart

KEYS = {"n", "pearson_r", "pearson_p", "spearman_r", "r2", "pearson_r_squared", "mse", "mae"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs") / "out"
    config = QuickstartConfig(n=3000, n_test=500)
    config = config.replace(train=config.train.replace(max_epochs=2, batch_size=64, progress=False))
    threads = torch.get_num_threads()
    summary = run_quickstart(config, out)
    assert torch.get_num_threads() == threads  # the quickstart's one thread is not left behind
    return summary


def test_config_nests_a_train_config():
    from crmnet.training.config import TrainConfig

    config = QuickstartConfig()
    assert isinstance(config.train, TrainConfig) and config.train.model == "crmnet-tiny"
    again = QuickstartConfig.from_dict(json.loads(config.to_json()))
    assert again == config and isinstance(again.train, TrainConfig)
    with pytest.raises(ValueError, match="store"):
        config.replace(train=config.train.replace(store="elsewhere"))


def test_writes_every_output(quick):
    out = quick.out
    for name in ("report.md", "metrics.json", "scatter.png", "learning_curve.png", "config.json",
                 "data/train.txt", "data/train.txt.truth.json", "data/test.txt", "store/manifest.json",
                 "run/best.ckpt", "run/metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == [TEST_SET]
    assert KEYS <= set(metrics[TEST_SET]) and metrics[TEST_SET]["n"] == 500
    saved = QuickstartConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert saved.n == 3000 and saved.train.max_epochs == 2


def test_model_learns_and_report_states_the_ceiling(quick):
    m = quick.metrics[TEST_SET]
    # 2 epochs on 2,850 sequences: far below the full quickstart's goal (r >= 0.85), but clearly learning.
    assert m["pearson_r"] > 0.3
    assert 0.9 < quick.ceiling_r < 1.0  # the simulator's default noise: noise-free vs measured r ≈ 0.95
    text = (quick.out / "report.md").read_text()
    assert f"| Pearson r | {m['pearson_r']:.4f} | {quick.ceiling_r:.4f} |" in text
    assert "scatter.png" in text and "learning_curve.png" in text
    assert "learned *simulated* promoters" in text and "expression bins" in text  # what the demo is, and its units


def test_refuses_an_existing_directory(quick):
    with pytest.raises(OutputExistsError):
        run_quickstart(QuickstartConfig(n=3000, n_test=500), quick.out)
    # --overwrite replaces a quickstart output, never one holding a file the quickstart does not write
    foreign = quick.out / "data" / "my-notes.txt"
    foreign.write_text("mine\n")
    try:
        with pytest.raises(CrmnetError, match=r"data/my-notes\.txt.*quickstart output"):
            run_quickstart(QuickstartConfig(n=3000, n_test=500), quick.out, overwrite=True)
        assert (quick.out / "report.md").exists()
    finally:
        foreign.unlink()


@pytest.mark.slow  # over 5 s on a 2-core CPU; CI runs it (make test-all)
def test_cli_with_the_full_paper_model(tmp_path, capsys):
    from crmnet.cli import main

    out = tmp_path / "full"
    args = ["quickstart", "--out", str(out), "--model", "crmnet", "--n", "200", "--n-test", "20",
            "--batch-size", "8", "--max-steps", "2", "--no-progress"]
    assert main(args) == 0
    assert "crmnet quickstart report" in capsys.readouterr().out
    run_config = json.loads((out / "run" / "config.json").read_text())
    assert run_config["model"] == "crmnet" and run_config["max_steps"] == 2
    ckpt = torch.load(out / "run" / "best.ckpt", weights_only=True)
    assert ckpt["model"] == "crmnet"
    assert sum(v.numel() for k, v in ckpt["state_dict"].items() if "running" not in k and "num_batches" not in k) \
        == 34_165_681
    assert json.loads((out / "metrics.json").read_text())[TEST_SET]["n"] == 20
