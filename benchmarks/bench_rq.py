"""Per-job cost of fapilog.rq against the hand-written recipe: a Job class that carries a request id.

End to end: jobs enqueued from a request's context into Redis, then run by
an in-process ``SimpleWorker`` in burst mode (fapilog's, or rq's own with the
recipe's job class). The hooks alone: ``Job.create`` and ``Job.perform``
without Redis, less the same with rq's plain ``Job``.
"""

from __future__ import annotations

import contextvars
from typing import Any
from uuid import uuid4

import rq.job
import rq.worker
from asgi_correlation_id.context import correlation_id
from redis import Redis
from rq import Queue

import fapilog.rq
from benchmarks._queues import compare, request_contexts
from benchmarks._timing import Batch, Verdict


class RecipeJob(rq.job.Job):
    """The recipe: the request id into ``meta`` when created, into the ``ContextVar`` while performed."""

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> rq.job.Job:
        job = super().create(*args, **kwargs)
        job.meta["request_id"] = correlation_id.get()
        return job

    def perform(self) -> Any:
        token = correlation_id.set(self.meta.get("request_id") or uuid4().hex)
        try:
            return super().perform()
        finally:
            correlation_id.reset(token)


def job(n: int) -> int:
    """The job every case runs."""
    return n


def _through_redis(url: str, job_class: type[rq.job.Job], worker_class: type[rq.worker.BaseWorker], request: contextvars.Context) -> Batch:
    connection = Redis.from_url(url)
    queue = Queue("bench", connection=connection, job_class=job_class)

    def run(n: int) -> None:
        request.run(lambda: [queue.enqueue(job, i) for i in range(n)])
        worker = worker_class([queue], connection=connection, job_class=job_class)
        contextvars.Context().run(worker.work, burst=True, logging_level="WARNING")  # a worker's own context

    return run


def _hooks(job_class: type[rq.job.Job], request: contextvars.Context) -> Batch:
    connection = Redis()  # never connected: creating and performing a job needs no Redis

    def run(n: int) -> None:
        jobs = request.run(lambda: [job_class.create(job, args=(i,), connection=connection) for i in range(n)])
        for created in jobs:
            contextvars.Context().run(created.perform)

    return run


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    ours, recipe = request_contexts()
    return compare(
        "rq",
        rounds,
        lambda url: {
            "fapilog": _through_redis(url, fapilog.rq.Job, fapilog.rq.SimpleWorker, ours),
            "recipe": _through_redis(url, RecipeJob, rq.worker.SimpleWorker, recipe),
        },
        {"alone": _hooks(rq.job.Job, ours), "fapilog": _hooks(fapilog.rq.Job, ours), "recipe": _hooks(RecipeJob, recipe)},
        hooks_number=2_000,
    )
