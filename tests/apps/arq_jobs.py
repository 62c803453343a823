"""The jobs and worker settings of the arq tests: a request's job A enqueues B, which fails once and retries.

Run as the README says: ``arq tests.apps.arq_jobs.WorkerSettings --custom-log-dict fapilog.log_config.LOG_CONFIG``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
from typing import Any

from arq import Retry
from arq.connections import ArqRedis, RedisSettings
from arq.worker import func

import fapilog.arq
from fapilog import get_context

REDIS_ENV = "FAPILOG_TEST_ARQ_REDIS"

logger = logging.getLogger("tests.apps.arq_jobs")


def probed_loads(raw: bytes) -> dict[str, Any]:
    """Deserialize a job as arq does by default, logging first what its run finds before fapilog binds it."""
    logger.info("before bind: %s", get_context()["trace_id"], extra={"probe": True})
    job: dict[str, Any] = pickle.loads(raw)  # noqa: S301  # the test's own Redis
    return job


async def a(ctx: dict[Any, Any], n: int) -> str:
    """Log, print, then enqueue B: B continues this run's trace."""
    logger.info("task a %d", n, extra={"n": n})
    print(f"task a {n} printed")  # arq leaves stdout alone
    redis: ArqRedis = ctx["redis"]  # the worker's own pool: its serializer is fapilog's
    job = await redis.enqueue_job("b", n)
    assert job is not None
    return job.job_id


async def b(ctx: dict[Any, Any], n: int) -> int:
    """Ask arq to run it again on the first attempt; the second succeeds."""
    attempt: int = ctx["job_try"] - 1
    logger.info("task b %d attempt %d", n, attempt, extra={"n": n})
    if attempt == 0:
        raise Retry(defer=0.01)
    return n


async def work(ctx: dict[Any, Any], n: int) -> int:
    """One of many: log once, return *n*."""
    logger.info("work %d", n, extra={"n": n})
    return n


async def fail(ctx: dict[Any, Any]) -> None:
    """Always raise: arq logs the traceback, fapilog one FAILURE record."""
    raise ValueError("fails always")


async def context(ctx: dict[Any, Any]) -> dict[str, Any]:
    """Return the context the job runs in."""
    return dict(get_context())


async def slow(ctx: dict[Any, Any]) -> None:
    """Outlast the job's timeout: arq cancels it."""
    await asyncio.Event().wait()


async def after_job_end(ctx: dict[Any, Any]) -> None:
    """Log what is left in the job's asyncio task once its run ended."""
    logger.info("after the run: %s", get_context()["trace_id"], extra={"probe_after": True})


@fapilog.arq.instrument
class WorkerSettings:
    """The worker: every job function, fapilog's hooks, and the probe inside the job deserializer."""

    functions = [a, b, work, fail, context, func(slow, timeout=0.2)]
    redis_settings = RedisSettings.from_dsn(os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/0"))
    job_deserializer = probed_loads
    after_job_end = after_job_end
    max_jobs = 10
    poll_delay = 0.05
