"""``crmnet models``: list the registered models with their sizes and costs."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``models`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "models",
        help="list the registered models (parameters, BN stats, FLOPs per sample)",
        description="List every model crmnet can build, with trainable parameters, saved batch-norm "
        "statistics, forward FLOPs per sample (a multiply-add counts 2; LSTMs are not counted) and a "
        "description.",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_run)


def model_table() -> list[dict]:
    """One row per registered model.

    Name, params, buffers (the saved batch-norm statistics), flops, input, description.
    """
    import torch

    from crmnet.models import MODELS, build_model, count_parameters, flops_per_sample

    rows = []
    for name, entry in MODELS.items():
        # The meta device gives shapes without memory or initialisation cost, which is all counting needs.
        with torch.device("meta"):
            model = build_model(name)
        params, buffers = count_parameters(model)
        enc = model.encoding
        rows.append(
            {
                "name": name,
                "params": params,
                "buffers": buffers,
                "flops": flops_per_sample(model),
                "input": f"{enc.n_channels}x{enc.length} {enc.channels}",
                "description": entry.description,
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`model_table` as aligned console columns."""
    from crmnet.tables import render

    return render(["name", "params", "BN stats", "MFLOP/seq", "input", "description"],
                  [[r["name"], f"{r['params']:,}", f"{r['buffers']:,}", f"{r['flops'] / 1e6:.1f}", r["input"],
                    r["description"]] for r in rows], style="text").rstrip("\n")


def _run(args: argparse.Namespace) -> int:
    rows = model_table()
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    return 0
