"""The epoch loop of one process: set up, (resume,) train steps, validate, stop early, finish.

* Loss: :mod:`crmnet.training.losses`. Optimiser: Adam (fused on CUDA). Learning rate:
  :class:`crmnet.training.schedule.WarmupCosine`, scaled by the number of data-parallel processes D;
  the global batch is ``batch_size · D``.
* Early stopping on the validation metric (R² = 1 − SS_res/SS_tot by default), patience 10, at most 50
  epochs; the best weights are restored at the end, and their validation metrics (computed by the
  epoch's validation pass, :func:`crmnet.training.step.validate`) are ``metrics.json``; best.ckpt's
  model card then gets its reference distribution, the 101 quantiles of those weights' predictions on the
  validation split (:func:`crmnet.evaluation.card.split_reference_card`), so predictions carry percentiles.
* No host synchronisation per step: losses are summed on the device and read back when logged or saved.
* Exact resume: :mod:`crmnet.training.state`.

The loop is written here rather than delegated to Lightning because exact mid-epoch resumption needs
control of the loader position and every RNG, which Lightning does not restore.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from crmnet.errors import CrmnetError, InputError
from crmnet.evaluation.metrics import METRIC_KEYS
from crmnet.fsutil import write_text_atomic
from crmnet.training.config import VAL_METRICS, TrainConfig, TrainResult
from crmnet.training.distributed import Dist, any_rank, barrier, broadcast_buffers, gather_objects, wrap_ddp
from crmnet.training.logs import RunLogs, StopFlag, print_epoch, progress_bar
from crmnet.training.losses import loss_module
from crmnet.training.state import Progress, load_state, rank_state, restore_rank, save_state, state_dict_cpu
from crmnet.training.step import make_optimizer, optimizer_step, validate


@dataclass
class _Run:
    """Everything one process's loop works with."""

    cfg: TrainConfig
    out: Path
    dist: Dist
    device: torch.device
    store: Any
    model: torch.nn.Module
    optimizer: Any
    scaler: Any
    train_loader: Any
    val_loader: Any
    center: float  # mean validation target: the shift of the streaming metric sums
    on_batch: Callable | None
    progress: Progress = field(default_factory=Progress)
    step_module: Any = None  # the loss module (compiled with cfg.compile): validation runs on it
    module: Any = None  # step_module, DDP-wrapped with several processes: training runs on it
    best_weights: dict | None = None
    best_metrics: dict | None = None
    last_metrics: dict | None = None
    saved_step: int | None = None  # the step of the last state.pt written (None: none yet)

    @property
    def state_path(self) -> Path:
        return self.out / "state.pt"


def train_loop(cfg: TrainConfig, out: Path, dist: Dist, device, *, resume: bool,
               on_batch: Callable | None) -> TrainResult:
    """Train in this process (one of ``dist.world_size``) into run directory ``out``; see the module doc."""
    run = _setup(cfg, out, dist, device, on_batch)
    torch.manual_seed(cfg.seed + 1 + dist.rank)  # dropout masks differ between ranks
    if resume and run.state_path.exists():
        _restore(run)
        run.saved_step = run.progress.step
    else:
        run.train_loader.set_epoch(0)
    run.step_module = loss_module(run.model, cfg.loss, cfg.huber_delta)
    if cfg.compile:
        run.step_module = torch.compile(run.step_module)
    run.module = wrap_ddp(run.step_module, dist, device)
    logs = RunLogs(out, dist.main, run.progress.step)
    try:
        with StopFlag(announce=dist.main) as stop:
            while not run.progress.finished(cfg.max_epochs, cfg.max_steps):
                _end_epoch(run, logs, _train_epoch(run, logs, stop))
    except KeyboardInterrupt:
        if dist.main:
            saved = "from its start" if run.saved_step is None else f"from step {run.saved_step}"
            print(f"\ncrmnet: training interrupted at step {run.progress.step}; continue it {saved} with "
                  f"`crmnet train --resume --out {out}`", file=sys.stderr)
        raise
    finally:
        logs.close()
    return _finish(run)


def _setup(cfg: TrainConfig, out: Path, dist: Dist, device, on_batch) -> _Run:
    from crmnet.data.loader import BatchLoader
    from crmnet.data.store import open_store

    store_path = Path(cfg.store)  # checked by crmnet.training.checks before the run began
    store = open_store(store_path)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = _build_model(cfg)
    if cfg.init_output_bias and cfg.init is None:
        _init_output_bias(model, store, store_path)
    model = model.to(device).train()
    optimizer = make_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad], cfg.lr_start,
                               cfg.weight_decay, device)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "16-mixed")
    common = {"encoding": model.encoding, "rank": dist.rank, "world_size": dist.world_size, "device": device,
              "seed": cfg.seed}
    try:
        train_loader = BatchLoader(store, "train", cfg.batch_size, shuffle=True, drop_last=True, **common)
        # Unpadded shards: every validation row counts exactly once, whatever the number of processes.
        val_loader = BatchLoader(store, "val", cfg.batch_size, shuffle=False, drop_last=False, pad_shards=False,
                                 **common)
    except ValueError as exc:  # an empty split, or fewer rows than one global batch
        raise InputError(store_path, f"cannot train on this store: {exc}") from None
    center = float(store.targets[store.indices("val")].mean(dtype="float64"))
    return _Run(cfg, out, dist, device, store, model, optimizer, scaler, train_loader, val_loader, center,
                on_batch)


def _restore(run: _Run) -> None:
    """Continue from ``state.pt``: weights, optimiser, scaler, progress, this rank's RNG and loader position."""
    state = load_state(run.state_path)
    if state["world_size"] != run.dist.world_size:
        raise CrmnetError(f"{run.state_path}: saved with {state['world_size']} processes, resumed with "
                          f"{run.dist.world_size}; resume with the same number of devices")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scaler.load_state_dict(state["scaler"])
    run.progress = Progress.from_state(state)
    run.train_loader.set_epoch(run.progress.epoch)
    restore_rank(state["ranks"][run.dist.rank], run.device, run.train_loader)
    if run.progress.early["best_epoch"] is not None:
        from crmnet.models.checkpoint import read_checkpoint

        best = read_checkpoint(run.out / "best.ckpt")
        run.best_weights, run.best_metrics = best["state_dict"], best["metrics"]["validation"]
    elif (run.out / "last.ckpt").exists():
        from crmnet.models.checkpoint import read_checkpoint

        run.last_metrics = read_checkpoint(run.out / "last.ckpt")["metrics"]["validation"]


def _train_epoch(run: _Run, logs: RunLogs, stop: StopFlag) -> float:
    """Train the rest of the current epoch; returns when its unbanked part began (``perf_counter``)."""
    cfg, p, dist, device = run.cfg, run.progress, run.dist, run.device
    barrier(dist)
    spe = len(run.train_loader)
    schedule = cfg.lr_schedule(dist.world_size)
    per_step = cfg.batch_size * dist.world_size
    bar = progress_bar(cfg.progress and dist.main, p.epoch, cfg.max_epochs, spe,
                       min(max(p.step - p.epoch * spe, 0), spe), per_step)
    epoch_acc = torch.zeros((), dtype=torch.float64, device=device)
    log_acc = torch.zeros((), dtype=torch.float64, device=device)
    bad_step = torch.full((), -1, dtype=torch.int64, device=device)  # first step with a non-finite loss
    epoch_n = log_n = 0
    t0 = t_log = time.perf_counter()
    try:
        for x, y in run.train_loader:
            if run.on_batch is not None:
                run.on_batch(p.epoch, p.step, x, y)
            lr = schedule.apply(run.optimizer, p.step, spe)
            loss = optimizer_step(run.module, run.optimizer, run.scaler, x, y, cfg.precision)
            p.step += 1
            # on the device: no synchronisation; read where the loop synchronises anyway (log, save)
            bad_step = torch.where(torch.isfinite(loss) | (bad_step >= 0), bad_step, p.step)
            epoch_acc += loss
            log_acc += loss
            epoch_n += 1
            log_n += 1
            if bar is not None:
                bar.update(per_step)
            logged = p.step % cfg.log_every_n_steps == 0
            saving = p.step % cfg.save_every_n_steps == 0
            last = cfg.max_steps is not None and p.step >= cfg.max_steps
            checked = logged or saving or last
            if checked:
                _check_finite(run, bad_step)
            if logged:
                now = time.perf_counter()
                row = {"step": p.step, "epoch": p.epoch, "lr": lr, "train_loss": float(log_acc) / log_n,
                       "samples_per_s": log_n * per_step / max(now - t_log, 1e-9)}
                log_acc.zero_()
                t_log, log_n = now, 0
                logs.step(row)
                if bar is not None:
                    bar.set_postfix(loss=f"{row['train_loss']:.4f}", lr=f"{lr:.2e}", refresh=False)
            # Several processes agree on stopping only when they synchronise anyway (log or save steps).
            stop_now = any_rank(stop.requested, dist, device) if logged or saving else False
            stop_now = stop_now or (stop.requested and not dist.distributed)
            if last:
                break
            if saving or stop_now:
                if not checked:
                    _check_finite(run, bad_step)
                t0 = _bank(p, epoch_acc, epoch_n, t0)
                epoch_n = 0
                _save(run, epoch_done=False)
            if stop_now:
                raise KeyboardInterrupt
    finally:
        if bar is not None:
            bar.close()
    _check_finite(run, bad_step)  # before the epoch's end writes checkpoints and the state
    p.partial["loss_sum"] += float(epoch_acc)
    p.partial["steps"] += epoch_n
    return t0


def _check_finite(run: _Run, bad_step: torch.Tensor) -> None:
    """Stop with an error when a step's loss was NaN or infinite.

    Stop with an error when a step's loss was NaN or infinite (on any process), before anything more is
    saved: the state and checkpoints on disk stay those of the last good step.
    """
    step = int(bad_step)
    if any_rank(step >= 0, run.dist, run.device):
        kept = "nothing was saved yet" if run.saved_step is None else f"the state of step {run.saved_step} is kept"
        where = f"at step {step}" if step >= 0 else "on another process"
        raise CrmnetError(f"{run.out}: training loss is not a finite number {where}; stopped ({kept}); start a "
                          "new run with a lower learning rate or --precision 32, or check the data")


def _bank(p: Progress, acc: torch.Tensor, n: int, t0: float) -> float:
    """Move the device's running loss sum and the elapsed time into ``p.partial``; returns the new start."""
    now = time.perf_counter()
    p.partial["loss_sum"] += float(acc)
    p.partial["steps"] += n
    p.partial["seconds"] += now - t0
    acc.zero_()
    return now


def _end_epoch(run: _Run, logs: RunLogs, t0: float) -> None:
    """Validate, update early stopping and checkpoints, log the epoch and save the state."""
    cfg, p, dist = run.cfg, run.progress, run.dist
    broadcast_buffers(run.model, dist)
    full = validate(run.step_module, run.val_loader, cfg.precision, run.device, run.center)
    val = {f"val_{k}": full[k] for k in ("loss", "r2", "pearson_r", "mse", "mae")}
    metrics = {k: full[k] for k in METRIC_KEYS}
    value = val[f"val_{cfg.val_metric}"]
    improved = _improved(value, p.early["best"], VAL_METRICS[cfg.val_metric])
    if improved:
        p.early = {"best": value, "best_epoch": p.epoch, "bad_epochs": 0}
        run.best_weights, run.best_metrics = state_dict_cpu(run.model), metrics
        if dist.main:
            _save_checkpoint(run.out / "best.ckpt", run, metrics, p.epoch)
    else:
        p.early["bad_epochs"] += 1
    run.last_metrics = metrics
    p.history.append({
        "epoch": p.epoch, "step": p.step,
        "lr": cfg.lr_schedule(dist.world_size).at_step(max(p.step - 1, 0), len(run.train_loader)),
        "train_loss": p.partial["loss_sum"] / max(p.partial["steps"], 1), **val, "best": int(improved),
        "seconds": p.partial["seconds"] + time.perf_counter() - t0,
    })
    logs.epochs(p.history)
    if dist.main:
        print_epoch(p.history[-1], cfg.max_epochs)
    p.epoch += 1
    p.partial = {"loss_sum": 0.0, "steps": 0, "seconds": 0.0}
    p.stopped_early = p.early["bad_epochs"] >= cfg.patience
    finished = p.finished(cfg.max_epochs, cfg.max_steps)
    if dist.main and finished:
        _save_checkpoint(run.out / "last.ckpt", run, metrics, p.epoch - 1)
    if not finished:
        run.train_loader.set_epoch(p.epoch)
    _save(run, epoch_done=True)


def _save(run: _Run, epoch_done: bool) -> None:
    # Each rank has its own RNG and loader position (its shard): rank 0 saves all of them.
    ranks = gather_objects(rank_state(run.device, run.train_loader, epoch_done), run.dist)
    if run.dist.main:
        save_state(run.state_path, model=run.model, optimizer=run.optimizer, scaler=run.scaler,
                   progress=run.progress, ranks=ranks)
    run.saved_step = run.progress.step


def _finish(run: _Run) -> TrainResult:
    """Restore the best weights, write metrics.json and the learning curve; the result on every rank."""
    model = run.model
    if run.best_weights is not None:
        model.load_state_dict(run.best_weights)
    model.eval()
    metrics = {"validation": run.best_metrics if run.best_metrics is not None else run.last_metrics}
    if run.dist.main:
        if run.best_weights is not None:
            _attach_reference(run)
        write_text_atomic(run.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        if run.progress.history:
            from crmnet.plot import learning_curve_figure, save_png

            save_png(learning_curve_figure(run.progress.history, run.cfg.val_metric),
                     run.out / "learning_curve.png")
    barrier(run.dist)
    return TrainResult.from_state(run.out, model, asdict(run.progress), metrics)


def _improved(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _save_checkpoint(path: Path, run: _Run, metrics: dict, epoch: int) -> None:
    from crmnet.models.card import card_from_manifest
    from crmnet.models.checkpoint import save_checkpoint

    keys = ("n_rows", "n_train", "n_val", "media", "media_rows", "sources", "split", "created")
    provenance = {
        "store": str(Path(run.cfg.store).resolve()),
        "store_manifest": {k: run.store.manifest[k] for k in keys if k in run.store.manifest},
        "train_config": run.cfg.to_dict(), "epoch": epoch, "step": run.progress.step,
    }
    save_checkpoint(path, run.model, provenance=provenance, metrics={"validation": metrics}, overwrite=True,
                    card=card_from_manifest(run.store.manifest).to_dict())


def _attach_reference(run: _Run) -> None:
    """Give best.ckpt's card its reference: the best weights' predictions on the validation split.

    Every later prediction then carries its percentile among them (:mod:`crmnet.models.card`); run on the
    main process only, once the best weights are restored.
    """
    from crmnet.evaluation.card import split_reference_card
    from crmnet.models.card import card_from_manifest
    from crmnet.models.checkpoint import write_card

    card = split_reference_card(run.model, card_from_manifest(run.store.manifest), run.store, "val",
                                run.cfg.batch_size)
    write_card(run.out / "best.ckpt", card.to_dict())


def _build_model(cfg: TrainConfig):
    """The model to train: the registry's, or the ``init`` checkpoint's (weights loaded, all trainable)."""
    from crmnet.models.registry import build_model

    if cfg.init is None:
        return build_model(cfg.model, **cfg.overrides)
    from crmnet.models.checkpoint import load_checkpoint

    model = load_checkpoint(cfg.init)  # name and overrides checked by crmnet.training.checks
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _init_output_bias(model, store, store_path: Path) -> None:
    """Set the bias of the last one-output ``nn.Linear`` to the mean training target."""
    import numpy as np

    if callable(getattr(model, "compute_loss", None)):
        return  # its output is not the expression itself (LegNet: bin logits)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1]
    if not last or last[-1].bias is None:
        raise InputError(store_path, f"init_output_bias: {type(model).__name__} has no one-output Linear layer")
    mean = float(np.mean(store.targets[store.indices("train")], dtype=np.float64))
    with torch.no_grad():
        last[-1].bias.fill_(mean)
