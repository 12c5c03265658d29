"""The Design page: graded promoter libraries under the lab's constraints (what ``crmnet design`` makes).

The form gives the levels, designs per level, the constraints of
:class:`~crmnet.design.constraints.ConstraintConfig` and one or several models (several: their mean,
penalised by their disagreement). The job runs :func:`crmnet.design.library.design_library` and writes
the library with :func:`crmnet.design.library_io.write_library` (the same checks and files as the
command), then offers ``designs.tsv``, ``designs.fasta`` and ``designs.png`` and shows each design's
prediction, level and checks.
"""

from __future__ import annotations

from collections.abc import Callable

from crmnet.errors import InputError
from crmnet.serve.analyses import PNG, TSV
from crmnet.serve.jobs import Result
from crmnet.serve.routes import _chosen, _form_page, _number, form_constraints

FASTA = "text/plain; charset=utf-8"


def design_config(values: dict, limits):
    """The :class:`~crmnet.design.library.DesignConfig` of a submitted form (errors name the field)."""
    from crmnet.design.library import DesignConfig

    text = str(values.get("levels", "")).strip()
    try:
        levels = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(None, f"levels: {text!r} is not a comma-separated list of numbers") from None
    per_level = _number(values, "per_level", 3, int, 1, limits.max_designs)
    if len(levels) * per_level > limits.max_designs:
        raise InputError(None, f"{len(levels)} levels × {per_level} designs = {len(levels) * per_level} designs: "
                               f"more than the limit of {limits.max_designs}")
    rules = form_constraints(values)
    steps = limits.max_generations
    return DesignConfig(levels=levels, per_level=per_level, seed=_number(values, "seed", 0, int, 0, 2**31 - 1),
                        tolerance=_number(values, "tolerance", 0.1, float, 1e-6, 100.0),
                        max_steps=_number(values, "max_steps", min(60, steps), int, 1, steps),
                        disagreement=_number(values, "disagreement", 1.0, float, 0.0, 100.0), constraints=rules)


def design_job(models: list, config, batch_size: int) -> Callable:
    """A graded library under ``models`` (:class:`~crmnet.serve.models.ServedModel`; several: their mean)."""
    import tempfile
    from pathlib import Path

    from crmnet.design.library import LibraryScorer, design_library
    from crmnet.design.library_io import write_library
    from crmnet.design.oracle import ModelPredictor

    def run(progress) -> Result:
        scorer = LibraryScorer({m.name: ModelPredictor(m.model, batch_size=batch_size * 4) for m in models})
        library = design_library(scorer, config, progress=progress)
        with tempfile.TemporaryDirectory(prefix="crmnet-design-") as tmp:
            out = Path(tmp) / "library"
            rows = write_library(library, out, config, expression=scorer.expression,
                                 checkpoints=[m.name for m in models])
            files = {"designs.tsv": ((out / "designs.tsv").read_bytes(), TSV),
                     "designs.fasta": ((out / "designs.fasta").read_bytes(), FASTA),
                     "designs.png": ((out / "designs.png").read_bytes(), PNG)}
        hits = sum(abs(r["error"]) <= config.tolerance for r in rows)
        return Result({"rows": rows, "models": [m.name for m in models], "expression": scorer.expression,
                       "wanted": len(config.levels) * config.per_level, "hits": hits, "config": config.to_dict(),
                       "checks": rows[0]["checks"] if rows else "none", "lineages": library.designs_tried}, files)

    return run


async def design_page(request):
    """The Design form: POST queues a graded-library job under the chosen models."""
    def make(values, upload, filename, limits):
        return design_job(_chosen(request, values), design_config(values, limits), limits.batch_size)

    return await _form_page(request, "design", "Design", make)
