"""What a run tells.

CSV logs (and TensorBoard events when installed), the progress bar, the epoch line, and Ctrl-C turned into a
clean stop.
"""

from __future__ import annotations

import csv
import signal
import sys
import threading
from pathlib import Path

from crmnet.fsutil import atomic_file

STEP_FIELDS = ("step", "epoch", "lr", "train_loss", "samples_per_s")
EPOCH_FIELDS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_r2", "val_pearson_r", "val_mse",
                "val_mae", "best", "seconds")


class RunLogs:
    """``logs/steps.csv`` (one row per logged step), ``logs/epochs.csv`` and TensorBoard events.

    Parameters
    ----------
    run_dir : Path
        The run directory.
    enabled : bool
        Write anything at all (the main process only).
    resume_step : int
        The step the run continues from: rows logged after it are dropped (they will be logged again).
    """

    def __init__(self, run_dir: Path, enabled: bool, resume_step: int):
        self.enabled = enabled
        self.dir = run_dir / "logs"
        self.tb = None
        self._steps = None
        if not enabled:
            return
        self.dir.mkdir(exist_ok=True)
        path = self.dir / "steps.csv"
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
        """Log one row of :data:`STEP_FIELDS`."""
        if not self.enabled:
            return
        self._writer.writerow(row)
        self._steps.flush()
        if self.tb is not None:
            for key in ("lr", "train_loss", "samples_per_s"):
                self.tb.add_scalar(f"train/{key}", row[key], row["step"])

    def epochs(self, history: list[dict]) -> None:
        """Rewrite ``epochs.csv`` from the whole history (rows of :data:`EPOCH_FIELDS`)."""
        if not self.enabled:
            return
        with atomic_file(self.dir / "epochs.csv", overwrite=True) as fh:
            w = csv.DictWriter(fh, EPOCH_FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)
        if self.tb is not None and history:
            row = history[-1]
            for key in ("train_loss", "val_loss", "val_r2", "val_pearson_r", "val_mse"):
                self.tb.add_scalar(f"epoch/{key}", row[key], row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        """Close the step log and the TensorBoard writer."""
        if self._steps is not None:
            self._steps.close()
        if self.tb is not None:
            self.tb.close()


class StopFlag:
    """Turns the first Ctrl-C into a request to stop at the next step boundary (state saved first).

    announce: say so on stderr (the main process only).
    """

    def __init__(self, announce: bool = True):
        self.requested = False
        self.announce = announce
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            print("\ncrmnet: stopping after this step (the state is saved first); Ctrl-C again stops at once",
                  file=sys.stderr)

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def progress_bar(enabled: bool, epoch: int, max_epochs: int, steps_per_epoch: int, done_steps: int,
                 per_step: int):
    """A progress bar counting sequences (so it shows samples/s) with the epoch's ETA, or None."""
    if not enabled:
        return None
    from crmnet.progress import progress

    return progress(total=steps_per_epoch * per_step, initial=done_steps * per_step, unit="seq", unit_scale=True,
                    desc=f"epoch {epoch + 1}/{max_epochs}", dynamic_ncols=True, leave=False)


def print_epoch(row: dict, max_epochs: int) -> None:
    """The one line per epoch on stderr."""
    mark = " *" if row["best"] else ""
    print(f"epoch {row['epoch'] + 1}/{max_epochs}: train loss {row['train_loss']:.4f}, val loss "
          f"{row['val_loss']:.4f}, val R² {row['val_r2']:.4f}, val r {row['val_pearson_r']:.4f} "
          f"({row['seconds']:.1f} s){mark}", file=sys.stderr)
