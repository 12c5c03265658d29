"""Importing the authors' Keras CRMnet without TensorFlow: the readers, parity and bad input.

Parity fixtures (shared/fixtures/keras_crmnet): the full 12-head model as a SavedModel and a 2-head
model as HDF5 weights, each with the Keras outputs ``y`` for 32 one-hot inputs in [N, A, C, G, T] order.
The SavedModel's 136 MB data file is read once per module.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from crmnet.errors import InputError
from crmnet.models.blocks import count_parameters
from crmnet.zoo import tfbundle
from crmnet.zoo.keras import convert, find_keras_models, import_downloaded, read_keras

TOLERANCE = 1e-4


# --- helpers: write the formats by hand (independently of the reader) -------------------------------


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value) -> bytes:
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def crc_reference(data: bytes) -> int:
    """Bit-at-a-time CRC32C, the textbook definition."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def write_table(path: Path, items: list[tuple[bytes, bytes]]) -> None:
    """A LevelDB-format table: one data block (no prefix sharing), an index block, the footer."""

    def framed(block: bytes) -> bytes:
        return block + b"\x00" + struct.pack("<I", mask(crc_reference(block + b"\x00")))

    def block_of(entries) -> bytes:
        body = b"".join(varint(0) + varint(len(k)) + varint(len(v)) + k + v for k, v in entries)
        return body + struct.pack("<II", 0, 1)

    items = sorted(items)
    data = framed(block_of(items))
    handle = varint(0) + varint(len(data) - 5)
    index = framed(block_of([(items[-1][0] + b"\xff", handle)]))
    footer = varint(0) + varint(0) + varint(len(data)) + varint(len(index) - 5)
    footer += b"\x00" * (40 - len(footer)) + struct.pack("<Q", tfbundle.TABLE_MAGIC)
    path.write_bytes(data + index + footer)


def bundle_entry(dtype: int, shape: tuple[int, ...], offset: int, size: int, crc: int) -> bytes:
    dims = b"".join(field(2, field(1, d)) for d in shape)
    return field(1, dtype) + field(2, dims) + field(4, offset) + field(5, size) + field(6, mask(crc))


def savedmodel_copy(src: Path, dst: Path, edit) -> Path:
    """Link a SavedModel's files into ``dst`` and write its index with ``edit(list of (key, value))``."""
    (dst / "variables").mkdir(parents=True)
    for name in ("saved_model.pb", "keras_metadata.pb"):
        (dst / name).symlink_to(src / name)
    data = "variables.data-00000-of-00001"
    (dst / "variables" / data).symlink_to(src / "variables" / data)
    items = tfbundle.read_table(src / "variables" / "variables.index")
    write_table(dst / "variables" / "variables.index", edit(items))
    return dst


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixtures_dir(shared: Path) -> Path:
    path = shared / "fixtures" / "keras_crmnet"
    if not path.is_dir():
        pytest.skip(f"Keras fixtures not found at {path}")
    return path


@pytest.fixture(scope="module")
def savedmodel_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "full_savedmodel" / "savedmodel"


@pytest.fixture(scope="module")
def h5_path(fixtures_dir: Path) -> Path:
    return fixtures_dir / "small_h5" / "weights.h5"


@pytest.fixture(scope="module")
def h5_checkpoint(h5_path: Path, tmp_path_factory) -> tuple[Path, str]:
    """The 2-head HDF5 model imported once through ``crmnet import-keras``: (checkpoint, printed line)."""
    from crmnet.cli import main

    out = tmp_path_factory.mktemp("h5") / "authors.pt"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["import-keras", str(h5_path), "--out", str(out)]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def full_import(savedmodel_dir: Path):
    keras = read_keras(savedmodel_dir)
    model, provenance = convert(keras)
    return keras, model, provenance


def predict(model: torch.nn.Module, reference: Path) -> tuple[np.ndarray, np.ndarray]:
    ref = np.load(reference)
    assert list(ref["channel_order"][1:]) == ["A", "C", "G", "T"]  # slot 0: out-of-vocabulary, i.e. N
    with torch.no_grad():
        y = model(torch.from_numpy(ref["x"]).transpose(1, 2)).numpy()  # (32, 112, 5) NLC → (32, 5, 112)
    return y, ref["y"][:, 0]


# --- the low-level readers ------------------------------------------------------------------------


def test_crc32c_matches_the_definition(rng):
    assert tfbundle.crc32c(b"123456789") == 0xE3069283
    data = rng.integers(0, 256, 5000, dtype=np.uint8)
    offsets, sizes = [0, 3, 100, 1000, 4999, 17], [0, 1, 777, 4000, 1, 4096]
    got = tfbundle.crc32c_segments(data, offsets, sizes)
    want = [crc_reference(data[o : o + s].tobytes()) for o, s in zip(offsets, sizes)]
    assert [int(g) for g in got] == want


def test_parse_proto_fields():
    msg = field(1, 7) + field(2, b"abc") + field(1, 300) + varint(3 << 3 | 5) + struct.pack("<I", 9)
    parsed = tfbundle.parse_proto(msg)
    assert parsed == {1: [7, 300], 2: [b"abc"], 3: [9]}
    with pytest.raises(ValueError, match="past the end"):
        tfbundle.parse_proto(field(2, b"abcdef")[:-2])


def test_tensor_bundle_round_trip_and_crc(tmp_path, rng):
    a = rng.normal(size=(3, 4)).astype(np.float32)
    b = np.arange(5, dtype=np.int64)
    blob = a.tobytes() + b.tobytes()
    (tmp_path / "v.data-00000-of-00001").write_bytes(blob)
    header = field(1, 1)
    items = [
        (b"", header),
        (b"a", bundle_entry(1, (3, 4), 0, a.nbytes, crc_reference(a.tobytes()))),
        (b"b", bundle_entry(9, (5,), a.nbytes, b.nbytes, crc_reference(b.tobytes()))),
    ]
    write_table(tmp_path / "v.index", items)
    bundle = tfbundle.TensorBundle(tmp_path / "v")
    assert bundle.entries["a"].shape == (3, 4)
    got = bundle.read()
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], b)

    corrupt = bytearray(blob)
    corrupt[5] ^= 0xFF
    (tmp_path / "v.data-00000-of-00001").write_bytes(bytes(corrupt))
    with pytest.raises(InputError, match="CRC32C mismatch.*'a'"):
        tfbundle.TensorBundle(tmp_path / "v").read()
    assert tfbundle.TensorBundle(tmp_path / "v").read(["b"])["b"].tolist() == b.tolist()


def test_savedmodel_index_and_object_graph(savedmodel_dir):
    bundle = tfbundle.savedmodel_bundle(savedmodel_dir)
    graph = bundle.object_graph()
    conv = graph[graph[0].children["layer_with_weights-0"]]
    assert conv.attributes == {}
    kernel_key = graph[conv.children["kernel"]].attributes["VARIABLE_VALUE"]
    assert bundle.entries[kernel_key].shape == (11, 5, 128)
    meta = tfbundle.read_keras_metadata(savedmodel_dir / "keras_metadata.pb")
    assert meta[0].path == "root" and meta[0].metadata["class_name"] == "Functional"


# --- parity ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_savedmodel_parity_12_heads(full_import, fixtures_dir):
    _, model, provenance = full_import
    cfg = model.config
    assert (cfg.heads, cfg.head_dim, cfg.ff_dim, cfg.transformer_pairs) == (12, 256, 128, 3)
    assert cfg.channels == "NACGT" and cfg.length == 112
    assert count_parameters(model) == (34_165_681, 4_608)  # the spec's hard check
    y, want = predict(model, fixtures_dir / "full_savedmodel" / "reference_io.npz")
    assert np.abs(y - want).max() < TOLERANCE
    # The parallel pairs land by graph position: transformer_block_1 (T2) is transformer.1's partner.
    assert provenance["keras_to_torch"]["transformer_block_1"] == "transformer.1"
    assert provenance["keras_to_torch"]["transformer_block_2"] == "transformer.2"
    assert provenance["source_format"] == "savedmodel"
    assert len(provenance["source_sha256"]["variables/variables.data-00000-of-00001"]) == 64


@pytest.mark.slow
def test_hdf5_parity_2_heads_through_the_cli_and_checkpoint(h5_checkpoint, fixtures_dir):
    from crmnet.models.checkpoint import load_checkpoint

    path, printed = h5_checkpoint
    assert "2 heads x 256" in printed
    model = load_checkpoint(path)
    assert (model.config.heads, model.config.head_dim, model.config.channels) == (2, 256, "NACGT")
    y, want = predict(model, fixtures_dir / "small_h5" / "reference_io.npz")
    assert np.abs(y - want).max() < TOLERANCE
    provenance = model.checkpoint_meta["provenance"]
    assert provenance["source_format"] == "hdf5"
    assert provenance["keras_to_torch"]["dense_54"] == "mlp.4"


def test_cli_refuses_an_existing_checkpoint(h5_checkpoint, h5_path, capsys):
    from crmnet.cli import main

    path, _ = h5_checkpoint
    before = path.stat().st_mtime_ns
    assert main(["import-keras", str(h5_path), "--out", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert path.stat().st_mtime_ns == before


# --- bad input ------------------------------------------------------------------------------------


def test_truncated_index(savedmodel_dir, tmp_path):
    dst = savedmodel_copy(savedmodel_dir, tmp_path / "sm", lambda items: items)
    index = dst / "variables" / "variables.index"
    index.write_bytes(index.read_bytes()[:-100])
    with pytest.raises(InputError, match="variables.index.*truncated"):
        read_keras(dst)


def test_truncated_data_file(savedmodel_dir, tmp_path):
    dst = savedmodel_copy(savedmodel_dir, tmp_path / "sm", lambda items: items)
    data = dst / "variables" / "variables.data-00000-of-00001"
    head = (savedmodel_dir / "variables" / data.name).open("rb").read(1 << 20)
    data.unlink()
    data.write_bytes(head)
    with pytest.raises(InputError, match="data-00000-of-00001.*truncated"):
        read_keras(dst)


def test_renamed_variable_is_missing(savedmodel_dir, tmp_path):
    key = b"layer_with_weights-2/gamma/.ATTRIBUTES/VARIABLE_VALUE"

    def rename(items):
        assert key in dict(items)
        return [(k.replace(b"gamma", b"gamma_renamed") if k == key else k, v) for k, v in items]

    dst = savedmodel_copy(savedmodel_dir, tmp_path / "sm", rename)
    with pytest.raises(InputError, match=r"layer_with_weights-2/gamma.*'batch_normalization'.*missing"):
        read_keras(dst, verify=False)


def test_extra_variable_is_an_error_but_optimizer_slots_are_ignored(savedmodel_dir, tmp_path):
    some = b"layer_with_weights-0/bias/.ATTRIBUTES/VARIABLE_VALUE"
    slot = b"layer_with_weights-0/bias/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE"
    stray = b"layer_with_weights-99/kernel/.ATTRIBUTES/VARIABLE_VALUE"

    def add(extra):
        return lambda items: items + [(k, dict(items)[some]) for k in extra]

    dst = savedmodel_copy(
        savedmodel_dir, tmp_path / "ok", add([slot, b"optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"])
    )
    keras = read_keras(dst, verify=False)
    assert keras.ignored_variables == 2
    dst = savedmodel_copy(savedmodel_dir, tmp_path / "bad", add([stray]))
    with pytest.raises(InputError, match="belong to no Keras layer.*layer_with_weights-99"):
        read_keras(dst, verify=False)


def edited_h5(src: Path, dst: Path, edit) -> Path:
    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as fh:
        edit(fh)
    return dst


def test_hdf5_missing_weight_and_missing_layer(h5_path, tmp_path):
    def drop_dataset(fh):
        del fh["conv1d_1"]["conv1d_1/bias:0"]

    with pytest.raises(InputError, match="'conv1d_1/bias:0' of layer 'conv1d_1' is listed but missing"):
        read_keras(edited_h5(h5_path, tmp_path / "a.h5", drop_dataset))

    def drop_layer(fh):
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in fh.attrs["layer_names"]]
        fh.attrs["layer_names"] = [n.encode() for n in names if n != "batch_normalization_1"]

    with pytest.raises(InputError, match="'conv1d_2'.*is a Conv1D.*; expected a BatchNormalization"):
        convert(read_keras(edited_h5(h5_path, tmp_path / "b.h5", drop_layer)))


def test_hdf5_wrong_shape_names_the_variable(h5_path, tmp_path):
    def widen(fh):
        g = fh["dense_51"]
        del g["dense_51/kernel:0"]
        g["dense_51/kernel:0"] = np.zeros((300, 128), np.float32)

    with pytest.raises(InputError, match="dense_51/kernel.*mlp.1.weight"):
        convert(read_keras(edited_h5(h5_path, tmp_path / "c.h5", widen)))


def test_truncated_hdf5(h5_path, tmp_path):
    bad = tmp_path / "t.h5"
    bad.write_bytes(h5_path.read_bytes()[: 1 << 20])
    with pytest.raises(InputError, match="t.h5.*truncated"):
        read_keras(bad)


def test_another_architecture(tmp_path):
    import h5py

    path = tmp_path / "mlp.h5"
    with h5py.File(path, "w") as fh:
        fh.attrs["layer_names"] = [b"dense", b"dense_1"]
        for name, shape in (("dense", (10, 4)), ("dense_1", (4, 1))):
            g = fh.create_group(name)
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            g[f"{name}/kernel:0"] = np.zeros(shape, np.float32)
            g[f"{name}/bias:0"] = np.zeros(shape[1], np.float32)
    with pytest.raises(InputError, match="not the CRMnet architecture: the first layer 'dense'"):
        convert(read_keras(path))
    with pytest.raises(InputError, match="directory is not a SavedModel"):
        read_keras(tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="not an HDF5 file"):
        read_keras(tmp_path / "x.txt")


# --- downloads ------------------------------------------------------------------------------------


def test_find_models_in_a_download(savedmodel_dir, h5_path, tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "full").symlink_to(savedmodel_dir)
    (tmp_path / "small.h5").symlink_to(h5_path)
    (tmp_path / "notes.txt").write_text("x")
    found = [p.relative_to(tmp_path) for p in find_keras_models(tmp_path)]
    assert found == [Path("a/b/full"), Path("small.h5")]


@pytest.mark.slow  # over 5 s on a 2-core CPU; CI runs it (make test-all)
def test_import_downloaded_zip(h5_path, h5_checkpoint, tmp_path):
    download = tmp_path / "download"
    download.mkdir()
    with zipfile.ZipFile(download / "CRMnet_models.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.write(h5_path, "models/glu/weights.h5")
    written = import_downloaded(download, tmp_path / "ckpt", overwrite=False)
    assert [p.name for p in written] == ["CRMnet_models-models-glu-weights.pt"]
    got = torch.load(written[0], weights_only=True)["state_dict"]
    want = torch.load(h5_checkpoint[0], weights_only=True)["state_dict"]
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    assert not list(tmp_path.glob(".crmnet-unzip-*"))  # the extraction is cleaned up
    with pytest.raises(InputError, match="no Keras SavedModel"):
        import_downloaded(tmp_path / "ckpt", tmp_path / "other", overwrite=False)
