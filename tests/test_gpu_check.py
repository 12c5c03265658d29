"""benchmarks/gpu_check.py in its CPU form (--device cpu --tiny), with every package the GPU machines lack
made unimportable: the one-command GPU check cannot rot between GPU slots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Only torch, numpy, scipy, pyarrow, matplotlib and tqdm are on the GPU machines.
BLOCKER = '''
import importlib.abc, importlib.machinery, sys

BLOCKED = {"pyjaspar", "memelite", "tangermeme", "logomaker", "modiscolite", "h5py", "torchmetrics",
           "tensorboard", "numba", "hypothesis"}


class _Absent(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

    def exec_module(self, module):
        raise ModuleNotFoundError(module.__name__)


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _Absent(), origin=None)
        return None


sys.meta_path.insert(0, _Block())
'''


@pytest.mark.slow
def test_tiny_cpu_check_runs_every_section_without_the_optional_packages(tmp_path):
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCKER)
    out = tmp_path / "check"
    env = {**os.environ, "PYTHONPATH": str(block), "OMP_NUM_THREADS": "1"}  # gpu_check adds src itself
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out),
                           "--device", "cpu", "--tiny"], env=env, capture_output=True, text=True, timeout=1200,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    sections = report["sections"]
    assert list(sections) == ["env", "data", "models", "table1", "compile", "train", "predict", "ddp"]
    failed = {k: v.get("log_tail", v.get("error")) for k, v in sections.items() if v["status"] != "ok"}
    assert not failed, failed

    from crmnet.models.registry import list_models

    models = sections["models"]["result"]["rows"]
    assert [r["model"] for r in models] == list(list_models())
    assert all(r["forward_per_s"] > 0 and r["train_per_s"] > 0 for r in models)
    table = sections["table1"]["result"]["rows"]
    assert {(r["batch"], r["precision"]) for r in table} == {(b, p) for b in (16, 32)
                                                             for p in ("32", "bf16-mixed", "16-mixed")}
    assert all(r["s_step"] > 0 and r["s_step_loader"] > 0 and r["epochs20_h"] > 0 for r in table)
    assert [r["precision"] for r in table[:2]] == ["bf16-mixed", "bf16-mixed"]  # bf16 first
    assert all(r["s_step_blocks"]["blocks"] >= 3 and r["s_step_loader_blocks"]["blocks"] >= 3 for r in table)
    assert all("forward_spread" in r for r in models)
    assert sections["env"]["result"]["torch_supported"]
    assert sections["predict"]["result"]["timing"]["blocks"] >= 3
    train = sections["train"]["result"]
    assert train["validation"]["n"] == 150 and Path(train["checkpoint"]).is_file()  # 5 % of 3,000 rows
    assert len(train["epochs"]) == 2
    assert sections["predict"]["result"]["rows"] == 2000
    assert sections["ddp"]["result"]["backend"] == "gloo"
    text = (out / "report.md").read_text()
    assert "| batch | precision | s/step | spread | samples/s | s/step loader-fed" in text
    assert "| crmnet | 34,165,681 |" in text


@pytest.mark.slow  # over 5 s on a 2-core CPU; CI runs it (make test-all)
def test_a_hanging_section_is_cut_at_its_cap_and_reported(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    monkeypatch.setitem(gpu_check.SECTIONS, "env", (5, 5))
    monkeypatch.setitem(gpu_check.NEEDS, "data", "env")
    out = tmp_path / "check"
    # The worker of a hanging section: replace the interpreter's command by one that sleeps.
    real_popen = gpu_check.subprocess.Popen
    monkeypatch.setattr(gpu_check.subprocess, "Popen",
                        lambda cmd, **kw: real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **kw))
    assert gpu_check.main(["--out", str(out), "--device", "cpu", "--tiny", "--sections", "env,data",
                           "--budget", "30"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["sections"]["env"]["status"] == "timeout"
    assert report["sections"]["env"]["seconds"] < 15
    assert report["sections"]["data"]["status"] == "skipped"
    assert "killed after its cap" in (out / "report.md").read_text()


def test_block_timing_ladder_and_order():
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check
    from gpu_timing import fits, timed_blocks

    calls = []
    stats = timed_blocks(lambda: calls.append(sum(range(2000))), torch.device("cpu"), min_seconds=0.05, blocks=3)
    assert stats["blocks"] >= 3 and stats["timed_s"] >= 0.05
    assert stats["s_call_min"] <= stats["s_call"] <= stats["s_call_max"]
    assert len(calls) == 2 + 1 + stats["blocks"] * stats["calls_per_block"]  # warm-up, calibration, blocks
    assert fits(8192, {"batch": 4096, "peak_mib": 30_000}, 81_000)
    assert not fits(16384, {"batch": 4096, "peak_mib": 30_000}, 81_000)  # 120 GB estimated on 80
    assert fits(16384, None, 81_000) and fits(16384, {"batch": 4096, "peak_mib": 30_000}, None)
    order = gpu_check._table1_order((1024, 4096, 8192), ("32", "bf16-mixed", "16-mixed"))
    assert order[:2] == [(1024, "bf16-mixed"), (4096, "bf16-mixed")]
    assert order[2:6] == [(1024, "32"), (4096, "32"), (1024, "16-mixed"), (4096, "16-mixed")]
    assert order[6:] == [(8192, "bf16-mixed"), (8192, "32"), (8192, "16-mixed")]
    assert gpu_check._torch_supported("2.11.0+cu128") and gpu_check._torch_supported("2.13.0+cpu")
    assert not gpu_check._torch_supported("2.10.1") and not gpu_check._torch_supported("2.14.0")
