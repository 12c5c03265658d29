"""The web application: routes, templates and the request-size guard (Starlette + Jinja2).

Pages (GET shows the form, POST checks the input and queues a job, then redirects to the job's page):
``/`` and ``/predict``, ``/explain``, ``/mutate``, ``/evolve``, ``/design``; ``/models`` lists the models;
``/jobs/ID`` shows a job's progress and then its results, ``/api/jobs/ID`` its status as JSON (polled by
the page), ``/jobs/ID/files/NAME`` its figures and downloads, ``POST /jobs/ID/stop`` stops it.

Safety: the only files served are the package's own static files and a job's in-memory results, named
by an unguessable id; request bodies over ``max_request_bytes`` are refused (HTTP 413) before they are
read; every error a user can cause is shown in the page as one sentence, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
from importlib.resources import files as package_files

from crmnet.serve.config import ServeConfig
from crmnet.serve.jobs import JobManager
from crmnet.serve.pages import error_page

log = logging.getLogger("crmnet.serve")


class TooLarge(Exception):
    """The request body is over the limit."""


class BodyLimit:
    """ASGI middleware limiting the size of a request body.

    ASGI middleware: a request whose body is over ``limit`` bytes raises :class:`TooLarge` when read
    (at once when its Content-Length says so), which the app answers with a 413 page.
    """

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        """Pass the request on, with a body reader that raises :class:`TooLarge` over ``limit`` bytes."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        received = int(declared) if declared.isdigit() and int(declared) > self.limit else 0

        async def limited():
            nonlocal received
            if received > self.limit:
                raise TooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise TooLarge
            return message

        return await self.app(scope, limited, send)


def _templates():
    from starlette.templating import Jinja2Templates

    templates = Jinja2Templates(directory=str(package_files("crmnet.serve") / "templates"))
    templates.env.filters["num"] = lambda v, digits=4: "" if v is None else f"{v:.{digits}g}"
    templates.env.filters["mb"] = lambda v: f"{v / 1048576:.3g} MB"
    return templates


async def _too_large(request, exc):
    limit = request.app.state.config.max_request_bytes
    return error_page(request, 413, f"The request is larger than the limit of {limit / 1048576:.3g} MB: upload "
                                    "a smaller file (or split it).")


async def _http_error(request, exc):
    messages = {404: "No such page (or the job was dropped: the server keeps only the most recent ones).",
                405: "This address does not accept that request."}
    return error_page(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)))


async def _server_error(request, exc):
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return error_page(request, 500, "Internal error: the server log has the details.")


@contextlib.asynccontextmanager
async def _lifespan(app):
    yield
    app.state.jobs.shutdown()  # running jobs stop at their next progress report


def create_app(models: dict, config: ServeConfig | None = None):
    """The ASGI application serving ``models`` (name → :class:`~crmnet.serve.models.ServedModel`)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from crmnet.serve import design, routes

    config = config or ServeConfig()
    app = Starlette(
        routes=[
            Route("/", routes.predict_page, methods=["GET", "POST"]),
            Route("/predict", routes.predict_page, methods=["GET", "POST"]),
            Route("/explain", routes.explain_page, methods=["GET", "POST"]),
            Route("/mutate", routes.mutate_page, methods=["GET", "POST"]),
            Route("/evolve", routes.evolve_page, methods=["GET", "POST"]),
            Route("/design", design.design_page, methods=["GET", "POST"]),
            Route("/models", routes.models_page),
            Route("/jobs/{job_id}", routes.job_page),
            Route("/api/jobs/{job_id}", routes.job_status),
            Route("/jobs/{job_id}/stop", routes.job_stop, methods=["POST"]),
            Route("/jobs/{job_id}/files/{name}", routes.job_file),
            Mount("/static", StaticFiles(directory=str(package_files("crmnet.serve") / "static")), name="static"),
        ],
        middleware=[Middleware(BodyLimit, limit=config.max_request_bytes)],
        exception_handlers={TooLarge: _too_large, HTTPException: _http_error, Exception: _server_error},
        lifespan=_lifespan,
    )
    app.state.models = models
    app.state.config = config
    app.state.templates = _templates()
    app.state.jobs = JobManager(config.job_seconds, config.max_queued, config.keep_jobs)
    return app
