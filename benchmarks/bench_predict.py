"""Prediction throughput: the library call and the streaming file → TSV path of ``crmnet predict``.

For each model and batch size: sequences per second of :func:`crmnet.evaluation.predict.predict` on in-memory
strings (encoding + one-hot + forward), and of :func:`crmnet.evaluation.predict.predict_file` on a FASTA file
(reading, encoding, forward, writing the TSV), median over repeats after one warm-up; the projected
time for 1 M sequences; peak memory. Weights are random (speed does not depend on them).

    python benchmarks/bench_predict.py --models crmnet-tiny,crmnet-small --batch-sizes 256,1024 --n 20000
    python benchmarks/bench_predict.py --models crmnet,vaishnav-transformer --device cuda --n 200000
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _sequences(n: int, seed: int = 0) -> list[str]:
    """Random promoters with the real length spread (mostly 110 ± 2, some 95–125)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.normal(110, 3, n)), 95, 125).astype(int)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, size=(n, 125))]
    return [row[:k].tobytes().decode() for row, k in zip(letters, lengths)]


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: allocator, kernels, file cache
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="crmnet-tiny,crmnet-small", help="registered model names, comma-separated")
    parser.add_argument("--batch-sizes", default="256,1024", help="comma-separated batch sizes")
    parser.add_argument("--n", type=int, default=20000, help="sequences per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)

    from crmnet.evaluation.predict import predict, predict_file
    from crmnet.models.registry import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    seqs = _sequences(args.n)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} n={args.n} "
          f"repeats={args.repeats} (median)")
    header = f"{'model':24s} {'batch':>6s} {'predict seq/s':>14s} {'file seq/s':>11s} {'1M seqs (file)':>15s} {'peak MiB':>9s}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        fasta = Path(tmp) / "in.fa"
        fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
        out = Path(tmp) / "out.tsv"
        for name in args.models.split(","):
            torch.manual_seed(0)
            model = build_model(name).to(device).eval()
            for bs in map(int, args.batch_sizes.split(",")):
                def in_memory(model=model, bs=bs):
                    predict(model, seqs, batch_size=bs, device=device)

                def from_file(model=model, bs=bs):
                    predict_file(model, fasta, out, batch_size=bs, device=device, overwrite=True, progress=False)

                t_mem = _time(in_memory, args.repeats, device)
                t_file = _time(from_file, args.repeats, device)
                rate_file = args.n / t_file
                print(f"{name:24s} {bs:6d} {args.n / t_mem:14,.0f} {rate_file:11,.0f} "
                      f"{1e6 / rate_file / 60:12.1f} min {_peak_mib(device):9.0f}")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
