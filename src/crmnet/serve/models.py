"""The models ``crmnet serve`` offers.

Checkpoints named on the command line, every ``*.pt`` of a directory, and the released models ``crmnet
download`` has imported (``DATA/checkpoints/NAME.pt``).

All are loaded once at start-up, so a bad checkpoint stops the server with a one-line error naming the
file instead of failing a user's job later. Pages show a model by its name (the file's stem) and never
its path on the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from crmnet.errors import InputError


@dataclass
class ServedModel:
    """A loaded model and what the pages say about it.

    name: unique name (checkpoint file stem, ``-2`` etc. appended on a clash). architecture: registry
    name. parameters: trainable parameters. input: the encoding in words. origin: ``checkpoint`` or
    ``zoo: <released model>``. model: the nn.Module in eval mode. card: its
    :class:`~crmnet.models.card.ModelCard` (what it predicts, in which units; simulated or measured data).
    """

    name: str
    architecture: str
    parameters: int
    input: str
    origin: str
    model: object
    card: object = None


def _describe(name: str, origin: str, model) -> ServedModel:
    from crmnet.models import count_parameters
    from crmnet.models.card import card_of

    enc = model.encoding
    kept = "first" if enc.truncate == "end" else "last"
    words = f"{enc.body_length} nt (longer: the {kept} {enc.body_length} kept; shorter: N-padded at the {enc.pad})"
    return ServedModel(name, model.checkpoint_meta["model"], count_parameters(model)[0], words, origin, model,
                       card_of(model))


def zoo_checkpoints(directory: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """(released model name, checkpoint path) of every released model downloaded under ``directory``."""
    from crmnet.data.catalogue import checkpoint_path
    from crmnet.zoo.catalogue import RELEASED

    found = [(name, checkpoint_path(name, directory)) for name in RELEASED]
    return [(name, path) for name, path in found if path.is_file()]


def load_models(checkpoints=(), models_dir: str | os.PathLike | None = None,
                data_dir: str | os.PathLike | None = None, device: str = "cpu") -> dict[str, ServedModel]:
    """Load every model on offer.

    Parameters
    ----------
    checkpoints : paths of crmnet checkpoints
    models_dir : a directory whose ``*.pt`` files are checkpoints (None: none)
    data_dir : the data directory of ``crmnet download`` (its released models are added); None: the default
        (``$CRMNET_DATA_DIR`` or ``./data``)
    device : torch device

    Returns
    -------
    dict name → :class:`ServedModel`, in the order given (checkpoints, directory, zoo).
    """
    from crmnet.models.checkpoint import load_checkpoint

    sources: list[tuple[Path, str]] = [(Path(c), "checkpoint") for c in checkpoints]
    if models_dir is not None:
        if not Path(models_dir).is_dir():
            raise InputError(models_dir, "--models-dir is not a directory")
        sources += [(p, "checkpoint") for p in sorted(Path(models_dir).glob("*.pt"))]
    sources += [(path, f"zoo: {name}") for name, path in zoo_checkpoints(data_dir)]
    models: dict[str, ServedModel] = {}
    seen: set[Path] = set()
    for path, origin in sources:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        name, k = path.stem, 2
        while name in models:
            name, k = f"{path.stem}-{k}", k + 1
        models[name] = _describe(name, origin, load_checkpoint(path, map_location=device))
    if not models:
        raise InputError(None, "no models to serve: give --checkpoint CKPT or --models-dir DIR, or download a "
                               "released model (crmnet download deepatt-complex)")
    return models
