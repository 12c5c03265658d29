"""Subcommand ``simulate``: ground-truth data sets so the whole pipeline runs offline.

Presets: ``planted`` (crmnet.data.simulate, JASPAR motifs planted into uniform random sequence: a clean
interpretation benchmark with discrete sites) and ``calibrated`` (crmnet.data.calibrated, statistics fitted
to the real random promoters). ``--teacher CKPT`` labels random promoters with a trained model instead
(crmnet.workflows.teacher).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from crmnet.cli.options import (
    SEED,
    SEED_HELP,
    add_batch_size,
    add_device,
    add_input,
    add_output,
    add_overwrite,
    default_device,
    int_range,
)
from crmnet.errors import InputError

MAX_N = 100_000_000  # 100 M sequences: about 10 GB of text, ten times the real training files

PRESETS = ("planted", "calibrated")


def register(subparsers) -> None:
    """Add the ``simulate`` subcommand to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate yeast promoter expression with a known answer (planted motifs, calibrated, or a teacher model)",
        description=(
            "Random 80-nt variable regions inside the real flanks. --preset planted (default): expression from "
            "a documented model of planted S. cerevisiae JASPAR motifs, the interpretation benchmark (discrete "
            "planted sites are the truth). --preset calibrated: composition, GC and poly-dA:dT effects, motif "
            "rates, k-mer structure, value distribution and label noise fitted to the real random test sets. "
            "--teacher CKPT: a trained model's predictions plus calibrated noise; the teacher's ISM is the truth. "
            "Writes FILE in the training-file format (sequence<TAB>expression) and FILE.truth.json."
        ),
    )
    p.add_argument("--n", type=int_range(1, MAX_N), required=True, help=f"number of sequences, 1 to {MAX_N:,}")
    p.add_argument("--seed", type=SEED, default=0, help=SEED_HELP)
    add_output(p, "--out", required=True, metavar="FILE", help="training-format output file")
    p.add_argument("--preset", choices=PRESETS,
                   help="planted (default: the interpretation benchmark, discrete planted sites) or calibrated "
                        "(statistics of the real random promoters)")
    add_input(p, "--config", metavar="JSON",
              help="the preset's config as JSON (SimulatorConfig or CalibratedConfig; unknown keys are errors)")
    p.add_argument("--noise-free-r", type=float, metavar="R",
                   help="planted preset: target Pearson r between noise-free and measured expression (default 0.95)")
    p.add_argument("--labels", choices=("train", "test"),
                   help="calibrated/teacher: noisy training-style labels (default; integer low-count values) or "
                        "low-noise test-style labels")
    add_input(p, "--teacher", metavar="CKPT", help="label with this crmnet checkpoint plus calibrated noise")
    p.add_argument("--truth-ism", type=int_range(0, 1_000_000), default=100, metavar="N",
                   help="teacher mode: store the teacher's ISM of the first N sequences as FILE.ism.npz, 0 to 1,000,000 "
                        "(default 100; 0: none)")
    add_device(p)
    add_batch_size(p, what="teacher mode: prediction batch size")
    add_overwrite(p, "FILE and its companions if they exist")
    p.set_defaults(func=run_simulate)


def _read_json(path: str) -> dict:
    try:
        fields = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, f"cannot read the config ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(fields, dict):
        raise InputError(path, "the config must be a JSON object of config fields")
    return fields


def _load_config(args):
    from crmnet.data.calibrated import CalibratedConfig
    from crmnet.data.simulate import SimulatorConfig

    planted = args.preset == "planted"
    fields = _read_json(args.config) if args.config else {}
    if args.noise_free_r is not None:
        if not planted:
            raise InputError("--noise-free-r", "applies to the planted preset only (calibrated noise: --labels, "
                                               "--config)")
        fields["noise_free_r"] = args.noise_free_r
    if args.labels is not None:
        if planted:
            raise InputError("--labels", "applies to --preset calibrated and --teacher only")
        fields["labels"] = args.labels
    cls = SimulatorConfig if planted else CalibratedConfig
    try:
        return cls.from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise InputError(args.config or ("--noise-free-r" if planted else "--labels"), str(exc)) from None


def _outputs(args) -> list[Path]:
    from crmnet.data.simulate import truth_path
    from crmnet.workflows.teacher import ism_path

    paths = [Path(args.out), truth_path(args.out)]
    if args.teacher and args.truth_ism > 0:
        paths.append(ism_path(args.out))
    return paths


def run_simulate(args) -> int:
    """Simulate yeast promoter expression data with a known answer."""
    from crmnet.data.simulate import simulate, write_simulation
    from crmnet.fsutil import refuse_existing

    if args.teacher and args.preset == "planted":
        raise InputError("--preset", "planted does not apply with --teacher (a teacher labels calibrated sequences)")
    args.preset = args.preset or ("calibrated" if args.teacher else "planted")
    config = _load_config(args)
    refuse_existing(*_outputs(args), overwrite=args.overwrite)  # before minutes of work, not after
    attr = None
    if args.teacher:
        data, attr = _teacher(args, config)
    elif args.preset == "calibrated":
        from crmnet.data.calibrated import simulate_calibrated

        data = simulate_calibrated(args.n, args.seed, config)
    else:
        data = simulate(args.n, args.seed, config)
    out, truth = write_simulation(data, args.out, overwrite=args.overwrite)
    s = data.truth["summary"]
    m = s["measured"]
    print(f"wrote {len(data):,} sequences to {out} and the ground truth to {truth}\n"
          f"expression mean {m['mean']:.2f}, sd {m['sd']:.2f}, median {m['quantiles']['median']:.2f}; "
          f"r(noise-free, measured) = {s['pearson_noise_free_measured']:.3f}" + _detail(data.truth))
    if attr is not None:
        print(f"teacher ISM of the first {len(attr):,} sequences: {attr.save(_outputs(args)[2], args.overwrite)}")
    return 0


def _detail(truth: dict) -> str:
    s = truth["summary"]
    if "planted_per_motif" in s:
        return f"; planted sites {sum(s['planted_per_motif']):,}, scored sites {sum(s['scored_per_motif']):,}"
    return f"; integer-valued labels {s['frac_integer']:.1%}"


def _teacher(args, config):
    from crmnet.models.checkpoint import load_checkpoint
    from crmnet.workflows.teacher import simulate_teacher, teacher_ism

    model = load_checkpoint(args.teacher, map_location=default_device(args.device))
    try:
        data = simulate_teacher(model, args.n, args.seed, config, args.batch_size, checkpoint=args.teacher)
    except ValueError as exc:
        raise InputError(args.teacher, str(exc)) from None
    nf = data.truth["summary"]["noise_free"]
    if nf["sd"] < 0.5 or not 0 < nf["quantiles"]["median"] < 17:
        # The label noise works on the 0–17 expression-bin scale of the real assay.
        print(f"warning: the teacher's predictions (median {nf['quantiles']['median']:.2f}, sd {nf['sd']:.2f}) are "
              "not on the 0–17 expression scale; its labels will be degenerate", file=sys.stderr)
    count = min(args.truth_ism, args.n)
    return data, teacher_ism(model, data, count, args.batch_size) if count else None
