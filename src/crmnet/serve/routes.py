"""Page handlers of :mod:`crmnet.serve.app`: read the form, check it, queue the job (see the app's docstring)."""

from __future__ import annotations

import math

from crmnet.errors import CrmnetError, InputError
from crmnet.serve import analyses
from crmnet.serve.inputs import complete_flanks, read_sequences
from crmnet.serve.pages import page, read_form, submit


def _chosen(request, values: dict, field: str = "model", many: bool = True) -> list:
    """The models a form picked (at least one; names not on offer are an error)."""
    models = request.app.state.models
    names = values.get(field) or []
    names = [names] if isinstance(names, str) else names
    if not names:
        raise InputError(None, "choose at least one model" if many else "choose a model")
    unknown = [n for n in names if n not in models]
    if unknown:
        raise InputError(None, f"no model {unknown[0]!r} on this server")
    if not many and len(names) > 1:
        raise InputError(None, "choose one model")
    return [models[n] for n in names]


def _number(values: dict, name: str, default, kind=float, lo=None, hi=None):
    """A numeric form field (``default`` when empty), checked against [lo, hi]; errors name the field."""
    text = str(values.get(name, "")).strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise InputError(None, f"{name}: {text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(None, f"{name}: {text!r} is not a finite number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InputError(None, f"{name} {value:g} lies outside [{lo:g}, {hi:g}]")
    return value


# Command-line wording in library errors → the words of the evolve form (a page has fields, not flags).
_EVOLVE_WORDS = (("--mode ga", "the genetic algorithm"), ("--target", "GA target"), ("--population", "population"),
                 ("--generations", "generations"), ("--mutations", "mutations"), ("--mutation-rate", "GA mutation rate"),
                 ("--tolerance", "tolerance"), ("--elite", "elite"), ("--direction", "SSWM direction"),
                 ("--crossover", "crossover"), ("--mode", "mode"))


def _in_page_words(exc: InputError, words, hint: str | None) -> InputError:
    """``exc`` as the page says it: its flags replaced by the form's field names, the ``--invalid`` hint by ``hint``."""
    from crmnet.data.encoding import INVALID_HINT

    problem = exc.problem.replace(f"; {INVALID_HINT}", f"; {hint}" if hint else "")
    for flag, field in words:
        problem = problem.replace(flag, field)
    return InputError(exc.source, problem, line=exc.line)


def _sequences(request, values: dict, upload, filename, max_sequences: int, models: list, invalid: str = "error",
               flanks: bool = True):
    limits = request.app.state.config
    hint = "tick 'map characters other than A, C, G, T, N to N'" if request.url.path == "/predict" else None
    try:
        seqs = read_sequences(values.get("sequences", ""), upload, filename, fmt=values.get("format", "auto"),
                              max_sequences=max_sequences, max_length=limits.max_length, invalid=invalid,
                              max_bytes=limits.max_request_bytes)
    except InputError as exc:
        raise _in_page_words(exc, (), hint) from None
    return complete_flanks(seqs, [m.model.encoding for m in models]) if flanks and values.get("flanks") else seqs


async def _form_page(request, name: str, title: str, make):
    """GET shows the form ``name``.html.

    POST reads it and queues ``make(values, upload, filename, limits)`` (which checks the input and returns
    the job function); a form that cannot be read, or a user error in it, is shown in the page itself.
    """
    template = f"{name}.html"
    if request.method == "GET":
        return page(request, template)
    try:
        values, upload, filename = await read_form(request)
    except CrmnetError as exc:
        return page(request, template, {"error": str(exc)}, 400)
    limits = request.app.state.config
    return await submit(request, template, name, title, lambda: make(values, upload, filename, limits), values)


def _interval(values, models) -> float | None:
    """The form's interval level (empty: none), checked, and every chosen model calibrated."""
    from crmnet.evaluation.conformal import check_level, require_calibration

    text = (values.get("interval") or "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise InputError(None, f"the interval level must be a number between 0 and 1, got {text!r}") from None
    level = check_level(number, "the interval level")
    for served in models:
        require_calibration(served.model, served.name)
    return level


async def predict_page(request):
    """The prediction form: POST queues a job predicting the sequences under each chosen model."""
    def make(values, upload, filename, limits):
        models = _chosen(request, values)
        invalid = "N" if values.get("invalid") == "N" else "error"
        # the regions stay as given in the table (as crmnet predict writes them); predict completes them
        seqs = _sequences(request, values, upload, filename, limits.max_sequences, models, invalid, flanks=False)
        return analyses.predict_job(models, seqs, limits.batch_size, invalid, _interval(values, models),
                                    flanks=bool(values.get("flanks")))

    return await _form_page(request, "predict", "Predictions", make)


async def explain_page(request):
    """The explanation form: POST queues a job explaining one sequence under one model."""
    def make(values, upload, filename, limits):
        (served,) = _chosen(request, values, many=False)
        seqs = _sequences(request, values, upload, filename, 1, [served])
        threshold = _number(values, "threshold", 1e-4, float, 1e-10, 0.01)
        return analyses.explain_job(served, seqs.ids[0], seqs.sequences[0], threshold, tuple(seqs.notes))

    return await _form_page(request, "explain", "Explanation", make)


async def mutate_page(request):
    """The robustness and evolvability form: POST queues a mutagenesis job."""
    def make(values, upload, filename, limits):
        models = _chosen(request, values)
        seqs = _sequences(request, values, upload, filename, limits.max_mutate_sequences, models)
        epsilon = _number(values, "epsilon", None, float, 1e-6, 100.0)  # empty: each model's own
        return analyses.mutate_job(models, seqs, epsilon, limits.batch_size)

    return await _form_page(request, "mutate", "Robustness and evolvability", make)


def form_constraints(values: dict, distance: bool = True):
    """The :class:`~crmnet.design.constraints.ConstraintConfig` of a form's constraint fields (empty: off)."""
    from crmnet.design.constraints import ConstraintConfig, parse_forbid, parse_gc, parse_ranges

    gc = str(values.get("gc", "")).strip()
    return ConstraintConfig(
        protect=parse_ranges(str(values.get("protect", "")).strip()), gc=parse_gc(gc) if gc else None,
        forbid=parse_forbid(str(values.get("forbid", ""))),
        max_homopolymer=_number(values, "max_homopolymer", None, int, 1, 1000),
        max_edits=_number(values, "max_edits", None, int, 0, 1000),
        min_distance=_number(values, "min_distance", 1, int, 0, 1000) if distance else 1)


def _evolve_config(values: dict, limits, n_starts: int):
    from crmnet.design.evolve import EvolveConfig

    mode = values.get("mode", "sswm")
    # SSWM follows one lineage per start: a population typed for another mode is not its setting
    population = 1 if mode == "sswm" else _number(values, "population", 20, int, 1, limits.max_population)
    if n_starts * population > limits.max_lineages:
        raise InputError(None, f"{n_starts} start sequences × population {population} = {n_starts * population:,} "
                               f"sequences per generation: more than the limit of {limits.max_lineages:,}")
    target = _number(values, "target", None, float)
    try:
        return EvolveConfig(
            mode=mode, generations=_number(values, "generations", 10, int, 1, limits.max_generations),
            seed=_number(values, "seed", 0, int, 0, 2**31 - 1), direction=values.get("direction", "max"),
            mutations=_number(values, "mutations", 1, int, 1, 100), population=population,
            mutation_rate=_number(values, "mutation_rate", 0.01, float, 0.0, 1.0),
            crossover=_number(values, "crossover", 0.5, float, 0.0, 1.0), target=target if mode == "ga" else None,
            tolerance=_number(values, "tolerance", 0.1, float, 1e-6, 100.0),
            constraints=form_constraints(values, distance=False))
    except InputError as exc:
        raise _in_page_words(exc, _EVOLVE_WORDS, None) from None


async def evolve_page(request):
    """The evolution form: POST queues an evolution job under one or two models."""
    def make(values, upload, filename, limits):
        predictors = {"A": _chosen(request, values, "model_a", many=False)[0]}
        if values.get("model_b"):
            predictors["B"] = _chosen(request, values, "model_b", many=False)[0]
            if predictors["B"] is predictors["A"]:
                raise InputError(None, f"Model A and Model B are both {predictors['A'].name}: an objective "
                                       "comparing a model with itself (A - B) is 0 for every sequence; choose "
                                       "another Model B, or (none) to evolve under Model A alone")
        expression = (values.get("objective") or "A").strip()
        seqs = _sequences(request, values, upload, filename, limits.max_evolve_sequences, list(predictors.values()))
        config = _evolve_config(values, limits, len(seqs))
        return analyses.evolve_job(predictors, expression, seqs, config, limits.batch_size)

    return await _form_page(request, "evolve", "Evolution", make)


async def models_page(request):
    """The page listing the models this server offers.

    Parameters
    ----------
    request : starlette.requests.Request
        The GET request.

    Returns
    -------
    starlette.responses.Response
        The page.
    """
    return page(request, "models.html")


def _job(request):
    from starlette.exceptions import HTTPException

    job = request.app.state.jobs.get(request.path_params["job_id"])
    if job is None:
        raise HTTPException(404)
    return job


async def job_page(request):
    """A job's page: its status while it runs, its result when done."""
    job = _job(request)
    return page(request, "job.html", {"job": job, "result": job.result.context if job.result else None})


async def job_status(request):
    """A job's status as JSON (the job page polls it)."""
    from starlette.responses import JSONResponse

    return JSONResponse(_job(request).status())


async def job_stop(request):
    """Stop a job."""
    from starlette.responses import RedirectResponse

    job = _job(request)
    request.app.state.jobs.stop(job.id)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


async def job_file(request):
    """One file of a finished job: an image inline, anything else as a download.

    Parameters
    ----------
    request : starlette.requests.Request
        The request; its path names ``job_id`` and the file's ``name``.

    Returns
    -------
    starlette.responses.Response
        The file's bytes (404 for an unknown job or file).
    """
    from starlette.exceptions import HTTPException
    from starlette.responses import Response

    job = _job(request)
    name = request.path_params["name"]
    if job.result is None or name not in job.result.files:
        raise HTTPException(404)
    data, media = job.result.files[name]
    headers = {} if media.startswith("image/") else {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type=media, headers=headers)
