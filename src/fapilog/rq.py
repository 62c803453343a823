"""RQ integration: one trace from the request through every job it causes.

Needs the ``rq`` extra (``pip install "fapilog-context[rq]"``). Publish with fapilog's
job class, run with a worker class of its own::

    queue = Queue("default", connection=redis, job_class=fapilog.rq.Job)

    # myapp/worker.py; run: rq worker --worker-class myapp.worker.Worker
    configure_logging()          # before rq sets up its logging: every line JSON
    class Worker(fapilog.rq.Worker): ...

Publishing a job puts ``trace_headers()`` into a copy of its ``meta``; entries
someone else set stay. The worker runs rq's whole handling of each job
(``perform_job``) in a fresh context bound from them by ``bind_trace_headers``
(the HTTP edge's rules: hostile values are replaced), so rq's own lines about
the job ("Job OK", the failure's traceback, "enqueued for retry") carry its
trace; it logs the run once on ``fapilog.task`` and leaves the context as it
found it. A retried job goes out again with the failing run's trace and
parent. The job class alone traces a job run by any other worker, or in the
caller's thread (``Queue(is_async=False)``), around the job function only.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Final

import rq.job
import rq.queue
import rq.worker

from fapilog._internal.tasks import RETRY, SUCCESS, TRACE_NAMES, Run, carried, current_run, end_run, message_headers, start_run
from fapilog._internal.writer import flush_all

__all__ = ["Job", "SimpleWorker", "SpawnWorker", "Worker"]

RETRIES_KEY: Final = "fapilog_retries"
"""The ``meta`` entry that numbers a retried job's attempt: rq counts down the retries left, not those done."""


class Job(rq.job.Job):
    """A job that carries the trace: ``Queue(..., job_class=fapilog.rq.Job)``."""

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> rq.job.Job:
        """Create the job as rq does, with the current trace in a copy of its ``meta``."""
        job = super().create(*args, **kwargs)  # every way to enqueue (enqueue_at, _in, _many, dependents) comes here
        headers = message_headers(job.id)
        if headers:
            job.meta = {**headers, **job.meta}  # a new dict (rq keeps the caller's own); what was set stays
        return job

    def perform(self) -> Any:
        """Run the job function; as a run of its own unless a fapilog worker runs this job."""
        enclosing = current_run()
        run = enclosing if enclosing is not None and enclosing.task_id == self.id else _start(self)
        try:
            result = super().perform()
            if not isinstance(result, rq.job.Retry):
                run.state = SUCCESS
            elif (self.number_of_retries or 0) < result.max:  # rq runs it again; past the Retry's max, it fails
                run.state = RETRY
            return result
        except BaseException:
            if self.should_retry:  # rq retries it: job.retry() saves this job again
                run.state = RETRY
            raise
        finally:
            if run.state == RETRY:
                self._carry_retry(run)
            if run is not enclosing:
                _end(run)

    def _carry_retry(self, run: Run) -> None:
        """Send the next attempt with this run's trace, as a job it published: a child of what caused this run."""
        meta = {name: value for name, value in self.meta.items() if name not in TRACE_NAMES}
        self.meta = {**meta, **message_headers(self.id), RETRIES_KEY: run.retries + 1}


class _Traced(rq.worker.BaseWorker):
    """Runs rq's whole handling of each fapilog job, its own lines about it included, inside the job's trace."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("job_class") in (None, rq.job.Job):  # rq's CLI passes its default unless told otherwise
            kwargs["job_class"] = Job
        super().__init__(*args, **kwargs)

    def perform_job(self, job: rq.job.Job, queue: rq.queue.Queue, *args: Any, **kwargs: Any) -> bool:
        """Perform *job* as rq does, as one run of its trace; a job of another class untouched."""
        if not isinstance(job, Job):
            return super().perform_job(job, queue, *args, **kwargs)
        run = _start(job)
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            _end(run)


class Worker(_Traced, rq.worker.Worker):
    """rq's default worker, traced: each job in a forked work horse."""


class SimpleWorker(_Traced, rq.worker.SimpleWorker):
    """rq's worker that runs every job in its own process, without a work horse, traced."""


class SpawnWorker(_Traced, rq.worker.SpawnWorker):
    """rq's worker that spawns a fresh interpreter per job, traced."""


def _start(job: rq.job.Job) -> Run:
    """Start the run of *job*, bound from the trace its ``meta`` carries."""
    return start_run(carried(job.meta), job.id, job.func_name, job.meta.get(RETRIES_KEY))


def _end(run: Run) -> None:
    """End *run*, then flush ``print()`` output and queued lines: a forked work horse leaves by ``os._exit``, which drops them."""
    end_run(run)
    flush_all()  # configure_logging(enqueue=True): the writer thread's queue
    with contextlib.suppress(Exception):  # no stdout, or a closed one: nothing to lose, and no job to fail
        sys.stdout.flush()
