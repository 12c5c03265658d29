"""Exact resume: a run killed mid-epoch (SIGKILL) or stopped with Ctrl-C (SIGINT), then resumed, ends with
the same weights, metrics and history as an uninterrupted run with the same seed (CPU, bit for bit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_train import SMALL, TINY, make_store

# The driver sleeps a little in every step (through on_batch, which touches no numbers) so that the test
# can catch the run mid-epoch; the sleep changes the timing, never the result.
DRIVER = """
import sys, time, torch
torch.set_num_threads(1)
from crmnet import TrainConfig, fit
cfg = TrainConfig.from_dict({config})
resume = sys.argv[2] == "resume"
trained = []
fit(None if resume else cfg, sys.argv[1], resume=resume, on_batch=lambda *a: (trained.append(1), time.sleep({sleep})))
print("batches trained:", len(trained))
"""


TOTAL_STEPS = 3 * (480 // 32)  # 3 epochs of the 480 training rows of make_store, batch 32
# Seconds a subprocess may take: generous, since a loaded 2-core machine (load 20) needed over 60 s to start
# torch and reach step 18; waits return as soon as the condition holds, so a quiet machine pays nothing.
LOADED = 600.0


def _driver(tmp: Path, store: Path, sleep: float) -> Path:
    config = {"model": TINY, "overrides": SMALL, "store": str(store), "batch_size": 32, "max_epochs": 3,
              "warmup_epochs": 1, "lr_peak": 3e-3, "log_every_n_steps": 4, "save_every_n_steps": 3,
              "progress": False, "seed": 7}
    path = tmp / f"driver_{sleep}.py"
    path.write_text(DRIVER.format(config=repr(config), sleep=sleep))
    return path


def _run(driver: Path, out: Path, mode: str = "fresh", **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, str(driver), str(out), mode], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def _wait_mid_epoch(proc: subprocess.Popen, state: Path, min_step: int, timeout: float = LOADED) -> dict:
    """Poll the run's state.pt until it was saved mid-epoch at step >= min_step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be interrupted: {proc.stderr.read().decode()[-2000:]}")
        if state.exists():
            try:
                s = torch.load(state, weights_only=True)
            except (EOFError, RuntimeError):  # pragma: no cover - the rename is atomic; defensive only
                s = None
            if s and s["ranks"][0]["loader"] and s["step"] >= min_step:
                return s
        time.sleep(0.02)
    pytest.fail("no mid-epoch state was written in time")


def _same_run(a: Path, b: Path) -> None:
    for name in ("best.ckpt", "last.ckpt"):
        sa = torch.load(a / name, weights_only=True)["state_dict"]
        sb = torch.load(b / name, weights_only=True)["state_dict"]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}: {k} differs"
    assert json.loads((a / "metrics.json").read_text()) == json.loads((b / "metrics.json").read_text())
    ha = torch.load(a / "state.pt", weights_only=True)["history"]
    hb = torch.load(b / "state.pt", weights_only=True)["history"]
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in ha]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in hb]
    steps_a = (a / "logs" / "steps.csv").read_text().splitlines()
    steps_b = (b / "logs" / "steps.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in steps_a] == [r.split(",")[:2] for r in steps_b]  # no duplicate rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    store = make_store(tmp)
    reference = tmp / "reference"
    proc = _run(_driver(tmp, store, 0.0), reference)
    stdout, err = proc.communicate(timeout=LOADED)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert f"batches trained: {TOTAL_STEPS}" in stdout.decode()
    return tmp, store, reference


@pytest.mark.slow  # over 5 s on a 2-core CPU; CI runs it (make test-all)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "ctrl-c"])
def test_interrupted_run_resumes_to_the_same_result(setup, sig):
    tmp, store, reference = setup
    out = tmp / f"interrupted_{sig.name}"
    driver = _driver(tmp, store, 0.05)
    proc = _run(driver, out)
    # Step 18 lies in the second epoch (15 steps per epoch): the kill also crosses an epoch boundary.
    saved = _wait_mid_epoch(proc, out / "state.pt", min_step=18)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=LOADED)
    assert 0 < torch.load(out / "state.pt", weights_only=True)["step"] < TOTAL_STEPS
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode != 0 and b"crmnet train --resume" in err  # told how to continue
        after = torch.load(out / "state.pt", weights_only=True)
        assert after["step"] >= saved["step"] and after["ranks"][0]["loader"]  # saved where it stopped
    assert not (out / "metrics.json").exists()
    resumed_from = torch.load(out / "state.pt", weights_only=True)["step"]
    proc = _run(_driver(tmp, store, 0.0), out, mode="resume")
    stdout, err = proc.communicate(timeout=LOADED)
    assert proc.returncode == 0, err.decode()[-2000:]
    # It continued where the state was saved instead of starting again (which would give the same result).
    assert f"batches trained: {TOTAL_STEPS - resumed_from}" in stdout.decode()
    _same_run(reference, out)
