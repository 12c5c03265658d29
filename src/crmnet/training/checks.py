"""Everything a run needs, checked before its run directory is touched.

:func:`check_run` is called by :func:`crmnet.training.run.fit` before it creates, replaces or resumes
the run directory, so that a typo (a missing store, an unknown model, a bad ``--set``, a device this
machine lacks) is a one-line error and never costs an existing run. Config-field problems are
:class:`~crmnet.config.ConfigError` (naming the field, e.g. ``overrides.heads``); file problems are
:class:`~crmnet.errors.InputError` naming the file.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from crmnet.config import ConfigError
from crmnet.errors import InputError
from crmnet.training.config import TrainConfig
from crmnet.training.rundir import check_output


def check_run(cfg: TrainConfig, out: Path | None, *, resume: bool, overwrite: bool, init: bool = True) -> None:
    """Check the device, the model, the store and the output of a run; change nothing.

    Parameters
    ----------
    cfg : TrainConfig
        The run's settings (already type- and value-checked by TrainConfig).
    out : Path or None
        The run directory (None: not checked, on the processes that do not own it).
    resume, overwrite : bool
        As given to :func:`crmnet.training.run.fit`.
    init : bool
        Check ``cfg.init`` (False for a recipe stage whose initial checkpoint an earlier stage writes).

    Raises
    ------
    ConfigError, InputError, CrmnetError
    """
    check_device(cfg)
    check_model(cfg, init=init)
    check_store(cfg)
    if out is not None:
        check_output(out, resume=resume, overwrite=overwrite)


def check_device(cfg: TrainConfig) -> None:
    """CUDA asked for on a machine (or a torch build) without it is an error before anything starts."""
    import torch

    if cfg.accelerator == "cuda" and not torch.cuda.is_available():
        why = "is a CPU-only build" if torch.version.cuda is None else "sees no CUDA device"
        raise ConfigError("accelerator", f"'cuda' requested but this torch ({torch.__version__}) {why}; use "
                                         "cpu or auto")


def check_model(cfg: TrainConfig, *, init: bool = True) -> None:
    """The model can be built.

    A known name, overrides of the right names, types and signs; or a valid ``init`` checkpoint (readable,
    finite weights, the named model, no overrides).
    """
    if cfg.init is not None:
        if cfg.overrides:
            raise ConfigError("overrides", "model overrides cannot change a model initialised from a checkpoint")
        if init:
            from crmnet.models.checkpoint import load_checkpoint

            name = load_checkpoint(cfg.init).checkpoint_meta["model"]
            if cfg.model and cfg.model != name:
                raise InputError(cfg.init, f"checkpoint holds model {name!r} but the config asks for {cfg.model!r}")
        return
    import torch

    from crmnet.models.registry import get_entry

    try:
        entry = get_entry(cfg.model)
    except ValueError as exc:
        raise ConfigError("model", str(exc)) from None
    try:
        config = entry.config(**cfg.overrides)
    except ConfigError as exc:
        raise ConfigError(f"overrides.{exc.field}", exc.problem) from None
    except ValueError as exc:  # the model config's own value checks
        raise ConfigError("overrides", str(exc)) from None
    _no_negative_sizes(config, cfg.overrides)
    try:
        with torch.random.fork_rng(devices=[]):  # leaves the caller's random stream as it was
            entry.model_class(config)
    except (ValueError, TypeError, RuntimeError, ArithmeticError) as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in cfg.overrides.items())
        raise ConfigError("overrides", f"model {cfg.model!r} cannot be built with {given or 'its preset'} "
                                       f"({str(exc).splitlines()[0]})") from None


def _no_negative_sizes(config, overrides: dict) -> None:
    """Integer model settings (sizes, counts, lengths) are never negative."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if f.name not in overrides:
            continue
        value = getattr(config, f.name)
        values = value if typing.get_origin(hints[f.name]) is tuple else (value,)
        if any(isinstance(v, int) and not isinstance(v, bool) and v < 0 for v in values):
            raise ConfigError(f"overrides.{f.name}", f"must not be negative, not {value!r}")


def check_store(cfg: TrainConfig) -> None:
    """The store opens and holds enough training and validation rows.

    The store opens (which checks that every target is a finite number: :func:`crmnet.data.store.open_store`)
    and holds a full global batch of training rows and some validation rows.
    """
    from crmnet.data.loader import BatchLoader
    from crmnet.data.store import open_store

    path = Path(cfg.store)
    if not path.exists():
        raise InputError(path, "store not found (create it with `crmnet prepare`)")
    store = open_store(path)
    world = cfg.devices * cfg.num_nodes
    try:
        BatchLoader(store, "train", cfg.batch_size, drop_last=True, world_size=world)
        BatchLoader(store, "val", cfg.batch_size, world_size=world, pad_shards=False)
    except ValueError as exc:  # an empty split, or fewer rows than one global batch
        raise InputError(path, f"cannot train on this store: {exc}") from None
