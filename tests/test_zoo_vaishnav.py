"""Vaishnav et al.'s released models in crmnet: parity with their published outputs, and bad input.

* The real trained DeepATT (shared/models/vaishnav2022/deepatt_complex), imported from its Keras HDF5
  file and from its TF object-graph checkpoint, reproduces every per-sequence prediction the authors
  published for the native and random complex test sets (shared/data/vaishnav2022/peer_predictions).
* The transformer fixture (the authors' architecture with seeded weights, shared/fixtures/
  vaishnav_transformer) reproduces the outputs of their own prediction code through ``crmnet import`` and
  ``crmnet predict``, variable-length random sequences included.
"""

from __future__ import annotations

import csv
import shutil
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from crmnet.cli import main
from crmnet.data.encoding import encode, onehot
from crmnet.errors import InputError
from crmnet.evaluation.predict import predict
from crmnet.fsutil import file_digest
from crmnet.models.blocks import count_parameters
from crmnet.models.checkpoint import load_checkpoint
from crmnet.models.registry import build_model
from crmnet.models.vaishnav import COMPLEX_SCALER, KerasLSTM, hard_sigmoid
from crmnet.training.losses import loss_module
from crmnet.zoo.importer import import_model

DEEPATT_TOL = 1e-4  # published predictions (reproduced within ~3e-6)
FIXTURE_TOL = 1e-5  # the fixture's float32 outputs (reproduced within ~4e-6)


@pytest.fixture(scope="module")
def deepatt_dir(shared: Path) -> Path:
    path = shared / "models" / "vaishnav2022" / "deepatt_complex"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def transformer_dir(shared: Path) -> Path:
    path = shared / "fixtures" / "vaishnav_transformer"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def deepatt_models(deepatt_dir: Path, tmp_path_factory) -> dict[str, torch.nn.Module]:
    """The real DeepATT imported from both released formats, loaded back from the written checkpoints."""
    out = tmp_path_factory.mktemp("deepatt")
    sources = {"hdf5": deepatt_dir / "DeepAtt_model.h5", "tf-checkpoint": deepatt_dir / "DeepAtt.index"}
    return {fmt: load_checkpoint(import_model(src, out / f"{fmt}.pt")) for fmt, src in sources.items()}


def published(shared: Path, origin: str) -> tuple[list[str], np.ndarray]:
    path = shared / "data" / "vaishnav2022" / "peer_predictions" / f"{origin}_complex_DeepAtt_model.csv"
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return [r["sequence"] for r in rows], np.array([float(r["Predicted Expression"]) for r in rows])


# --- parity -------------------------------------------------------------------------------------------


@pytest.mark.slow  # over 5 s on a 2-core CPU; CI runs it (make test-all)
@pytest.mark.parametrize("fmt", ["hdf5", "tf-checkpoint"])
@pytest.mark.parametrize("origin", ["Native", "Random"])
def test_deepatt_reproduces_every_published_prediction(deepatt_models, shared, fmt, origin):
    seqs, expected = published(shared, origin)
    assert len(seqs) == {"Native": 3733, "Random": 2954}[origin]
    got = predict(deepatt_models[fmt], seqs, batch_size=1024)
    assert np.abs(got - expected).max() < DEEPATT_TOL


def test_deepatt_checkpoint_is_self_describing(deepatt_models):
    model = deepatt_models["tf-checkpoint"]
    meta = model.checkpoint_meta
    assert meta["model"] == "deepatt-keras"
    assert meta["encoding"] == {"length": 110, "pad": "start", "truncate": "start", "channels": "ACGT",
                                "unknown_fill": 1.0, "prefix": "", "trim_start": 0, "flank": ""}
    assert (model.config.output_shift, model.config.output_scale) == COMPLEX_SCALER
    prov = meta["provenance"]
    assert prov["release"].startswith("Vaishnav 2022 DeepATT")
    assert prov["source_sha256"]["DeepAtt.index"] == "b18b58384464ae80dd0e88ef514d7b0b4c2d3b03596ad065b60b5c7d99efbc6c"
    assert set(prov["source_sha256"]) == {"DeepAtt.index", "DeepAtt.data-00000-of-00002", "DeepAtt.data-00001-of-00002"}
    assert "heads" in prov["assumed"]  # the checkpoint has no config: the head count is the release's
    assert prov["keras_to_torch"]["layer_with_weights-2"] == "attn"
    hdf5 = deepatt_models["hdf5"]
    assert hdf5.checkpoint_meta["provenance"]["assumed"] == {}  # everything read from the model config
    assert count_parameters(hdf5) == (84_273, 0)
    for a, b in zip(hdf5.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the two formats hold the same weights


def test_transformer_fixture_through_the_cli(transformer_dir, tmp_path, capsys):
    ref = np.load(transformer_dir / "reference_io.npz")
    ckpt, seqs, out = tmp_path / "transformer.pt", tmp_path / "seqs.txt", tmp_path / "pred.tsv"
    assert main(["import", str(transformer_dir / "fitness_function.h5"), "--out", str(ckpt)]) == 0
    assert "vaishnav-transformer-keras" in capsys.readouterr().out
    seqs.write_text("".join(f"{s}\n" for s in ref["sequences"]))
    assert {len(s) for s in ref["sequences"]} > {110}  # variable-length random rows are in
    assert main(["predict", str(seqs), "--checkpoint", str(ckpt), "--out", str(out), "--no-progress"]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["sequence"] for r in rows] == list(ref["sequences"])
    got = np.array([float(r["prediction"]) for r in rows])
    assert np.abs(got - ref["predictions"][:, 0]).max() < FIXTURE_TOL


def test_transformer_encoding_and_raw_outputs(transformer_dir, tmp_path):
    """N = [1, 1, 1, 1] and left padding give the authors' input arrays; the network gives their raw output."""
    ref = np.load(transformer_dir / "reference_io.npz")
    model = load_checkpoint(import_model(transformer_dir / "fitness_function.h5", tmp_path / "t.pt"))
    codes, _ = encode(list(ref["sequences"]), model.encoding)
    x = onehot(torch.from_numpy(codes), model.encoding)
    np.testing.assert_array_equal(x.transpose(1, 2).numpy(), ref["inputs"].astype(np.float32))
    assert count_parameters(model) == (1_295_505, 1_280)
    with torch.no_grad():
        raw = (model(x) - model.config.output_shift) / model.config.output_scale
    assert np.abs(raw.numpy() - ref["outputs"][:, 0]).max() < FIXTURE_TOL


# --- building blocks ----------------------------------------------------------------------------------


def test_hard_sigmoid_is_keras_2():
    x = torch.tensor([-3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 3.0])
    assert torch.equal(hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.3, 0.5, 0.7, 1.0, 1.0]))


def test_keras_lstm_step_by_hand_and_backward_direction():
    torch.manual_seed(0)
    lstm = KerasLSTM(3, 2)
    x = torch.randn(1, 1, 3)
    z = x[0, 0] @ lstm.kernel + lstm.bias  # one step from zero state: c = i * tanh(g)
    i, _, g, o = z.split(2)
    c = hard_sigmoid(i) * torch.tanh(g)
    torch.testing.assert_close(lstm(x)[0, 0], hard_sigmoid(o) * torch.tanh(c))
    backward = KerasLSTM(3, 2, reverse=True)
    backward.load_state_dict(lstm.state_dict())
    seq = torch.randn(2, 5, 3)
    torch.testing.assert_close(backward(seq), lstm(seq.flip(1)).flip(1))


def test_output_scaler_is_applied_and_validated():
    torch.manual_seed(0)
    x = torch.rand(2, 4, 110)
    plain = build_model("deepatt-keras", output_shift=0.0, output_scale=1.0).eval()
    scaled = build_model("deepatt-keras", output_shift=2.0, output_scale=3.0).eval()
    scaled.load_state_dict(plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(scaled(x), 2.0 + 3.0 * plain(x))
    with pytest.raises(ValueError, match="output_scale"):
        build_model("deepatt-keras", output_scale=0.0)


# --- formats and bad input ----------------------------------------------------------------------------


def copy_h5(src: Path, dst: Path, edit) -> Path:
    shutil.copyfile(src, dst)
    dst.chmod(0o644)
    with h5py.File(dst, "r+") as fh:
        edit(fh["model_weights"])
    return dst


def drop_layer(group, name: str) -> None:
    group.attrs["layer_names"] = [n for n in group.attrs["layer_names"] if n.decode() != name]
    del group[name]


def drop_weight(group, layer: str, weight: str) -> None:
    g = group[layer]
    g.attrs["weight_names"] = [n for n in g.attrs["weight_names"] if n.decode() != weight]
    del g[weight]


def reshape_weight(group, layer: str, weight: str, shape: tuple[int, ...]) -> None:
    g = group[layer]
    del g[weight]
    g.create_dataset(weight, data=np.zeros(shape, np.float32))


BAD_H5 = {
    "another architecture": (
        lambda g: drop_layer(g, "multi_head_attention"), "form neither known architecture"),
    "missing weight": (
        lambda g: drop_weight(g, "dense_2", "dense_2/bias:0"), "no weight in the file for head.4.bias"),
    "mis-shaped weight": (
        lambda g: reshape_weight(g, "multi_head_attention", "multi_head_attention/multi_head_attention_Wq:0", (32, 31)),
        "'multi_head_attention': weight for attn.q.weight has shape (31, 32)"),
    "mis-shaped head": (
        lambda g: reshape_weight(g, "dense", "dense/kernel:0", (800, 16)), "does not fit a 110-nt input"),
}


@pytest.mark.parametrize("case", list(BAD_H5))
def test_bad_hdf5_is_one_line_naming_file_and_mismatch(deepatt_dir, tmp_path, capsys, case):
    edit, message = BAD_H5[case]
    src = copy_h5(deepatt_dir / "DeepAtt_model.h5", tmp_path / "bad.h5", edit)
    out = tmp_path / "out.pt"
    assert main(["import", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(src) in err and message in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == [src]  # nothing written, no temp file left


def test_truncated_files_are_refused(deepatt_dir, tmp_path):
    h5 = tmp_path / "DeepAtt_model.h5"
    h5.write_bytes((deepatt_dir / "DeepAtt_model.h5").read_bytes()[:200_000])
    with pytest.raises(InputError, match="truncated"):
        import_model(h5, tmp_path / "a.pt")
    for f in deepatt_dir.glob("DeepAtt.*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    shard = tmp_path / "DeepAtt.data-00000-of-00002"
    shard.write_bytes(shard.read_bytes()[:-1000])
    with pytest.raises(InputError, match="truncated") as exc:
        import_model(tmp_path / "DeepAtt.index", tmp_path / "b.pt")
    assert str(shard) in str(exc.value)
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "b.pt").exists()


def test_unrecognised_file_and_existing_output(tmp_path, deepatt_dir):
    text = tmp_path / "model.txt"
    text.write_text("not a model\n")
    with pytest.raises(InputError, match="format not recognised"):
        import_model(text, tmp_path / "x.pt")
    existing = tmp_path / "exists.pt"
    existing.write_bytes(b"keep")
    assert main(["import", str(deepatt_dir / "DeepAtt_model.h5"), "--out", str(existing)]) == 2
    assert existing.read_bytes() == b"keep"


def test_release_recognised_by_git_blob_id(deepatt_dir):
    assert file_digest(deepatt_dir / "DeepAtt_model.h5", "git-blob") == "076f89100ebe36948808176d9dd7c2f29ee1b034"


def test_pth_is_delegated_to_the_legnet_importer(tmp_path, monkeypatch):
    calls = []

    def import_file(path):
        calls.append(path)
        return build_model("legnet"), {"state_dict_keys": 3}

    monkeypatch.setitem(sys.modules, "crmnet.zoo.legnet", types.SimpleNamespace(import_file=import_file))
    monkeypatch.setattr("crmnet.zoo.legnet", sys.modules["crmnet.zoo.legnet"], raising=False)
    src = tmp_path / "model_300.pth"
    src.write_bytes(b"PK\x03\x04 stand-in: the fake importer does not read it")
    out = import_model(src, tmp_path / "legnet.pt", name="legnet-complex")
    assert calls == [src]
    meta = load_checkpoint(out).checkpoint_meta
    assert meta["model"] == "legnet" and meta["provenance"]["name"] == "legnet-complex"
    assert meta["provenance"]["importer_format"] == "pytorch" and meta["provenance"]["state_dict_keys"] == 3


# --- every config field matters -----------------------------------------------------------------------

SMALL = {
    "deepatt-keras": {"filters": 8, "width": 9, "lstm_units": 4, "heads": 2, "dense_units": (8,)},
    "vaishnav-transformer-keras": {
        "motif_filters": 8, "motif_width": 5, "coop_filters": 8, "coop_width": 5, "transformer_layers": 1,
        "heads": 2, "ff_dim": 4, "lstm_units": 2, "dense_units": (8,), "length": 40,
    },
}
COMMON = {"length": 36, "pad": "end", "truncate": "end", "unknown_fill": 0.0, "prefix": "A", "trim_start": 2,
          "flank": "GATTACA",
          "output_shift": 0.5, "output_scale": 2.0, "dropout": 0.5, "softmax_eps": 1e-2}
ALTERNATIVES = {
    "deepatt-keras": {**COMMON, "channels": "TGCA", "filters": 6, "width": 7, "pool": 2, "lstm_units": 3,
                      "heads": 4, "dense_units": (6,)},
    "vaishnav-transformer-keras": {**COMMON, "motif_filters": 6, "motif_width": 7, "coop_filters": 4,
                                   "coop_width": 3, "transformer_layers": 2, "heads": 4, "ff_dim": 3,
                                   "lstm_units": 3, "dense_units": (4,), "layernorm_eps": 1e-3},
}


def fingerprint(model: torch.nn.Module) -> list:
    """Encoding, initial weights, eval and train outputs and the loss on a fixed batch with N codes."""
    enc = model.encoding
    x = onehot(torch.randint(0, 5, (3, enc.length), generator=torch.Generator().manual_seed(0)), enc)
    with torch.no_grad():
        torch.manual_seed(1)
        out = [enc, model.eval()(x), model.train()(x), loss_module(model)(x, torch.tensor([1.0, 5.0, 9.0]))[0]]
    return out + list(model.state_dict().values())


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (torch.is_tensor(u) and u.shape == v.shape and torch.equal(u, v)) or (not torch.is_tensor(u) and u == v)
        for u, v in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("name", list(SMALL))
def test_every_config_field_changes_the_model_or_its_output(name):
    from dataclasses import fields

    from crmnet.models.registry import MODELS

    def build(**kw):
        torch.manual_seed(0)
        return build_model(name, **{**SMALL[name], **kw})

    names = {f.name for f in fields(MODELS[name].config_class)}
    expected = set(ALTERNATIVES[name]) | ({"channels"} if name == "vaishnav-transformer-keras" else set())
    assert names == expected
    base = fingerprint(build())
    assert same(base, fingerprint(build()))
    for field, value in ALTERNATIVES[name].items():
        assert getattr(build().config, field) != value, field
        assert not same(base, fingerprint(build(**{field: value}))), f"{name}: {field} changes nothing"
    if name == "vaishnav-transformer-keras":  # the strand flip needs A, C, G, T in order
        with pytest.raises(ValueError, match="channels 'ACGT'"):
            build(channels="TGCA")


def test_tf_checkpoint_found_from_its_folder_and_state_file(deepatt_dir, tmp_path):
    for source in (deepatt_dir, deepatt_dir / "checkpoint", deepatt_dir / "DeepAtt"):
        out = import_model(source, tmp_path / f"{source.name}.pt", verify=False)
        meta = load_checkpoint(out).checkpoint_meta
        assert meta["model"] == "deepatt-keras" and meta["provenance"]["importer_format"] == "tf-checkpoint"
