"""One command for a short GPU slot: everything crmnet needs to know about a CUDA machine, in < 8 minutes.

    PYTHONPATH=src python benchmarks/gpu_check.py --out DIR                  # CUDA machine, < 8 minutes
    PYTHONPATH=src python benchmarks/gpu_check.py --out DIR --device cpu --tiny   # CPU, tiny sizes, ~1 min

Runs from a bare checkout on the machine's own Python and torch as they are, installing nothing
(torch 2.11–2.13 supported, :data:`SUPPORTED_TORCH`; numpy, scipy, pyarrow, matplotlib and tqdm are the
only other packages it needs, crmnet's pure-Python dependencies may be vendored as wheels beside it)
and writes ``DIR/report.md`` and ``DIR/report.json`` (rewritten after every section; each section
saves every result the moment it is measured, so whatever ran is reported even if the slot ends early).
Sections, each in its own process with a hard time cap (a hang or a crash costs its own cap, never the
budget of the others; its error is recorded, not fatal). Time budget per section on a GPU (seconds; the
caps add up to 470 s, under the 8-minute slot):

env        15  device, properties, versions, GPU clocks
data       45  >= 500,000 synthetic rows (numpy on the machine: random 110-nt sequences, a learnable target
               from GC content and GATA counts plus noise) -> ``crmnet prepare``; a FASTA file for predict
models     60  forward and training throughput of every registered model, batch 1024, bf16
table1    130  full CRMnet in the layout of the paper's Table 1: bf16-mixed at batch 1024 and 4096 first,
               then fp32 (TF32) and 16-mixed there, then a memory-aware ladder (8192, 16384: a batch is
               tried only if the peak memory per sample of the last batch that ran says it fits in 85 %
               of the GPU; an out-of-memory ends its precision's ladder); s/step, samples/s, epoch time
               for 30.4 M, 20-epoch projection, peak memory, GPU clocks before and after; fed by a
               synthetic on-device batch and by the real BatchLoader from the store
compile    70  ``torch.compile`` on the fastest loader-fed configuration of table1, in its own process:
               the first (compiling) step is saved as soon as it ends, then the timed blocks
train      90  end-to-end ``crmnet train`` of the full model on the store for 2 epochs (validation
               metrics, checkpoint)
predict    30  ``crmnet.evaluation.predict`` of the FASTA file's sequences with the trained checkpoint,
               timed inside one warm process (text encoding included, process start excluded): rows/s
ddp        30  ``crmnet train --devices 2``: NCCL where there are two GPUs; on one GPU gloo only (NCCL
               cannot put two ranks on one device)

Every throughput is timed in at least 3 blocks and at least 1 s in all (CUDA events around each block
of back-to-back calls, :mod:`gpu_timing`): the median per call is reported with its spread over blocks.

``--tiny`` shrinks every size (crmnet-tiny, a few thousand rows, small batches) so that the same code
runs in about a minute on a CPU; ``tests/test_gpu_check.py`` runs it so that it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EPOCH_SAMPLES = 30_400_000

# name -> (cap in seconds on a GPU, cap with --tiny); the GPU caps add up to the 470 s budget. The tiny
# caps are generous: on a quiet 2-core CPU the whole tiny check takes about a minute, but CI machines are
# shared, and the caps are there to stop hangs, not slowness.
SECTIONS = {
    "env": (15, 60), "data": (45, 90), "models": (60, 150), "table1": (130, 150), "compile": (70, 90),
    "train": (90, 150), "predict": (30, 90), "ddp": (30, 180),
}
#: torch versions this check runs on as they are (first and last minor version, inclusive)
SUPPORTED_TORCH = ((2, 11), (2, 13))
BUDGET = {False: 470.0, True: 900.0}
NEEDS = {"table1": "data", "compile": "table1", "train": "data", "predict": "train", "ddp": "data"}

FULL = {"model": "crmnet", "rows": 500_000, "predict_rows": 200_000, "models_batch": 1024, "models_precision": "bf16-mixed",
        "batches": (1024, 4096, 8192, 16384), "precisions": ("32", "bf16-mixed", "16-mixed"), "warmup": 3,
        "steps": 5, "train_batch": 1024, "train_precision": "bf16-mixed", "ddp_model": "crmnet-small",
        "ddp_batch": 256, "compile": True, "timing": {"min_seconds": 1.0, "blocks": 3}}
# the CPU form runs the models section in float32: bf16 autocast on a CPU without AVX512-BF16 is emulated, and
# every registered model in bf16 overran the section's cap on an AVX2-only CPU
TINY = {"model": "crmnet-tiny", "rows": 3_000, "predict_rows": 2_000, "models_batch": 2, "models_precision": "32",
        "batches": (16, 32),
        "precisions": ("32", "bf16-mixed", "16-mixed"), "warmup": 1, "steps": 2, "train_batch": 64,
        "train_precision": "32", "ddp_model": "crmnet-tiny", "ddp_batch": 32,
        "compile": "eager",  # inductor's C++ build takes minutes on a small CPU: only the code path here
        "timing": {"min_seconds": 0.02, "blocks": 3}}


# ----------------------------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory (report.md, report.json, data, runs)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="tiny sizes (CPU check of the script, ~1 minute)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for all sections (default 470; 900 with --tiny)")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset, in order")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # run one section in this process
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.worker:
        return _worker(args.worker, out, args.device, args.tiny)
    chosen = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        p.error(f"unknown sections {unknown}; known: {list(SECTIONS)}")
    if out.exists():
        if not args.overwrite:
            p.error(f"{out} exists (pass --overwrite to replace it)")
        shutil.rmtree(out)
    (out / "sections").mkdir(parents=True)
    budget = BUDGET[args.tiny] if args.budget is None else args.budget
    report = {"device": args.device, "tiny": args.tiny, "budget_s": budget, "sections": {}}
    deadline = time.monotonic() + budget
    for i, name in enumerate(chosen):
        reserve = 5.0 * (len(chosen) - i - 1)  # leave the later sections a chance to report
        cap = min(SECTIONS[name][1 if args.tiny else 0], deadline - time.monotonic() - reserve)
        report["sections"][name] = _run_section(name, out, args, cap, report["sections"])
        _write_report(out, report)
    print((out / "report.md").read_text())
    return 0


def _run_section(name: str, out: Path, args, cap: float, done: dict) -> dict:
    need = NEEDS.get(name)
    if need and done.get(need, {}).get("status") not in ("ok", "partial"):
        return {"status": "skipped", "error": f"needs section {need!r}", "seconds": 0.0, "cap_s": cap}
    if cap < 5:
        return {"status": "skipped", "error": "no time left in the budget", "seconds": 0.0, "cap_s": cap}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--out", str(out), "--device",
           args.device] + (["--tiny"] if args.tiny else [])
    print(f"gpu_check: {name} (cap {cap:.0f} s)", file=sys.stderr, flush=True)
    t = time.monotonic()
    log = out / "sections" / f"{name}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=_env())
        try:
            rc = proc.wait(timeout=cap)
            status = "ok" if rc == 0 else "error"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the section and every process it started
            proc.wait()
            status, rc = "timeout", None
    result = _read_json(out / "sections" / f"{name}.json")
    entry = {"status": status, "seconds": round(time.monotonic() - t, 1), "cap_s": round(cap), "result": result}
    if status == "timeout" and result:
        entry["status"] = "partial"  # what it measured before the cap is kept
    if status != "ok":
        entry["error"] = f"exit code {rc}" if rc is not None else f"killed after its cap of {cap:.0f} s"
        entry["log_tail"] = log.read_text(errors="replace")[-3000:]
    return entry


def _env() -> dict:
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------- workers
class _Section:
    """A section's results, written to ``sections/<name>.json`` after every update (kept if it is killed)."""

    def __init__(self, out: Path, name: str, device: str, tiny: bool):
        self.out, self.name, self.tiny = out, name, tiny
        self.sizes = TINY if tiny else FULL
        self.device_name = device
        self.data: dict = {}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        _write_json(self.out / "sections" / f"{self.name}.json", self.data)

    def crmnet(self, *args: str, env: dict | None = None, timeout: float | None = None) -> float:
        """Run ``python -m crmnet ARGS`` (raises on failure or after ``timeout`` s, killing every process it
        started); returns its wall time in seconds."""
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "crmnet", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env={**_env(), **(env or {})},
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"crmnet {args[0]} did not finish within {timeout:.0f} s") from None
        sys.stdout.write(stdout[-5000:])
        sys.stderr.write(stderr[-5000:])
        if proc.returncode:
            raise RuntimeError(f"crmnet {args[0]} failed (exit {proc.returncode}): {stderr.strip()[-1500:]}")
        return time.perf_counter() - t


def _worker(name: str, out: Path, device: str, tiny: bool) -> int:
    sys.path.insert(0, str(HERE))  # bench_train's measurement, shared with this check
    section = _Section(out, name, device, tiny)
    WORKERS[name](section)
    return 0


def _torch_device(section: _Section):
    import torch

    if section.device_name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch sees no CUDA device")
    return torch.device(section.device_name)


def _section_env(s: _Section) -> None:
    import numpy
    import pyarrow
    import scipy
    import torch

    import crmnet

    s.put("versions", {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__,
                       "scipy": scipy.__version__, "pyarrow": pyarrow.__version__, "crmnet": crmnet.__version__,
                       "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()})
    s.put("cpu_count", os.cpu_count())
    s.put("torch_supported", _torch_supported(torch.__version__))
    device = _torch_device(s)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        s.put("gpu", {"name": props.name, "count": torch.cuda.device_count(), "memory_gib":
                      round(props.total_memory / 2**30, 1), "capability": f"{props.major}.{props.minor}",
                      "multiprocessors": props.multi_processor_count, "bf16": torch.cuda.is_bf16_supported(),
                      "nccl": _nccl_version()})
        from gpu_timing import gpu_clocks

        s.put("clocks", gpu_clocks(device.index or 0))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False)
    s.put("commit", commit.stdout.strip() or None)


def _torch_supported(version: str) -> bool:
    """Whether ``version`` (e.g. ``2.11.0+cu128``) lies in :data:`SUPPORTED_TORCH`."""
    major, minor = (int(v) for v in version.split("+")[0].split(".")[:2])
    return SUPPORTED_TORCH[0] <= (major, minor) <= SUPPORTED_TORCH[1]


def _nccl_version() -> str | None:
    import torch

    try:
        v = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return str(v) if isinstance(v, int) else ".".join(map(str, v))


def _synthetic_rows(n: int, seed: int):
    """(n, 110) ASCII sequence bytes and (n,) float targets: GC content and GATA counts plus noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, size=(n, 110), dtype=np.uint8)
    gc = ((codes == 1) | (codes == 2)).mean(axis=1)
    gata = ((codes[:, :-3] == 2) & (codes[:, 1:-2] == 0) & (codes[:, 2:-1] == 3) & (codes[:, 3:] == 0)).sum(axis=1)
    y = 9 + 30 * (gc - 0.5) + 2 * (gata - 0.4) + rng.normal(0, 0.5, n)
    return np.frombuffer(b"ACGT", dtype=np.uint8)[codes], y


def _section_data(s: _Section) -> None:
    data = s.out / "data"
    data.mkdir(exist_ok=True)
    t = time.perf_counter()
    letters, y = _synthetic_rows(s.sizes["rows"], seed=0)
    with open(data / "train.txt", "w") as fh:
        fh.writelines("".join(f"{r.tobytes().decode()}\t{v:.4f}\n" for r, v in zip(letters[lo:lo + 100_000],
                                                                                   y[lo:lo + 100_000]))
                      for lo in range(0, len(y), 100_000))
    letters, _ = _synthetic_rows(s.sizes["predict_rows"], seed=1)
    with open(data / "predict.fa", "w") as fh:
        fh.write("".join(f">s{i}\n{r.tobytes().decode()}\n" for i, r in enumerate(letters)))
    s.put("generate_s", round(time.perf_counter() - t, 2))
    s.put("rows", s.sizes["rows"])
    s.put("predict_rows", s.sizes["predict_rows"])
    seconds = s.crmnet("prepare", str(data / "train.txt"), "--out", str(data / "store"), "--val-fraction",
                       "0.05", "--quiet")
    s.put("prepare_s", round(seconds, 2))
    s.put("store", str(data / "store"))


def _rate(fn, batch: int, warmup: int, device, timing: dict) -> tuple[float, float]:
    """Samples per second of ``fn()`` on ``batch`` samples (median over timed blocks) and the blocks' spread."""
    from gpu_timing import timed_blocks

    stats = timed_blocks(fn, device, warmup=warmup, **timing)
    return batch / stats["s_call"], stats["spread"]


def _model_row(name: str, s: _Section, device) -> dict:
    import torch

    from crmnet.data.encoding import onehot
    from crmnet.models.registry import build_model
    from crmnet.training.losses import loss_module
    from crmnet.training.step import autocast, make_optimizer, optimizer_step

    batch, precision, sz = s.sizes["models_batch"], s.sizes["models_precision"], s.sizes
    torch.manual_seed(0)
    model = build_model(name).to(device)
    x = onehot(torch.randint(0, 4, (batch, model.encoding.length), device=device), model.encoding)
    y = torch.rand(batch, device=device) * 17
    row = {"model": name, "params": sum(p.numel() for p in model.parameters())}
    model.eval()

    def forward():
        with torch.inference_mode(), autocast(precision, device):
            model(x)

    row["forward_per_s"], row["forward_spread"] = _rate(forward, batch, sz["warmup"], device, sz["timing"])
    model.train()
    module, opt = loss_module(model), make_optimizer("adam", model.parameters(), 1e-4, 0.0, device)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    row["train_per_s"], row["train_spread"] = _rate(lambda: optimizer_step(module, opt, scaler, x, y, precision),
                                                    batch, sz["warmup"], device, sz["timing"])
    return row


def _section_models(s: _Section) -> None:
    import torch

    from crmnet.models.registry import list_models
    from crmnet.training.step import configure_device

    device = _torch_device(s)
    configure_device(device)
    s.put("batch", s.sizes["models_batch"])
    s.put("precision", s.sizes["models_precision"])
    rows = []
    for name in list_models():
        try:
            rows.append(_model_row(name, s, device))
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:  # one model's failure is its row's
            rows.append({"model": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        if device.type == "cuda":
            torch.cuda.empty_cache()
        s.put("rows", rows)


def _with_rates(row: dict) -> dict:
    if row.get("oom") or row.get("skipped"):
        return row
    global_batch = row["batch"] * row["devices"]
    out = dict(row, samples_per_s=global_batch / row["s_step"])
    if "s_step_loader" in row:
        out["samples_per_s_loader"] = global_batch / row["s_step_loader"]
        out["loader_vs_synthetic"] = row["s_step"] / row["s_step_loader"]
    fed = out.get("samples_per_s_loader", out["samples_per_s"])
    out["epoch_h"] = EPOCH_SAMPLES / fed / 3600
    out["epochs20_h"] = 20 * out["epoch_h"]
    return out


def _table1_order(batches: tuple[int, ...], precisions: tuple[str, ...]) -> list[tuple[int, str]]:
    """bf16 at the two smallest batches first, the other precisions there next, then the larger batches."""
    first = sorted(precisions, key=lambda p: p != "bf16-mixed")
    head = [(b, p) for p in first for b in batches[:2]]
    return head + [(b, p) for p in first for b in batches[2:]]


def _table1_row(s: _Section, device, batch: int, precision: str, rows: list) -> dict:
    """One measured configuration, saved (partial) after each of its figures."""
    from bench_train import measure
    from gpu_timing import gpu_clocks

    store = s.out / "data" / "store"
    kw = {"warmup": s.sizes["warmup"], "steps": s.sizes["steps"], "blocks": s.sizes["timing"]}
    clocks = gpu_clocks(device.index or 0) if device.type == "cuda" else None

    def progress(partial: dict) -> None:
        s.put("rows", rows + [{**partial, "partial": True}])

    try:
        row = measure(s.sizes["model"], device, batch, precision, store=store, progress=progress, **kw)
    except Exception as exc:  # noqa: BLE001 - a failing loader must not hide the synthetic rate
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        row = {**measure(s.sizes["model"], device, batch, precision, progress=progress, **kw), "loader_error": error}
    row["clocks_before"] = clocks
    row["clocks_after"] = gpu_clocks(device.index or 0) if device.type == "cuda" else None
    return _with_rates(row)


def _section_table1(s: _Section) -> None:
    import torch
    from gpu_timing import fits

    device = _torch_device(s)
    total = torch.cuda.get_device_properties(device).total_memory / 2**20 if device.type == "cuda" else None
    s.put("model", s.sizes["model"])
    s.put("memory_mib", total)
    rows: list = []
    last: dict = {}  # precision -> the last row that ran (its peak memory sizes the next batch)
    stopped: set = set()  # precisions whose ladder hit out-of-memory
    for batch, precision in _table1_order(s.sizes["batches"], s.sizes["precisions"]):
        if precision in stopped or not fits(batch, last.get(precision), total):
            reason = "out of memory at a smaller batch" if precision in stopped else \
                "estimated peak memory over 85 % of the GPU"
            rows.append({"batch": batch, "precision": precision, "devices": 1, "skipped": reason})
            s.put("rows", rows)
            continue
        row = _table1_row(s, device, batch, precision, rows)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if row.get("oom"):
            stopped.add(precision)
        else:
            last[precision] = row
        rows.append(row)
        s.put("rows", rows)
    ok = [r for r in rows if "s_step" in r]
    if ok:
        best = max(ok, key=lambda r: r.get("samples_per_s_loader", r["samples_per_s"]))
        s.put("best", {"batch": best["batch"], "precision": best["precision"]})


def _section_compile(s: _Section) -> None:
    from bench_train import measure

    best = _read_json(s.out / "sections" / "table1.json").get("best")
    if not best:
        raise RuntimeError("table1 found no configuration that ran")
    device = _torch_device(s)
    s.put("config", {**best, "backend": "inductor" if s.sizes["compile"] is True else s.sizes["compile"]})
    row = measure(s.sizes["model"], device, best["batch"], best["precision"], warmup=s.sizes["warmup"] + 2,
                  steps=s.sizes["steps"], store=s.out / "data" / "store", compile=s.sizes["compile"],
                  blocks=s.sizes["timing"], progress=lambda partial: s.put("row", partial))
    s.put("row", _with_rates(row))


def _section_train(s: _Section) -> None:
    import csv

    run = s.out / "runs" / "train"
    sz = s.sizes
    args = ["train", "--store", str(s.out / "data" / "store"), "--model", sz["model"], "--out", str(run),
            "--batch-size", str(sz["train_batch"]), "--max-epochs", "2", "--warmup-epochs", "1", "--precision",
            sz["train_precision"], "--accelerator", s.device_name, "--no-progress", "--log-every-n-steps", "20",
            "--init-output-bias"]  # a 2-epoch run: start at the mean target instead of spending it on the offset
    s.put("command", "crmnet " + " ".join(args))
    s.put("wall_s", round(s.crmnet(*args), 1))
    s.put("validation", _read_json(run / "metrics.json").get("validation"))
    with open(run / "logs" / "epochs.csv") as fh:
        epochs = list(csv.DictReader(fh))
    s.put("epochs", [{k: float(v) for k, v in row.items()} for row in epochs])
    with open(run / "logs" / "steps.csv") as fh:
        rates = [float(r["samples_per_s"]) for r in csv.DictReader(fh)]
    s.put("samples_per_s_median", sorted(rates)[len(rates) // 2] if rates else None)
    s.put("checkpoint", str(run / "best.ckpt") if (run / "best.ckpt").is_file() else None)


def _section_predict(s: _Section) -> None:
    import torch
    from gpu_timing import timed_blocks

    from crmnet.evaluation.predict import predict
    from crmnet.models.checkpoint import load_checkpoint

    device = _torch_device(s)
    model = load_checkpoint(s.out / "runs" / "train" / "best.ckpt").to(device)
    with open(s.out / "data" / "predict.fa") as fh:
        seqs = [line.strip() for line in fh if not line.startswith(">")]
    s.put("rows", len(seqs))
    s.put("batch_size", 4096)
    t = time.perf_counter()
    out = predict(model, seqs[:4096], batch_size=4096, device=device)  # warm: kernels, allocator, caches
    s.put("first_call_s", round(time.perf_counter() - t, 3))
    if len(out) != min(4096, len(seqs)) or not torch.isfinite(torch.as_tensor(out)).all():
        raise RuntimeError("predict returned the wrong number of rows or non-finite values")
    # predict copies its results to the host, so each call ends synchronised: wall-clock blocks
    stats = timed_blocks(lambda: predict(model, seqs, batch_size=4096, device=device), torch.device("cpu"),
                         warmup=0, **s.sizes["timing"])
    s.put("timing", stats)
    s.put("rows_per_s", len(seqs) / stats["s_call"])


def _section_ddp(s: _Section) -> None:
    sz = s.sizes
    import torch

    # NCCL cannot run two ranks on one GPU: it is tried only where there are two
    two_gpus = s.device_name == "cuda" and torch.cuda.device_count() >= 2
    backends = ["nccl"] if two_gpus else ["gloo"]
    s.put("gpus", torch.cuda.device_count() if s.device_name == "cuda" else 0)
    attempts = []
    for backend in backends:
        run = s.out / "runs" / f"ddp_{backend}"
        args = ["train", "--store", str(s.out / "data" / "store"), "--model", sz["ddp_model"], "--out", str(run),
                "--devices", "2", "--accelerator", s.device_name, "--batch-size", str(sz["ddp_batch"]),
                "--max-steps", "20", "--max-epochs", "1", "--warmup-epochs", "1", "--no-progress"]
        try:
            seconds = s.crmnet(*args, env={"CRMNET_DDP_BACKEND": backend})
        except RuntimeError as exc:
            attempts.append({"backend": backend, "error": str(exc)[-800:]})
            s.put("attempts", attempts)
            continue
        validation = _read_json(run / "metrics.json").get("validation", {})
        attempts.append({"backend": backend, "wall_s": round(seconds, 1), "validation_n": validation.get("n"),
                         "validation_r": validation.get("pearson_r")})
        s.put("attempts", attempts)
        s.put("backend", backend)
        return
    raise RuntimeError("DDP failed with every backend: " + "; ".join(a["backend"] for a in attempts))


WORKERS = {"env": _section_env, "data": _section_data, "models": _section_models, "table1": _section_table1,
           "compile": _section_compile, "train": _section_train, "predict": _section_predict, "ddp": _section_ddp}


# ----------------------------------------------------------------------------------------------- report
def _write_report(out: Path, report: dict) -> None:
    _write_json(out / "report.json", report)
    tmp = out / "report.md.tmp"
    tmp.write_text(render(report))
    os.replace(tmp, out / "report.md")


def _fmt(v, digits: int = 0) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def render(report: dict) -> str:
    """report.json as Markdown: a status line per section, then each section's numbers."""
    lines = [f"# crmnet GPU check ({'tiny, ' if report['tiny'] else ''}device {report['device']})", "",
             "| section | status | seconds | cap (s) |", "|---|---|---|---|"]
    for name, entry in report["sections"].items():
        lines.append(f"| {name} | {entry['status']} | {entry['seconds']} | {entry['cap_s']} |")
    for name, entry in report["sections"].items():
        lines += ["", f"## {name}", ""]
        result = entry.get("result") or {}
        if result:
            lines += RENDERERS.get(name, _render_json)(result)
        if entry.get("error"):
            lines += ["", f"**{entry['status']}**: {entry['error']}"]
            if entry.get("log_tail"):
                lines += ["", "```", entry["log_tail"].strip()[-1500:], "```"]
    return "\n".join(lines) + "\n"


def _render_json(result: dict) -> list[str]:
    return ["```json", json.dumps(result, indent=2, default=str), "```"]


def _render_models(result: dict) -> list[str]:
    lines = [(f"Batch {result.get('batch')}, {result.get('precision')}; samples/s (median of timed blocks; "
              "spread = (max − min) / median over the blocks)."), "",
             "| model | parameters | forward/s | spread | train/s | spread |", "|---|---|---|---|---|---|"]
    for r in result.get("rows", []):
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error'][:120]} | | | | |")
        else:
            lines.append(f"| {r['model']} | {r['params']:,} | {_fmt(r['forward_per_s'])} | "
                         f"{_fmt(r.get('forward_spread'), 3)} | {_fmt(r['train_per_s'])} | "
                         f"{_fmt(r.get('train_spread'), 3)} |")
    return lines


def _render_table1(result: dict) -> list[str]:
    head = ("batch", "precision", "s/step", "spread", "samples/s", "s/step loader-fed", "samples/s loader-fed",
            "loader/synthetic", "epoch 30.4 M (h)", "20 epochs (h)", "peak MiB", "SM MHz before/after")
    lines = [(f"Model {result.get('model')}; best: {result.get('best')}; GPU memory "
              f"{_fmt(result.get('memory_mib'))} MiB. s/step: median of timed blocks (≥ 3, ≥ 1 s in all); "
              "spread: (max − min) / median."), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result.get("rows", []):
        if r.get("oom") or r.get("skipped") or "s_step" not in r:
            why = "out of memory" if r.get("oom") else r.get("skipped") or "unfinished"
            lines.append(f"| {r['batch']} | {r['precision']} | {why} |" + " |" * (len(head) - 3))
            continue
        clocks = "/".join(str((r.get(k) or {}).get("clocks.sm", "—")) for k in ("clocks_before", "clocks_after"))
        cells = (r["batch"], r["precision"], _fmt(r["s_step"], 4),
                 _fmt((r.get("s_step_blocks") or {}).get("spread"), 3), _fmt(r["samples_per_s"]),
                 _fmt(r.get("s_step_loader"), 4), _fmt(r.get("samples_per_s_loader")),
                 _fmt(r.get("loader_vs_synthetic"), 3), _fmt(r["epoch_h"], 2), _fmt(r["epochs20_h"], 1),
                 _fmt(r["peak_mib"]), clocks)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    errors = [f"- batch {r['batch']} {r['precision']}: loader-fed run failed: {r['loader_error']}"
              for r in result.get("rows", []) if r.get("loader_error")]
    return lines + ([""] + errors if errors else [])


def _render_compile(result: dict) -> list[str]:
    r = result.get("row", {})
    return [(f"Configuration {result.get('config')}: first (compiling) step {_fmt(r.get('first_step_s'), 1)} s; "
             f"{_fmt(r.get('s_step'), 4)} s/step, "
             f"{_fmt(r.get('samples_per_s'))} samples/s synthetic, {_fmt(r.get('samples_per_s_loader'))} "
             "loader-fed.")]


def _render_train(result: dict) -> list[str]:
    val = result.get("validation") or {}
    return [f"`{result.get('command')}`", "",
            (f"Wall time {result.get('wall_s')} s; median {_fmt(result.get('samples_per_s_median'))} samples/s "
             f"(logs/steps.csv); validation n={val.get('n')}, r={_fmt(val.get('pearson_r'), 4)}, "
             f"R²={_fmt(val.get('r2'), 4)}; checkpoint {result.get('checkpoint')}.")]


def _render_predict(result: dict) -> list[str]:
    t = result.get("timing") or {}
    return [(f"{_fmt(result.get('rows'))} sequences (text, encoded on the fly), batch {result.get('batch_size')}, "
             f"in one warm process: {_fmt(result.get('rows_per_s'))} sequences/s (median of {t.get('blocks')} "
             f"blocks, spread {_fmt(t.get('spread'), 3)}; first call {result.get('first_call_s')} s).")]


def _render_ddp(result: dict) -> list[str]:
    lines = []
    for a in result.get("attempts", []):
        if "error" in a:
            lines.append(f"- {a['backend']}: failed: {a['error'][-300:]}")
        else:
            lines.append(f"- {a['backend']}: 2 processes on one device, 20 steps + validation in {a['wall_s']} s "
                          f"(process start included); validation n={a['validation_n']}")
    return lines


RENDERERS = {"models": _render_models, "ddp": _render_ddp, "table1": _render_table1, "compile": _render_compile,
             "train": _render_train, "predict": _render_predict}


if __name__ == "__main__":
    sys.exit(main())
