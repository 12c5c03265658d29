"""Benchmark ``crmnet prepare`` on the 110-nt training format: speed, bytes per row, peak memory.

Generates (or takes, ``--file``) a headerless ``sequence<TAB>expression`` file of random promoters with
the real flanks (17 nt + 80 ± 3 nt + 13 nt) and values written like the real files (full-precision
floats, some integers), reads it once so it is in the page cache, then runs the whole ``prepare``
(parse, encode, checksum, duplicate detection, split, atomic write) ``--repeats`` times, each in a fresh
process so its peak RSS is its own. Prints a table with the median. ``--scaling`` prepares files of other
sizes once each to show how peak memory grows with the row count (and extrapolates to the 31.3 M-line
complex-medium file).

    python benchmarks/bench_prepare.py                      # 2,000,000 rows, 3 repeats
    python benchmarks/bench_prepare.py --scaling 1000000 4000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

LEFT, RIGHT = b"TGCATTTTTTTCACATC", b"GGTTACGGCTGTT"
COMPLEX_LINES = 31_349_363

CHILD = """
import json, resource, sys, time
from crmnet.data.store import prepare
t, c = time.perf_counter(), time.process_time()
store = prepare([sys.argv[1]], sys.argv[2], overwrite=True)
seconds, cpu = time.perf_counter() - t, time.process_time() - c
size = sum(f.stat().st_size for f in store.path.iterdir())
print(json.dumps({"rows": len(store), "seconds": seconds, "cpu": cpu, "bytes": size,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_training_file(path: Path, rows: int, seed: int = 0, block: int = 500_000) -> None:
    """Write ``rows`` lines ``LEFT + 77..83 random nt + RIGHT <TAB> value`` (vectorised: ~1 µs a line)."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    flank_l, flank_r = np.frombuffer(LEFT, np.uint8), np.frombuffer(RIGHT, np.uint8)
    with open(path, "wb") as fh:
        for first in range(0, rows, block):
            m = min(block, rows - first)
            k = 80 + rng.integers(-3, 4, size=m)  # variable-region length
            values = rng.normal(10, 3, size=m)
            integer = rng.random(m) < 0.05  # low-read-count measurements are written as integers
            text = np.array([b"%d" % round(x) if i else repr(x).encode()
                             for x, i in zip(values.tolist(), integer.tolist())], dtype="S24")
            vlen = np.char.str_len(text)
            vals = text.view(np.uint8).reshape(m, 24)
            line = np.zeros((m, 17 + 83 + 13 + 1 + 24 + 1), dtype=np.uint8)
            line[:, :17] = flank_l
            line[:, 17:100] = letters[rng.integers(0, 4, size=(m, 83))]
            row = np.arange(m)[:, None]
            tail = 17 + k  # where the right flank starts
            line[row, tail[:, None] + np.arange(13)] = flank_r
            line[np.arange(m), tail + 13] = ord("\t")
            cols = tail[:, None] + 14 + np.arange(24)
            line[row, cols] = np.where(np.arange(24) < vlen[:, None], vals, line[row, cols])
            line[np.arange(m), tail + 14 + vlen] = ord("\n")
            fh.write(line[np.arange(line.shape[1]) < (tail + 15 + vlen)[:, None]].tobytes())


def warm(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(64 << 20):
            pass


def run_once(path: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(out)], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode:
        raise SystemExit(f"prepare failed:\n{done.stderr}")
    shutil.rmtree(out)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--file", type=Path, help="an existing training-format file to use instead")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scaling", type=int, nargs="*", default=[], help="other row counts, run once each")
    parser.add_argument("--workdir", type=Path, help="where to write the files (default: a temporary directory)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crmnet-bench-", dir=args.workdir))
    try:
        print(f"# {os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}", flush=True)
        path = args.file or work / "train.txt"
        if not args.file:
            make_training_file(path, args.rows)
        warm(path)
        runs = [run_once(path, work / "store") for _ in range(args.repeats)]
        rows = runs[0]["rows"]
        sec = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        print(f"| rows | file MB | seconds (median of {len(runs)}) | rows/s | CPU s | bytes/row on disk | peak RSS MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {rows:,} | {path.stat().st_size / 1e6:,.0f} | {sec:.2f} | {rows / sec:,.0f} | {cpu:.2f} "
              f"| {runs[0]['bytes'] / rows:.1f} | {max(r['rss_mb'] for r in runs):,.0f} |")
        print("# all runs (s): " + ", ".join(f"{r['seconds']:.2f}" for r in runs))
        if args.scaling:
            points = []
            print("\n| rows | seconds | rows/s | peak RSS MB |\n|---:|---:|---:|---:|")
            for n in args.scaling:
                scaled = work / f"train_{n}.txt"
                make_training_file(scaled, n, seed=1)
                warm(scaled)
                r = run_once(scaled, work / "store")
                scaled.unlink()
                points.append((n, r["rss_mb"]))
                print(f"| {n:,} | {r['seconds']:.2f} | {n / r['seconds']:,.0f} | {r['rss_mb']:,.0f} |", flush=True)
            if len(points) >= 2:
                (n0, m0), (n1, m1) = points[0], points[-1]
                per_row = (m1 - m0) / (n1 - n0) * 1e6
                print(f"# peak RSS grows {per_row:.1f} bytes/row; estimated for the {COMPLEX_LINES:,}-line complex file: "
                      f"{m0 + (COMPLEX_LINES - n0) * per_row / 1e6:,.0f} MB")
        print(f"# load average after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
