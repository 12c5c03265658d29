"""Data-parallel training on CPU (gloo): two processes see disjoint data and end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_train import SMALL, TINY, make_store

DRIVER = """
import os, sys, torch
torch.set_num_threads(1)
from crmnet import TrainConfig, fit
cfg = TrainConfig.from_dict({config})
seen = []
result = fit(cfg, sys.argv[1], on_batch=lambda epoch, step, x, y: seen.append((epoch, y.clone())))
torch.save({{"epoch": torch.tensor([e for e, y in seen for _ in y]), "y": torch.cat([y for _, y in seen]),
            "state": result.model.state_dict(), "steps": result.steps}},
           f"{{sys.argv[1]}}.rank{{os.environ['RANK']}}.pt")
"""


def _config(store: Path, **kw) -> dict:
    config = {"model": TINY, "overrides": SMALL, "store": str(store), "batch_size": 16, "max_epochs": 2,
              "warmup_epochs": 1, "lr_peak": 3e-3, "log_every_n_steps": 5, "save_every_n_steps": 5,
              "progress": False, "devices": 2, "seed": 3}
    config.update(kw)
    return config


# Two processes each, 10-15 s on a loaded 2-core machine.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("ddp"))


def test_two_gloo_processes_disjoint_data_identical_weights(store, tmp_path):
    targets = np.load(store / "targets.npy")
    assert len(np.unique(targets)) == len(targets)  # a target identifies its row
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(config=repr(_config(store))))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(driver),
           str(out)]
    proc = subprocess.run(cmd, capture_output=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    r0, r1 = (torch.load(f"{out}.rank{r}.pt", weights_only=True) for r in (0, 1))

    steps_per_epoch = 480 // (16 * 2)
    assert r0["steps"] == r1["steps"] == 2 * steps_per_epoch
    for epoch in (0, 1):
        a = set(r0["y"][r0["epoch"] == epoch].tolist())
        b = set(r1["y"][r1["epoch"] == epoch].tolist())
        assert len(a) == len(b) == steps_per_epoch * 16
        assert not a & b, f"epoch {epoch}: the ranks shared rows"
        assert (a | b) <= set(targets[np.load(store / "split.npy") == 0].tolist())  # training rows only

    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["devices"] == 2
    ckpt = torch.load(out / "best.ckpt", weights_only=True)
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(v, r0["state"][k]), k
    # D = 2: the learning rate is doubled (linear scaling rule) at the end of the warm-up.
    with open(out / "logs" / "epochs.csv") as fh:
        lr_end_epoch0 = float(fh.read().splitlines()[1].split(",")[2])
    assert lr_end_epoch0 == pytest.approx(2 * (1e-4 + (3e-3 - 1e-4) * (steps_per_epoch - 1) / steps_per_epoch))


def test_spawned_processes_without_a_launcher(store, tmp_path):
    from crmnet import TrainConfig, fit

    result = fit(TrainConfig.from_dict(_config(store, max_epochs=1)), tmp_path / "run")
    assert result.steps == 480 // 32
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["validation"]["n"] == 120
    assert result.model is not None
