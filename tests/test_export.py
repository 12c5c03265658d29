"""ONNX and TorchScript exports give the PyTorch model's predictions (parity) and carry its encoding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from crmnet.cli import main
from crmnet.errors import InputError
from crmnet.models import build_model
from crmnet.models.checkpoint import save_checkpoint
from crmnet.models.export import Exported, example_input, export_model, parity

pytestmark = pytest.mark.usefixtures("one_thread")

# float32 reassociation in another runtime: measured max_rel 1e-6..3.3e-6 (ONNX), exactly 0 (TorchScript).
TOL = 1e-5


def _model(name):
    torch.manual_seed(0)
    return build_model(name).eval()


# crmnet-tiny: U-Net + SE + attention; deepatt: Bi-LSTM + attention; legnet: grouped convs, SiLU, soft bins.
@pytest.mark.parametrize("name", ["crmnet-tiny", "deepatt", pytest.param("legnet", marks=pytest.mark.slow)])
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_pytorch(name, fmt, tmp_path):
    model = _model(name)
    path = export_model(model, tmp_path / f"m.{fmt}", fmt, dynamo=False)
    assert [p.name for p in tmp_path.iterdir()] == [f"m.{fmt}"]
    check = parity(model, path, n=16)
    assert check["format"] == fmt and check["max_rel"] <= TOL, check
    exported = Exported(path)
    assert exported.meta["model"] == name and exported.meta["encoding"] == model.encoding.to_dict()
    x = example_input(model, n=5, seed=3)  # another batch size than the export's example
    np.testing.assert_allclose(exported(x), model(x).detach().numpy(), rtol=TOL, atol=1e-6)


@pytest.mark.slow
def test_onnx_dynamo_exporter(tmp_path):
    model = _model("crmnet-tiny")
    path = export_model(model, tmp_path / "m.onnx", "onnx", dynamo=True)
    assert parity(model, path, n=16)["max_rel"] <= TOL
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # one self-contained file, no leftovers


def test_export_refuses_existing_and_foreign_files(tmp_path):
    model = _model("crmnet-tiny")
    (tmp_path / "m.pt").write_text("x")
    with pytest.raises(FileExistsError):
        export_model(model, tmp_path / "m.pt", "torchscript")
    with pytest.raises(InputError, match="not a crmnet ONNX or TorchScript export"):
        Exported(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="format"):
        export_model(model, tmp_path / "n.pt", "tflite")


def test_cli_export(tmp_path, capsys):
    ckpt = tmp_path / "tiny.ckpt"
    save_checkpoint(ckpt, _model("crmnet-tiny"))
    out = tmp_path / "tiny.ts"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "torchscript", "--out", str(out),
                 "--parity", "8"]) == 0
    captured = capsys.readouterr()
    assert "parity with PyTorch on 8 sequences" in captured.err and f"wrote {out}" in captured.out
    meta = json.loads(torch.jit.load(str(out), _extra_files=(extra := {"crmnet.json": ""})) and extra["crmnet.json"])
    assert meta["model"] == "crmnet-tiny"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(out), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "not a crmnet checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
