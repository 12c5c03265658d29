"""Hostile input to training (issue 13): every bad setting, file or output is one line with exit status 2,
checked before anything is written, and nothing is created or removed; kills, Ctrl-C and NaN leave a run
that can be resumed.

One table per command (``train``, ``quickstart``): each case runs the CLI in a workspace holding a tiny
store, a finished run, a foreign directory and a checkpoint with NaN weights, and compares the workspace
before and after."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from crmnet.cli import main
from crmnet.config import ConfigError
from crmnet.errors import CrmnetError, InputError
from crmnet.models.checkpoint import load_checkpoint
from crmnet.training.config import TrainConfig
from crmnet.training.run import fit
from crmnet.training.state import load_state
from test_train import SMALL, TINY, make_store, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

SET = [f"--set={k}={json.dumps(v)}" for k, v in SMALL.items()]
SIZES = ["--batch-size", "32", "--max-epochs", "1", "--no-progress"]
TRAIN = ["--model", TINY, *SET, *SIZES]


@pytest.fixture(scope="module")
def template(tmp_path_factory, one_thread) -> Path:
    """A workspace: store/ (300 rows), nanstore/ (two NaN/inf targets), run/ (a finished run), notes/ (a
    user's directory), nan.ckpt (a checkpoint whose weights hold NaN), c.json."""
    ws = tmp_path_factory.mktemp("ws")
    make_store(ws, n=300)
    (ws / "store.txt").unlink()
    shutil.copytree(ws / "store", ws / "nanstore")
    targets = np.load(ws / "nanstore" / "targets.npy", mmap_mode="r+")
    targets[17], targets[40] = np.nan, np.inf
    targets.flush()
    del targets
    fit(tiny_config(ws / "store", max_epochs=1), ws / "run")
    (ws / "notes").mkdir()
    (ws / "notes" / "notes.txt").write_text("my notes\n")
    payload = torch.load(ws / "run" / "best.ckpt", weights_only=True)
    payload["state_dict"][next(iter(payload["state_dict"]))].fill_(float("nan"))
    torch.save(payload, ws / "nan.ckpt")
    (ws / "c.json").write_text("{}\n")
    return ws


@pytest.fixture
def ws(template, tmp_path, monkeypatch) -> Path:
    work = tmp_path / "ws"
    shutil.copytree(template, work, symlinks=True)
    monkeypatch.chdir(work)
    return work


def snapshot(root: Path) -> dict:
    """Every file and directory under ``root`` with its size, modification time and (for files) bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns,
                                         None if p.is_dir() else p.read_bytes())
    return out


def refuse(ws: Path, argv: list[str], capsys, *expected: str) -> str:
    """Run ``crmnet argv``: exit 2, one error line holding every ``expected`` text, workspace unchanged."""
    before = snapshot(ws)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert err.strip() == lines[0], err
    for text in expected:
        assert text in lines[0], lines[0]
    assert snapshot(ws) == before, "the workspace changed"
    return lines[0]


def _config(text: str) -> list[str]:
    Path("c.json").write_text(text)
    return ["--config", "c.json"]


TRAIN_CASES = {
    # data loss: --overwrite used to delete the finished run before checking the new settings
    "overwrite-typo-store": (["--store", "st/typo", "--out", "run", "--overwrite"], ["st/typo", "store not found"]),
    "overwrite-unknown-set": (["--store", "store", "--out", "run", "--overwrite", "--set", "flux_capacitor=88"],
                              ["--set flux_capacitor", "unknown", "heads"]),
    "overwrite-nan-store": (["--store", "nanstore", "--out", "run", "--overwrite"],
                            ["nanstore/targets.npy", "row 17 is nan", "must be finite"]),
    "overwrite-foreign-dir": (["--store", "store", "--out", "notes", "--overwrite"],
                              ["notes", "notes.txt", "crmnet wrote"]),
    "overwrite-a-file": (["--store", "store", "--out", "c.json", "--overwrite"], ["c.json", "not a directory"]),
    "exists": (["--store", "store", "--out", "run"], ["run", "already exists", "--resume"]),
    # model and settings
    "set-heads-abc": (["--store", "store", "--out", "new", "--set", "heads=abc"], ["--set heads", "integer", "'abc'"]),
    "set-heads-negative": (["--store", "store", "--out", "new", "--set", "heads=-3"],
                           ["--set heads", "negative", "-3"]),
    "model-unknown": (["--store", "store", "--out", "new", "--model", "nosuchmodel"],
                      ["--model", "nosuchmodel", "crmnet-tiny", "legnet"]),
    "model-near-miss": (["--store", "store", "--out", "new", "--model", "crmnet_tiny"], ["did you mean 'crmnet-tiny'"]),
    "batch-size-zero": (["--store", "store", "--out", "new", "--batch-size", "0"], ["--batch-size", ">= 1"]),
    "batch-larger-than-store": (["--store", "store", "--out", "new", "--batch-size", "100000"],
                                ["store", "cannot train", "full batch"]),
    "init-nan-weights": (["--store", "store", "--out", "new", "--init", "nan.ckpt", "--model", ""],
                         ["nan.ckpt", "NaN"]),
    "init-missing": (["--store", "store", "--out", "new", "--init", "nope.ckpt"], ["nope.ckpt", "not found"]),
    # outputs
    "out-impossible": (["--store", "store", "--out", "/proc/crmnet-no-such/run"], ["/proc/crmnet-no-such/run",
                                                                                  "cannot create"]),
    "out-under-a-file": (["--store", "store", "--out", "c.json/run"], ["c.json/run", "not a directory"]),
    # resume
    "resume-not-a-run": (["--resume", "--out", "notes"], ["notes", "not a training run"]),
    "resume-with-settings": (["--resume", "--out", "run", "--batch-size", "8"], ["give no settings"]),
}
JSON_CASES = {  # JSON configs: strict types, no coercion, the file and the field named
    "batch-size-float": ('{"batch_size": 256.7}', ["c.json", "batch_size", "integer", "256.7"]),
    "seed-string": ('{"seed": "zero"}', ["c.json", "seed", "integer", "'zero'"]),
    "overrides-string": ('{"overrides": "x"}', ["c.json", "overrides", "object"]),
    "batch-size-bool": ('{"batch_size": true}', ["c.json", "batch_size", "integer", "true"]),
    "compile-string": ('{"compile": "no"}', ["c.json", "compile", "true or false", "'no'"]),
    "override-type": ('{"overrides": {"heads": "abc"}}', ["c.json", "overrides.heads", "integer"]),
    "lr-nan": ('{"lr_peak": NaN}', ["c.json", "lr_peak", "NaN"]),
    "unknown-key": ('{"learning_rate": 0.1}', ["c.json", "learning_rate", "unknown"]),
    "not-an-object": ("[1, 2]", ["c.json", "JSON object"]),
    "bad-json": ('{"seed": 1,}', ["c.json:1", "invalid JSON"]),
    "recipe-late-stage": (('{"stages": [{"name": "pre", "config": {"model": "crmnet-tiny", "store": "store", '
                           '"batch_size": 32}}, {"name": "ft", "init_from": "pre", "config": {"store": "store", '
                           '"batch_size": "32"}}]}'), ["c.json", "stage 'ft'", "batch_size"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES) + [f"json-{k}" for k in sorted(JSON_CASES)])
def test_train_refuses(ws, capsys, case):
    if case.startswith("json-"):
        text, expected = JSON_CASES[case[5:]]
        argv = ["train", "--store", "store", "--out", "new", *_config(text)]
    else:
        args, expected = TRAIN_CASES[case]
        # resuming takes no settings; a checkpoint (--init) brings its own model
        common = [] if "--resume" in args else SIZES if "--init" in args else TRAIN
        argv = ["train", *common, *args]
    refuse(ws, argv, capsys, *expected)
    assert (ws / "run" / "best.ckpt").exists() and (ws / "notes" / "notes.txt").exists()


@pytest.mark.parametrize("device, expected", [("tpu9", ["--device", "tpu9", "cuda"]),
                                              ("cuda", ["--accelerator/--device", "cuda", "CPU-only"])])
def test_train_refuses_a_device(ws, capsys, device, expected):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    refuse(ws, ["train", *TRAIN, "--store", "store", "--out", "run", "--overwrite", "--device", device], capsys,
           *expected)


QUICKSTART_CASES = {
    "n-too-small": (["--n", "5"], ["--n", ">= 100", "5"]),
    "n-test-too-small": (["--n-test", "3"], ["--n-test", ">= 10"]),
    "n-below-a-batch": (["--n", "100"], ["--n", "one batch of 256"]),
    "model-unknown": (["--model", "nosuchmodel"], ["--model", "nosuchmodel", "crmnet-tiny"]),
    "epochs-zero": (["--epochs", "0"], ["--epochs", "at least 1"]),
    "overwrite-foreign-dir": (["--out", "notes", "--overwrite"], ["notes", "notes.txt", "quickstart output"]),
    "overwrite-a-run": (["--out", "run", "--overwrite"], ["run", "quickstart output"]),
    "exists": (["--out", "notes"], ["notes", "already exists"]),
}


@pytest.mark.parametrize("case", sorted(QUICKSTART_CASES))
def test_quickstart_refuses(ws, capsys, case):
    args, expected = QUICKSTART_CASES[case]
    if "--out" not in args:
        args = [*args, "--out", "q"]
    refuse(ws, ["quickstart", "--no-progress", *args], capsys, *expected)


def test_overwrite_replaces_only_the_run(ws, capsys):
    """A valid --overwrite replaces a finished run (leftovers of killed writes included) and nothing else."""
    (ws / "run" / ".state.pt.abcd1234.tmp").write_bytes(b"half")
    old = (ws / "run" / "config.json").read_text()
    assert main(["train", *TRAIN, "--store", "store", "--out", "run", "--overwrite", "--max-steps", "2",
                 "--seed", "5"]) == 0
    assert json.loads((ws / "run" / "config.json").read_text())["seed"] == 5 and old != (ws / "run" /
                                                                                          "config.json").read_text()
    assert not (ws / "run" / ".state.pt.abcd1234.tmp").exists()
    assert load_state(ws / "run" / "state.pt")["step"] == 2
    assert (ws / "notes" / "notes.txt").read_text() == "my notes\n"


def test_resume_sweeps_only_crmnet_leftovers_and_restores_a_moved_aside_state(ws, capsys):
    run = ws / "run"
    ours = [run / ".best.ckpt.abcd1234.tmp", run / ".state.pt.zz99aa11.lock", run / "logs" / ".steps.csv.a1b2c3d4.tmp"]
    theirs = [run / ".notes.abcd1234.tmp", run / ".state.pt.tmp"]
    for p in ours + theirs:
        p.write_bytes(b"x")
    state = (run / "state.pt").read_bytes()
    (run / "state.pt").rename(run / ".state.pt.k3y5abcd.old")  # killed between the two renames of a save
    assert main(["train", "--resume", "--out", "run"]) == 0
    assert "cleaned up 4 leftover file(s)" in capsys.readouterr().err
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
    assert (run / "state.pt").read_bytes() == state


def test_a_run_in_use_is_locked(ws):
    fcntl = pytest.importorskip("fcntl")
    fd = os.open(ws / "run", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CrmnetError, match="another crmnet process"):
            fit(None, ws / "run", resume=True)
        with pytest.raises(CrmnetError, match="another crmnet process"):
            fit(tiny_config(ws / "store", max_steps=1), ws / "run", overwrite=True)
    finally:
        os.close(fd)
    assert (ws / "run" / "best.ckpt").exists()


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_state(ws):
    out = ws / "nan"
    cfg = tiny_config(ws / "store", max_epochs=3, log_every_n_steps=2, save_every_n_steps=3)  # 7 steps per epoch

    def poison(epoch, step, x, y):
        if step == 8:  # the 9th step trains on NaN targets
            y.fill_(float("nan"))

    with pytest.raises(CrmnetError, match=r"not a finite number at step 9; stopped \(the state of step 7 is kept\)"):
        fit(cfg, out, on_batch=poison)
    state = load_state(out / "state.pt")
    assert state["step"] == 7
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values() if v.is_floating_point())
    best = load_checkpoint(out / "best.ckpt")  # epoch 1's, finite (load refuses NaN weights)
    assert best.checkpoint_meta["provenance"]["step"] == 7
    result = fit(None, out, resume=True)  # the run continues from the last good state
    assert result.steps == 21 and result.epochs == 3


def test_ctrl_c_mid_step_exits_130_and_the_run_resumes(ws, capsys, monkeypatch):
    from crmnet.training import loop

    real = loop.optimizer_step
    steps = []

    def step_then_ctrl_c(*args, **kw):
        steps.append(1)
        if len(steps) == 5:
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: stop after this step, state saved
        return real(*args, **kw)

    monkeypatch.setattr(loop, "optimizer_step", step_then_ctrl_c)
    argv = ["train", *TRAIN, "--store", "store", "--out", "cc", "--max-epochs", "2", "--save-every-n-steps", "100"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "stopping after this step" in err and "continue it from step 5" in err
    assert err.strip().endswith("crmnet: interrupted")
    assert load_state(ws / "cc" / "state.pt")["step"] == 5
    monkeypatch.setattr(loop, "optimizer_step", real)
    assert main(["train", "--resume", "--out", "cc"]) == 0
    assert load_state(ws / "cc" / "state.pt")["step"] == 14


def test_second_ctrl_c_stops_at_once_and_names_the_last_saved_step(ws, capsys, monkeypatch):
    from crmnet.training import loop

    real = loop.optimizer_step
    steps = []

    def twice(*args, **kw):
        steps.append(1)
        if len(steps) == 6:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # raises KeyboardInterrupt in the middle of the step
        return real(*args, **kw)

    monkeypatch.setattr(loop, "optimizer_step", twice)
    assert main(["train", *TRAIN, "--store", "store", "--out", "cc", "--save-every-n-steps", "4"]) == 130
    assert "continue it from step 4" in capsys.readouterr().err
    assert load_state(ws / "cc" / "state.pt")["step"] == 4


def test_checkpoint_with_nan_weights_is_refused_at_load(template):
    with pytest.raises(InputError, match=r"nan\.ckpt: 1 of \d+ tensors hold NaN or infinite values"):
        load_checkpoint(template / "nan.ckpt")


@pytest.mark.parametrize("values, field", [
    ({"batch_size": 256.7}, "batch_size"), ({"batch_size": True}, "batch_size"), ({"seed": "0"}, "seed"),
    ({"compile": "no"}, "compile"), ({"compile": 1}, "compile"), ({"lr_peak": "1e-3"}, "lr_peak"),
    ({"max_steps": 2.0}, "max_steps"), ({"init": 3}, "init"), ({"overrides": []}, "overrides"),
    ({"progress": None}, "progress"), ({"patience": 0}, "patience"), ({"lr_end": float("inf")}, "lr_end"),
])
def test_config_types_are_strict_and_errors_name_the_field(values, field):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"store": "s", **values})
    assert info.value.field == field and str(info.value).startswith(f"{field}: ")


def test_config_accepts_json_round_trips():
    cfg = TrainConfig.from_dict({"store": "s", "lr_peak": 1, "max_steps": None, "overrides": {"mlp_units": [8]}})
    assert cfg.lr_peak == 1 and TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
