"""Benchmark the BatchLoader: one-hot batches of 1024 delivered per second on this CPU.

Builds a store of ``--rows`` random 110-nt training rows (or takes ``--store``), then times the
train-split loader (shuffled, background prefetch, memmap gather, relayout and one-hot in torch on
the CPU) over ``--batches`` batches, ``--repeats`` times, for the store's own layout (CRMnet, 5 × 112)
and for Vaishnav's (4 × 110, relaid out per batch). Prints the median samples/s.

torch runs with ``--threads`` intra-op threads (default 1): on a small shared CPU torch's thread pool
spends more time synchronising than working on batches this size; on a GPU the one-hot runs there.

    python benchmarks/bench_loader.py                    # 2,000,000-row store, 400 batches, 3 repeats
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--store", type=Path, help="an existing store to read instead")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prefetch", type=int, default=2)
    args = parser.parse_args()

    import torch

    from crmnet.data.encoding import CRMNET, VAISHNAV
    from crmnet.data.loader import BatchLoader
    from crmnet.data.store import open_store, prepare

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="crmnet-bench-loader-"))
    try:
        if args.store:
            store = open_store(args.store)
        else:
            sys.path.insert(0, str(Path(__file__).parent))
            from bench_prepare import make_training_file

            make_training_file(work / "train.txt", args.rows)
            store = prepare([work / "train.txt"], work / "store")
            (work / "train.txt").unlink()
        print(f"# store: {len(store):,} rows; {os.cpu_count()} CPUs, torch threads {args.threads}, prefetch "
              f"{args.prefetch}; load average before: {os.getloadavg()[0]:.1f}", flush=True)
        print(f"| encoding | batch shape | batches | samples/s (median of {args.repeats}) | samples per CPU-second "
              "| all runs (samples/s) |")
        print("|---|---|---:|---:|---:|---|")
        for name, enc in (("CRMnet (store layout)", CRMNET), ("Vaishnav (relayout)", VAISHNAV)):
            loader = BatchLoader(store, "train", args.batch_size, encoding=enc, seed=0, prefetch=args.prefetch)
            rates, per_cpu = [], []
            for repeat in range(args.repeats):
                loader.set_epoch(repeat)
                n, start, cpu = 0, time.perf_counter(), time.process_time()
                for i, (x, y) in enumerate(loader):
                    n += len(y)
                    if i + 1 == args.batches:
                        break
                rates.append(n / (time.perf_counter() - start))
                per_cpu.append(n / (time.process_time() - cpu))  # all threads: less sensitive to a busy machine
            print(f"| {name} | {tuple(x.shape)} | {args.batches} | {statistics.median(rates):,.0f} | "
                  f"{statistics.median(per_cpu):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} |", flush=True)
        print(f"# load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
