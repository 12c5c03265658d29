"""The web application: routes, templates and the request-size guard (Starlette + Jinja2).

Pages (GET shows the form, POST checks the input and queues a job, then redirects to the job's page):
``/`` and ``/predict``, ``/explain``, ``/mutate``, ``/evolve``, ``/design``; ``/models`` lists the models;
``/jobs/ID`` shows a job's progress and then its results, ``/api/jobs/ID`` its status as JSON (polled by
the page), ``/jobs/ID/files/NAME`` its figures and downloads, ``POST /jobs/ID/stop`` stops it.

Safety: the only files served are the package's own static files and a job's in-memory results, named
by an unguessable id; request bodies over ``max_request_bytes`` are refused (HTTP 413) before they are
read, and an upload that decompresses past it is refused while it is inflated; a request that changes
state (POST) from another site (its ``Origin`` or ``Referer`` names another host than ``Host``) or, on a
loopback address, with a ``Host`` that is not a loopback name (DNS rebinding) is refused (HTTP 403); every
error a user can cause is shown in the page as one sentence, never a traceback.
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


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _netloc_host(netloc: str) -> str:
    """The host of ``host[:port]`` or ``[v6]:port``, lower case."""
    from urllib.parse import urlsplit

    return (urlsplit(f"//{netloc}").hostname or "").lower()


def cross_site_problem(method: str, headers: dict[bytes, bytes], allowed_hosts=None) -> str | None:
    """Why a request must be refused as cross-site, or None.

    Parameters
    ----------
    method : str
        The HTTP method; only state-changing ones (not GET, HEAD, OPTIONS) are checked.
    headers : dict of bytes to bytes
        The request headers (lower-case names), as ASGI gives them.
    allowed_hosts : collection of str, optional
        Host names the ``Host`` header may carry (e.g. :data:`LOOPBACK_HOSTS`); None: any.

    Returns
    -------
    str or None
        One sentence for the error page, or None when the request may go on.
    """
    from urllib.parse import urlsplit

    if method in _SAFE_METHODS:
        return None
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if allowed_hosts is not None and _netloc_host(host) not in allowed_hosts:
        return (f"This server answers as {', '.join(sorted(allowed_hosts))}, not {host or 'no host'}: open it by "
                "that address.")
    for name in (b"origin", b"referer"):
        value = headers.get(name)
        if value is None:
            continue
        source = urlsplit(value.decode("latin-1").strip())
        if source.netloc.lower() != host:
            return (f"A form sent from another site ({source.netloc or value.decode('latin-1')}) was refused: "
                    "submit it from this server's own page.")
        return None  # a browser sends Origin on every cross-site POST; Referer only when Origin is absent
    return None


class SameOrigin:
    """ASGI middleware refusing (HTTP 403) state-changing requests from other sites (:func:`cross_site_problem`)."""

    def __init__(self, app, allowed_hosts=None):
        self.app = app
        self.allowed_hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)

    async def __call__(self, scope, receive, send):
        """Answer 403 to a cross-site state-changing request; pass every other request on."""
        if scope["type"] == "http":
            problem = cross_site_problem(scope["method"], dict(scope.get("headers", [])), self.allowed_hosts)
            if problem is not None:
                from starlette.requests import Request

                response = error_page(Request(scope, receive), 403, problem)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)


def _templates():
    from starlette.templating import Jinja2Templates

    from crmnet.data.formats import FORMATS

    templates = Jinja2Templates(directory=str(package_files("crmnet.serve") / "templates"))
    templates.env.filters["num"] = lambda v, digits=4: "" if v is None else f"{v:.{digits}g}"
    templates.env.filters["mb"] = lambda v: f"{v / 1048576:.3g} MB"
    templates.env.globals["formats"] = FORMATS  # the format menu of every sequence form
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


def create_app(models: dict, config: ServeConfig | None = None, allowed_hosts=None):
    """The ASGI application serving ``models`` (name → :class:`~crmnet.serve.models.ServedModel`).

    ``allowed_hosts``: the host names a state-changing request's ``Host`` may carry (:data:`LOOPBACK_HOSTS`
    when listening on a loopback address); None accepts any (the ``Origin`` check still applies).
    """
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
        middleware=[Middleware(SameOrigin, allowed_hosts=allowed_hosts),
                    Middleware(BodyLimit, limit=config.max_request_bytes)],
        exception_handlers={TooLarge: _too_large, HTTPException: _http_error, Exception: _server_error},
        lifespan=_lifespan,
    )
    app.state.models = models
    app.state.config = config
    app.state.templates = _templates()
    app.state.jobs = JobManager(config.job_seconds, config.max_queued, config.keep_jobs)
    return app
