"""``crmnet import`` (alias ``import-keras``): a released model file → a crmnet checkpoint."""

from __future__ import annotations

import argparse

from crmnet.cli.options import add_input, add_output, add_overwrite


def register(subparsers) -> None:
    """Add the ``import`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "import",
        aliases=["import-keras"],
        help="import a released model (CRMnet Keras, Vaishnav DeepATT/transformer, LegNet) without TensorFlow",
        description=(
            "Recognise the format of PATH and write a self-describing crmnet checkpoint (architecture, "
            "encoding, output scaling to expression units, provenance with the source's SHA-256): the CRMnet "
            "authors' SavedModel folder or Keras HDF5 file; Vaishnav et al.'s DeepATT (DeepAtt_model.h5, or its "
            "TF checkpoint: DeepAtt.index + shards) and transformer (fitness_function.h5); LegNet's "
            "model_*.pth. Weights are matched by architecture (layer order and shapes), not by name."
        ),
    )
    add_input(p, "path", help="HDF5 file, SavedModel folder, TF checkpoint (.index, prefix or folder) or .pth file")
    add_output(p, "--out", required=True, help="checkpoint to write (e.g. deepatt.pt)")
    add_overwrite(p, "an existing checkpoint")
    p.add_argument("--name", help="name to record in the checkpoint's provenance")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the CRC32C check of tensor-bundle tensors (saves about 1 s per 100 MB)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Import a released model as a crmnet checkpoint (no TensorFlow needed)."""
    from pathlib import Path

    from crmnet.models.blocks import count_parameters
    from crmnet.models.checkpoint import load_checkpoint
    from crmnet.zoo.importer import import_model

    out = import_model(Path(args.path), Path(args.out), overwrite=args.overwrite, verify=args.verify, name=args.name)
    model = load_checkpoint(out)
    meta = model.checkpoint_meta
    provenance, cfg = meta["provenance"], model.config
    trainable, stats = count_parameters(model)
    release = f" ({provenance['release']})" if provenance.get("release") else ""
    heads = f"{cfg.heads} heads x {cfg.head_dim}, " if hasattr(cfg, "head_dim") else ""
    scaled = hasattr(cfg, "output_scale")  # models trained on standardised targets carry their scaler
    output = f", output {cfg.output_shift:.6g} + {cfg.output_scale:.6g} * y" if scaled else ""
    print(
        f"imported {provenance['importer_format']} {args.path} as {meta['model']}{release}: {heads}"
        f"{trainable:,} parameters + {stats:,} statistics, input {cfg.length} nt channels {cfg.channels}"
        f"{output} -> {out}"
    )
    for what, note in (provenance.get("assumed") or {}).items():
        print(f"  assumed {what}: {note}")
    return 0
