"""Training throughput in the layout of the CRMnet paper's Table 1.

For each batch size and precision: seconds per optimiser step (mean over the timed steps, warm-up and
compilation excluded), samples/s, the time of one epoch of 30.4 M samples (the complex-medium training
set), the projected 20-epoch time and peak memory. Each configuration is timed twice: with a batch
already on the device ("synthetic"), and fed by the real :class:`crmnet.data.loader.BatchLoader` from a
store (the loader must keep up at the step rate); the loader alone is timed too.

    python benchmarks/bench_train.py --model crmnet-small --batch-sizes 64,256 --precisions 32,bf16-mixed
    python benchmarks/bench_train.py --model crmnet --device cuda --batch-sizes 1024,4096,8192,16384 \\
        --precisions 32,bf16-mixed,16-mixed --compile
    torchrun --nproc-per-node 8 benchmarks/bench_train.py --model crmnet --device cuda   # D = 8 (DDP)

Under torchrun every process runs the step through DistributedDataParallel on its own device; samples/s
and epoch times are for the global batch (batch × D), as in the paper. Peak memory is
``torch.cuda.max_memory_allocated`` per device on a GPU and the process's peak resident set on a CPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

EPOCH_SAMPLES = 30_400_000


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def toy_store(tmp: Path, rows: int, seed: int = 0) -> Path:
    """A store of random 110-nt sequences (speed does not depend on the values)."""
    from crmnet.data.store import prepare

    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=(rows, 110))]
    txt = tmp / "bench.txt"
    with open(txt, "w") as fh:
        for lo in range(0, rows, 65536):
            block = letters[lo : lo + 65536]
            values = rng.normal(9, 3, len(block))
            fh.write("".join(f"{r.tobytes().decode()}\t{v:.4f}\n" for r, v in zip(block, values)))
    return prepare([txt], tmp / "store", val_fraction=0.0, seed=seed).path


def _time_steps(step, batches, n_warmup: int, n_steps: int, device) -> float:
    """Mean seconds per call of ``step(x, y)`` over ``n_steps`` calls timed as one block (the device
    synchronised only at its ends, as in training) after ``n_warmup`` untimed ones."""
    it = iter(batches)
    for _ in range(n_warmup):
        step(*next(it))
    _sync(device)
    t = time.perf_counter()
    for _ in range(n_steps):
        step(*next(it))
    _sync(device)
    return (time.perf_counter() - t) / n_steps


def _repeat(batch):
    while True:
        yield batch


def _cycle(make):
    """Batches of ``make()``'s loader, epoch after epoch (block timing may ask for more than one epoch)."""
    while True:
        yield from make()


def measure(model_name: str, device, batch: int, precision: str, *, warmup: int = 2, steps: int = 5,
            store=None, compile: bool | str = False, rank: int = 0, world: int = 1,
            blocks: dict | None = None, progress=None) -> dict:
    """Time the trainer's own step (loss module, fused/foreach Adam, autocast) for one configuration.

    Returns a row: batch, precision, devices, s_step (synthetic batch already on the device), and with a
    ``store`` s_step_loader (fed by the real BatchLoader) and s_loader (the loader alone); peak_mib; or
    ``oom: True``. ``compile``: True for ``torch.compile``'s default backend, or a backend name.
    ``blocks``: keyword arguments of :func:`gpu_timing.timed_blocks` (e.g. ``min_seconds``, ``blocks``):
    the steps are then timed in blocks with CUDA events instead of one block of ``steps``, and each
    figure's blocks are kept under ``<name>_blocks`` (median, min, max, spread). ``progress``: called
    with the row so far after each figure (the first step's time included), so a caller can save it.
    """
    from crmnet.data.encoding import onehot
    from crmnet.data.loader import BatchLoader
    from crmnet.models.registry import build_model
    from crmnet.training.distributed import Dist, wrap_ddp
    from crmnet.training.losses import loss_module
    from crmnet.training.step import configure_device, make_optimizer, optimizer_step

    configure_device(device)
    row = {"batch": batch, "precision": precision, "devices": world}
    torch.manual_seed(0)
    model = build_model(model_name).to(device).train()
    row["params"] = sum(q.numel() for q in model.parameters())
    module = loss_module(model)
    if compile:
        module = torch.compile(module) if compile is True else torch.compile(module, backend=compile)
    module = wrap_ddp(module, Dist(rank, rank, world), device)
    opt = make_optimizer("adam", model.parameters(), 1e-4, 0.0, device)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step(xb, yb):
        optimizer_step(module, opt, scaler, xb, yb, precision)

    def time_steps(name, fn, batches, n_warmup, n_steps):
        if blocks is None:
            row[name] = _time_steps(fn, batches, n_warmup, n_steps, device)
            return
        from gpu_timing import timed_blocks

        it = iter(batches)
        if name == "s_step":  # the first step alone: compilation, autotuning, allocator growth
            t = time.perf_counter()
            fn(*next(it))
            _sync(device)
            row["first_step_s"] = time.perf_counter() - t
            if progress is not None:
                progress(dict(row))
        stats = timed_blocks(lambda: fn(*next(it)), device, warmup=n_warmup, **blocks)
        row[name], row[f"{name}_blocks"] = stats["s_call"], stats
        if progress is not None:
            progress(dict(row))

    try:
        x = onehot(torch.randint(0, 4, (batch, model.encoding.length), device=device), model.encoding)
        y = torch.rand(batch, device=device) * 17
        time_steps("s_step", step, _repeat((x, y)), warmup, steps)
        if store is not None:
            kw = {"encoding": model.encoding, "shuffle": True, "drop_last": True, "rank": rank,
                  "world_size": world, "device": device}
            time_steps("s_step_loader", step, _cycle(lambda: BatchLoader(store, "train", batch, seed=0, **kw)),
                       warmup, steps)
            time_steps("s_loader", lambda a, b: None, _cycle(lambda: BatchLoader(store, "train", batch, seed=1, **kw)),
                       1, warmup + steps - 1)
        row["peak_mib"] = _peak_mib(device)
    except torch.cuda.OutOfMemoryError:
        row = {**row, "oom": True}
    return row  # its model and optimiser are freed on return (call torch.cuda.empty_cache() after)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="crmnet-small", help="registry name (default crmnet-small)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-sizes", default="64,256", help="comma-separated per-device batch sizes")
    p.add_argument("--precisions", default="32,bf16-mixed", help="comma-separated: 32, bf16-mixed, 16-mixed")
    p.add_argument("--steps", type=int, default=5, help="timed steps per configuration (their mean reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation, allocator)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step")
    p.add_argument("--no-loader", action="store_true", help="skip the loader-fed measurement")
    p.add_argument("--store", help="store to feed the loader from (default: a temporary random store)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    precisions = args.precisions.split(",")

    tmp = tempfile.TemporaryDirectory(prefix="crmnet-bench-")
    store = None
    if not args.no_loader:
        rows = (args.warmup + args.steps) * max(batch_sizes) * world
        store = args.store or toy_store(Path(tmp.name), rows)

    rows_out = []
    for batch in batch_sizes:
        for precision in precisions:
            row = measure(args.model, device, batch, precision, warmup=args.warmup, steps=args.steps, store=store,
                          compile=args.compile, rank=rank, world=world)
            rows_out.append(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if rank == 0:
                print(_format_row(row), file=sys.stderr, flush=True)

    if rank == 0:
        print(f"\nmodel {args.model} ({rows_out[0]['params']:,} parameters), device {_device_name(device)}, "
              f"{world} process(es), torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"compile {args.compile}; mean of {args.steps} steps after {args.warmup} warm-up steps\n")
        print(table(rows_out, store is not None))
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    tmp.cleanup()
    return 0


def _device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores)"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _format_row(row: dict) -> str:
    if row.get("oom"):
        return f"batch {row['batch']} {row['precision']}: out of memory"
    return f"batch {row['batch']} {row['precision']}: {row['s_step']:.4f} s/step"


def table(rows: list[dict], with_loader: bool) -> str:
    """The rows of :func:`measure` as a Markdown table in the layout of the paper's Table 1."""
    head = ["batch", "precision", "devices", "s/step", "samples/s", "epoch (30.4 M)", "20 epochs", "peak MiB"]
    if with_loader:
        head += ["s/step with loader", "loader alone s/batch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if r.get("oom"):
            cells = [r["batch"], r["precision"], r["devices"], "OOM"] + [""] * (len(head) - 4)
        else:
            global_batch = r["batch"] * r["devices"]
            # With the loader feeding the step, the slower of the two rates is what a run achieves.
            s_step = max(r["s_step"], r.get("s_step_loader", 0.0))
            rate = global_batch / s_step
            cells = [r["batch"], r["precision"], r["devices"], f"{r['s_step']:.4f}", f"{rate:,.0f}",
                     _hours(EPOCH_SAMPLES / rate), _hours(20 * EPOCH_SAMPLES / rate), f"{r['peak_mib']:,.0f}"]
            if with_loader:
                cells += [f"{r['s_step_loader']:.4f}", f"{r['s_loader']:.4f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
