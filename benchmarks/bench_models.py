"""Model throughput: forward (inference) and forward + backward (+ Adam step) samples/s per model.

Batches are random one-hot tensors already on the device, so this measures the model alone. Each number
is the median of ``--repeats`` timed steps after ``--warmup`` untimed ones (compilation included there).
Inference runs in eval mode under ``torch.inference_mode``; the training step in train mode with the
model's own loss (``compute_loss``, else Huber) and Adam.

    python benchmarks/bench_models.py                                   # CRMnet presets, CPU, fp32
    python benchmarks/bench_models.py --models crmnet-small,legnet --batch 256 --threads 2
    python benchmarks/bench_models.py --models crmnet --device cuda --dtype bf16 --compile --batch 1024
    python benchmarks/bench_models.py --models crmnet --mode forward --fast --threads 1   # predict's path

``--fast`` times the forward pass through ``optimize_for_inference`` (the exact rewrite ``predict`` uses on
CPUs; ``benchmarks/bench_keras.py`` compares it with the authors' Keras model). ``--dtype bf16``/``fp16`` use autocast (weights stay float32, as in mixed-precision training); on a GPU,
TF32 matmuls are enabled for float32. Reference: the authors' Keras CRMnet ran ≈70–130 sequences/s
inference (batch 256) and ≈20–40 sequences/s training (batch 64) on the 2-core CPU of the project
machine; the GPU goal is ≥ 40,000 samples/s forward + backward for full CRMnet at batch 1024 in bf16 on
one H100.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device, dtype_name: str):
    dtype = DTYPES[dtype_name]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _median_rate(step, batch: int, warmup: int, repeats: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    from crmnet.data.encoding import onehot
    from crmnet.models import build_model, count_parameters, flops_per_sample

    torch.manual_seed(0)
    model = build_model(name).to(device)
    params, _ = count_parameters(model)
    enc = model.encoding
    x = onehot(torch.randint(0, 4, (args.batch, enc.length), device=device), enc)
    y = torch.rand(args.batch, device=device) * 15
    if args.compile:
        model.compile()  # in place, so compute_loss's calls to the model are compiled too
    row = {"model": name, "params": params, "mflop": flops_per_sample(model) / 1e6}

    if args.mode in ("both", "forward"):
        model.eval()
        run = model
        if args.fast:
            from crmnet.models.fastpath import optimize_for_inference

            run = optimize_for_inference(model)

        def forward():
            with torch.inference_mode(), _autocast(device, args.dtype):
                run(x)

        row["forward"] = _median_rate(forward, args.batch, args.warmup, args.repeats, device)
    if args.mode in ("both", "train"):
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def train_step():
            opt.zero_grad(set_to_none=True)
            with _autocast(device, args.dtype):
                if hasattr(model, "compute_loss"):
                    loss, _ = model.compute_loss(x, y)
                else:
                    loss = F.huber_loss(model(x).float(), y)
            loss.backward()
            opt.step()

        row["train"] = _median_rate(train_step, args.batch, args.warmup, args.repeats, device)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", default="crmnet,crmnet-small,crmnet-tiny", help="comma-separated registry names"
    )
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", choices=list(DTYPES), default="fp32", help="autocast precision")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--mode", choices=["both", "forward", "train"], default="both")
    p.add_argument("--fast", action="store_true", help="forward through optimize_for_inference")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"# {where}; batch {args.batch}; {args.dtype}{'; compiled' if args.compile else ''}"
        f"{'; fast inference path' if args.fast else ''}; "
        f"median of {args.repeats} after {args.warmup} warm-up steps"
    )
    print(f"{'model':<22} {'params':>12} {'MFLOP/seq':>10} {'forward seq/s':>14} {'fwd+bwd seq/s':>14}")
    for name in args.models.split(","):
        row = bench_model(name.strip(), args, device)
        fwd = f"{row['forward']:,.0f}" if "forward" in row else "-"
        train = f"{row['train']:,.0f}" if "train" in row else "-"
        print(
            f"{row['model']:<22} {row['params']:>12,} {row['mflop']:>10.1f} {fwd:>14} {train:>14}", flush=True
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
