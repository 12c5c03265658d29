"""``crmnet serve``: a small web application for biologists (predict, explain, mutate, evolve).

Server-rendered pages (Starlette + Jinja2, run by uvicorn) over the library: every analysis is a
background job (:mod:`~crmnet.serve.jobs`) with progress, bounded in time and in size; inputs are pasted
text or uploads only (:mod:`~crmnet.serve.inputs`), never a path on the server. Modules:

* :mod:`~crmnet.serve.config` — :class:`ServeConfig`, every limit in one place;
* :mod:`~crmnet.serve.models` — the models on offer (checkpoints, a directory, the zoo's downloads);
* :mod:`~crmnet.serve.inputs` — form fields → sequences, with the page's error messages;
* :mod:`~crmnet.serve.jobs` — the job queue;
* :mod:`~crmnet.serve.analyses` — what each page computes, as job functions;
* :mod:`~crmnet.serve.app` — the application, templates, the request-size guard;
* :mod:`~crmnet.serve.routes` — the page handlers.

The web dependencies (the ``serve`` extra) are imported only here, so the rest of crmnet runs without them.
"""
