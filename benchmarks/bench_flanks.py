"""How far N-padding a bare 80-nt variable region is from predicting the whole construct, under a real model.

Takes every sequence of a test set that carries both constant flanks, predicts (a) the full 110-nt
construct, (b) its 80-nt variable region completed with the flanks (crmnet's default), (c) the region padded
with N (``flanks=False``, what crmnet did before), and prints the absolute differences from (a).

    python benchmarks/bench_flanks.py --checkpoint deepatt.pt --test ../shared/data/vaishnav2022/test/Native_complex.csv
"""

from __future__ import annotations

import argparse

import numpy as np

from crmnet.data.construct import LEFT_FLANK, RIGHT_FLANK, VARIABLE_LENGTH
from crmnet.data.readers import read_records
from crmnet.evaluation.predict import predict
from crmnet.models.checkpoint import load_checkpoint


def main() -> None:
    """Print n, max |flanked − full| and mean/median/max |N-padded − full|."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--test", required=True, help="a test set (any format crmnet reads)")
    args = ap.parse_args()
    model = load_checkpoint(args.checkpoint)
    full = [s for s in read_records(args.test).sequences
            if len(s) == len(LEFT_FLANK) + VARIABLE_LENGTH + len(RIGHT_FLANK)
            and s.startswith(LEFT_FLANK) and s.endswith(RIGHT_FLANK)]
    region = [s[len(LEFT_FLANK) : len(LEFT_FLANK) + VARIABLE_LENGTH] for s in full]
    want = predict(model, full)
    flanked = np.abs(predict(model, region) - want)
    padded = np.abs(predict(model, region, flanks=False) - want)
    print(f"{len(full):,} constructs; flanks: max |diff| {flanked.max():.2e}; N-padding: mean |diff| "
          f"{padded.mean():.3f}, median {np.median(padded):.3f}, max {padded.max():.3f} (expression units)")


if __name__ == "__main__":
    main()
