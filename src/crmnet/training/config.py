"""What determines a training run, what it returns, and the reading of config files.

What determines a training run (:class:`TrainConfig`), what it returns (:class:`TrainResult`), and the
reading of JSON config and recipe files. Imports no torch: the CLI builds its flags from here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmnet.config import Config, ConfigError
from crmnet.errors import InputError
from crmnet.training.schedule import SCHEDULES, WarmupCosine

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
VAL_METRICS = {"r2": "max", "pearson_r": "max", "mse": "min"}  # metric → better direction
LOSSES = ("auto", "huber", "mse")  # implemented by crmnet.training.losses
OPTIMIZERS = ("adam", "adamw")
ACCELERATORS = ("auto", "cpu", "cuda")
# TrainConfig fields with a fixed set of values (checked by TrainConfig, offered by the CLI)
CHOICES = {
    "val_metric": tuple(VAL_METRICS), "schedule": SCHEDULES, "lr_granularity": ("step", "epoch"),
    "loss": LOSSES, "optimizer": OPTIMIZERS, "precision": PRECISIONS, "accelerator": ACCELERATORS,
}


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
    loss / huber_delta: see :func:`crmnet.training.losses.resolve_loss` (``"auto"``: the model's own
        ``compute_loss`` (LegNet), MSE for the Keras-born peers as their authors trained them, Huber for
        CRMnet; or force ``"huber"`` / ``"mse"``). A ``huber_delta`` other than 1 with a loss that is not
        Huber is an error, not silently ignored.
    precision: ``"32"``, ``"bf16-mixed"``, ``"16-mixed"``.
    accelerator / devices / num_nodes: where to run; ``devices · num_nodes`` processes in all.
    threads: torch CPU threads per process (0: torch's default, or cores / processes when spawning).
        On a busy CPU one thread can be many times faster than two: threads that wait on each other
        lose their time slices.
    init: checkpoint to start from (transfer learning: all layers stay trainable).
    init_output_bias: start the bias of the model's final one-output Linear layer at the mean training
        target instead of 0 (not the paper's; saves the first epochs of a short CPU run from learning the
        offset of expression values around 9). Ignored with ``init`` and for models with their own loss.
    log_every_n_steps: how often a row of ``logs/steps.csv`` is written (the only host synchronisation
        of the training loop between validations).
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
        """Check every value; a :class:`~crmnet.config.ConfigError` names the field."""
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        for name in ("batch_size", "max_epochs", "patience", "devices", "num_nodes", "log_every_n_steps",
                     "save_every_n_steps"):
            _at_least(self, name, 1)
        _at_least(self, "threads", 0)
        if self.max_steps is not None:
            _at_least(self, "max_steps", 1)
        for name in ("warmup_epochs", "lr_start", "lr_peak", "lr_end", "weight_decay"):
            _at_least(self, name, 0)
        if not (math.isfinite(self.huber_delta) and self.huber_delta > 0):
            raise ConfigError("huber_delta", f"must be a finite number > 0, not {self.huber_delta}")
        self.lr_schedule(1)  # the schedule's own checks, here rather than after the model is built
        if not self.store:
            raise ConfigError("store", "the prepared store directory to train on is required")
        if not self.model and not self.init:
            raise ConfigError("model", "a registry name is required unless init names a checkpoint")

    def lr_schedule(self, world_size: int) -> WarmupCosine:
        """The learning-rate schedule of this config for ``world_size`` data-parallel processes."""
        return WarmupCosine(
            kind=self.schedule, warmup_epochs=self.warmup_epochs, total_epochs=self.max_epochs,
            lr_start=self.lr_start, lr_peak=self.lr_peak, lr_end=self.lr_end, world_size=world_size,
            granularity=self.lr_granularity,
        )


def _at_least(cfg: TrainConfig, name: str, low: int) -> None:
    value = getattr(cfg, name)
    if not (math.isfinite(value) and value >= low):
        raise ConfigError(name, f"must be {'a finite number ' if isinstance(value, float) else ''}>= {low}, "
                                f"not {value}")


@dataclass
class TrainResult:
    """What :func:`crmnet.training.run.fit` returns on every rank.

    The run directory, the model with its best weights, and the run's progress (the fields of the saved
    training state).
    """

    run_dir: Path
    model: Any
    best_epoch: int | None
    best_metric: float | None
    epochs: int
    steps: int
    stopped_early: bool
    metrics: dict
    history: list[dict]

    @classmethod
    def from_state(cls, run_dir: Path, model, state: dict, metrics: dict) -> TrainResult:
        """Build the result from a training state.

        Build the result from a training state (``state.pt``'s keys ``epoch, step, early, stopped_early,
        history``: the loop's own progress or one loaded from disk).
        """
        return cls(run_dir=Path(run_dir), model=model, best_epoch=state["early"]["best_epoch"],
                   best_metric=state["early"]["best"], epochs=int(state["epoch"]), steps=int(state["step"]),
                   stopped_early=bool(state["stopped_early"]), metrics=metrics, history=list(state["history"]))


def load_config_file(path: str | os.PathLike) -> dict:
    """Read a JSON training config or recipe (``{"stages": [...]}``) with errors naming the file.

    Parameters
    ----------
    path : str or os.PathLike
        The JSON file.

    Returns
    -------
    dict
        Its object (TrainConfig fields, or a recipe).
    """
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
