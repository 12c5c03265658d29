"""``crmnet quickstart``: the whole pipeline, offline, on simulated data with a known answer.

simulate (≈100 k training + validation sequences, and an independent held-out test set) → prepare a
store → train a CPU-sized CRMnet → evaluate on the held-out set → write a short report. The simulator's
measurement noise bounds what any model can reach: the Pearson r between its noise-free and its
measured expression (≈0.95 by default) is reported as the ceiling.

Output directory ``DIR``::

    DIR/data/train.txt (+ .truth.json)   simulated training file (the real training-file format)
    DIR/data/test.txt  (+ .truth.json)   held-out simulated test set
    DIR/store/                            prepared store (train / validation split)
    DIR/run/                              the training run (config.json, best.ckpt, logs, ...)
    DIR/metrics.json                      {"simulated_test": {n, pearson_r, ..., mae}}
    DIR/scatter.png                       predicted vs measured on the test set
    DIR/learning_curve.png                training and validation curves
    DIR/report.md                         metrics table, noise ceiling, timings, figures
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from crmnet.config import Config, ConfigError
from crmnet.fsutil import write_text_atomic
from crmnet.training.checks import check_device, check_model
from crmnet.training.config import TrainConfig
from crmnet.training.rundir import LOG_FILES, RUN_FILES, Layout, check_output, run_directory

QUICKSTART_MODEL = "crmnet-tiny"
STORE = "store"  # TrainConfig.store of the quickstart: the store it prepares, DIR/store
TEST_SET = "simulated_test"
# what a quickstart writes: replaced by --overwrite only when nothing else is there
LAYOUT = Layout("quickstart output", {
    "": frozenset({"config.json", "data", STORE, "run", "metrics.json", "scatter.png", "learning_curve.png",
                   "report.md"}),
    "data": frozenset({"train.txt", "train.txt.truth.json", "test.txt", "test.txt.truth.json"}),
    "run": RUN_FILES,
    "run/logs": LOG_FILES,
    # the files of a store (crmnet.data.store's module docstring)
    STORE: frozenset({"manifest.json", "codes.npy", "lengths.npy", "targets.npy", "medium.npy", "split.npy"}),
})


def _quickstart_training() -> TrainConfig:
    """The quickstart's training settings.

    The paper's 50 / 10 / 10 epochs (max / patience / warm-up) scaled down so that the run fits in minutes on
    a 2-core CPU.
    """
    return TrainConfig(
        model=QUICKSTART_MODEL,
        # Keras' batch-norm momentum (0.01) lets the running statistics lag behind a run of ~1,000 steps.
        overrides={"bn_momentum": 0.1},
        store=STORE, batch_size=256, max_epochs=4, patience=2, warmup_epochs=0.2, lr_start=4e-4, lr_peak=4e-3,
        lr_end=2e-4, log_every_n_steps=25, save_every_n_steps=200, init_output_bias=True,
        # One thread: this small model gains little from a second one and loses many times over when the
        # CPU is shared (0 = torch's default).
        threads=1,
    )


@dataclass
class QuickstartConfig(Config):
    """Settings of the quickstart; the defaults meet its goals on a 2-core CPU (docs/measured.md).

    n: simulated sequences for training + validation; n_test: independent held-out test sequences.
    val_fraction: share of the n sequences held out for validation.
    seed: seed of the simulation (the training's own seed is ``train.seed``).
    train: the training run's :class:`~crmnet.training.config.TrainConfig`; its ``store`` is always the
        quickstart's own ``DIR/store``, and its ``threads`` (when not 0) are set for the whole quickstart.
    """

    n: int = 100_000
    n_test: int = 10_000
    val_fraction: float = 0.05
    seed: int = 0
    train: TrainConfig = field(default_factory=_quickstart_training)

    def __post_init__(self) -> None:
        """Check every value; a :class:`~crmnet.config.ConfigError` names the field."""
        if self.n < 100:
            raise ConfigError("n", f"must be >= 100 (training + validation sequences), not {self.n}")
        if self.n_test < 10:
            raise ConfigError("n_test", f"must be >= 10 (held-out test sequences), not {self.n_test}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError("val_fraction", f"must be in (0, 1), not {self.val_fraction}")
        if self.train.store != STORE:
            raise ConfigError("train.store", f"is the quickstart's own {STORE!r}, not {self.train.store!r}")
        n_train = self.n - math.ceil(self.n * self.val_fraction)  # at most this many: prepare rounds the split
        if n_train < self.train.batch_size * self.train.devices * self.train.num_nodes:
            raise ConfigError("n", f"{self.n} sequences leave about {n_train} for training: fewer than one batch "
                                   f"of {self.train.batch_size}; give a larger n or a smaller batch size")


@dataclass
class QuickstartSummary:
    """What the quickstart measured: test metrics, the noise ceiling, stage timings and the report."""

    out: Path
    metrics: dict
    ceiling_r: float
    seconds: dict
    text: str


def run_quickstart(config: QuickstartConfig, out: str | os.PathLike, *, overwrite: bool = False) -> QuickstartSummary:
    """Run the quickstart into ``out`` (refused if it exists, unless ``overwrite``).

    The model and device settings and ``out`` are checked before anything is written. ``overwrite``
    replaces only a quickstart output crmnet wrote (:data:`LAYOUT`), never a directory holding other
    files. Sets torch's CPU thread count to ``config.train.threads`` (when not 0) for the whole
    quickstart (simulation, training and evaluation) and puts the previous count back at the end.

    Parameters
    ----------
    config : QuickstartConfig
        Simulation sizes, seeds and the training settings.
    out : path-like
        The output directory.
    overwrite : bool
        Replace a previous quickstart output.

    Returns
    -------
    QuickstartSummary
        Held-out test metrics, the noise ceiling, per-stage seconds and the report text.
    """
    import torch

    out = Path(out)
    check_device(config.train)
    check_model(config.train)
    check_output(out, resume=False, overwrite=overwrite, layout=LAYOUT)
    threads = torch.get_num_threads()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    try:
        with run_directory(out, config.to_json() + "\n", resume=False, overwrite=overwrite, layout=LAYOUT):
            return _run(config, out)
    finally:
        torch.set_num_threads(threads)


def _run(config: QuickstartConfig, out: Path) -> QuickstartSummary:
    from crmnet.data.simulate import simulate, write_simulation
    from crmnet.data.store import prepare
    from crmnet.evaluation.metrics import compute_metrics
    from crmnet.evaluation.predict import predict
    from crmnet.training.run import fit

    (out / "data").mkdir()
    seconds: dict[str, float] = {}
    t_all = time.perf_counter()

    t = time.perf_counter()
    train_data = simulate(config.n, seed=config.seed)
    test_data = simulate(config.n_test, seed=config.seed + 1)  # an independent draw: nothing shared
    write_simulation(train_data, out / "data" / "train.txt")
    write_simulation(test_data, out / "data" / "test.txt")
    seconds["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    store = prepare([out / "data" / "train.txt"], out / STORE, val_fraction=config.val_fraction, seed=config.seed)
    seconds["prepare"] = time.perf_counter() - t

    t = time.perf_counter()
    result = fit(config.train.replace(store=str(out / STORE)), out / "run")
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    pred = predict(result.model, test_data.sequences, batch_size=1024)
    test_metrics = compute_metrics(test_data.expression, pred)
    ceiling = compute_metrics(test_data.expression, test_data.noise_free)
    vs_truth = compute_metrics(test_data.noise_free, pred)
    metrics = {TEST_SET: test_metrics}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    _figures(out, test_data.expression, pred, test_metrics, result)
    seconds["evaluate"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t_all

    text = _report(config, store, result, test_metrics, ceiling, vs_truth, seconds)
    write_text_atomic(out / "report.md", text)
    return QuickstartSummary(out=out, metrics=metrics, ceiling_r=ceiling["pearson_r"], seconds=seconds, text=text)


def _figures(out: Path, measured, pred, metrics: dict, result) -> None:
    from crmnet.plot import figure2, learning_curve_figure, save_png

    save_png(figure2([("held-out simulated test set", measured, pred, metrics)]), out / "scatter.png")
    if result.history:
        save_png(learning_curve_figure(result.history), out / "learning_curve.png")


def _report(config, store, result, m, ceiling, vs_truth, seconds) -> str:
    n_params = sum(p.numel() for p in result.model.parameters())
    rows = [
        ("Pearson r", "pearson_r"), ("Spearman r", "spearman_r"), ("R² (1 − SS_res/SS_tot)", "r2"),
        ("r² (Pearson squared, the paper's \"R²\")", "pearson_r_squared"), ("MSE", "mse"), ("MAE", "mae"),
    ]
    table = "\n".join(f"| {label} | {m[key]:.4f} | {ceiling[key]:.4f} |" for label, key in rows)
    timing = " · ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    best = "—" if result.best_epoch is None else str(result.best_epoch + 1)
    return f"""# crmnet quickstart report

Model `{config.train.model}` ({n_params:,} parameters), trained on {store.manifest['n_train']:,} simulated
sequences (validation {store.manifest['n_val']:,}) for {result.epochs} epochs / {result.steps} steps
(best epoch {best}; seeds: simulation {config.seed}, training {config.train.seed}), evaluated on {m['n']:,} independent held-out simulated sequences.

| metric | model vs measured | ceiling: noise-free vs measured |
|---|---|---|
{table}

The ceiling is what a perfect model of the simulator would reach against its noisy measurements.
The model's Pearson r against the noise-free expression is {vs_truth['pearson_r']:.4f}.

**What this model is.** It learned *simulated* promoters (the planted-motif simulator: six yeast JASPAR
motifs, GC and poly-dA:dT terms); it shows that the pipeline works end to end, not how yeast promoters
work: on the real Vaishnav et al. test sets a model like this scores about r 0.17 (native) and −0.35
(random). Expression is in the simulator's units, made to resemble the assay's 0–17 expression bins. For
a model trained on real data, import a released one (`crmnet download deepatt-complex`).

Wall time: {timing} ({platform.machine()}, {os.cpu_count()} CPUs).

![predicted vs measured](scatter.png)

![learning curve](learning_curve.png)

Files: `metrics.json` (test-set metrics), `run/` (checkpoints `best.ckpt`/`last.ckpt`, `config.json`, logs),
`store/` (prepared store), `data/` (simulated sequences with their ground truth).
"""
