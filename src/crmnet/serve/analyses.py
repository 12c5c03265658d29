"""What each page computes, as job functions ``fn(progress) -> Result`` (:mod:`crmnet.serve.jobs`).

* :func:`predict_job` — :func:`crmnet.evaluation.predict.predict` for every chosen model, in the batches of
  ``crmnet predict`` (so the numbers are the same); table, distribution plot, and the TSV rows ``crmnet
  predict`` writes (:mod:`crmnet.evaluation.prediction_table`; ``prediction_<model>`` ... per model when
  several).
* :func:`explain_job` — one sequence: input × gradient saliency and saturation mutagenesis
  (:func:`crmnet.interpret.attribution.attribute`), and the yeast JASPAR motifs FIMO finds in it.
* :func:`mutate_job` — robustness and evolvability vectors per sequence and model (:mod:`crmnet.design`).
* :func:`evolve_job` — SSWM, GA or drift under one model or an objective over two (:mod:`crmnet.design`).

Everything is held in memory; the pages' limits (:class:`~crmnet.serve.config.ServeConfig`) bound it.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from crmnet.serve.inputs import FLANKS_OPTION, Sequences
from crmnet.serve.jobs import Result

PNG = "image/png"
TSV = "text/tab-separated-values; charset=utf-8"
SHOWN_ROWS = 1000  # rows drawn in a page's table; the download has all


def _png(fig) -> tuple[bytes, str]:
    from crmnet.plot.serve import figure_bytes

    return figure_bytes(fig), PNG


def predict_job(models: list, seqs: Sequences, batch_size: int, invalid: str = "error",
                interval: float | None = None, flanks: bool = False) -> Callable:
    """Predictions of ``seqs`` under each of ``models`` (:class:`~crmnet.serve.models.ServedModel`).

    ``invalid="N"``: characters outside ACGTN were mapped to N (as ``crmnet predict --invalid N``).
    ``interval``: a level in (0, 1) adds each model's conformal ``lower`` and ``upper`` bounds (as ``crmnet
    predict --interval``; every model must be calibrated, checked before the job is queued). ``flanks``:
    complete bare 80-nt regions for each model that reads whole constructs (as ``crmnet predict``; the
    table keeps the sequences as given).
    """
    from crmnet.evaluation.predict import EncodingStats, predict
    from crmnet.evaluation.prediction_table import PredictionColumns, header_line, prediction_lines, row_cells
    from crmnet.plot.serve import prediction_histogram

    def run(progress) -> Result:
        n, total = len(seqs), len(seqs) * len(models)
        values, notes, tables, columns = {}, list(seqs.notes), [], []
        for k, served in enumerate(models):
            # each model's prediction, its interval, then what its card adds (percentile, range flag)
            table = PredictionColumns.of(served.model, interval, "" if len(models) == 1 else f"_{served.name}")
            stats, parts = EncodingStats(), []
            for start in range(0, n, batch_size):
                progress(k * n + start, total, f"{served.name}: {start:,} of {n:,} sequences")
                parts.append(predict(served.model, seqs.sequences[start : start + batch_size], batch_size,
                                     invalid=invalid, source=seqs.source, stats=stats, members=True, flanks=flanks))
            values[served.name], cells = table.cells(np.concatenate(parts))
            tables.append(table)
            columns.append(cells)
            notes.append(f"{served.name}: {stats.message(served.model.encoding, FLANKS_OPTION)}")
        names = list(values)
        header = [name for table in tables for name in table.names]
        rows = list(zip(seqs.ids, seqs.sequences, row_cells(columns)))[:SHOWN_ROWS]
        tsv = header_line(tables) + "".join(prediction_lines(seqs.ids, seqs.sequences, columns))
        files = {"predictions.tsv": (tsv.encode(), TSV), "distribution.png": _png(prediction_histogram(values))}
        summary = [(m, float(values[m].mean()), float(values[m].min()), float(values[m].max())) for m in names]
        cards = [(m.name, t.card.summary()) for m, t in zip(models, tables)]
        if interval is not None:
            notes.append(f"lower and upper: conformal {interval:g} intervals of each calibrated model (they hold the "
                         "measured value with that probability for sequences like its calibration set)")
        return Result({"models": names, "header": header, "rows": rows, "n": n, "notes": notes,
                       "summary": summary, "cards": cards}, files)

    return run


def _hits(sequence: str, threshold: float) -> list[dict]:
    """FIMO matches of the yeast JASPAR CORE motifs in ``sequence`` (p ≤ ``threshold``), best first."""
    from crmnet.data.jaspar import load_yeast_motifs
    from crmnet.interpret.attribution import sequence_onehot
    from crmnet.interpret.scanning import scan

    rows = scan(load_yeast_motifs(), sequence_onehot([sequence]), threshold=threshold).rows()
    return sorted(rows, key=lambda r: r["p_value"])


def explain_job(served, ident: str, sequence: str, threshold: float, notes: tuple[str, ...] = ()) -> Callable:
    """Saliency, single-mutant Δ and motif matches of one sequence under one model (``notes``: shown with them)."""
    from crmnet.evaluation.predict import predict
    from crmnet.interpret.attribution import AttributionConfig, attribute
    from crmnet.interpret.teacher_score import substitution_effects
    from crmnet.plot.serve import explain_figure

    def run(progress) -> Result:
        model = served.model
        progress(0, 4, "prediction and saliency")
        value = float(predict(model, [sequence])[0])
        sal = attribute(model, [sequence], AttributionConfig(method="saliency"))
        progress(1, 4, "saturation mutagenesis")
        ism = attribute(model, [sequence], AttributionConfig(method="ism", ism_variable_only=False))
        x = ism.onehot[0]
        delta = np.where(ism.mask[0][None, :], substitution_effects(ism, fill=np.nan)[0], np.nan).astype(np.float32)
        progress(2, 4, "yeast JASPAR motifs")
        hits = _hits(sequence, threshold)
        progress(3, 4, "figure")
        saliency = sal.scores[0]
        title = f"{ident}: predicted {value:.4g} ({served.name})"
        lines = ["position_1based\tbase\tsaliency\tdelta_A\tdelta_C\tdelta_G\tdelta_T\n"]
        for j, base in enumerate(sequence.upper()):
            d = "\t".join("" if not np.isfinite(v) else f"{v:.6g}" for v in delta[:, j])
            lines.append(f"{j + 1}\t{base}\t{saliency[:, j].sum():.6g}\t{d}\n")
        motif_tsv = ["motif\tmatrix_id\tstart_1based\tend_1based\tstrand\tscore\tp_value\n"] + [
            f"{h['motif']}\t{h['matrix_id']}\t{h['start_1based']}\t{h['end_1based']}\t{h['strand']}\t{h['score']:.4g}\t"
            f"{h['p_value']:.3g}\n" for h in hits]
        files = {"explain.png": _png(explain_figure(x, saliency, delta, hits, title)),
                 "positions.tsv": ("".join(lines).encode(), TSV), "motifs.tsv": ("".join(motif_tsv).encode(), TSV)}
        best = np.nanargmax(np.where(np.isfinite(delta), delta, -np.inf))
        worst = np.nanargmin(np.where(np.isfinite(delta), delta, np.inf))
        effect = [(f"{sequence[j].upper()}{j + 1}{'ACGT'[b]}", float(delta[b, j]))
                  for b, j in (np.unravel_index(best, delta.shape), np.unravel_index(worst, delta.shape))]
        return Result({"model": served.name, "id": ident, "sequence": sequence, "prediction": value, "hits": hits,
                       "threshold": threshold, "best": effect[0], "worst": effect[1], "notes": list(notes)}, files)

    return run


def _chunk_size(windows: np.ndarray) -> int:
    """Sequences whose mutants go through the model together (about 8,192 mutants at a time)."""
    longest = int(max(1, (windows[:, 1] - windows[:, 0]).max(initial=1)))
    return max(1, 8192 // (3 * longest))


def mutate_job(models: list, seqs: Sequences, epsilon: float | None, batch_size: int) -> Callable:
    """Robustness and evolvability of every sequence under each model (windows: the variable region).

    ``epsilon`` None: each model's own ε (stored by ``crmnet ecc --write-epsilon``), else the default.
    """
    from crmnet.design.ecc import epsilon_for
    from crmnet.design.evolvability import Evolvability, evolvability
    from crmnet.design.mutagenesis import resolve_windows, saturate_codes
    from crmnet.design.oracle import ModelPredictor, encode_sequences
    from crmnet.design.outputs import write_evolvability_rows
    from crmnet.plot.design import evolvability_figure, heatmap_figure
    from crmnet.plot.serve import evolvability_vectors

    def run(progress) -> Result:
        codes, lengths = encode_sequences(seqs.sequences, seqs.source, seqs.lines)
        windows = resolve_windows(codes, lengths, None)
        step, n = _chunk_size(windows), len(seqs)
        files, tables = {}, []
        for k, served in enumerate(models):
            predictor = ModelPredictor(served.model, batch_size=batch_size * 4)
            eps, source = epsilon_for(served.model, epsilon)
            parts = []
            for s in range(0, n, step):
                progress(k * n + s, n * len(models), f"{served.name}: sequence {s + 1:,} of {n:,}")
                sat = saturate_codes(predictor, codes[s : s + step], lengths[s : s + step], windows[s : s + step])
                parts.append(evolvability(sat, eps))
                if s == 0:  # one heat map per model (the Explain page draws any sequence's)
                    files[f"heatmap_{k}.png"] = _png(heatmap_figure(sat, 0, f"{seqs.ids[0]} ({served.name})"))
            ev = _join(parts, Evolvability)
            buf = io.StringIO()
            write_evolvability_rows(buf, ev, seqs.ids, header=True)
            files[f"evolvability_{k}.tsv"] = (buf.getvalue().encode(), TSV)
            files[f"vectors_{k}.png"] = _png(evolvability_vectors(ev.vector, seqs.ids, eps, served.name))
            files[f"robustness_{k}.png"] = _png(evolvability_figure(ev.prediction, ev.robustness, eps,
                                                                    served.name))
            tables.append({"model": served.name, "index": k, "rows": list(zip(seqs.ids, ev.rows()))[:SHOWN_ROWS],
                           "first": seqs.ids[0], "epsilon": eps,
                           "epsilon_source": "your choice" if epsilon is not None else source})
        return Result({"tables": tables, "columns": Evolvability.COLUMNS, "epsilon": epsilon, "n": n,
                       "notes": seqs.notes}, files)

    return run


def _join(parts: list, cls):
    """Concatenate per-chunk Evolvability results (vectors NaN-padded to the longest)."""
    width = max(p.vector.shape[1] for p in parts)
    vectors = [np.pad(p.vector, ((0, 0), (0, width - p.vector.shape[1])), constant_values=np.nan) for p in parts]
    return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in
                  ("robustness", "max_gain", "max_loss", "mean_abs_delta", "prediction", "n_mutants")},
               gain_mutation=[m for p in parts for m in p.gain_mutation],
               loss_mutation=[m for p in parts for m in p.loss_mutation],
               vector=np.concatenate(vectors), epsilon=parts[0].epsilon)


def evolve_job(predictors: dict, expression: str, seqs: Sequences, config, batch_size: int) -> Callable:
    """An evolution run (:func:`crmnet.design.evolve.evolve`) with one progress step per generation.

    predictors: name in the objective → ServedModel; expression: the objective over those names.
    """
    from crmnet.design.evolve import evolve, trajectory_columns, trajectory_plot, trajectory_rows
    from crmnet.design.oracle import ModelPredictor, Objective, encode_sequences
    from crmnet.tables import tsv_row

    def run(progress) -> Result:
        objective = Objective({k: ModelPredictor(m.model, batch_size=batch_size * 4) for k, m in predictors.items()},
                              expression)
        codes0, lengths0 = encode_sequences(seqs.sequences, seqs.source, seqs.lines)
        lines = [tsv_row(trajectory_columns(list(predictors)))]
        gens, lins, objs, last = [], [], [], {}
        progress(0, config.generations, "generation 0")
        for gen in evolve(objective, seqs.sequences, config, seqs.source, seqs.lines):
            progress(gen.generation, config.generations, f"generation {gen.generation} of {config.generations}")
            for row in trajectory_rows(gen, codes0, lengths0, seqs.ids):
                lines.append(tsv_row(row))
                lineage, value, muts = row[1], row[-3], row[-1]
                best = last.get(lineage)
                if best is None or best["generation"] < gen.generation or _better(value, best["objective"], config):
                    last[lineage] = {"start_id": row[0], "generation": gen.generation, "objective": value,
                                     "sequence": row[4], "mutations": muts.split(";") if muts else []}
            gens.append(np.full(len(gen.lineage), gen.generation))
            lins.append(gen.lineage)
            objs.append(gen.objective)
        g, lin, obj = np.concatenate(gens), np.concatenate(lins), np.concatenate(objs)
        files = {"trajectory.png": _png(trajectory_plot(g, lin, obj, objective.expression, config)), "trajectory.tsv": ("".join(lines).encode(), TSV)}
        finals = [v for _, v in sorted(last.items())][:SHOWN_ROWS]
        return Result({"expression": objective.expression, "models": {k: m.name for k, m in predictors.items()},
                       "notes": seqs.notes,
                       "config": config.to_dict(), "finals": finals, "generations": int(g.max()),
                       "rows": len(lines) - 1}, files)

    return run


def _better(value: float, previous: float, config) -> bool:
    """Whether, within one generation, ``value`` is a better final pick than ``previous``."""
    if config.mode == "ga":
        return abs(value - config.target) < abs(previous - config.target)
    return value > previous if config.direction == "max" else value < previous
