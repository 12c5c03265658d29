"""Background jobs: one worker thread runs them in order, each with progress and a wall-clock limit.

A job is a function ``fn(progress) -> Result``. It reports with ``progress(done, total, message)``; that
call is also where the job stops when its time is up or it was cancelled (:class:`JobStopped`), so a
job is bounded in time without killing threads. Memory is bounded by the pages' size limits
(:class:`~crmnet.serve.config.ServeConfig`) and by the analyses working in chunks; at most ``max_queued``
jobs wait or run, and only the ``keep`` most recent finished jobs (with their files) are kept.

Errors a user can act on (:class:`~crmnet.errors.CrmnetError`) become the job's message; anything else
is logged with its traceback on the server and the page says only that an internal error happened.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from crmnet.errors import CrmnetError

log = logging.getLogger("crmnet.serve")


class JobStopped(CrmnetError):
    """A job stopped at its time limit or on request."""


class QueueFull(CrmnetError):
    """Too many jobs waiting: the page asks to try again later."""


@dataclass
class Result:
    """What a finished job shows and offers.

    context: values for the job kind's result template. files: name → (bytes, media type), served
    under ``/jobs/ID/files/NAME`` (figures and downloads).
    """

    context: dict
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)


@dataclass
class Job:
    """A job's state; ``state`` is queued, running, done, failed or stopped."""

    id: str
    kind: str
    title: str
    state: str = "queued"
    done: int = 0
    total: int = 1
    message: str = "waiting for the worker"
    error: str | None = None
    result: Result | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def finished_state(self) -> bool:
        """Whether the job is done, failed or stopped."""
        return self.state in ("done", "failed", "stopped")

    def status(self) -> dict:
        """The JSON the page polls."""
        end = self.finished or time.time()
        return {"id": self.id, "kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
                "message": self.message, "error": self.error,
                "elapsed": round(end - self.started, 1) if self.started else 0.0}


class JobManager:
    """The queue (see the module docstring).

    Parameters
    ----------
    seconds : wall-clock limit per job
    max_queued : jobs waiting or running before :meth:`submit` refuses
    keep : finished jobs kept
    """

    def __init__(self, seconds: float, max_queued: int, keep: int):
        self.seconds = seconds
        self.max_queued = max_queued
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmnet-job")

    def submit(self, kind: str, title: str, fn: Callable) -> Job:
        """Queue ``fn(progress)``; returns the job (raises :class:`QueueFull` when too many wait)."""
        with self._lock:
            active = sum(not j.finished_state for j in self._jobs.values())
            if active >= self.max_queued:
                raise QueueFull(f"{active} jobs are waiting or running (the limit is {self.max_queued}); "
                                "try again when one has finished")
            job = Job(secrets.token_hex(12), kind, title)
            self._jobs[job.id] = job
            self._forget_old()
        self._pool.submit(self._run, job, fn)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job ``job_id``, or None when there is none (or it was forgotten)."""
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """All kept jobs, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def stop(self, job_id: str) -> bool:
        """Ask a job to stop at its next progress report; False when there is no such job."""
        job = self.get(job_id)
        if job is not None:
            job.cancel.set()
        return job is not None

    def shutdown(self) -> None:
        """Cancel every job and wait for the workers to finish."""
        for job in self.jobs():
            job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.finished_state]
        for key in finished[: max(0, len(finished) - self.keep + 1)]:
            del self._jobs[key]

    def _run(self, job: Job, fn: Callable) -> None:
        job.started = time.time()
        job.state, job.message = "running", "started"
        deadline = job.started + self.seconds

        def progress(done: int, total: int, message: str) -> None:
            if job.cancel.is_set():
                raise JobStopped("stopped on request")
            if time.time() > deadline:
                raise JobStopped(f"stopped at the time limit of {self.seconds:g} s: give fewer sequences, models "
                                 "or generations")
            job.done, job.total, job.message = done, max(total, 1), message

        try:
            progress(0, 1, "started")
            job.result = fn(progress)
            job.state, job.done, job.message = "done", job.total, "finished"
        except JobStopped as exc:
            job.state, job.error = "stopped", str(exc)
        except CrmnetError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception:
            log.exception("job %s (%s) failed", job.id, job.kind)
            job.state, job.error = "failed", "internal error (the server log has the details)"
        finally:
            job.finished = time.time()
