"""Training engine: run directory, checkpoints, early stopping, transfer learning, precision, CLI, recipe."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from crmnet.config import ConfigError
from crmnet.errors import InputError, OutputExistsError
from crmnet.training.config import TrainConfig
from crmnet.training.losses import loss_module
from crmnet.training.recipe import run_recipe
from crmnet.training.run import fit

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
TINY = "crmnet-tiny"
# Shrinks the tiny preset further so that a CPU epoch of a few hundred sequences takes a fraction of a second;
# batch-norm statistics follow fast (momentum 0.3, not Keras' 0.01) so that a few dozen steps suffice.
SMALL = {"encoder_channels": [8, 8, 8, 8], "kernel_size": 5, "heads": 1, "head_dim": 8, "ff_dim": 8,
         "transformer_pairs": 0, "decoder_channels": 8, "head_channels": [8, 8, 4], "mlp_units": [8],
         "mlp_dropout": [0.1], "bn_momentum": 0.3}


def write_toy_txt(path: Path, n: int, seed: int) -> Path:
    """A training file (``sequence<TAB>expression``) whose expression is learnable: GC content and GATA
    counts, plus noise; every target is distinct, so a target identifies its row."""
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(100, 113)))) for _ in range(n)]
    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in seqs])
    gata = np.array([s.count("GATA") for s in seqs])
    y = 30 * (gc - 0.5) + 2 * (gata - 0.3) + rng.normal(0, 0.3, n)
    path.write_text("".join(f"{s}\t{v:.6f}\n" for s, v in zip(seqs, y)))
    return path


def make_store(tmp: Path, n: int = 600, seed: int = 0, name: str = "store") -> Path:
    from crmnet.data.store import prepare

    txt = write_toy_txt(tmp / f"{name}.txt", n, seed)
    prepare([txt], tmp / name, val_fraction=0.2, seed=seed)
    return tmp / name


def tiny_config(store: Path, **kw) -> TrainConfig:
    base = {"model": TINY, "overrides": dict(SMALL), "store": str(store), "batch_size": 32, "max_epochs": 2,
            "warmup_epochs": 1, "lr_peak": 1e-2, "log_every_n_steps": 5, "save_every_n_steps": 5, "progress": False}
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("toy"))


# The learning run: 150 steps, MSE and a head of 16 units. Validation r measured over seeds 0-5: AVX-512
# kernels 0.60, 0.21, 0.73, 0.68, 0.66, 0.67; PyTorch's portable kernels (ATEN_CPU_CAPABILITY=default) 0.60,
# -0.01, 0.65, 0.60, 0.68, 0.69. Seed 1 starts from an initialisation that does not learn in 150 steps on
# either; seed 0, the test's, gives 0.60 on both, twice MIN_R. The earlier run (8-unit head, Huber, 75 steps)
# was at the line: 0.06-0.36 over seeds, and 0.15 for seed 0 on an Intel AVX-512 machine.
EPOCHS = 10
LEARNS = {"loss": "mse", "overrides": {**SMALL, "mlp_units": [16], "head_channels": [16, 16, 8]}}
MIN_R = 0.3


@pytest.fixture(scope="module")
def run(store, tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("runs") / "run"
    return fit(tiny_config(store, max_epochs=EPOCHS, **LEARNS), out)


def test_run_directory_is_complete(run):
    out = run.run_dir
    for name in ("config.json", "best.ckpt", "last.ckpt", "state.pt", "metrics.json", "learning_curve.png",
                 "logs/steps.csv", "logs/epochs.csv"):
        assert (out / name).is_file(), name
    assert TrainConfig.from_dict(json.loads((out / "config.json").read_text())).max_epochs == EPOCHS
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"validation"}
    keys = {"n", "pearson_r", "pearson_p", "spearman_r", "r2", "pearson_r_squared", "mse", "mae"}
    assert keys <= set(metrics["validation"])
    assert metrics["validation"]["n"] == 120  # 20 % of 600
    with open(out / "logs" / "epochs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS))
    steps_per_epoch = 480 // 32
    assert [int(r["step"]) for r in rows] == [steps_per_epoch * (k + 1) for k in range(EPOCHS)]
    with open(out / "logs" / "steps.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(5, EPOCHS * steps_per_epoch + 1, 5))
    assert run.epochs == EPOCHS and run.steps == EPOCHS * steps_per_epoch


def test_training_learns(run):
    # 150 steps of a model with 8 channels: far from converged, but clearly learning the toy target.
    assert run.metrics["validation"]["pearson_r"] > MIN_R
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.history[-1]["val_loss"] < run.history[0]["val_loss"]


def test_checkpoints_are_weights_only_and_restore_best(run):
    from crmnet.models.checkpoint import load_checkpoint

    for name in ("best.ckpt", "last.ckpt", "state.pt"):
        torch.load(run.run_dir / name, weights_only=True)
    best_epoch = int(np.argmax([row["val_r2"] for row in run.history]))
    assert run.best_epoch == best_epoch
    assert run.best_metric == pytest.approx(run.history[best_epoch]["val_r2"])
    model = load_checkpoint(run.run_dir / "best.ckpt")
    for (k, a), b in zip(model.state_dict().items(), run.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu()), k
    x = torch.nn.functional.one_hot(torch.randint(0, 5, (4, 112)), 5).float().transpose(1, 2)
    run.model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), run.model(x))


def test_early_stopping_stops_after_patience(store, tmp_path):
    # lr falls to 0 within the first epoch and batch-norm statistics are frozen (momentum 0), so from the
    # second epoch on nothing changes: no improvement, and patience 1 stops the run after epoch 2.
    cfg = tiny_config(store, max_epochs=10, patience=1, schedule="code", warmup_epochs=1, lr_start=3e-3,
                      lr_peak=0.0, lr_end=0.0, overrides={**SMALL, "bn_momentum": 0.0})
    result = fit(cfg, tmp_path / "run")
    assert result.stopped_early
    assert result.epochs == 2 and result.best_epoch == 0
    assert [row["best"] for row in result.history] == [1, 0]
    assert result.history[1]["val_r2"] == pytest.approx(result.history[0]["val_r2"], abs=1e-6)


def test_refuses_existing_run_and_bad_settings(store, run, tmp_path):
    with pytest.raises(OutputExistsError):
        fit(tiny_config(store), run.run_dir)
    with pytest.raises(InputError, match="not a training run"):
        fit(None, tmp_path, resume=True)
    with pytest.raises(InputError, match="store not found"):
        fit(tiny_config(tmp_path / "missing"), tmp_path / "r1")
    with pytest.raises(InputError, match="cannot train"):
        fit(tiny_config(store, batch_size=10_000), tmp_path / "r2")
    with pytest.raises(InputError, match="different configuration"):
        fit(tiny_config(store, max_epochs=7), run.run_dir, resume=True)
    for bad in ({"precision": "16"}, {"schedule": "cosine"}, {"batch_size": 0}, {"val_metric": "auc"},
                {"store": ""}, {"model": ""}, {"lr_peak": -1e-3}, {"warmup_epochs": -1}, {"huber_delta": 0},
                {"weight_decay": -0.1}):
        with pytest.raises(ValueError):
            tiny_config(store).replace(**bad).__post_init__()
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({"store": "x", "learning_rate": 1})


def test_resume_of_a_finished_run_changes_nothing(run):
    before = torch.load(run.run_dir / "best.ckpt", weights_only=True)["state_dict"]
    again = fit(None, run.run_dir, resume=True)
    assert again.steps == run.steps and again.epochs == run.epochs
    after = torch.load(run.run_dir / "best.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert again.metrics == run.metrics


def test_transfer_learning_starts_from_the_checkpoint(store, run, tmp_path):
    # With a zero learning rate and frozen batch-norm statistics the fine-tuned model must be exactly
    # the initial checkpoint: the weights really come from --init, and every layer is trainable.
    init = run.run_dir / "best.ckpt"
    cfg = tiny_config(store, model="", overrides={}, init=str(init), max_epochs=1, lr_start=0.0, lr_peak=0.0,
                      lr_end=0.0)
    with pytest.raises(ConfigError, match="overrides"):
        fit(cfg.replace(overrides={"kernel_size": 3}), tmp_path / "bad")
    with pytest.raises(InputError, match="holds model"):
        fit(cfg.replace(model="legnet"), tmp_path / "bad2")
    result = fit(cfg, tmp_path / "ft")
    start = torch.load(init, weights_only=True)["state_dict"]
    end = result.model.state_dict()
    for k, v in start.items():
        if "running" in k or "num_batches" in k:
            continue  # batch-norm statistics keep updating in training mode
        assert torch.equal(v, end[k].cpu()), k
    assert all(p.requires_grad for p in result.model.parameters())


def test_model_loss_is_used_when_the_model_has_one():
    class WithLoss(torch.nn.Module):
        def forward(self, x):
            return x.sum(dim=(1, 2))

        def compute_loss(self, x, y):
            return torch.tensor(42.0), self(x)

    x, y = torch.ones(2, 5, 3), torch.zeros(2)
    loss, pred = loss_module(WithLoss())(x, y)
    assert float(loss) == 42.0 and torch.equal(pred, torch.full((2,), 15.0))
    loss, _ = loss_module(WithLoss(), "huber")(x, y)
    assert float(loss) == pytest.approx(15 - 0.5)  # Huber, δ = 1: |r| − δ/2
    loss, _ = loss_module(WithLoss(), "mse")(x, y)
    assert float(loss) == pytest.approx(225.0)


def test_one_owner_of_the_loss_and_huber_delta_for_every_model():
    from crmnet.errors import CrmnetError
    from crmnet.models.registry import build_model
    from crmnet.training.losses import resolve_loss

    peer, legnet, crm = build_model("deepatt"), build_model("legnet"), build_model(TINY, **SMALL)
    assert (resolve_loss(peer), resolve_loss(legnet), resolve_loss(crm)) == ("mse", "own", "huber")
    # --huber-delta is honoured by every model trained with Huber, and refused where it would be ignored.
    for model in (peer, legnet, crm):
        model.eval()
        x = torch.nn.functional.one_hot(torch.randint(0, 4, (6, model.encoding.length)), 5).float()
        x = x.transpose(1, 2)[:, : len(model.encoding.channels)]
        y = torch.linspace(-20, 20, 6)
        with torch.no_grad():
            loss, pred = loss_module(model, "huber", huber_delta=3.0)(x, y)
            want = torch.nn.functional.huber_loss(pred.float(), y, delta=3.0)
        assert float(loss) == pytest.approx(float(want))
    for model, loss in ((peer, "auto"), (legnet, "auto"), (crm, "mse")):
        with pytest.raises(CrmnetError, match="huber_delta 2.0 has no effect"):
            loss_module(model, loss, huber_delta=2.0)


def test_validation_metrics_are_those_of_the_best_weights(run, store):
    # metrics.json comes from the streaming validation of the best epoch; a separate numpy computation on
    # the restored best model's predictions must agree.
    from crmnet.data.loader import BatchLoader
    from crmnet.evaluation.metrics import compute_metrics

    loader = BatchLoader(store, "val", 50, encoding=run.model.encoding, shuffle=False)
    run.model.eval()
    with torch.no_grad():
        pairs = [(y, run.model(x)) for x, y in loader]
    want = compute_metrics(torch.cat([y for y, _ in pairs]).numpy(), torch.cat([p for _, p in pairs]).numpy())
    got = run.metrics["validation"]
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert run.history[run.best_epoch]["val_r2"] == pytest.approx(got["r2"])


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_runs_on_cpu(store, tmp_path, precision):
    result = fit(tiny_config(store, precision=precision, max_steps=4, max_epochs=1), tmp_path / "run")
    assert result.steps == 4
    assert np.isfinite(result.history[0]["train_loss"])
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def test_cli_train_and_resume(store, tmp_path, capsys):
    from crmnet.cli import main

    out = tmp_path / "cli"
    args = ["train", "--store", str(store), "--model", TINY, "--out", str(out), "--batch-size", "32",
            "--max-epochs", "1", "--no-progress", "--warmup-epochs", "1"]
    for key, value in SMALL.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    assert main(args) == 0
    assert "validation n=120" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["overrides"]["encoder_channels"] == [8, 8, 8, 8] and cfg["batch_size"] == 32
    assert main(["train", "--out", str(out), "--resume"]) == 0
    assert main(["train", "--out", str(out), "--resume", "--seed", "3"]) == 2
    assert main(args) == 2  # exists
    assert "already exists" in capsys.readouterr().err


def test_recipe_pretrain_then_finetune(store, tmp_path):
    other = make_store(tmp_path, n=300, seed=1, name="other")
    recipe = {"stages": [
        {"name": "pretrain", "config": {"model": TINY, "overrides": SMALL, "store": str(store)}},
        {"name": "finetune", "init_from": "pretrain", "config": {"store": str(other)}},
    ]}
    settings = {"batch_size": 32, "max_epochs": 1, "warmup_epochs": 1, "progress": False}
    results = run_recipe(recipe, tmp_path / "recipe", **settings)
    assert list(results) == ["pretrain", "finetune"]
    ft = json.loads((tmp_path / "recipe" / "finetune" / "config.json").read_text())
    assert ft["init"] == str(tmp_path / "recipe" / "pretrain" / "best.ckpt")
    again = run_recipe(recipe, tmp_path / "recipe", resume=True, **settings)  # complete: nothing reruns
    assert again["finetune"].steps == results["finetune"].steps
    with pytest.raises(InputError, match="not an earlier stage"):
        run_recipe({"stages": [{"name": "a", "init_from": "b", "config": {}}]}, tmp_path / "x")


def test_paper_recipe_file_is_valid():
    recipe = json.loads((ROOT / "configs" / "paper_transfer.json").read_text())
    names = [s["name"] for s in recipe["stages"]]
    assert names == ["pretrain", "complex", "defined"]
    for stage in recipe["stages"]:
        cfg = dict(stage["config"])
        if stage.get("init_from"):
            cfg.update(init="x.ckpt", model="")
        c = TrainConfig.from_dict(cfg)
        assert (c.batch_size, c.max_epochs, c.patience, c.warmup_epochs) == (1024, 50, 10, 10)
        assert (c.lr_start, c.lr_peak, c.lr_end, c.schedule, c.loss) == (1e-4, 1e-3, 1e-4, "paper", "auto")
    assert recipe["stages"][1]["init_from"] == recipe["stages"][2]["init_from"] == "pretrain"


def test_device_settings_and_optimiser():
    from crmnet.training.step import configure_device, make_optimizer

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    configure_device(torch.device("cpu"))  # CPU runs keep torch's defaults; nothing is set at import
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark) == before
    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer("adam", params, 1e-3, 0.0, torch.device("cpu")).defaults["foreach"] is True
    opt = make_optimizer("adamw", params, 1e-3, 0.1, torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == 0.1
