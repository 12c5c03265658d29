"""``crmnet export``: a checkpoint as an ONNX graph or a TorchScript program, checked against PyTorch."""

from __future__ import annotations

import argparse
import sys

from crmnet.cli.options import add_input, add_output, add_overwrite, int_range
from crmnet.errors import CrmnetError

# Largest accepted difference between the export and PyTorch, relative to the largest |prediction|:
# float32 reassociation gives 1e-7..1e-5 (measured up to 3.3e-6 over the registered models).
PARITY_TOLERANCE = 1e-4


def register(subparsers) -> None:
    """Add the ``export`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX or TorchScript for deployment (with a parity check)",
        description="Write the checkpoint's model as an ONNX graph (onnxruntime, TensorRT, ...) or a TorchScript "
        "program (C++ libtorch, no Python). Input: one-hot (batch, channels, length) in the model's encoding, any "
        "batch size; output: (batch,) predictions. The file carries the model name and its encoding (ONNX "
        "metadata 'crmnet', TorchScript extra file crmnet.json). The export is then run on --parity random "
        f"sequences beside the PyTorch model; a difference above {PARITY_TOLERANCE:g} of the largest prediction "
        "is an error and nothing is written. ONNX needs the export extra: pip install 'crmnet[export]'.",
    )
    add_input(p, "--checkpoint", required=True, metavar="CKPT", help="a crmnet checkpoint (.ckpt)")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="what to write")
    add_output(p, "--out", required=True, metavar="FILE", help="output file (refused if it exists)")
    add_overwrite(p, "an existing --out")
    p.add_argument("--parity", type=int_range(1, 100_000), default=64, metavar="N",
                   help="sequences in the parity check against PyTorch, 1 to 100,000 (default 64)")
    p.add_argument("--onnx-exporter", choices=("dynamo", "torchscript"), default="dynamo",
                   help="ONNX only: PyTorch's torch.export-based exporter (default) or its older TorchScript-based "
                   "one (deprecated upstream, several times faster)")
    p.add_argument("--opset", type=int, metavar="N", help="ONNX opset version (default: the exporter's)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from crmnet.fsutil import refuse_existing
    from crmnet.models.checkpoint import load_checkpoint

    refuse_existing(args.out, overwrite=args.overwrite)
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise CrmnetError(f"--format onnx needs the export extra ({exc.name} is missing): "
                              "pip install 'crmnet[export]'") from None
    from crmnet.models.export import export_model, parity

    dynamo = args.onnx_exporter == "dynamo"
    model = load_checkpoint(args.checkpoint)
    check = {}

    def parity_check(tmp) -> None:  # on the temporary file: a failed check leaves nothing under --out
        check.update(parity(model, tmp, n=args.parity))
        if not check["max_rel"] <= PARITY_TOLERANCE:
            raise CrmnetError(f"{args.out}: the {args.format} export differs from PyTorch by {check['max_abs']:.3g} "
                              f"({check['max_rel']:.3g} of the largest prediction, tolerance {PARITY_TOLERANCE:g}); "
                              "nothing written")

    out = export_model(model, args.out, args.format, overwrite=args.overwrite, dynamo=dynamo, opset=args.opset,
                       check=parity_check)
    enc = model.encoding
    print(f"parity with PyTorch on {check['n']} sequences: max |difference| {check['max_abs']:.3g} "
          f"({check['max_rel']:.3g} of the largest prediction)", file=sys.stderr)
    print(f"wrote {out} ({args.format}; {model.checkpoint_meta['model']}, input (batch, {enc.n_channels}, "
          f"{enc.length}) one-hot {enc.channels})")
    return 0
