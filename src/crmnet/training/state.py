"""Exact resume: the training state (``state.pt``) and the progress it records.

``state.pt`` holds, as plain types and tensors (``torch.load(weights_only=True)``): the model,
optimiser and grad-scaler states, the progress (epoch, step, history, early-stopping state, the
running sums of a partly done epoch) and, for every rank, its RNG states and loader position. It is
written atomically, so a run killed at any moment (even SIGKILL) continues from the last one and, on CPU,
ends with the same weights as an uninterrupted run with the same seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from crmnet.errors import InputError
from crmnet.fsutil import atomic_file

STATE_FORMAT = "crmnet-train-state"
STATE_VERSION = 1


@dataclass
class Progress:
    """Where a run stands; the fields of ``state.pt`` besides the weights, optimiser and RNG states.

    early: ``{"best": metric or None, "best_epoch": int or None, "bad_epochs": int}``.
    partial: running sums of the current epoch up to the last save (``loss_sum``, ``steps``, ``seconds``).
    """

    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    early: dict = field(default_factory=lambda: {"best": None, "best_epoch": None, "bad_epochs": 0})
    stopped_early: bool = False
    partial: dict = field(default_factory=lambda: {"loss_sum": 0.0, "steps": 0, "seconds": 0.0})

    @classmethod
    def from_state(cls, state: dict) -> Progress:
        """The progress recorded in a loaded ``state.pt``."""
        return cls(epoch=int(state["epoch"]), step=int(state["step"]), history=list(state["history"]),
                   early=dict(state["early"]), stopped_early=bool(state["stopped_early"]),
                   partial=dict(state["partial"]))

    def finished(self, max_epochs: int, max_steps: int | None) -> bool:
        """Whether training is over: stopped early, or ``max_epochs`` or ``max_steps`` reached."""
        return (self.stopped_early or self.epoch >= max_epochs
                or (max_steps is not None and self.step >= max_steps))


def load_state(path: Path) -> dict:
    """Read ``state.pt``, with an error naming the file when it is truncated, foreign or of another version."""
    from crmnet.models.checkpoint import load_weights_only

    state = load_weights_only(path, path, "crmnet training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("format_version") != STATE_VERSION:
        raise InputError(path, "not a crmnet training state of a known version")
    return state


def save_state(path: Path, *, model, optimizer, scaler, progress: Progress, ranks: list[dict]) -> None:
    """Write ``state.pt`` atomically; ``ranks``: every rank's ``{"rng": ..., "loader": ...}`` in rank order."""
    import torch

    state = {"format": STATE_FORMAT, "format_version": STATE_VERSION, "world_size": len(ranks),
             "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
             **asdict(progress), "ranks": ranks}
    with atomic_file(path, overwrite=True, mode="wb") as fh:
        torch.save(state, fh)


def rank_state(device, loader, epoch_done: bool) -> dict:
    """The RNG states and loader position of this rank.

    The loader position is empty at an epoch's end: the next epoch starts afresh.
    """
    import torch

    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {"rng": rng, "loader": {} if epoch_done else loader.state_dict()}


def restore_rank(mine: dict, device, loader) -> None:
    """Put back this rank's RNG states and loader position from :func:`rank_state`'s record."""
    import torch

    torch.set_rng_state(mine["rng"]["torch"])
    if device.type == "cuda" and "cuda" in mine["rng"]:
        torch.cuda.set_rng_state(mine["rng"]["cuda"], device)
    if mine["loader"]:  # saved mid-epoch: continue at the next batch
        loader.load_state_dict(mine["loader"])


def state_dict_cpu(model) -> dict:
    """A detached CPU copy of ``model``'s state (the best weights, kept while training goes on)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
