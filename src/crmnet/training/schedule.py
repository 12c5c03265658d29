"""Learning-rate schedules of the CRMnet paper and of the authors' code, as plain functions of time.

The paper (Ding et al. 2023): linear warm-up over ``warmup_epochs`` (10) from ``lr_start·D`` (1e-4·D) to
``lr_peak·D`` (1e-3·D), then cosine decay to ``lr_end·D`` (1e-4·D) over the remaining epochs, where ``D``
is the number of data-parallel processes (the linear scaling rule for a global batch of 1024·D).
The authors' released code passes the start value as the cosine's end value, so after the warm-up the
rate stays flat at ``lr_peak·D``: that is the ``"code"`` variant.
``"onecycle"`` is PyTorch's ``OneCycleLR`` (two phases, cosine annealing) that the DREAM 2022 organisers
train with (``prixfixe/autosome/trainer.py``): a cosine-shaped rise from ``lr_start`` to ``lr_peak`` over
the warm-up, then the cosine down to ``lr_end`` (its momentum cycling is not reproduced).

Time is measured in (fractional) epochs so that the same schedule can be applied once per epoch (as a
Keras ``LearningRateScheduler`` does) or after every optimiser step (smoother; the default in training).
A schedule is stateless: the training loop asks for the rate at its current step, which makes resuming
exact without saving any scheduler state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ScheduleKind = Literal["paper", "code", "onecycle"]
Granularity = Literal["step", "epoch"]

SCHEDULES: tuple[str, ...] = ("paper", "code", "onecycle")


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up then cosine decay, scaled by the number of data-parallel processes.

    kind: ``"paper"`` (cosine from ``lr_peak`` down to ``lr_end``), ``"code"`` (flat at ``lr_peak``) or
        ``"onecycle"`` (a cosine-shaped warm-up, then as ``"paper"``).
    total_epochs: the epoch at which the cosine reaches ``lr_end`` (the run's maximum epochs).
    world_size: D, the number of data-parallel processes; every rate is multiplied by it.
    granularity: ``"step"`` evaluates the schedule at fractional epochs, ``"epoch"`` holds each
        epoch's rate for all of its steps (the rate at the epoch's start, like Keras).
    """

    kind: ScheduleKind = "paper"
    warmup_epochs: float = 10.0
    total_epochs: float = 50.0
    lr_start: float = 1e-4
    lr_peak: float = 1e-3
    lr_end: float = 1e-4
    world_size: int = 1
    granularity: Granularity = "step"

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.kind!r}")
        if self.granularity not in ("step", "epoch"):
            raise ValueError(f"schedule granularity must be 'step' or 'epoch', not {self.granularity!r}")
        if self.warmup_epochs < 0 or self.total_epochs <= 0:
            raise ValueError("warm-up epochs must be >= 0 and total epochs > 0")
        if min(self.lr_start, self.lr_peak, self.lr_end) < 0:
            raise ValueError("learning rates must be >= 0")
        if self.world_size < 1:
            raise ValueError(f"world size must be >= 1, not {self.world_size}")

    def at_epoch(self, epoch: float) -> float:
        """Learning rate at (fractional) epoch ``epoch`` counted from 0 (before granularity rounding)."""
        d = self.world_size
        if epoch < self.warmup_epochs:
            frac = epoch / self.warmup_epochs
            if self.kind == "onecycle":
                frac = 0.5 * (1.0 - math.cos(math.pi * frac))
            return d * (self.lr_start + (self.lr_peak - self.lr_start) * frac)
        if self.kind == "code":
            return d * self.lr_peak
        span = self.total_epochs - self.warmup_epochs
        if span <= 0:
            return d * self.lr_end
        progress = min(1.0, (epoch - self.warmup_epochs) / span)
        return d * (self.lr_end + 0.5 * (self.lr_peak - self.lr_end) * (1.0 + math.cos(math.pi * progress)))

    def at_step(self, step: int, steps_per_epoch: int) -> float:
        """Learning rate for optimiser step ``step`` (0-based, counted over the whole run)."""
        if steps_per_epoch < 1:
            raise ValueError(f"steps per epoch must be >= 1, not {steps_per_epoch}")
        if self.granularity == "epoch":
            return self.at_epoch(float(step // steps_per_epoch))
        return self.at_epoch(step / steps_per_epoch)

    def apply(self, optimizer, step: int, steps_per_epoch: int) -> float:
        """Set every parameter group of ``optimizer`` to the rate of ``step``; returns that rate."""
        lr = self.at_step(step, steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
