"""``crmnet train`` (one run or a multi-stage recipe, resumable) and ``crmnet quickstart``.

Every :class:`crmnet.training.config.TrainConfig` field is a flag of ``crmnet train`` (``max_epochs`` →
``--max-epochs``; :func:`crmnet.cli.options.add_config_options`, as for design, evolve and prepare); model-config overrides are ``--set KEY=VALUE`` (VALUE parsed as JSON when it can be).
``--config FILE`` reads a JSON TrainConfig (flags given on the command line win) or a recipe
(``{"stages": [...]}``, e.g. ``configs/paper_transfer.json``: pre-train on both media, then fine-tune
per medium).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from crmnet.cli.options import (
    POSITIVE,
    PROGRESS_HELP,
    SEED,
    SEED_HELP,
    Flag,
    add_batch_size,
    add_config_options,
    add_input,
    add_output,
    add_overwrite,
    add_quiet,
    config_values,
    int_range,
)

# TrainConfig fields that name a file or directory the run reads (protected from --out by crmnet.cli.options)
_INPUT_FIELDS = ("store", "init")

_HELP = {
    "model": "registry name of the model (crmnet, crmnet-small, crmnet-tiny, legnet, ...)",
    "store": "prepared store directory (crmnet prepare)",
    "batch_size": "batch per process; global batch = batch-size × processes (default 1024)",
    "max_epochs": "at most this many epochs (default 50)",
    "max_steps": "stop after this many optimiser steps in total (smoke runs)",
    "patience": "early stopping: epochs without improvement of the validation metric (default 10)",
    "val_metric": "validation metric for early stopping and best weights (default r2 = 1 - SS_res/SS_tot)",
    "schedule": "learning-rate schedule: paper (warm-up, cosine decay) or code (warm-up, then flat)",
    "warmup_epochs": "linear warm-up epochs (default 10)",
    "lr_start": "learning rate at the start of the warm-up, per process (× processes)",
    "lr_peak": "learning rate at the end of the warm-up, per process (× processes)",
    "lr_end": "learning rate at the end of the cosine decay, per process (× processes)",
    "lr_granularity": "update the learning rate every step or once per epoch",
    "loss": "auto = the model's own loss (LegNet KL), MSE for the Keras-born peers, Huber for CRMnet; "
            "or huber / mse for any model",
    "huber_delta": "Huber loss delta (default 1); an error with a loss that is not Huber",
    "optimizer": "adam (default) or adamw",
    "weight_decay": "weight decay (default 0)",
    "precision": "32, bf16-mixed or 16-mixed",
    "accelerator": "auto, cpu or cuda",
    "devices": "processes (devices) per node; > 1 on one node spawns DDP workers",
    "num_nodes": "nodes (start one process per device with torchrun or srun)",
    "compile": "torch.compile the training step",
    "threads": "torch CPU threads per process (0 = default; 1 is often fastest on a busy CPU)",
    "seed": "random seed (weights, shuffling, dropout)",
    "init": "checkpoint to initialise from (transfer learning, all layers trainable)",
    "init_output_bias": "start the output bias at the mean training target (short CPU runs; not the paper's)",
    "log_every_n_steps": "write a row of logs/steps.csv every N steps",
    "save_every_n_steps": "write the resumable state every N steps (also at each epoch end and on Ctrl-C)",
}


def _parse_set(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def register(subparsers) -> None:
    """Add the ``train`` and ``quickstart`` subcommands to ``subparsers`` (called by :func:`crmnet.cli.build_parser`)."""
    from crmnet.training.config import CHOICES, TrainConfig

    p = subparsers.add_parser(
        "train",
        help="train a model on a prepared store (paper recipe: warm-up + cosine, Huber, early stopping)",
        description="Train a registered model on a prepared store into a run directory (config.json, "
        "best.ckpt, last.ckpt, state.pt, logs/, learning_curve.png, metrics.json). Resume a stopped "
        "or killed run with --resume --out DIR. Several GPUs: --devices N (one node) or torchrun / srun.",
    )
    add_output(p, "--out", required=True, help="run directory to create (or to resume with --resume)")
    add_input(p, "--config", help="JSON TrainConfig or recipe ({\"stages\": [...]}); flags override it")
    p.add_argument("--set", dest="overrides", action="append", type=_parse_set, default=[], metavar="KEY=VALUE",
                   help="model-config override (repeatable), e.g. --set transformer=false")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved state")
    add_overwrite(p, "an existing run directory")
    # --device: what users of torch type; without it argparse would take it for --devices
    flags = {name: Flag(text, choices=CHOICES.get(name), input=name in _INPUT_FIELDS,
                        aliases=("--device",) if name == "accelerator" else ()) for name, text in _HELP.items()}
    add_config_options(p, TrainConfig, flags, skip=("overrides", "progress"), defaults=False)
    # --quiet as in every command; --no-progress and --progress stay, unlisted
    p.add_argument("--quiet", dest="progress", action="store_false", default=None, help=PROGRESS_HELP)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help=argparse.SUPPRESS)
    p.add_argument("--progress", dest="progress", action="store_true", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_train)

    q = subparsers.add_parser(
        "quickstart",
        help="simulate → prepare → train a CPU-sized CRMnet → evaluate on a held-out set → report",
        description="The offline end-to-end demo: simulate sequences with known motif grammar, prepare a "
        "store, train, evaluate on a held-out simulated test set and write DIR/report.md, "
        "DIR/metrics.json, figures and the run directory.",
    )
    add_output(q, "--out", required=True, help="output directory (refused if it exists, unless --overwrite)")
    q.add_argument("--model", default=None, help="model preset (default: the CPU-sized quickstart preset; "
                   "crmnet = the full paper model, slow on CPU: combine with --max-steps)")
    q.add_argument("--n", type=POSITIVE, default=None, help="simulated training + validation sequences (default 100000)")
    q.add_argument("--n-test", type=POSITIVE, default=None, help="held-out simulated test sequences (default 10000)")
    q.add_argument("--epochs", type=POSITIVE, default=None, help="maximum epochs")
    add_batch_size(q, default=None, what="training batch size (default: the preset's)", inference=False)
    q.add_argument("--max-steps", type=POSITIVE, default=None, help="stop training after this many steps")
    q.add_argument("--threads", type=int_range(0, 4096), default=None,
                   help="torch CPU threads (default 1; 0 = torch's default)")
    q.add_argument("--seed", type=SEED, default=0, help=SEED_HELP)
    add_quiet(q)
    add_overwrite(q, "an existing output directory")
    q.set_defaults(func=_quickstart)


def _given(args) -> dict:
    given = config_values(args)
    if args.progress is not None:
        given["progress"] = args.progress
    if args.overrides:
        given["overrides"] = dict(args.overrides)
    return given


def _where(exc, given: dict, config_file: str | None, flags: dict[str, str]) -> tuple[str, str]:
    """The source (a flag, ``--set KEY`` or the config file) and the message of a ConfigError."""
    parts = exc.field.replace("[", ".").split(".")
    if parts[0] == "overrides" and len(parts) > 1 and parts[1] in given.get("overrides", {}):
        return f"--set {parts[1]}", exc.problem
    if parts[0] in given and parts[0] != "overrides" or not config_file:
        return flags.get(parts[0], "--" + parts[0].replace("_", "-")), exc.problem
    return config_file, str(exc)


def _train(args) -> int:
    from crmnet.config import ConfigError
    from crmnet.errors import InputError
    from crmnet.training.config import load_config_file

    given = _given(args)
    base = load_config_file(args.config) if args.config else {}
    try:
        return _train_with(args, base, given)
    except ConfigError as exc:
        if args.resume and "stages" not in base:  # the setting comes from the run's own config.json
            raise InputError(os.path.join(args.out, "config.json"), str(exc)) from None
        raise InputError(*_where(exc, given, args.config, {"overrides": "--set", "accelerator": "--accelerator/--device"})) from None


def _train_with(args, base: dict, given: dict) -> int:
    from crmnet.errors import InputError
    from crmnet.training.config import TrainConfig
    from crmnet.training.recipe import run_recipe
    from crmnet.training.run import fit

    if "stages" in base:
        results = run_recipe(base, args.out, resume=args.resume, overwrite=args.overwrite, source=args.config,
                             **given)
        for name, result in results.items():
            _print_result(name, result)
        return 0
    if args.resume:
        if given or args.config:
            raise InputError(args.out, "--resume continues the run with its own config.json; give no settings")
        _print_result("run", fit(None, args.out, resume=True))
        return 0
    if "init" in given and "model" not in given and "model" not in base:
        given["model"] = ""  # the checkpoint names the model
    if "overrides" in given and isinstance(base.get("overrides"), dict):
        given["overrides"] = {**base["overrides"], **given["overrides"]}  # --set adds to the file's
    config = TrainConfig.from_dict({**base, **given})
    _print_result("run", fit(config, args.out, overwrite=args.overwrite))
    return 0


def _print_result(name: str, result) -> None:
    val = result.metrics.get("validation", {})
    if not val:
        return
    print(f"{name}: {result.run_dir}: {result.epochs} epochs, {result.steps} steps, best epoch "
          f"{None if result.best_epoch is None else result.best_epoch + 1}; validation n={val['n']} "
          f"r={val['pearson_r']:.4f} R²={val['r2']:.4f} MSE={val['mse']:.4f}")


# quickstart flags of the QuickstartConfig / TrainConfig fields they set
_QUICKSTART_FLAGS = {"n": "--n", "n_test": "--n-test", "seed": "--seed", "max_epochs": "--epochs",
                     "batch_size": "--batch-size", "max_steps": "--max-steps", "model": "--model",
                     "threads": "--threads", "overrides": "--model"}


def _quickstart(args) -> int:
    from crmnet.config import ConfigError
    from crmnet.errors import InputError
    from crmnet.workflows.quickstart import QuickstartConfig, run_quickstart

    sizes = {k: v for k, v in {"n": args.n, "n_test": args.n_test}.items() if v is not None}
    training = {"max_epochs": args.epochs, "batch_size": args.batch_size, "max_steps": args.max_steps,
                "model": args.model, "threads": args.threads}
    chosen = {k: v for k, v in training.items() if v is not None}
    if args.model is not None:
        chosen["overrides"] = {}  # a named preset runs as registered (the paper's model for crmnet)
    try:
        default = QuickstartConfig()
        train = default.train.replace(seed=args.seed, progress=not args.quiet, **chosen)
        config = QuickstartConfig(seed=args.seed, train=train, **sizes)
        summary = run_quickstart(config, args.out, overwrite=args.overwrite)
    except ConfigError as exc:
        field = exc.field.removeprefix("train.").split(".")[0]
        raise InputError(_QUICKSTART_FLAGS.get(field, "quickstart"), exc.problem if field in _QUICKSTART_FLAGS
                         else str(exc)) from None
    print(summary.text)
    print(f"wrote {summary.out}: report.md, metrics.json, scatter.png, learning_curve.png, run/best.ckpt", file=sys.stderr)
    return 0
