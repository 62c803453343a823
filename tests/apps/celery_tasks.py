"""The tasks the Celery tests run on a real worker: a request's task A enqueues B, which fails once."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, signals
from celery.app.task import Task

import fapilog.celery
from examples.fields import Shop
from fapilog import get_context

BROKER_ENV = "FAPILOG_TEST_BROKER"

logger = logging.getLogger("tests.apps.celery_tasks")
app = Celery("tests.apps.celery_tasks")
app.conf.update(
    broker_url=os.environ.get(BROKER_ENV, "memory://"),
    result_backend=os.environ.get(BROKER_ENV, "cache+memory://"),
    broker_connection_retry_on_startup=True,
    task_acks_late=False,
    worker_prefetch_multiplier=1,
)


@signals.task_prerun.connect(weak=False)
def probe(task: Task | None = None, **_: Any) -> None:
    """Log what a task run finds before fapilog binds it: connected first, it runs first."""
    logger.info("before bind: %s", get_context()["trace_id"], extra={"probe": True})


fapilog.celery.instrument(app)


@app.task(bind=True)
def a(self: Task, n: int) -> str:
    """Log, then enqueue B: B continues this run's trace."""
    logger.info("task a %d", n, extra={"n": n})
    print(f"task a {n} printed")  # Celery's stdout redirect: a JSON line with the trace too
    result: Any = b.delay(n)
    return str(result.id)


@app.task(bind=True, max_retries=3)
def b(self: Task, n: int) -> int:
    """Fail on the first attempt, retry a second later, succeed on the second.

    Not at once: under a concurrent pool the retry could finish before Celery
    stores the first attempt's RETRY state, which then overwrites SUCCESS.
    """
    logger.info("task b %d attempt %d", n, self.request.retries, extra={"n": n})
    if self.request.retries == 0:
        raise self.retry(exc=RuntimeError(f"b {n} fails once"), countdown=1)
    return n


@app.task
def work(n: int) -> int:
    """One of many: log once, return *n*."""
    logger.info("work %d", n, extra={"n": n})
    return n


@app.task
def context() -> dict[str, Any]:
    """Return the context the task runs in."""
    return dict(get_context())


@app.task
def fail() -> None:
    """Always raise: Celery logs the traceback, fapilog one FAILURE record."""
    raise ValueError("fails always")


@app.task
def fields() -> dict[str, Any]:
    """Log, then return the app fields the task runs with."""
    logger.info("fields", extra={"fields_probe": True})
    return Shop.current().model_dump()
