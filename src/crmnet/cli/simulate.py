"""Subcommand ``simulate``: a ground-truth data set so the whole pipeline runs offline (crmnet.data.simulate)."""

from __future__ import annotations

import json
from pathlib import Path

from crmnet.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate yeast promoter expression from planted JASPAR motifs (offline ground truth)",
        description=(
            "Random 80-nt variable regions inside the real flanks, expression from a documented model of "
            "S. cerevisiae JASPAR motif binding (NHP10, REB1, ABF1, AZF1, RAP1, UME6 by default) with position, "
            "orientation, interaction, saturation and measurement noise. Writes FILE in the training-file "
            "format (sequence<TAB>expression) and FILE.truth.json (motifs, effects, planted and scored sites)."
        ),
    )
    p.add_argument("--n", type=int, required=True, help="number of sequences")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same output")
    p.add_argument("--out", required=True, metavar="FILE", help="training-format output file")
    p.add_argument("--config", metavar="JSON", help="SimulatorConfig as JSON (unknown keys are errors)")
    p.add_argument("--noise-free-r", type=float, metavar="R",
                   help="target Pearson r between noise-free and measured expression (default 0.95)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE and FILE.truth.json if they exist")
    p.set_defaults(func=run_simulate)


def _load_config(args):
    from crmnet.data.simulate import SimulatorConfig

    fields = {}
    if args.config:
        path = Path(args.config)
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(path, f"cannot read the config ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise InputError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
        if not isinstance(fields, dict):
            raise InputError(path, "the config must be a JSON object of SimulatorConfig fields")
    if args.noise_free_r is not None:
        fields["noise_free_r"] = args.noise_free_r
    try:
        return SimulatorConfig.from_dict(fields)
    except (TypeError, ValueError) as exc:
        raise InputError(args.config or "--noise-free-r", str(exc)) from None


def run_simulate(args) -> int:
    from crmnet.data.simulate import simulate, truth_path, write_simulation
    from crmnet.fsutil import refuse_existing

    if args.n < 1:
        raise InputError("--n", f"the number of sequences must be positive, not {args.n}")
    config = _load_config(args)
    refuse_existing(args.out, truth_path(args.out), overwrite=args.overwrite)  # before minutes of work, not after
    data = simulate(args.n, args.seed, config)
    out, truth = write_simulation(data, args.out, overwrite=args.overwrite)
    s = data.truth["summary"]
    m = s["measured"]
    print(
        f"wrote {len(data):,} sequences to {out} and the ground truth to {truth}\n"
        f"expression mean {m['mean']:.2f}, sd {m['sd']:.2f}, median {m['quantiles']['median']:.2f}; "
        f"r(noise-free, measured) = {s['pearson_noise_free_measured']:.3f}; "
        f"planted sites {sum(s['planted_per_motif']):,}, scored sites {sum(s['scored_per_motif']):,}"
    )
    return 0
