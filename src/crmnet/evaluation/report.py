"""``crmnet report``: gather evaluation outputs into figures 2–4 and a summary a person would read.

Inputs are evaluation directories written by ``crmnet evaluate`` (``metrics.json`` and/or ``peers.json``,
``predictions/<test>.tsv``, ``config.json``) or bare ``metrics.json`` files (one object per test set).
A directory's own model (``metrics.json``) is a *run*; the rows of a ``peers.json`` are *peers*.

The output directory (written atomically) holds ``report.md`` and ``report.html`` with the same content,
and PNG + PDF figures:

* ``fig2_<model>``: predicted vs measured density scatter per test set, for every run that kept its
  predictions (for a peer table alone: its first model, the Vaishnav transformer, as the reference);
* ``fig3_benchmark``: Pearson r and MSE, every model × test set;
* ``fig4_ablation``: Pearson r of the runs side by side, Δr against the first run (with two runs or more).

Differences between models are tested on the sequences both predicted (paired bootstrap of Δr and
Steiger's Z, :func:`crmnet.evaluation.metrics.compare_models`), recomputed here from the saved predictions so runs
from separate evaluations are compared with each other and with the peers.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crmnet.data.catalogue import TEST_SETS
from crmnet.errors import InputError
from crmnet.fsutil import atomic_path
from crmnet.progress import progress as progress_bar
from crmnet.tables import format_p, render


@dataclass
class ReportData:
    """Everything a report shows. rows: model → test → metrics; predictions: test → model → (seqs, y, p)."""

    rows: dict[str, dict[str, dict]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    predictions: dict[str, dict[str, tuple[list[str], np.ndarray, np.ndarray]]] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    notes: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @property
    def tests(self) -> list[str]:
        """The test sets with results: the standard ones in their order, then the others sorted."""
        seen = {t for row in self.rows.values() for t in row}
        return [t for t in TEST_SETS if t in seen] + sorted(seen - set(TEST_SETS))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None


def _is_metrics(obj) -> bool:
    """True for ``{test: {pearson_r, ...}}`` (one model), False for ``{model: {test: {...}}}``."""
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, dict) and "pearson_r" in v for v in obj.values())


def _unique(label: str, taken) -> str:
    """``label``, or ``label (2)``, ``label (3)``... when another input already used it."""
    k = 2
    name = label
    while name in taken:
        name, k = f"{label} ({k})", k + 1
    return name


def _read_predictions(path: Path) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    from crmnet.evaluation.outputs import read_predictions_tsv

    measured, preds = read_predictions_tsv(path)
    with open(path, encoding="utf-8") as fh:
        next(fh)
        seqs = [line.split("\t", 2)[1] for line in fh if line.strip()]
    return seqs, measured, preds


def _add_dir(data: ReportData, path: Path) -> None:
    config = _read_json(path / "config.json") if (path / "config.json").is_file() else {}
    renamed: dict[str, str] = {}
    found = False
    if (path / "metrics.json").is_file():
        metrics = _read_json(path / "metrics.json")
        if not _is_metrics(metrics):
            raise InputError(path / "metrics.json", "expected one object of metrics per test set")
        primary = config.get("primary") or path.name
        label = _unique(primary, data.rows)
        renamed[primary] = label
        data.rows[label] = metrics
        data.runs.append(label)
        found = True
        for test, info in (config.get("models", {}).get(primary, {}).get("tests") or {}).items():
            if "encoding_message" in info:
                data.notes.setdefault(label, {})[test] = info["encoding_message"]
        desc = config.get("models", {}).get(primary, {}).get("encoding_description")
        if desc:
            data.encodings[label] = desc
    if (path / "peers.json").is_file():
        for model, row in _read_json(path / "peers.json").items():
            if model in renamed or model == config.get("primary"):
                continue
            if model in data.rows:  # the same peer from another input: keep the first
                continue
            data.rows[model] = row
            renamed[model] = model
            found = True
    if not found:
        raise InputError(path, "no metrics.json or peers.json here: not a `crmnet evaluate` output")
    pred_dir = path / "predictions"
    for tsv in sorted(pred_dir.glob("*.tsv")) if pred_dir.is_dir() else []:
        seqs, y, preds = _read_predictions(tsv)
        for model, p in preds.items():
            if model in renamed and renamed[model] not in data.predictions.get(tsv.stem, {}):
                data.predictions.setdefault(tsv.stem, {})[renamed[model]] = (seqs, y, p)


def load_inputs(paths: list[str | os.PathLike]) -> ReportData:
    """Read evaluation directories and metrics.json files into one :class:`ReportData`."""
    if not paths:
        raise InputError(None, "no inputs: give evaluation directories or metrics.json files")
    data = ReportData()
    for p in map(Path, paths):
        data.sources.append(str(p))
        if p.is_dir():
            _add_dir(data, p)
        elif p.is_file():
            obj = _read_json(p)
            if _is_metrics(obj):
                label = _unique(p.parent.name or p.stem, data.rows)
                data.rows[label] = obj
                data.runs.append(label)
            elif isinstance(obj, dict) and obj and all(_is_metrics(v) for v in obj.values()):
                for model, row in obj.items():
                    data.rows.setdefault(model, row)
            else:
                raise InputError(p, "not a metrics.json (test → metrics) or peers.json (model → test → metrics)")
        else:
            raise InputError(p, "no such file or directory")
    return data


def comparisons(data: ReportData, n_boot: int = 1000, seed: int = 0, progress: bool = False) -> list[dict]:
    """Pairs of models with predictions on the same test set, aligned by sequence.

    Every pair that involves a run (each run against the peers and the other runs), or every pair when there
    are no runs. progress: show one step per pair (its bootstrap is most of the time; log lines when not on a
    terminal). Each gets ``q_bh``: its Steiger p adjusted (Benjamini-Hochberg) over all the pairs of the
    report.
    """
    from crmnet.evaluation.metrics import adjust_pvalues, compare_models

    pairs = []
    for test in data.tests:
        names = list(data.predictions.get(test, {}))
        has_run = any(n in data.runs for n in names)
        pairs += [(test, a, b) for i, a in enumerate(names) for b in names[i + 1 :]
                  if not has_run or a in data.runs or b in data.runs]
    out = []
    with progress_bar(total=len(pairs), desc="compare", unit="pair", enable=progress and bool(pairs)) as bar:
        for test, a, b in pairs:
            sa, ya, pa = data.predictions[test][a]
            sb, _, pb = data.predictions[test][b]
            index = {s: k for k, s in enumerate(sb)}
            rows = [(k, index[s]) for k, s in enumerate(sa) if s in index]
            ia = np.array([r[0] for r in rows], dtype=np.int64)
            ib = np.array([r[1] for r in rows], dtype=np.int64)
            ok = np.isfinite(pa[ia]) & np.isfinite(pb[ib])
            if ok.sum() >= 4:
                c = compare_models(ya[ia][ok], pa[ia][ok], pb[ib][ok], n_boot=n_boot, seed=seed)
                out.append({"test": test, "model_a": a, "model_b": b, **c})
            bar.update(1)
    for c, q in zip(out, adjust_pvalues([c["p"] for c in out], "bh")):
        c["q_bh"] = float(q)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}f}"


def _coverage(m: dict) -> str:
    """Share of the test set's rows that were scored (older metrics files do not say: n/a)."""
    cov = m.get("coverage")
    return "n/a" if not cov else f"{cov['fraction']:.1%} of {cov['test_rows']:,}"


def _with_ci(m: dict, key: str, digits: int = 4) -> str:
    ci = (m.get("bootstrap") or {}).get(key)
    text = _fmt(m.get(key), digits)
    return f"{text} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else text


def _blocks(data: ReportData, figures: dict[str, str], comps: list[dict], title: str) -> list[tuple]:
    """The report as blocks: ("h", level, text), ("p", text), ("table", header, rows), ("img", file, alt)."""
    tests = data.tests
    b: list[tuple] = [("h", 1, title)]
    b.append(("p", "Inputs: " + ", ".join(f"`{s}`" for s in data.sources) + "."))
    b.append(("p", ("Definitions: **r** is Pearson's correlation (two-tailed p); **r²** is r squared, which the "
                   "CRMnet paper calls \"R²\"; **R²** here is the coefficient of determination "
                   "1 − SS_res/SS_tot of the predictions as they are (lower than r² when predictions are "
                   "biased or mis-scaled). Brackets: bootstrap 95 % intervals where computed. **coverage**: "
                   "the share of the test set's rows scored (every row, repeated sequences included).")))
    b.append(("h", 2, "Benchmark: Pearson r; MSE (N)"))
    b.append(("table", ["model", *tests],
              [[model, *[f"{_fmt(row[t]['pearson_r'])}; {_fmt(row[t]['mse'], 3)} ({row[t]['n']:,})" if t in row
                         else "—" for t in tests]] for model, row in data.rows.items()]))
    if "fig3" in figures:
        b.append(("img", figures["fig3"], "Figure 3: Pearson r and MSE, models × test sets"))
    for test in tests:
        have = [(model, row[test]) for model, row in data.rows.items() if test in row]
        b.append(("h", 3, f"{test}: all metrics"))
        b.append(("table", ["model", "N", "coverage", "r", "p", "Spearman ρ", "r² (paper's R²)",
                            "R² (1 − SS_res/SS_tot)", "MSE", "MAE"],
                  [[model, _fmt(m["n"]), _coverage(m), _with_ci(m, "pearson_r"), format_p(m["pearson_p"], None),
                    _fmt(m["spearman_r"]),
                    _fmt(m["pearson_r_squared"]), _fmt(m["r2"]), _with_ci(m, "mse"), _fmt(m["mae"])]
                   for model, m in have]))
    b += _interval_blocks(data)
    fig2 = [k for k in figures if k.startswith("fig2:")]
    if fig2:
        b.append(("h", 2, "Predicted vs measured (Figure 2)"))
        for key in fig2:
            b.append(("img", figures[key], f"Figure 2: {key[5:]}, predicted vs measured"))
    if comps:
        b.append(("h", 2, "Are the differences real? (paired tests on the same sequences)"))
        n_boot = comps[0]["n_boot"]
        b.append(("p", ("Δr = r_a − r_b on the sequences both models predicted; the interval and p come from a "
                       f"paired bootstrap of {n_boot:,} replicates (both models resampled together; the smallest "
                       f"p it can give is {2 / (n_boot + 1):.2g}), and Steiger's (1980) Z test accounts for the "
                       "correlation between the two models' predictions; q is Steiger's p adjusted for the "
                       f"{len(comps)} comparisons (Benjamini-Hochberg).")))
        b.append(("table", ["test", "model a", "model b", "N", "Δr [95 % CI]", "bootstrap p", "Steiger Z",
                            "Steiger p", "q (BH)", "ΔMSE"],
                  [[c["test"], c["model_a"], c["model_b"], _fmt(c["n"]),
                    f"{c['delta_r']:+.4f} [{c['delta_r_ci'][0]:+.4f}, {c['delta_r_ci'][1]:+.4f}]",
                    format_p(c["bootstrap_p"], None), f"{c['steiger_z']:.2f}", format_p(c["steiger_p"], None),
                    format_p(c["q_bh"], None),
                    f"{c['delta_mse']:+.3f}"] for c in comps]))
    if "fig4" in figures:
        b.append(("h", 2, "Runs side by side (Figure 4)"))
        b.append(("img", figures["fig4"], "Figure 4: Pearson r of each run; dashed line: the first run"))
    elif len(data.runs) < 2:
        b.append(("p", "Figure 4 (ablations) needs two or more runs; give several evaluation directories."))
    if data.encodings or data.notes:
        b.append(("h", 2, "Encoding conventions"))
        b.append(("p", ("Each model was fed the raw test sequences in its own encoding. On complex-random, "
                       "CRMnet's layout (112 nt, end-padded/truncated) differs from Vaishnav's (last 110 nt, "
                       "left-padded) for every sequence that is not exactly 110 nt long.")))
        b.append(("table", ["model", "encoding"], list(map(list, data.encodings.items()))))
        b.append(("table", ["model", "test set", "what the encoding policy did"],
                  [[model, test, note] for model, notes in data.notes.items() for test, note in notes.items()]))
    return b


def _interval_blocks(data: ReportData) -> list[tuple]:
    """Coverage and mean width of calibrated models' intervals per test set (none: no blocks)."""
    have = [(model, test, m) for model, row in data.rows.items() for test, m in row.items() if m.get("intervals")]
    if not have:
        return []
    levels = list(have[0][2]["intervals"])
    return [("h", 2, "Prediction intervals: empirical coverage vs nominal level"),
            ("p", ("Conformal intervals of calibrated checkpoints (`crmnet calibrate`): the share of measured values "
                  "inside each interval, and its mean width. Exchangeable with the calibration set, coverage is at "
                  "least nominal; on another set it is only what is measured.")),
            ("table", ["model", "test", *(f"{level}: coverage (width)" for level in levels), "note"],
             [[model, test, *(f"{m['intervals'][k]['coverage']:.3f} ({m['intervals'][k]['mean_width']:.3g})"
                              if k in m["intervals"] else "—" for k in levels), m.get("calibration_note", "")]
              for model, test, m in have])]


def render_markdown(blocks: list[tuple]) -> str:
    """The report blocks (see :func:`_blocks`) as Markdown."""
    out = []
    for kind, *rest in blocks:
        if kind == "h":
            out.append("#" * rest[0] + " " + rest[1])
        elif kind == "p":
            out.append(rest[0])
        elif kind == "img":
            out.append(f"![{rest[1]}]({rest[0]}.png)\n\n*{rest[1]}* ([PDF]({rest[0]}.pdf))")
        elif kind == "table":
            out.append(render(*rest, style="markdown").rstrip("\n"))
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escape, then render the two inline marks the report uses: **bold** and `code`."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def render_html(blocks: list[tuple], title: str) -> str:
    """The report as a standalone HTML page.

    Parameters
    ----------
    blocks : list of tuple
        The report's content in order: ``("h", level, text)``, ``("p", text)`` (with ``**bold**`` and
        backtick ``code`` marks), ``("img", stem, caption)`` (``stem``.png shown, ``stem``.pdf linked) and
        ``("table", header, rows)``.
    title : str
        The page title.

    Returns
    -------
    str
        The HTML document.
    """
    body = []
    for kind, *rest in blocks:
        if kind == "h":
            body.append(f"<h{rest[0]}>{html.escape(rest[1])}</h{rest[0]}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(rest[0])}</p>")
        elif kind == "img":
            src, alt = html.escape(rest[0]), html.escape(rest[1])
            body.append(f'<figure><img src="{src}.png" alt="{alt}"><figcaption>{alt} '
                        f'(<a href="{src}.pdf">PDF</a>)</figcaption></figure>')
        elif kind == "table":
            header, rows = rest
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
             "td,th{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%}figure{margin:1em 0}")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def build_report(paths: list[str | os.PathLike], out: str | os.PathLike, *, title: str = "crmnet evaluation report",
                 n_boot: int = 1000, seed: int = 0, overwrite: bool = False, progress: bool = False) -> Path:
    """Write the evaluation report for ``paths`` into the directory ``out``.

    Write report.md, report.html and figures 2–4 (PNG + PDF) for ``paths`` into the directory ``out``.

    Parameters
    ----------
    paths : list of path-like
        Evaluation directories (``crmnet evaluate --out``) or metrics.json / peers.json files.
    out : path-like
        The report directory (atomic; refused if it exists unless ``overwrite``).
    title : str
        The report's heading.
    n_boot : int
        Bootstrap resamples of the paired comparisons.
    seed : int
        Seed of the bootstraps.
    overwrite : bool
        Replace an existing report crmnet wrote.
    progress : bool
        Show the paired comparisons' progress (:func:`comparisons`).

    Returns
    -------
    Path
        ``out``.
    """
    from crmnet.evaluation.metrics import compute_metrics
    from crmnet.plot import ablation_bars, benchmark_bars, figure2, save_figure

    data = load_inputs(paths)
    comps = comparisons(data, n_boot=n_boot, seed=seed, progress=progress)
    fig2_models = [r for r in data.runs if any(r in m for m in data.predictions.values())]
    if not fig2_models:
        fig2_models = [m for m in data.rows if any(m in p for p in data.predictions.values())][:1]
    out = Path(out)
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir()
        figures: dict[str, str] = {}
        for model in fig2_models:
            panels = [(test, data.predictions[test][model][1], data.predictions[test][model][2])
                      for test in data.tests if model in data.predictions.get(test, {})]
            panels = [(t, y[np.isfinite(p)], p[np.isfinite(p)]) for t, y, p in panels]
            panels = [(t, y, p, compute_metrics(y, p)) for t, y, p in panels]
            stem = f"fig2_{_slug(model)}"
            while stem in figures.values():
                stem += "_"
            save_figure(figure2(panels, suptitle=model), tmp / stem)
            figures[f"fig2:{model}"] = stem
        save_figure(benchmark_bars(data.rows, data.tests), tmp / "fig3_benchmark")
        figures["fig3"] = "fig3_benchmark"
        if len(data.runs) >= 2:
            save_figure(ablation_bars({r: data.rows[r] for r in data.runs}, data.tests), tmp / "fig4_ablation")
            figures["fig4"] = "fig4_ablation"
        blocks = _blocks(data, figures, comps, title)
        (tmp / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
        (tmp / "report.html").write_text(render_html(blocks, title), encoding="utf-8")
    return out
