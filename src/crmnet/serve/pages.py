"""What every page handler shares.

Rendering a page with the navigation and limits, reading a form, and queueing a job (the handlers are in
:mod:`crmnet.serve.routes`, the app in :mod:`crmnet.serve.app`).
"""

from __future__ import annotations

from crmnet.errors import CrmnetError, InputError
from crmnet.serve.jobs import QueueFull

PAGES = {"predict": "Predict", "explain": "Explain", "mutate": "Robustness", "evolve": "Evolve",
         "design": "Design", "models": "Models"}


def page(request, name: str, context: dict | None = None, status: int = 200):
    """Render template ``name`` with the models, limits and navigation every page shows."""
    state = request.app.state
    base = {"models": state.models, "limits": state.config, "pages": PAGES, "error": None, "form": {}}
    return state.templates.TemplateResponse(request, name, {**base, **(context or {})}, status_code=status)


def error_page(request, status: int, message: str):
    """The error page with HTTP ``status`` and ``message``.

    Parameters
    ----------
    request : starlette.requests.Request
        The request that failed.
    status : int
        The HTTP status code.
    message : str
        What went wrong, shown on the page.

    Returns
    -------
    starlette.templating._TemplateResponse
        The rendered ``error.html``.
    """
    return page(request, "error.html", {"status": status, "message": message}, status)


async def submit(request, template: str, kind: str, title: str, make, values: dict):
    """Check a submitted form and queue its job, or show the form again with the error.

    Run ``make()`` (checks the input, returns the job function; in a worker thread, so a large upload
    does not hold up other requests) and queue it; on a user error render ``template`` again with the
    message and the form as it was.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import RedirectResponse

    try:
        job = request.app.state.jobs.submit(kind, title, await run_in_threadpool(make))
    except QueueFull as exc:
        return page(request, template, {"error": str(exc), "form": values}, 503)
    except CrmnetError as exc:
        return page(request, template, {"error": str(exc), "form": values}, 400)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


async def read_form(request) -> tuple[dict, bytes | None, str | None]:
    """The form's text fields (lists for repeated names), an uploaded file's bytes and name."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    limit = request.app.state.config.max_request_bytes
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise InputError(None, f"the request body is {kind or 'of no declared type'}, not a form: send the page's "
                               "form fields (multipart/form-data or application/x-www-form-urlencoded)")
    try:
        form = await request.form(max_files=1, max_fields=50, max_part_size=limit)
    except HTTPException as exc:
        raise InputError(None, f"cannot read the form: {exc.detail}") from None
    values: dict = {}
    upload = filename = None
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            if data:
                upload, filename = data, value.filename
        else:
            values.setdefault(key, []).append(value)
    await form.close()
    return {k: v if len(v) > 1 or k == "model" else v[0] for k, v in values.items()}, upload, filename
