"""Files of ``crmnet design``: a graded library as a directory a lab can order from.

``OUT/`` (written atomically) holds

* ``designs.tsv``: one row per design — ``id``, ``target`` (the level), ``sequence`` (the full sequence with
  the assay's flanks), ``prediction`` (the objective, or the models' mean), one ``prediction_<name>`` per
  model and ``spread`` (their standard deviation) with several models, ``error`` (prediction − target),
  ``edits`` (substitutions from the lineage's start), ``gc`` (G+C fraction of the variable region),
  ``longest_homopolymer`` (touching the variable region), ``checks`` (the constraints it was checked
  against and passed, ``;``-separated, ``none`` without constraints), ``start_id`` (``random`` or the
  start sequence's id);
* ``designs.fasta``: the same sequences, ``>id target=… prediction=…``;
* ``designs.png``: prediction against level per design;
* ``config.json``: the :class:`~crmnet.design.library.DesignConfig`, the objective and the search.

Every design is checked again (:meth:`~crmnet.design.constraints.Constraints.require`, and the distance
between every pair) before anything is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from crmnet.design.constraints import Constraints, min_pairwise_distance
from crmnet.design.library import DesignConfig, Library, design_ids

SEARCH = "constrained steepest descent over valid single mutants towards each level"


def recheck(library: Library, config: DesignConfig) -> list[str]:
    """Check every design again; returns the names of the checks passed (RuntimeError if one fails)."""
    constraints = Constraints(config.constraints)
    constraints.require(library.codes, library.windows, library.start)
    passed = list(constraints.check(library.codes, library.windows, library.start))
    closest = min_pairwise_distance(library.codes)
    if closest is not None and closest < config.constraints.min_distance:
        raise RuntimeError(f"two designs are {closest} substitutions apart, below --min-distance "
                           f"{config.constraints.min_distance} (a bug)")
    return passed + (["distance"] if config.constraints.min_distance > 1 else [])


def library_rows(library: Library, config: DesignConfig, start_ids: Sequence[str] | None = None) -> list[dict]:
    """The rows of ``designs.tsv`` (checked again first, see :func:`recheck`)."""
    checks = ";".join(recheck(library, config)) or "none"
    constraints = Constraints(config.constraints)
    gc = constraints.gc_fraction(library.codes, library.windows)
    runs = constraints.longest_run(library.codes, library.windows)
    names = list(library.predictions)
    ids = design_ids(library, start_ids)
    rows = []
    for i in range(len(library)):
        row = {"id": ids[i], "target": float(library.target[i]),
               "sequence": "".join("ACGTN"[c] for c in library.codes[i, : library.lengths[i]]),
               "prediction": float(library.value[i])}
        if len(names) > 1:
            row.update({f"prediction_{n}": float(library.predictions[n][i]) for n in names})
            row["spread"] = float(library.spread[i])
        s = int(library.start_index[i])
        row.update(error=float(library.value[i] - library.target[i]),
                   edits=int((library.codes[i] != library.start[i]).sum()), gc=round(float(gc[i]), 4),
                   longest_homopolymer=int(runs[i]), checks=checks,
                   start_id="random" if s < 0 else (start_ids[s] if start_ids else str(s + 1)))
        rows.append(row)
    return rows


def write_library(library: Library, out: str | os.PathLike, config: DesignConfig, *, expression: str,
                  checkpoints: Sequence[str] = (), start_ids: Sequence[str] | None = None,
                  overwrite: bool = False) -> list[dict]:
    """Write the directory ``out`` (see the module docstring) atomically.

    Parameters
    ----------
    library : Library
        The designs found by :func:`crmnet.design.library.design_library` (D designs).
    out : path-like
        The output directory (refused if it exists unless ``overwrite``).
    config : DesignConfig
        The settings the library was designed with (written to ``config.json``).
    expression : str
        The objective, as text (figure title and ``config.json``).
    checkpoints : sequence of str
        The ``--checkpoint`` values, recorded.
    start_ids : sequence of str, optional
        Ids of the start sequences (``--start``); None: random starts.
    overwrite : bool
        Replace an output crmnet wrote earlier.

    Returns
    -------
    list of dict
        The D rows of ``designs.tsv`` (id, sequence, target, prediction, edits, GC, checks).
    """
    from crmnet.fsutil import atomic_path
    from crmnet.plot.common import save_png
    from crmnet.plot.design import library_figure
    from crmnet.tables import write_tsv

    rows = library_rows(library, config, start_ids)
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir()
        write_tsv(tmp / "designs.tsv", rows)
        with open(tmp / "designs.fasta", "w", encoding="utf-8") as fh:
            fh.writelines(f">{r['id']} target={r['target']:g} prediction={r['prediction']:.4g}\n{r['sequence']}\n"
                          for r in rows)
        (tmp / "config.json").write_text(json.dumps(
            {**config.to_dict(), "objective": expression, "checkpoints": list(checkpoints), "search": SEARCH,
             "lineages": library.designs_tried}, indent=2) + "\n", encoding="utf-8")
        per_model = {n: np.asarray(v) for n, v in library.predictions.items()} if len(library.predictions) > 1 else {}
        title = expression + (f" ({', '.join(os.path.basename(str(c)) for c in checkpoints)})" if checkpoints else "")
        save_png(library_figure(library.target, library.value, per_model, config.tolerance, title),
                 tmp / "designs.png")
    return rows
