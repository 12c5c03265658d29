"""Training of any registered model: the paper's recipe in a small, exactly resumable loop.

Contract:

* :func:`fit` trains ``build_model(config.model, **config.overrides)`` (or the model of ``config.init``, for
  transfer learning with every layer trainable) on a prepared store and writes a *run directory*:
  ``config.json`` (the resolved :class:`TrainConfig`), ``best.ckpt`` and ``last.ckpt`` (crmnet checkpoints,
  ``torch.load(weights_only=True)``), ``state.pt`` (the full training state for ``--resume``),
  ``logs/steps.csv`` and ``logs/epochs.csv`` (plus TensorBoard events when TensorBoard is installed),
  ``learning_curve.png`` and ``metrics.json`` (``{"validation": {n, pearson_r, ..., mae}}`` for the
  restored best weights).
* Loss: Huber (δ = 1) on ``forward`` unless the model brings its own ``compute_loss`` (LegNet's KL
  soft-label loss). Optimiser: Adam. Learning rate: :class:`crmnet.training.schedule.WarmupCosine` (paper or
  code variant), scaled by the number of data-parallel processes D; the global batch is
  ``batch_size · D``.
* Early stopping on the validation metric (R² = 1 − SS_res/SS_tot by default), patience 10, at most 50
  epochs; the best weights are restored at the end.
* Resume is exact: every ``save_every_n_steps`` steps, at each epoch's end and on Ctrl-C, ``state.pt``
  is written atomically with the model, optimiser, grad-scaler, loader position (epoch + batches
  delivered), every rank's RNG state, early-stopping state and history, all as plain types and tensors.
  A run killed at any moment (even SIGKILL) continues from its last state and, on CPU, ends with the
  same weights as an uninterrupted run with the same seed.
* Devices: CPU or CUDA; fp32, bf16-mixed or fp16-mixed (autocast; fp16 with a grad scaler). Several
  processes train with DistributedDataParallel: launched by ``torchrun`` or SLURM ``srun`` (one process
  per device, read from the environment), or spawned here when ``devices > 1`` on one node. The
  :class:`crmnet.data.loader.BatchLoader` shards the data itself (no DistributedSampler).

The loop is written here rather than delegated to Lightning because exact mid-epoch resumption needs
control of the loader position and every RNG, which Lightning does not restore.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import pickle
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmnet.config import Config
from crmnet.errors import CrmnetError, InputError, OutputExistsError
from crmnet.fsutil import atomic_file, write_text_atomic
from crmnet.training.schedule import SCHEDULES, WarmupCosine

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
VAL_METRICS = {"r2": "max", "pearson_r": "max", "mse": "min"}  # metric → better direction
LOSSES = ("auto", "huber", "mse")
OPTIMIZERS = ("adam", "adamw")
ACCELERATORS = ("auto", "cpu", "cuda")
# TrainConfig fields with a fixed set of values (checked by TrainConfig, offered by the CLI)
CHOICES = {
    "val_metric": tuple(VAL_METRICS), "schedule": SCHEDULES, "lr_granularity": ("step", "epoch"),
    "loss": LOSSES, "optimizer": OPTIMIZERS, "precision": PRECISIONS, "accelerator": ACCELERATORS,
}
STATE_FORMAT = "crmnet-train-state"
STATE_VERSION = 1

STEP_FIELDS = ("step", "epoch", "lr", "train_loss", "samples_per_s")
EPOCH_FIELDS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_r2", "val_pearson_r", "val_mse",
                "val_mae", "best", "seconds")


@dataclass
class TrainConfig(Config):
    """Everything that determines a training run (dumped as the run's ``config.json``).

    model / overrides: registry name and model-config overrides (ignored fields are errors of the
        registry). With ``init``, the model is the checkpoint's and ``model`` must name it or be empty.
    store: prepared store directory (train split: 0, validation split: 1).
    batch_size: per process; the global batch is ``batch_size · D``.
    max_steps: stop after this many optimiser steps in total (smoke runs); None = no limit.
    schedule / warmup_epochs / lr_*: see :class:`crmnet.training.schedule.WarmupCosine`; ``lr_granularity`` is
        ``"step"`` (rate updated every step) or ``"epoch"`` (Keras-style, once per epoch).
    loss: ``"auto"`` = the model's ``compute_loss`` when it has one, else Huber; or force huber/mse.
    precision: ``"32"``, ``"bf16-mixed"``, ``"16-mixed"``.
    accelerator / devices / num_nodes: where to run; ``devices · num_nodes`` processes in all.
    threads: torch CPU threads per process (0: torch's default, or cores / processes when spawning).
        On a busy CPU one thread can be many times faster than two: threads that wait on each other
        lose their time slices.
    init: checkpoint to start from (transfer learning: all layers stay trainable).
    init_output_bias: start the bias of the model's final one-output Linear layer at the mean training
        target instead of 0 (not the paper's; saves the first epochs of a short CPU run from learning the
        offset of expression values around 9). Ignored with ``init`` and for models with their own loss.
    save_every_n_steps: how often the resumable state is written mid-epoch.
    """

    model: str = "crmnet"
    overrides: dict = field(default_factory=dict)
    store: str = ""
    batch_size: int = 1024
    max_epochs: int = 50
    max_steps: int | None = None
    patience: int = 10
    val_metric: str = "r2"
    schedule: str = "paper"
    warmup_epochs: float = 10.0
    lr_start: float = 1e-4
    lr_peak: float = 1e-3
    lr_end: float = 1e-4
    lr_granularity: str = "step"
    loss: str = "auto"
    huber_delta: float = 1.0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    precision: str = "32"
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    compile: bool = False
    threads: int = 0
    seed: int = 0
    init: str | None = None
    init_output_bias: bool = False
    log_every_n_steps: int = 50
    save_every_n_steps: int = 200
    progress: bool = True

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, not {getattr(self, name)!r}")
        positive = ("batch_size", "max_epochs", "devices", "num_nodes", "log_every_n_steps",
                    "save_every_n_steps")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, not {self.threads}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, not {self.max_steps}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, not {self.patience}")
        if self.huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, not {self.huber_delta}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, not {self.weight_decay}")
        self._lr_schedule(1)  # checks warmup_epochs and the learning rates here, not after the model is built
        if not self.store:
            raise ValueError("store: the prepared store directory to train on is required")
        if not self.model and not self.init:
            raise ValueError("model: a registry name is required unless init names a checkpoint")

    def _lr_schedule(self, world_size: int) -> WarmupCosine:
        """The learning-rate schedule of this config for ``world_size`` data-parallel processes."""
        return WarmupCosine(
            kind=self.schedule, warmup_epochs=self.warmup_epochs, total_epochs=self.max_epochs,
            lr_start=self.lr_start, lr_peak=self.lr_peak, lr_end=self.lr_end, world_size=world_size,
            granularity=self.lr_granularity,
        )


@dataclass
class TrainResult:
    """What :func:`fit` returns on every rank: the run directory and the model with its best weights."""

    run_dir: Path
    model: Any
    best_epoch: int | None
    best_metric: float | None
    epochs: int
    steps: int
    stopped_early: bool
    metrics: dict
    history: list[dict]


# ----------------------------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _launcher_env() -> _Dist | None:
    """The process layout set by torchrun (RANK/WORLD_SIZE) or SLURM (SLURM_PROCID/NTASKS), if any."""
    env = os.environ
    if "WORLD_SIZE" in env and "RANK" in env:
        return _Dist(int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"])), int(env["WORLD_SIZE"]))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        if "MASTER_ADDR" not in env:
            raise CrmnetError(
                "SLURM multi-task run without MASTER_ADDR: export MASTER_ADDR=$(scontrol show hostnames "
                "$SLURM_JOB_NODELIST | head -n1) and MASTER_PORT before srun"
            )
        env.setdefault("MASTER_PORT", "29500")
        return _Dist(int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", "0")), int(env["SLURM_NTASKS"]))
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _device(cfg: TrainConfig, dist: _Dist):
    import torch

    accel = cfg.accelerator
    if accel == "auto":
        accel = "cuda" if torch.cuda.is_available() else "cpu"
    if accel == "cuda":
        if not torch.cuda.is_available():
            raise CrmnetError("accelerator 'cuda' requested but no CUDA device is available")
        torch.cuda.set_device(dist.local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def fit(
    config: TrainConfig | None,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_batch: Callable | None = None,
) -> TrainResult:
    """Train as ``config`` says into run directory ``out``; returns the result on every process.

    resume: continue the run in ``out`` from its ``state.pt`` (``config`` may be None: the run's own
        ``config.json`` is used; a given config must equal it).
    overwrite: replace an existing run directory (refused otherwise).
    on_batch: optional ``on_batch(epoch, step, x, y)`` called for every training batch (inspection).
    When ``devices · num_nodes > 1`` and no launcher (torchrun, srun) started this process, ``devices``
    local processes are spawned (one node only); the returned result is then rank 0's, loaded from disk.
    """
    out = Path(out)
    config = _prepare_run_dir(config, out, resume=resume, overwrite=overwrite)
    launched = _launcher_env()
    wanted = config.devices * config.num_nodes
    if launched is not None:
        if launched.world_size != wanted:
            raise CrmnetError(
                f"the launcher started {launched.world_size} processes but the config asks for "
                f"devices × num_nodes = {config.devices} × {config.num_nodes} = {wanted}"
            )
        return _run(config, out, launched, resume=resume, on_batch=on_batch)
    if wanted == 1:
        return _run(config, out, _Dist(), resume=resume, on_batch=on_batch)
    if config.num_nodes > 1:
        raise CrmnetError(
            f"num_nodes = {config.num_nodes} needs a launcher: start one process per device with torchrun "
            "(--nnodes, --nproc-per-node) or SLURM srun (see the README, 'Several GPUs and nodes')"
        )
    return _spawn(config, out, resume=resume)


def _spawn(config: TrainConfig, out: Path, *, resume: bool) -> TrainResult:
    import torch.multiprocessing as mp

    port = _free_port()
    mp.start_processes(_spawned_worker, args=(config.to_dict(), str(out), resume, port), nprocs=config.devices,
                       start_method="spawn", join=True)
    from crmnet.models.checkpoint import load_checkpoint

    state = _load_state(out / "state.pt")
    model = load_checkpoint(out / "best.ckpt") if (out / "best.ckpt").exists() else None
    return TrainResult(
        run_dir=out, model=model, best_epoch=state["early"]["best_epoch"], best_metric=state["early"]["best"],
        epochs=state["epoch"], steps=state["step"], stopped_early=bool(state["stopped_early"]),
        metrics=json.loads((out / "metrics.json").read_text()), history=state["history"],
    )


def _spawned_worker(rank: int, config: dict, out: str, resume: bool, port: int) -> None:
    n = config["devices"]
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(n), "LOCAL_WORLD_SIZE": str(n)})
    import torch

    if not config["threads"] and (config["accelerator"] == "cpu" or not torch.cuda.is_available()):
        # Share the cores instead of each process taking all of them (as torchrun's OMP_NUM_THREADS=1).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // n))
    _run(TrainConfig.from_dict(config), Path(out), _Dist(rank, rank, n), resume=resume, on_batch=None)


# ----------------------------------------------------------------------------------------------- run dir
def _prepare_run_dir(config: TrainConfig | None, out: Path, *, resume: bool, overwrite: bool) -> TrainConfig:
    """Check and create the run directory (on the main process only); return the run's config."""
    cfg_path = out / "config.json"
    if resume:
        if not cfg_path.exists():
            raise InputError(out, "not a training run directory (no config.json): nothing to resume")
        try:
            saved = TrainConfig.from_dict(json.loads(cfg_path.read_text()))
        except (ValueError, TypeError) as exc:
            raise InputError(cfg_path, f"invalid run configuration: {exc}") from None
        if config is not None and config.to_dict() != saved.to_dict():
            diff = sorted(k for k, v in config.to_dict().items() if saved.to_dict()[k] != v)
            raise InputError(cfg_path, f"resume with a different configuration (fields {diff}); resume "
                                       "without settings or start a new run")
        return saved
    if config is None:
        raise ValueError("a TrainConfig is required unless resuming")
    if _is_main_process():
        if out.exists():
            if not overwrite:
                raise OutputExistsError(out, "pass --overwrite to replace it or --resume to continue it")
            if any(out.iterdir()) and not cfg_path.exists():
                raise CrmnetError(f"{out}: exists and is not a training run; refusing to delete it")
            shutil.rmtree(out)
        out.mkdir(parents=True)
        write_text_atomic(cfg_path, config.to_json() + "\n")
    return config


def _is_main_process() -> bool:
    env = _launcher_env()
    return env is None or env.main


# ----------------------------------------------------------------------------------------------- logging
class _Logs:
    """CSV logs (per logged step, per epoch) and TensorBoard events when TensorBoard is installed."""

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int):
        self.enabled = enabled
        self.dir = run_dir / "logs"
        self.tb = None
        self._steps = None
        if not enabled:
            return
        self.dir.mkdir(exist_ok=True)
        path = self.dir / "steps.csv"
        # Rows logged after the state we resume from will be logged again: drop them first.
        rows = []
        if path.exists():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        with atomic_file(path, overwrite=True) as fh:
            w = csv.DictWriter(fh, STEP_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self._steps = open(path, "a", newline="")  # noqa: SIM115 - appended to for the whole run, closed by close()
        self._writer = csv.DictWriter(self._steps, STEP_FIELDS)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.dir / "tensorboard"), purge_step=resume_step + 1)
        except ImportError:
            self.tb = None

    def step(self, row: dict) -> None:
        if not self.enabled:
            return
        self._writer.writerow(row)
        self._steps.flush()
        if self.tb is not None:
            for key in ("lr", "train_loss", "samples_per_s"):
                self.tb.add_scalar(f"train/{key}", row[key], row["step"])

    def epochs(self, history: list[dict]) -> None:
        if not self.enabled:
            return
        with atomic_file(self.dir / "epochs.csv", overwrite=True) as fh:
            w = csv.DictWriter(fh, EPOCH_FIELDS)
            w.writeheader()
            w.writerows(history)
        if self.tb is not None and history:
            row = history[-1]
            for key in ("train_loss", "val_loss", "val_r2", "val_pearson_r", "val_mse"):
                self.tb.add_scalar(f"epoch/{key}", row[key], row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()
        if self.tb is not None:
            self.tb.close()


class _StopFlag:
    """Turns the first Ctrl-C into a request to stop at the next step boundary (state saved first)."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if _in_main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------------------------- model
def _build_model(cfg: TrainConfig):
    """The model to train: the registry's, or the ``init`` checkpoint's (weights loaded, all trainable)."""
    from crmnet.models.registry import build_model

    if cfg.init is None:
        return build_model(cfg.model, **cfg.overrides)
    from crmnet.models.checkpoint import load_checkpoint

    init = Path(cfg.init)
    if not init.exists():
        raise InputError(init, "initial checkpoint not found")
    model = load_checkpoint(init)
    name = model.checkpoint_meta["model"]
    if cfg.model and cfg.model != name:
        raise InputError(init, f"checkpoint holds model {name!r} but the config asks for {cfg.model!r}")
    if cfg.overrides:
        raise InputError(init, "model overrides cannot change a model initialised from a checkpoint")
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _init_output_bias(model, store, store_path: Path) -> None:
    """Set the bias of the last one-output ``nn.Linear`` to the mean training target."""
    import numpy as np
    import torch

    if callable(getattr(model, "compute_loss", None)):
        return  # its output is not the expression itself (LegNet: bin logits)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1]
    if not last or last[-1].bias is None:
        raise InputError(store_path, f"init_output_bias: {type(model).__name__} has no one-output Linear layer")
    mean = float(np.mean(store.targets[store.indices("train")], dtype=np.float64))
    with torch.no_grad():
        last[-1].bias.fill_(mean)


def _optimizer(cfg: TrainConfig, params):
    import torch

    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    return kind(params, lr=cfg.lr_start, weight_decay=cfg.weight_decay)


def _autocast(precision: str, device):
    import torch

    dtype = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def loss_module(model, loss: str = "auto", huber_delta: float = 1.0):
    """The module a training step runs (and DDP wraps, so DDP sees one forward per step):
    ``forward(x, y) -> (loss, pred)``.

    loss: ``"auto"`` uses the model's ``compute_loss`` when it has one (LegNet), else Huber; or
    ``"huber"`` / ``"mse"`` on ``model(x)``. Its ``state_dict`` keys gain a ``model.`` prefix: save the
    model's own state, not this wrapper's.
    """
    import torch
    import torch.nn.functional as F

    own = loss == "auto" and callable(getattr(model, "compute_loss", None))

    class LossModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x, y):
            """x: (B, C, L) one-hot; y: (B,) targets → (scalar loss, (B,) predictions)."""
            if own:
                value, pred = self.model.compute_loss(x, y)
                return value.float(), pred
            pred = self.model(x)
            if loss == "mse":
                return F.mse_loss(pred.float(), y), pred
            return F.huber_loss(pred.float(), y, delta=huber_delta), pred

    return LossModule()


def optimizer_step(module, optimizer, scaler, x, y, precision: str = "32"):
    """One training step: autocast forward + loss, (scaled) backward, optimiser step; returns the loss.

    module: from :func:`loss_module` (possibly DDP-wrapped or compiled); x: (B, C, L); y: (B,).
    The loss is returned detached, still on the device (reading it would synchronise).
    """
    with _autocast(precision, x.device):
        loss, _ = module(x, y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


# ----------------------------------------------------------------------------------------------- validation
def _val_sums(module, loader, cfg: TrainConfig, device):
    """Sufficient statistics of the validation metrics over this process's shard (float64 tensor)."""
    import torch

    sums = torch.zeros(9, dtype=torch.float64, device=device)
    module.eval()
    with torch.no_grad(), _autocast(cfg.precision, device):
        for x, y in loader:
            loss, pred = module(x, y)
            p = pred.double()
            t = y.double()
            r = t - p
            sums += torch.stack([
                torch.tensor(float(len(t)), dtype=torch.float64, device=device), t.sum(), (t * t).sum(),
                p.sum(), (p * p).sum(), (t * p).sum(), (r * r).sum(), r.abs().sum(), loss.double() * len(t),
            ])
    module.train()
    return sums


def _val_metrics(sums) -> dict:
    n, sy, syy, sp, spp, syp, sse, sae, sloss = (float(v) for v in sums.cpu())
    if n == 0:
        raise CrmnetError("the validation split is empty: prepare the store with a validation fraction > 0")
    vy = syy - sy * sy / n
    vp = spp - sp * sp / n
    cov = syp - sy * sp / n
    return {
        "val_loss": sloss / n,
        "val_r2": 1.0 - sse / vy if vy > 0 else float("nan"),
        "val_pearson_r": cov / math.sqrt(vy * vp) if vy > 0 and vp > 0 else float("nan"),
        "val_mse": sse / n,
        "val_mae": sae / n,
    }


def _improved(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


# ----------------------------------------------------------------------------------------------- state
def _load_state(path: Path) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        # a truncated or foreign file: say which file, not a pickle traceback
        raise InputError(path, f"cannot read the training state ({exc})") from None
    if state.get("format") != STATE_FORMAT or state.get("format_version") != STATE_VERSION:
        raise InputError(path, "not a crmnet training state of a known version")
    return state


def _rng_state(device) -> dict:
    import torch

    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _state_dict_cpu(model) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------------------------- the loop
def _run(cfg: TrainConfig, out: Path, dist: _Dist, *, resume: bool, on_batch: Callable | None) -> TrainResult:
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    distributed = dist.world_size > 1
    device = _device(cfg, dist)
    if distributed:
        import torch.distributed as tdist

        if not tdist.is_initialized():
            tdist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=dist.rank,
                                     world_size=dist.world_size)
    try:
        return _train(cfg, out, dist, device, resume=resume, on_batch=on_batch)
    finally:
        if distributed:
            import torch.distributed as tdist

            tdist.destroy_process_group()


def _train(cfg: TrainConfig, out: Path, dist: _Dist, device, *, resume: bool, on_batch: Callable | None) -> TrainResult:
    import torch

    from crmnet.data.loader import BatchLoader
    from crmnet.data.store import open_store

    distributed = dist.world_size > 1
    if distributed:
        import torch.distributed as tdist
    store_path = Path(cfg.store)
    if not store_path.exists():
        raise InputError(store_path, "store not found (create it with `crmnet prepare`)")
    store = open_store(store_path)

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = _build_model(cfg)
    if cfg.init_output_bias and cfg.init is None:
        _init_output_bias(model, store, store_path)
    model = model.to(device)
    model.train()
    optimizer = _optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "16-mixed")
    schedule = cfg._lr_schedule(dist.world_size)
    common = {"encoding": model.encoding, "rank": dist.rank, "world_size": dist.world_size, "device": device}
    try:
        train_loader = BatchLoader(store, "train", cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True,
                                   **common)
        val_loader = BatchLoader(store, "val", cfg.batch_size, shuffle=False, seed=cfg.seed, drop_last=False,
                                 **common)
    except ValueError as exc:  # an empty split, or fewer rows than one global batch
        raise InputError(store_path, f"cannot train on this store: {exc}") from None
    steps_per_epoch = len(train_loader)
    mode = VAL_METRICS[cfg.val_metric]

    epoch, step, history = 0, 0, []
    early = {"best": None, "best_epoch": None, "bad_epochs": 0}
    stopped_early = False
    partial = {"loss_sum": 0.0, "steps": 0, "seconds": 0.0}  # running sums of the current epoch
    best_weights = None
    state_path = out / "state.pt"
    torch.manual_seed(cfg.seed + 1 + dist.rank)  # dropout masks differ between ranks
    if resume and state_path.exists():
        state = _load_state(state_path)
        if state["world_size"] != dist.world_size:
            raise CrmnetError(f"{state_path}: saved with {state['world_size']} processes, resumed with "
                              f"{dist.world_size}; resume with the same number of devices")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        epoch, step, history = state["epoch"], state["step"], state["history"]
        early, stopped_early, partial = state["early"], bool(state["stopped_early"]), state["partial"]
        mine = state["ranks"][dist.rank]
        train_loader.set_epoch(epoch)
        if mine["loader"]:  # saved mid-epoch: continue at the next batch
            train_loader.load_state_dict(mine["loader"])
        _set_rng_state(mine["rng"], device)
        if early["best_epoch"] is not None:
            from crmnet.models.checkpoint import read_checkpoint

            best_weights = read_checkpoint(out / "best.ckpt")["state_dict"]
    else:
        train_loader.set_epoch(0)
    finished = bool(stopped_early) or epoch >= cfg.max_epochs or (cfg.max_steps is not None and step >= cfg.max_steps)

    step_module = loss_module(model, cfg.loss, cfg.huber_delta)
    if cfg.compile:
        step_module = torch.compile(step_module)
    module = step_module
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        module = DistributedDataParallel(module, device_ids=ids)

    def save_state(epoch_done: bool) -> None:
        # Each rank has its own RNG and loader position (its shard): rank 0 saves all of them.
        mine = {"rng": _rng_state(device), "loader": {} if epoch_done else train_loader.state_dict()}
        ranks = [mine]
        if distributed:
            ranks = [None] * dist.world_size
            tdist.all_gather_object(ranks, mine)
        if not dist.main:
            return
        state = {
            "format": STATE_FORMAT, "format_version": STATE_VERSION, "world_size": dist.world_size,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            "epoch": epoch, "step": step, "history": history, "early": early, "stopped_early": stopped_early,
            "partial": partial, "ranks": ranks,
        }
        with atomic_file(state_path, overwrite=True, mode="wb") as fh:
            torch.save(state, fh)

    logs = _Logs(out, dist.main, step)
    bar = None
    try:
        with _StopFlag() as stop:
            while not finished:
                if distributed:
                    tdist.barrier()
                done_in_epoch = min(max(step - epoch * steps_per_epoch, 0), steps_per_epoch)
                bar = _progress(cfg, dist, epoch, steps_per_epoch, done_in_epoch)
                # Losses are summed on the device and read back only when logged or saved (no sync per step).
                epoch_acc = torch.zeros((), dtype=torch.float64, device=device)
                log_acc = torch.zeros((), dtype=torch.float64, device=device)
                epoch_n = log_n = 0
                t0 = t_log = time.perf_counter()
                for x, y in train_loader:
                    if on_batch is not None:
                        on_batch(epoch, step, x, y)
                    lr = schedule.apply(optimizer, step, steps_per_epoch)
                    loss = optimizer_step(module, optimizer, scaler, x, y, cfg.precision)
                    step += 1
                    epoch_acc += loss.detach()
                    log_acc += loss.detach()
                    epoch_n += 1
                    log_n += 1
                    if bar is not None:
                        bar.update(len(y) * dist.world_size)
                    if step % cfg.log_every_n_steps == 0:
                        now = time.perf_counter()
                        row = {"step": step, "epoch": epoch, "lr": lr, "train_loss": float(log_acc) / log_n,
                               "samples_per_s": log_n * len(y) * dist.world_size / max(now - t_log, 1e-9)}
                        log_acc.zero_()
                        t_log, log_n = now, 0
                        logs.step(row)
                        if bar is not None:
                            bar.set_postfix(loss=f"{row['train_loss']:.4f}", lr=f"{lr:.2e}", refresh=False)
                    stop_now = stop.requested
                    if distributed:
                        flag = torch.tensor([float(stop_now)], device=device)
                        tdist.all_reduce(flag)
                        stop_now = bool(flag.item())
                    if cfg.max_steps is not None and step >= cfg.max_steps:
                        break
                    if step % cfg.save_every_n_steps == 0 or stop_now:
                        partial["loss_sum"] += float(epoch_acc)
                        partial["steps"] += epoch_n
                        partial["seconds"] += time.perf_counter() - t0
                        epoch_acc.zero_()
                        epoch_n, t0 = 0, time.perf_counter()
                        save_state(epoch_done=False)
                    if stop_now:
                        raise KeyboardInterrupt
                if bar is not None:
                    bar.close()
                    bar = None
                partial["loss_sum"] += float(epoch_acc)
                partial["steps"] += epoch_n
                if distributed:
                    # DDP keeps parameters equal but batch-norm statistics are per process: take rank 0's.
                    for buf in model.buffers():
                        tdist.broadcast(buf, 0)
                # Validation runs on the unwrapped module: shards may differ in batch count, and DDP's
                # forward would then wait for a collective that never comes.
                sums = _val_sums(step_module, val_loader, cfg, device)
                if distributed:
                    tdist.all_reduce(sums)
                val = _val_metrics(sums)
                improved = _improved(val[f"val_{cfg.val_metric}"], early["best"], mode)
                if improved:
                    early = {"best": val[f"val_{cfg.val_metric}"], "best_epoch": epoch, "bad_epochs": 0}
                    best_weights = _state_dict_cpu(model)
                    if dist.main:
                        _save_checkpoint(out / "best.ckpt", model, cfg, store, val, epoch, step)
                else:
                    early["bad_epochs"] += 1
                history.append({
                    "epoch": epoch, "step": step, "lr": schedule.at_step(max(step - 1, 0), steps_per_epoch),
                    "train_loss": partial["loss_sum"] / max(partial["steps"], 1), **val, "best": int(improved),
                    "seconds": partial["seconds"] + time.perf_counter() - t0,
                })
                logs.epochs(history)
                if dist.main:
                    _log_epoch(history[-1], cfg)
                epoch += 1
                partial = {"loss_sum": 0.0, "steps": 0, "seconds": 0.0}
                stopped_early = early["bad_epochs"] >= cfg.patience
                finished = (stopped_early or epoch >= cfg.max_epochs
                            or (cfg.max_steps is not None and step >= cfg.max_steps))
                if dist.main and finished:
                    _save_checkpoint(out / "last.ckpt", model, cfg, store, val, epoch - 1, step)
                if not finished:
                    train_loader.set_epoch(epoch)
                save_state(epoch_done=True)
    except KeyboardInterrupt:
        if dist.main:
            print(f"\ncrmnet: training interrupted at step {step}; the run is saved: continue it with "
                  f"`crmnet train --resume --out {out}`", file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
        logs.close()

    if best_weights is not None:
        model.load_state_dict(best_weights)
    model.eval()
    metrics = _final_outputs(model, cfg, out, store, dist, device, history)
    return TrainResult(
        run_dir=out, model=model, best_epoch=early["best_epoch"], best_metric=early["best"], epochs=epoch,
        steps=step, stopped_early=stopped_early, metrics=metrics, history=history,
    )


def _progress(cfg: TrainConfig, dist: _Dist, epoch: int, steps_per_epoch: int, done_steps: int):
    """A progress bar counting sequences (so it shows samples/s) with the epoch's ETA; main process only."""
    if not (cfg.progress and dist.main):
        return None
    from tqdm.auto import tqdm

    per_step = cfg.batch_size * dist.world_size
    return tqdm(total=steps_per_epoch * per_step, initial=done_steps * per_step, unit="seq", unit_scale=True,
                desc=f"epoch {epoch + 1}/{cfg.max_epochs}", dynamic_ncols=True, leave=False, file=sys.stderr)


def _log_epoch(row: dict, cfg: TrainConfig) -> None:
    mark = " *" if row["best"] else ""
    print(f"epoch {row['epoch'] + 1}/{cfg.max_epochs}: train loss {row['train_loss']:.4f}, val loss "
          f"{row['val_loss']:.4f}, val R² {row['val_r2']:.4f}, val r {row['val_pearson_r']:.4f} "
          f"({row['seconds']:.1f} s){mark}", file=sys.stderr)


def _provenance(cfg: TrainConfig, store, epoch: int, step: int) -> dict:
    keys = ("n_rows", "n_train", "n_val", "media", "media_rows", "sources", "split", "created")
    return {
        "store": str(Path(cfg.store).resolve()),
        "store_manifest": {k: store.manifest[k] for k in keys if k in store.manifest},
        "train_config": cfg.to_dict(), "epoch": epoch, "step": step,
    }


def _save_checkpoint(path: Path, model, cfg: TrainConfig, store, val: dict, epoch: int, step: int) -> None:
    from crmnet.models.checkpoint import save_checkpoint

    save_checkpoint(path, model, provenance=_provenance(cfg, store, epoch, step),
                    metrics={"validation": {k.removeprefix("val_"): v for k, v in val.items()}}, overwrite=True)


def _final_outputs(model, cfg: TrainConfig, out: Path, store, dist: _Dist, device, history) -> dict:
    """Full validation metrics of the restored best weights, metrics.json and the learning curve."""
    import numpy as np
    import torch

    from crmnet.data.loader import BatchLoader
    from crmnet.evaluation.metrics import compute_metrics

    if dist.world_size > 1:
        import torch.distributed as tdist

        if not dist.main:  # metrics.json is rank 0's: wait until it is written, then read it
            tdist.barrier()
            return json.loads((out / "metrics.json").read_text())
    loader = BatchLoader(store, "val", cfg.batch_size, encoding=model.encoding, shuffle=False, seed=cfg.seed,
                         drop_last=False, rank=0, world_size=1, device=device)
    ys, ps = [], []
    with torch.no_grad(), _autocast(cfg.precision, device):
        for x, y in loader:
            ps.append(model(x).float().cpu().numpy())
            ys.append(y.float().cpu().numpy())
    metrics = {"validation": compute_metrics(np.concatenate(ys), np.concatenate(ps))}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if history:
        from crmnet.plot import learning_curve_figure, save_png

        save_png(learning_curve_figure(history, cfg.val_metric), out / "learning_curve.png")
    if dist.world_size > 1:
        tdist.barrier()
    return metrics


def load_config_file(path: str | os.PathLike) -> dict:
    """Read a JSON training config or recipe (``{"stages": [...]}``) with errors naming the file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    except OSError as exc:  # a directory, no permission
        raise InputError(path, f"cannot read the config file ({exc.strerror})") from None
    if not isinstance(obj, dict):
        raise InputError(path, "expected a JSON object (TrainConfig fields or a recipe)")
    return obj


def run_recipe(recipe: dict, out: str | os.PathLike, *, resume: bool = False, overwrite: bool = False,
               source: str | os.PathLike | None = None, **settings: Any) -> dict[str, TrainResult]:
    """Run a multi-stage recipe: each stage trains into ``out/<name>``; ``init_from`` names an earlier stage
    whose ``best.ckpt`` initialises it (pre-train → fine-tune). ``settings`` override every stage's config.

    Recipe: ``{"stages": [{"name": str, "init_from": str (optional), "config": {TrainConfig fields}}]}``;
    relative ``store`` paths are relative to the working directory.
    A resumed recipe skips stages whose run is complete and resumes the first incomplete one.
    """
    out = Path(out)
    stages = recipe.get("stages")
    if not isinstance(stages, list) or not stages:
        raise InputError(source, "a recipe needs a non-empty list 'stages'")
    results: dict[str, TrainResult] = {}
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            raise InputError(source, f"stage {i + 1}: expected an object with 'name' and 'config'")
        unknown = set(stage) - {"name", "init_from", "config"}
        if unknown or "name" not in stage:
            raise InputError(source, f"stage {i + 1}: needs 'name' and 'config' (unknown keys {sorted(unknown)})")
        name = stage["name"]
        try:
            cfg_dict = {**stage.get("config", {}), **settings}
            if stage.get("init_from"):
                if stage["init_from"] not in results:
                    raise InputError(source, f"stage {name!r}: init_from {stage['init_from']!r} is not an earlier "
                                             "stage")
                cfg_dict.update(init=str(out / stage["init_from"] / "best.ckpt"), model="")
            cfg = TrainConfig.from_dict(cfg_dict)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(source, f"stage {name!r}: {exc}") from None
        run_dir = out / name
        done = (run_dir / "metrics.json").exists()
        if resume and done:
            results[name] = _completed_result(run_dir)
            continue
        stage_resume = resume and (run_dir / "config.json").exists()
        results[name] = fit(None if stage_resume else cfg, run_dir, resume=stage_resume, overwrite=overwrite)
    return results


def _completed_result(run_dir: Path) -> TrainResult:
    from crmnet.models.checkpoint import load_checkpoint

    state = _load_state(run_dir / "state.pt")
    return TrainResult(
        run_dir=run_dir, model=load_checkpoint(run_dir / "best.ckpt"), best_epoch=state["early"]["best_epoch"],
        best_metric=state["early"]["best"], epochs=state["epoch"], steps=state["step"],
        stopped_early=bool(state["stopped_early"]), metrics=json.loads((run_dir / "metrics.json").read_text()),
        history=state["history"],
    )

