"""``crmnet import``: any released model file crmnet can run → an ordinary crmnet checkpoint.

:func:`import_model` recognises the format from the file itself (magic bytes, folder contents, layer
kinds), never from its name alone:

* the CRMnet authors' **SavedModel folder** (``saved_model.pb`` + ``variables/``) or **Keras HDF5** file
  whose layers fit no Vaishnav model → ``crmnet``;
* Vaishnav et al.'s **DeepATT** HDF5 (``DeepAtt_model.h5``; weighted layers Conv1D, BiLSTM,
  MultiHeadAttention, Dense...) → ``deepatt-keras``;
* their **transformer** HDF5 (``fitness_function.h5``; rc_Conv1D, BatchNorms, Conv2D, Conv1D,
  transformer blocks, BiLSTM, Dense...) → ``vaishnav-transformer-keras``;
* a **TF object-graph checkpoint** (``DeepAtt.index`` + shards: the prefix, the ``.index`` file, its folder
  or its ``checkpoint`` state file) → whichever of the two its layers form;
* a **LegNet** ``model_*.pth`` state_dict (PyTorch zip) → delegated to ``crmnet.zoo.legnet.import_file``.

The checkpoint is self-describing (:mod:`crmnet.models.checkpoint`): architecture, encoding, the output
scaling to expression units, and provenance — source path and format, SHA-256 of every source file,
the Keras layer → PyTorch module map, what had to be assumed, and the release it was recognised as.
Vaishnav et al. trained on standardised targets; the scaler of the model's medium comes from the
release table below (files recognised by git blob id or SHA-256), and is the complex-medium scaler
for any other file (recorded as an assumption).
"""

from __future__ import annotations

import re
from pathlib import Path

from crmnet.errors import InputError, OutputExistsError
from crmnet.models.vaishnav import COMPLEX_SCALER, DEFINED_SCALER

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"

# Released files of 1edv/evolution @ bf4a41983a82ac81b3ef60fa33fc0e253760c73d: git blob id (HDF5) or
# SHA-256 of the checkpoint index → (release, medium scaler).
KNOWN_RELEASES: dict[str, tuple[str, tuple[float, float]]] = {
    "076f89100ebe36948808176d9dd7c2f29ee1b034": ("Vaishnav 2022 DeepATT, complex medium (DeepAtt_model.h5)", COMPLEX_SCALER),
    "b18b58384464ae80dd0e88ef514d7b0b4c2d3b03596ad065b60b5c7d99efbc6c": (
        "Vaishnav 2022 DeepATT, complex medium (DeepAtt TF checkpoint)",
        COMPLEX_SCALER,
    ),
    "8b7c2aa853358df5680e918e1ee2ef344b70b6e4": ("Vaishnav 2022 transformer, complex medium (Glu)", COMPLEX_SCALER),
    "96d16f59b9e79a5ed137660ce536e502be2aa75c": ("Vaishnav 2022 transformer, defined medium (SC_Ura)", DEFINED_SCALER),
}


def _checkpoint_state_prefix(state: Path) -> Path:
    """The prefix a TF ``checkpoint`` state file points to (``model_checkpoint_path: "DeepAtt"``)."""
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state.read_text(errors="replace"), re.MULTILINE)
    if match is None:
        raise InputError(state, "TF checkpoint state file without a model_checkpoint_path line")
    return state.parent / match[1]


def detect_format(source: Path) -> tuple[str, Path]:
    """(format, path to read): ``savedmodel``, ``tf-checkpoint`` (path = prefix), ``hdf5`` or ``pytorch``."""
    from crmnet.zoo.kerasfile import tf_checkpoint_prefix
    from crmnet.zoo.tfbundle import is_savedmodel

    if source.is_dir():
        if is_savedmodel(source):
            return "savedmodel", source
        if (source / "checkpoint").is_file():
            source = source / "checkpoint"
        else:
            raise InputError(source, "directory is neither a SavedModel nor a TF checkpoint folder (no 'checkpoint' file)")
    if source.name == "checkpoint" and source.is_file():
        return "tf-checkpoint", _checkpoint_state_prefix(source)
    prefix = tf_checkpoint_prefix(source)
    if prefix is not None:
        return "tf-checkpoint", prefix
    if not source.is_file():
        raise InputError(source, "not found")
    with source.open("rb") as fh:
        magic = fh.read(8)
    if magic == HDF5_MAGIC:
        return "hdf5", source
    if magic.startswith(ZIP_MAGIC) or source.suffix in (".pth", ".pt"):
        return "pytorch", source
    raise InputError(
        source,
        "format not recognised: expected a Keras HDF5 file, a SavedModel folder, a TF checkpoint "
        "(.index + shards) or a PyTorch .pth state_dict",
    )


def _release(fmt: str, path: Path, files: list[Path]) -> tuple[str | None, tuple[float, float] | None]:
    from crmnet.fsutil import file_digest

    key = file_digest(path, "git-blob") if fmt == "hdf5" else file_digest(files[0], "sha256")
    release = KNOWN_RELEASES.get(key)
    return (release[0], release[1]) if release else (None, None)


def _keras_model(fmt: str, path: Path, verify: bool):
    """Read a Keras file and convert it with whichever architecture it is: (model, provenance, files)."""
    from crmnet.zoo import crmnet_keras, kerasfile
    from crmnet.zoo import vaishnav as zv

    if fmt == "tf-checkpoint":
        keras = kerasfile.read_tf_checkpoint(path, verify=verify)
    elif fmt == "savedmodel":
        keras = kerasfile.read_savedmodel(path, verify=verify)
    else:
        keras = kerasfile.read_hdf5(path)
    arch = zv.recognise(keras)
    if arch is not None:
        release, scaler = _release(fmt, path, keras.files)
        model, provenance = zv.convert(keras, arch, scaler or COMPLEX_SCALER)
        provenance["release"] = release
        if scaler is None:
            provenance["assumed"]["output_scaling"] = "complex-medium StandardScaler (the file is not a known release)"
        return model, provenance, keras.files
    if fmt == "tf-checkpoint" or zv.is_vaishnav_family(keras):
        raise InputError(path, f"not a model crmnet can import: {zv.describe_mismatch(keras)}")
    model, provenance = crmnet_keras.convert(keras)
    provenance.pop("source_sha256", None)
    provenance.pop("imported_from", None)
    return model, provenance, keras.files


def import_model(
    source: Path, out: Path, *, overwrite: bool = False, verify: bool = True, name: str | None = None
) -> Path:
    """Import the released model at ``source`` and write a crmnet checkpoint at ``out``.

    Parameters
    ----------
    source : Path
        HDF5 file, SavedModel folder, TF checkpoint (prefix, ``.index`` file, its folder or its
        ``checkpoint`` state file) or LegNet ``.pth`` file.
    out : Path
        Checkpoint to write (atomically; an existing file is refused unless ``overwrite``).
    overwrite : bool
        Replace an existing ``out``.
    verify : bool
        Check the CRC32C of every tensor of a tensor bundle (SavedModel, TF checkpoint).
    name : str, optional
        Name to record in the provenance (a catalogue entry, e.g. ``"deepatt-vaishnav2022"``).

    Returns
    -------
    Path
        ``out``. Anything unreadable or not matching a known architecture is an InputError naming the
        file and what does not match; nothing is written then.
    """
    from crmnet.fsutil import file_digest
    from crmnet.models.checkpoint import check_finite, save_checkpoint

    source, out = Path(source), Path(out)
    if out.exists() and not overwrite:  # refuse before reading and converting
        raise OutputExistsError(out)
    fmt, path = detect_format(source)
    if fmt == "pytorch":
        from crmnet.zoo import legnet  # another importer's module, loaded only when needed

        model, provenance = legnet.import_file(path)
        files = [path]
    else:
        model, provenance, files = _keras_model(fmt, path, verify)
    root = path.parent if fmt == "tf-checkpoint" else path
    provenance = {
        "name": name,
        "imported_from": str(path.resolve()),
        "importer_format": fmt,
        "source_sha256": {
            (p.name if p == root or not p.is_relative_to(root) else str(p.relative_to(root))): file_digest(p, "sha256")
            for p in files
        },
        **provenance,
    }
    check_finite(path, model.state_dict())  # before the write: a refused model never appears under out
    save_checkpoint(out, model, provenance=provenance, overwrite=overwrite)
    return out
