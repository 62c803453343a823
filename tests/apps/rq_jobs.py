"""The jobs the RQ tests run on a real worker: a request's job A enqueues B, which fails once."""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from rq import Queue, Retry, get_current_job
from rq.job import Job

import fapilog.rq
from fapilog import get_context

QUEUE = "default"

logger = logging.getLogger("tests.apps.rq_jobs")


def queue(connection: Redis) -> Queue:
    """Return the queue the tests publish to, with fapilog's job class."""
    return Queue(QUEUE, connection=connection, job_class=fapilog.rq.Job)


def _running() -> Job:
    job = get_current_job()
    assert job is not None
    return job


def a(n: int) -> str:
    """Log, print, then enqueue B: B continues this run's trace."""
    logger.info("task a %d", n, extra={"n": n})
    print(f"task a {n} printed")  # rq leaves stdout alone: fapilog flushes it, a forked horse would lose it
    return queue(_running().connection).enqueue(b, n, retry=Retry(max=1)).id


def b(n: int) -> int:
    """Fail on the first attempt; rq retries it at once, and the second succeeds."""
    attempt = 1 - (_running().retries_left or 0)
    logger.info("task b %d attempt %d", n, attempt, extra={"n": n})
    if attempt == 0:
        raise RuntimeError(f"b {n} fails once")
    return n


def work(n: int) -> int:
    """One of many: log once, return *n*."""
    logger.info("work %d", n, extra={"n": n})
    return n


def context() -> dict[str, Any]:
    """Return the context the job runs in."""
    return dict(get_context())


def fail() -> None:
    """Always raise: rq logs the traceback, fapilog one FAILURE record."""
    raise ValueError("fails always")


def again_and_again() -> Retry:
    """Ask rq to run it again, always: past the Retry's max, rq fails it."""
    return Retry(max=1)


def again(limit: int) -> Retry | dict[str, Any]:
    """Ask rq to run it again (a returned Retry) until it ran *limit* times; then return its context."""
    if (_running().number_of_retries or 0) < limit - 1:
        return Retry(max=limit)
    return dict(get_context())
