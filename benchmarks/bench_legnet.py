"""CPU inference, crmnet's LegNet against the authors' own LegNet module, side by side in one run, one thread.

Both sides run the same released-format file (default: the fixture ``shared/fixtures/legnet/model_300.pth``,
the authors' ``SeqNN`` with seeded weights saved as their ``train.py`` does) on the same sequences: rows of
the Vaishnav et al. native and random complex-medium test sets (their sequences, some with N), encoded as the
authors' ``test.py`` does (crmnet's ``legnet-released`` encoding, tested to give their inputs bit for bit).

Contenders, each predicting both strands and averaging them as LegNet's ``test.py`` does:

* ``authors``: their ``legnet/model.py`` ``SeqNN`` (imported at run time from ``--authors-repo``; it needs
  tensorly and tensorly-torch on ``PYTHONPATH``), in eval mode under ``torch.inference_mode``, called once
  on the forward-strand batch and once on the reverse-complement batch, as their ``test.py`` does, and
  ``(score_forward + score_reverse) / 2``. Their 6-channel inputs are built before timing (test.py's data
  loader does that), so their figure excludes input preparation; crmnet's include it.
* ``crmnet``: the imported plain module (:func:`crmnet.zoo.legnet.import_file`) under ``inference_mode``.
* ``crmnet-fast``: what ``crmnet.models.fastpath.optimize_for_inference`` returns for it.

Timing as in ``bench_keras.py``: ``--rounds`` rounds; in each, every contender runs one warm-up and
``--repeats`` timed calls, in an order rotated from round to round. Each call's CPU time
(``time.process_time``) and wall time are kept. A contender's figure is the median over all its calls; a
ratio (``x authors``: > 1 means faster than the authors') is the median of the per-round ratios of medians,
with their range. ``max abs dy``: the largest difference from the authors' predictions.

    PYTHONPATH=src:/tmp/tl_site python benchmarks/bench_legnet.py --authors-repo /tmp/legnet_authors \\
        --batch 64,256,1024 --rounds 3 --repeats 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import speedlog

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("CRMNET_SHARED", HERE.parents[1] / "shared"))
WEIGHTS = SHARED / "fixtures" / "legnet" / "model_300.pth"
HPARAMS = SHARED / "fixtures" / "legnet" / "hparams.json"
TEST_SETS = [SHARED / "data" / "vaishnav2022" / "peer_predictions" / f"{origin}_complex_DeepAtt_model.csv"
             for origin in ("Native", "Random")]


def sequences(count: int, seed: int = 0) -> list[str]:
    """``count`` test-set sequences (native and random interleaved, drawn with a seed); random ACGT with
    3 % N when the test sets are absent."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pool = []
    for path in TEST_SETS:
        if path.is_file():
            with path.open(newline="") as handle:
                pool += [row["sequence"] for row in csv.DictReader(handle)]
    if pool:
        return [pool[i] for i in rng.choice(len(pool), count, replace=len(pool) < count)]
    letters = np.array(list("ACGTN"))
    return ["".join(letters[rng.choice(5, 110, p=[0.2425] * 4 + [0.03])]) for _ in range(count)]


def authors_model(repo: Path, weights: Path):
    """The authors' ``SeqNN`` with the fixture's hyper-parameters and ``weights``, in eval mode."""
    import torch
    from torch import nn

    sys.path.insert(0, str(repo / "legnet"))
    from model import SeqNN

    hparams = json.loads(HPARAMS.read_text())
    hparams["activation"] = {"nn.SiLU": nn.SiLU}[hparams["activation"]]
    model = SeqNN(**hparams)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def contenders(weights: Path, repo: Path | None, batch: int) -> tuple[dict, object, object]:
    """{name: zero-argument call} for one batch, the authors' predictions (None without them) and crmnet's input."""
    import torch

    from crmnet.data.encoding import encode, onehot, revcomp_onehot
    from crmnet.models.fastpath import optimize_for_inference
    from crmnet.zoo.legnet import import_file

    model, _ = import_file(weights)
    fast = optimize_for_inference(model)
    codes, _ = encode(sequences(batch), model.encoding)
    x = onehot(torch.as_tensor(codes), model.encoding)
    calls = {}
    y_authors = None
    if repo is not None:
        authors = authors_model(repo, weights)
        forward, reverse = model.inputs(x, 0.0), model.inputs(revcomp_onehot(x, model.encoding), 1.0)

        def run_authors():
            return (authors(forward)[-1] + authors(reverse)[-1]) / 2

        calls["authors"] = run_authors
        with torch.inference_mode():
            y_authors = run_authors()
    calls["crmnet"] = lambda: model(x)
    calls["crmnet-fast"] = lambda: fast(x)
    return calls, y_authors, x


def measure_batch(batch: int, args) -> dict:
    """Interleaved rounds at one batch size → per contender CPU/wall lists, per-round medians, max |Δy|."""
    import torch

    calls, y_authors, _ = contenders(args.weights, args.authors_repo, batch)
    diff = {}

    def timer(name: str) -> tuple[list[float], list[float]]:
        with torch.inference_mode():
            if y_authors is not None and name not in diff:  # outputs are deterministic: compared once
                diff[name] = (calls[name]().double() - y_authors.double()).abs().max().item()
            return speedlog.time_calls(calls[name], args.repeats)

    out = speedlog.interleave(list(calls), args.rounds, timer)
    return {"times": out, "max_abs_diff": diff}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=WEIGHTS, help="a LegNet model_*.pth state_dict (default: fixture)")
    p.add_argument("--authors-repo", type=Path, help="a checkout of autosome-ru/LegNet; omitted: crmnet only")
    p.add_argument("--batch", default="64,256,1024", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per batch size")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per contender and round")
    p.add_argument("--json", type=Path, help="also write the result here (speedlog format, every timing kept)")
    args = p.parse_args(argv)
    if not args.weights.is_file():
        p.error(f"--weights: {args.weights} not found")
    if args.authors_repo is not None and not (args.authors_repo / "legnet" / "model.py").is_file():
        p.error(f"--authors-repo: no legnet/model.py under {args.authors_repo}")

    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    peer = "authors' SeqNN" if args.authors_repo else "no --authors-repo: crmnet only"
    print(f"# LegNet ({args.weights.name}): torch {torch.__version__}; {peer}")
    print(f"# 1 thread; {args.rounds} interleaved rounds x {args.repeats} calls; medians; ratio cells: "
          "CPU-time ratio (range over rounds) / wall-time ratio (range); > 1: faster than the authors'")
    print("| batch | contender | CPU ms/batch | wall ms/batch | seq/s (CPU) | x authors | max abs dy |")
    print("|---|---|---|---|---|---|---|")
    results = {}
    for batch in (int(b) for b in args.batch.split(",")):
        results[batch] = measure_batch(batch, args)
        print("\n".join(speedlog.table_rows(batch, results[batch], ("authors",), digits=0)), flush=True)
    if args.json:
        rows = speedlog.batch_rows("legnet (fixture weights)", results, ("authors",))
        speedlog.save(args.json, "bench_legnet", speedlog.conditions(f"authors' LegNet (torch {torch.__version__})"),
                      rows, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
