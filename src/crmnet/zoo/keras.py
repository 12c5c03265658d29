"""Import the CRMnet authors' released Keras models: one file or directory, or every model of a download.

:func:`import_keras` reads a SavedModel directory or HDF5 file (:mod:`crmnet.zoo.kerasfile`), converts it
(:mod:`crmnet.zoo.crmnet_keras`) and writes a crmnet checkpoint; :func:`import_downloaded` does that for
every Keras model in a downloaded folder or zip (the Zenodo record's layout). ``crmnet import``
(:mod:`crmnet.zoo.importer`) recognises these formats among the others it reads.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from crmnet.errors import InputError, OutputExistsError
from crmnet.zoo.crmnet_keras import KERAS_CHANNELS, convert
from crmnet.zoo.kerasfile import KerasLayer, KerasModel, read_hdf5, read_keras, read_savedmodel
from crmnet.zoo.tfbundle import is_savedmodel

__all__ = [
    "KERAS_CHANNELS",
    "ImportResult",
    "KerasLayer",
    "KerasModel",
    "convert",
    "find_keras_models",
    "import_downloaded",
    "import_keras",
    "read_hdf5",
    "read_keras",
    "read_savedmodel",
]


@dataclass
class ImportResult:
    """What :func:`import_keras` wrote: the checkpoint, the loaded model and the import's provenance."""

    checkpoint: Path
    model: object  # crmnet.models.crmnet.CRMnet, in eval mode
    provenance: dict


def import_keras(
    path: str | Path, out: str | Path, overwrite: bool = False, verify: bool = True
) -> ImportResult:
    """Import a SavedModel directory or HDF5 file and write a crmnet checkpoint at ``out``.

    Parameters
    ----------
    path : path-like
        The CRMnet authors' Keras model: a SavedModel directory or an ``.h5`` file.
    out : path-like
        The checkpoint to write (refused if it exists unless ``overwrite``).
    overwrite : bool
        Replace an existing file.
    verify : bool
        Check the SavedModel variables' CRC32C checksums.

    Returns
    -------
    ImportResult
        The checkpoint path, the model (eval mode) and the provenance (sources and their sha256).
    """
    from crmnet.models.checkpoint import check_finite, save_checkpoint

    if Path(out).exists() and not overwrite:  # refuse before a minute of reading and converting
        raise OutputExistsError(out)
    model, provenance = convert(read_keras(path, verify=verify))
    check_finite(path, model.state_dict())
    save_checkpoint(out, model, provenance=provenance, overwrite=overwrite)
    return ImportResult(Path(out), model, provenance)


def find_keras_models(root: Path) -> Iterator[Path]:
    """SavedModel directories and Keras HDF5 files under ``root`` (a SavedModel's insides are not searched).

    Parameters
    ----------
    root : Path
        A directory to search, a SavedModel directory or a model file.

    Yields
    ------
    Path
        Each model directory or file, in sorted order.
    """
    if is_savedmodel(root):
        yield root
        return
    if root.is_file():
        if root.suffix.lower() in (".h5", ".hdf5", ".keras"):
            yield root
        return
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or child.name == "__MACOSX":
            continue
        yield from find_keras_models(child)


def _safe_extract(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (dest / member).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise InputError(
                    archive, f"member {member!r} would be written outside the extraction directory"
                )
        zf.extractall(dest)


def import_downloaded(download_dir: Path, out_dir: Path, overwrite: bool = False) -> list[Path]:
    """Import every Keras model found in ``download_dir`` (plain or inside zip files): one checkpoint each.

    Checkpoints are written to ``out_dir`` as ``<model name>.pt``, the name being the SavedModel
    directory or HDF5 file name (prefixed by the zip's name when it came from a zip).

    Parameters
    ----------
    download_dir : Path
        Where the CRMnet authors' Zenodo files were downloaded.
    out_dir : Path
        Where the checkpoints go.
    overwrite : bool
        Replace existing checkpoints.

    Returns
    -------
    list of Path
        The checkpoints written.
    """
    download_dir, out_dir = Path(download_dir), Path(out_dir)
    if not download_dir.exists():
        raise InputError(download_dir, "download directory not found")
    written: list[Path] = []
    names: set[str] = set()

    def import_all(root: Path, label: str) -> None:
        for found in find_keras_models(root):
            rel = found.relative_to(root) if found != root else Path(found.name)
            name = "-".join(p for p in (label, *rel.with_suffix("").parts) if p) or "model"
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
            if name in names:
                raise InputError(found, f"two models would both be written as {name}.pt")
            names.add(name)
            written.append(import_keras(found, out_dir / f"{name}.pt", overwrite=overwrite).checkpoint)

    import_all(download_dir, "")
    for archive in sorted(download_dir.rglob("*.zip")):
        with tempfile.TemporaryDirectory(
            prefix=".crmnet-unzip-", dir=out_dir.parent if out_dir.parent.exists() else None
        ) as tmp:
            try:
                _safe_extract(archive, Path(tmp))
            except zipfile.BadZipFile as exc:
                raise InputError(archive, f"not a readable zip file ({exc})") from None
            import_all(Path(tmp), archive.stem)
    if not written:
        raise InputError(download_dir, "no Keras SavedModel directory or HDF5 file found")
    return written
