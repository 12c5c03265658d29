"""``crmnet import-keras``: the authors' released Keras CRMnet (SavedModel or HDF5) → a crmnet checkpoint."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import-keras",
        help="import the authors' Keras CRMnet (SavedModel directory or HDF5 weights) without TensorFlow",
        description=(
            "Read a Keras CRMnet saved as a TensorFlow SavedModel directory (model.save) or a Keras-2 HDF5 "
            "file (model.save_weights / model.save), infer its sizes from the tensor shapes, match the "
            "weights by name, shape and graph position and write a self-describing crmnet checkpoint that "
            "'crmnet predict' and 'crmnet evaluate' use directly (input order [N, A, C, G, T])."
        ),
    )
    p.add_argument("path", help="SavedModel directory or .h5 file")
    p.add_argument("--out", required=True, help="checkpoint to write (e.g. crmnet_authors.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the CRC32C check of the SavedModel's tensors (saves about 1 s per 100 MB)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from crmnet.zoo.keras import import_keras

    result = import_keras(args.path, args.out, overwrite=args.overwrite, verify=args.verify)
    provenance = result.provenance
    cfg = result.model.config
    params = sum(p.numel() for p in result.model.parameters())
    print(
        f"imported {provenance['source_format']} {args.path}: "
        f"{len(provenance['keras_to_torch'])} weighted Keras layers, "
        f"{cfg.heads} heads x {cfg.head_dim}, {params:,} parameters, input channels {cfg.channels} "
        f"({provenance['ignored_variables']} optimizer/metric variables ignored) -> {args.out}"
    )
    return 0
