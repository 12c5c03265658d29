"""Saturation mutagenesis, crmnet against tangermeme, interleaved in one process, one thread.

Both sides mutate the same sequences at the same positions (every position of a random 110-nt sequence,
three substitutions each) under the same model:

* ``crmnet``: :func:`crmnet.design.mutagenesis.saturate_codes` with a :class:`~crmnet.design.oracle.ModelPredictor`
  (what ``crmnet mutagenesis`` runs: the exact inference rewrite where it pays, and for DeepATT the
  convolutional prefix of each reference reused by its mutants);
* ``tangermeme``: ``tangermeme.saturation_mutagenesis`` on the plain module behind
  :class:`~crmnet.models.adapter.ACGTAdapter` (model coordinates), ``hypothetical=True``, in both of its
  modes, ``fast=False`` and ``fast=True`` (its fastISM: the graph captured with ``torch.export``, local
  layers recomputed only near each edit), each at the batch sizes of ``--tm-batch``; the strongest of
  them is the peer.

Models: ``crmnet-tiny`` and ``crmnet`` (random weights: speed does not depend on them) and ``deepatt``
(the real DeepATT release from ``shared/models/vaishnav2022``). Each round runs every contender once, in
an order rotated from round to round; figures are medians over rounds of mutants per CPU second
(``time.process_time``) and per wall second; the ratio (crmnet / peer) is the median of per-round ratios
with its range. After the table, each contender's share of CPU time spent in the kernel and its minor page
faults per call (medians): with glibc's default thresholds a contender that re-allocates large blocks pays
for faulting them in again (``docs/speed.md``, "The memory allocator").

    python benchmarks/bench_ism.py --models crmnet-tiny,deepatt --n 16 --rounds 5
    python benchmarks/bench_ism.py --models crmnet --n 2 --rounds 3

``--json PATH`` also writes the result in :mod:`speedlog`'s format (README's speed table is generated from
``benchmarks/results/speed-*.json``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("CRMNET_SHARED", HERE.parents[1] / "shared"))
DEEPATT = SHARED / "models" / "vaishnav2022" / "deepatt_complex" / "DeepAtt_model.h5"


def load(name: str, tmp: Path):
    """A model in eval mode: a registry preset (seeded random weights) or the real DeepATT."""
    from crmnet.models.checkpoint import load_checkpoint
    from crmnet.models.registry import build_model
    from crmnet.zoo.importer import import_model

    if name == "deepatt":
        return load_checkpoint(import_model(DEEPATT, tmp / "deepatt.pt"))
    torch.manual_seed(0)
    return build_model(name).eval()


def contenders(model, codes: np.ndarray, batches: list[int]) -> dict:
    """name → a call that runs the whole saturation mutagenesis of ``codes`` (n, 110) once."""
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis

    from crmnet.data.encoding import Encoding, onehot
    from crmnet.design.mutagenesis import resolve_windows, saturate_codes
    from crmnet.design.oracle import ModelPredictor
    from crmnet.models.adapter import ACGTAdapter

    lengths = np.full(len(codes), codes.shape[1], np.int64)
    windows = resolve_windows(codes, lengths, None)
    predictor = ModelPredictor(model, batch_size=4096)
    calls = {"crmnet": lambda: saturate_codes(predictor, codes, lengths, windows)}
    width = model.encoding.length
    padded = np.full((len(codes), width), 4, np.uint8)
    keep = min(width, codes.shape[1])
    if model.encoding.pad == "start":  # the model's own layout of these sequences (left- or right-padded)
        padded[:, width - keep :] = codes[:, -keep:]
        start, end = width - keep, width
    else:
        padded[:, :keep] = codes[:, :keep]
        start, end = 0, keep
    x = onehot(torch.as_tensor(padded), Encoding(length=width, channels="ACGT"))
    adapter = ACGTAdapter(model, coordinates="model").eval()
    for fast in (False, True):
        for b in batches:
            calls[f"tangermeme{'-fast' if fast else ''}@{b}"] = (
                lambda fast=fast, b=b: saturation_mutagenesis(adapter, x, start=start, end=end, batch_size=b,
                                                              hypothetical=True, device="cpu", verbose=False,
                                                              fast=fast))
    return calls


def run(name: str, n: int, rounds: int, batches: list[int], tmp: Path) -> dict:
    """Interleaved rounds for one model → per contender lists of mutants/s (CPU, wall)."""
    model = load(name, tmp)
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, (n, 110)).astype(np.uint8)
    mutants = 3 * codes.size
    calls = contenders(model, codes, batches)
    names = list(calls)
    for call in calls.values():
        call()  # warm-up (tangermeme's fast mode captures the graph here)
    rates = {k: {"cpu": [], "wall": [], "system": [], "faults": []} for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[: r % len(names)]:
            (s0, f0), c, w = usage(), time.process_time(), time.perf_counter()
            calls[k]()
            cpu, wall, (s1, f1) = time.process_time() - c, time.perf_counter() - w, usage()
            rates[k]["cpu"].append(mutants / cpu)
            rates[k]["wall"].append(mutants / wall)
            rates[k]["system"].append((s1 - s0) / cpu)
            rates[k]["faults"].append(f1 - f0)
    return {"mutants": mutants, "rates": rates}


def usage() -> tuple[float, int]:
    """This process's CPU seconds in the kernel and minor page faults so far (zeros without ``resource``)."""
    try:
        import resource
    except ImportError:  # not a Unix
        return 0.0, 0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_stime, ru.ru_minflt


def memory_note(name: str, result: dict) -> str:
    """One line: each contender's median share of CPU time in the kernel and minor page faults per call."""
    parts = [f"{k} {statistics.median(r['system']):.0%} / {statistics.median(r['faults']):,.0f}"
             for k, r in result["rates"].items()]
    return f"# {name}, kernel share of CPU time / minor page faults per call (medians): " + "; ".join(parts)


def strongest_peer(rates: dict) -> str:
    """The tangermeme configuration with the highest median CPU rate."""
    return max((k for k in rates if k.startswith("tangermeme")), key=lambda k: statistics.median(rates[k]["cpu"]))


def report(name: str, result: dict) -> list[str]:
    """Markdown rows: every contender, and crmnet against the strongest tangermeme configuration."""
    rates = result["rates"]
    best = strongest_peer(rates)
    rows = []
    for k, r in rates.items():
        cells = [name, k, f"{statistics.median(r['cpu']):,.0f}", f"{statistics.median(r['wall']):,.0f}"]
        if k == "crmnet":
            for clock in ("cpu", "wall"):
                per = [a / b for a, b in zip(r[clock], rates[best][clock])]
                cells.append(f"{statistics.median(per):.2f} ({min(per):.2f}–{max(per):.2f}) vs {best}")
        else:
            cells += ["", ""]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="crmnet-tiny,deepatt", help="crmnet-tiny, crmnet, deepatt")
    p.add_argument("--n", type=int, default=16, help="sequences per model (330 mutants each)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tm-batch", default="256,1024", help="tangermeme batch sizes tried")
    p.add_argument("--json", type=Path, help="also write the result here (speedlog format)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    batches = [int(b) for b in args.tm_batch.split(",")]
    print(f"# torch {torch.__version__}, 1 thread, {args.rounds} interleaved rounds, medians (range over rounds)")
    print("| model | contender | mutants/s (CPU) | mutants/s (wall) | crmnet / best peer, CPU | same, wall |")
    print("|---|---|---|---|---|---|")
    import speedlog
    import tangermeme

    cond = speedlog.conditions(f"tangermeme {tangermeme.__version__}")
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            result = results[name] = run(name, args.n, args.rounds, batches, Path(tmp))
            print("\n".join(report(name, result)), flush=True)
            best = strongest_peer(result["rates"])
            rows.append(speedlog.row(name, "saturation mutagenesis, 330 mutants per sequence", best, "mutants/s",
                                     result["rates"]["crmnet"], result["rates"][best]))
    print("\n".join(memory_note(name, result) for name, result in results.items()))
    if args.json:
        speedlog.save(args.json, "bench_ism", cond, rows, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
