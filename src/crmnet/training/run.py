"""Training of any registered model.

:func:`fit` checks the run directory, starts the processes and runs the loop (:mod:`crmnet.training.loop`) in
each.

A *run directory* holds ``config.json`` (the resolved :class:`~crmnet.training.config.TrainConfig`),
``best.ckpt`` and ``last.ckpt`` (crmnet checkpoints, ``torch.load(weights_only=True)``), ``state.pt``
(the full training state for ``--resume``, :mod:`crmnet.training.state`), ``logs/steps.csv`` and
``logs/epochs.csv`` (plus TensorBoard events when TensorBoard is installed), ``learning_curve.png`` and
``metrics.json`` (``{"validation": {n, pearson_r, pearson_p, spearman_r, r2, pearson_r_squared, mse,
mae}}`` of the restored best weights).

Before the run directory is created, replaced (``overwrite``: only a run directory crmnet wrote) or
resumed, everything is checked (:mod:`crmnet.training.checks`: settings, model, store and its targets,
device, output); the directory is locked while the run trains (:mod:`crmnet.training.rundir`). A
non-finite training loss stops the run with an error naming the step, the last good state kept.

Devices: CPU or CUDA; fp32 (TF32 matrix products on CUDA), bf16-mixed or fp16-mixed (autocast; fp16
with a grad scaler). Several processes train with DistributedDataParallel: launched by ``torchrun`` or
SLURM ``srun`` (one process per device, read from the environment), or spawned here when
``devices > 1`` on one node.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from crmnet.errors import CrmnetError, InputError
from crmnet.training.checks import check_run
from crmnet.training.config import TrainConfig, TrainResult
from crmnet.training.distributed import (
    Dist,
    become_rank,
    is_main_process,
    launcher_env,
    process_group,
    select_device,
    spawn,
)
from crmnet.training.rundir import run_directory


def fit(
    config: TrainConfig | None,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_batch: Callable | None = None,
) -> TrainResult:
    """Train as ``config`` says into run directory ``out``; returns the result on every process.

    Parameters
    ----------
    config : TrainConfig or None
        The run's settings; None with ``resume`` (the run's own ``config.json`` is used; a given config
        must equal it).
    out : str or os.PathLike
        The run directory.
    resume : bool
        Continue the run in ``out`` from its ``state.pt``.
    overwrite : bool
        Replace an existing run directory that crmnet wrote (refused otherwise, and always refused for a
        directory holding other files: :mod:`crmnet.training.rundir`).
    on_batch : callable, optional
        ``on_batch(epoch, step, x, y)`` called for every training batch (inspection).

    Everything (settings, model, store, device, output) is checked before the run directory is created,
    replaced or resumed (:func:`crmnet.training.checks.check_run`), and the directory is locked while
    the run trains.

    Returns
    -------
    TrainResult
        When ``devices · num_nodes > 1`` and no launcher (torchrun, srun) started this process,
        ``devices`` local processes are spawned (one node only) and the result is rank 0's, read from disk.
    """
    out = Path(out)
    config = _run_config(config, out, resume=resume)
    if not is_main_process():  # rank 0 of the launcher owns the run directory
        check_run(config, None, resume=resume, overwrite=overwrite)
        return _launch(config, out, resume=resume, on_batch=on_batch)
    check_run(config, out, resume=resume, overwrite=overwrite)
    with run_directory(out, None if resume else config.to_json() + "\n", resume=resume, overwrite=overwrite):
        return _launch(config, out, resume=resume, on_batch=on_batch)


def _launch(config: TrainConfig, out: Path, *, resume: bool, on_batch: Callable | None) -> TrainResult:
    launched = launcher_env()
    wanted = config.devices * config.num_nodes
    if launched is not None:
        if launched.world_size != wanted:
            raise CrmnetError(
                f"the launcher started {launched.world_size} processes but the config asks for "
                f"devices × num_nodes = {config.devices} × {config.num_nodes} = {wanted}"
            )
        return _run(config, out, launched, resume=resume, on_batch=on_batch)
    if wanted == 1:
        return _run(config, out, Dist(), resume=resume, on_batch=on_batch)
    if config.num_nodes > 1:
        raise CrmnetError(
            f"num_nodes = {config.num_nodes} needs a launcher: start one process per device with torchrun "
            "(--nnodes, --nproc-per-node) or SLURM srun (see docs/training.md, 'Several GPUs and nodes')"
        )
    spawn(_spawned_worker, (config.to_dict(), str(out), resume), config.devices)
    return result_from_disk(out)


def _spawned_worker(rank: int, config: dict, out: str, resume: bool, port: int) -> None:
    import torch

    cpu = config["accelerator"] == "cpu" or not torch.cuda.is_available()
    dist = become_rank(rank, config["devices"], port, cpu=cpu and not config["threads"])
    _run(TrainConfig.from_dict(config), Path(out), dist, resume=resume, on_batch=None)


def _run(cfg: TrainConfig, out: Path, dist: Dist, *, resume: bool, on_batch: Callable | None) -> TrainResult:
    import torch

    from crmnet.training.loop import train_loop
    from crmnet.training.step import configure_device

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = select_device(cfg.accelerator, dist)
    configure_device(device)
    with process_group(dist, device):
        return train_loop(cfg, out, dist, device, resume=resume, on_batch=on_batch)


def result_from_disk(run_dir: Path) -> TrainResult:
    """The result of a finished run, from its ``state.pt``, ``best.ckpt`` and ``metrics.json``."""
    from crmnet.models.checkpoint import load_checkpoint
    from crmnet.training.state import load_state

    model = load_checkpoint(run_dir / "best.ckpt") if (run_dir / "best.ckpt").exists() else None
    return TrainResult.from_state(run_dir, model, load_state(run_dir / "state.pt"),
                                  json.loads((run_dir / "metrics.json").read_text()))


def _run_config(config: TrainConfig | None, out: Path, *, resume: bool) -> TrainConfig:
    """The run's config: ``config``, or with ``resume`` the run's own.

    The run's config: ``config``, or with ``resume`` the run's own ``config.json`` (a given config must
    equal it).
    """
    if not resume:
        if config is None:
            raise ValueError("a TrainConfig is required unless resuming")
        return config
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
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
