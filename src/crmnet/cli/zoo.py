"""``crmnet zoo``: the released trained models crmnet can run (crmnet.zoo.catalogue)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``zoo`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "zoo",
        help="list the released trained models crmnet can run, with their published metrics and how to get them",
        description=(
            "Every released model crmnet can run: name, architecture, medium, training data, parameters, "
            "published test metrics with their source, licence, the download command (pinned, verified and "
            "imported as a checkpoint), and whether its import is proven on the real weights or on a fixture."
        ),
    )
    p.add_argument("--format", choices=("text", "markdown", "tsv", "json"), default="text",
                   help="output format (default: one block per model)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from crmnet.tables import render
    from crmnet.zoo.catalogue import COLUMNS, RELEASED, parameters, zoo_rows

    rows = zoo_rows()
    if args.format == "json":
        import json

        print(json.dumps([{**m.to_dict(), "parameters": parameters(m.model)} for m in RELEASED.values()], indent=2))
    elif args.format in ("markdown", "tsv"):
        print(render(COLUMNS, rows, style=args.format), end="")
    else:  # the table is too wide for a terminal: one aligned block per model
        for row in rows:
            print(render(["field", "value"], [[k, v] for k, v in zip(COLUMNS, row)], style="text")
                  .split("\n", 1)[1])
    return 0
