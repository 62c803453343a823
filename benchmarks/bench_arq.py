"""Per-job cost of fapilog.arq against the hand-written recipe: the request id as a job argument.

The recipe enqueues ``request_id=correlation_id.get()`` with every job, and the
job sets the ``ContextVar`` and resets it. End to end: jobs enqueued from a
request's context into Redis, then run by an in-process arq worker in burst
mode. The hooks alone: what arq does with a job in its worker (deserialize,
a task per run, the job's own task), with fapilog's serializer, hooks and
wrapper, or the recipe's job, less the same with neither.
"""

from __future__ import annotations

import asyncio
import contextvars
import pickle
from collections.abc import Callable, Coroutine
from typing import Any
from uuid import uuid4

from arq.connections import RedisSettings, create_pool
from arq.worker import create_worker
from asgi_correlation_id.context import correlation_id

import fapilog.arq
from benchmarks._queues import compare, request_contexts
from benchmarks._timing import Batch, Verdict

_Job = Callable[..., Coroutine[Any, Any, Any]]


async def job(ctx: dict[Any, Any], n: int) -> int:
    """The job fapilog's cases run, and the hooks alone."""
    return n


async def recipe_job(ctx: dict[Any, Any], n: int, request_id: str | None = None) -> int:
    """The recipe's job: the request id it was given, in the ``ContextVar`` while it runs."""
    token = correlation_id.set(request_id or uuid4().hex)
    try:
        return n
    finally:
        correlation_id.reset(token)


@fapilog.arq.instrument
class Traced:
    """fapilog's worker settings."""

    functions = [job]


class Plain:
    """The recipe's worker settings."""

    functions = [recipe_job]


def _through_redis(url: str, settings: type, request: contextvars.Context, traced: bool) -> Batch:
    async def publish(n: int) -> None:
        serializer = fapilog.arq.serializer() if traced else None
        pool = await create_pool(RedisSettings.from_dsn(url), job_serializer=serializer)
        for i in range(n):
            if traced:
                await pool.enqueue_job("job", i)
            else:
                await pool.enqueue_job("recipe_job", i, request_id=correlation_id.get())
        await pool.aclose()

    async def work() -> None:
        worker = create_worker(dict(vars(settings)), redis_settings=RedisSettings.from_dsn(url), burst=True, handle_signals=False, poll_delay=0)
        await worker.main()
        await worker.pool.aclose()

    def run(n: int) -> None:
        request.run(asyncio.run, publish(n))
        contextvars.Context().run(asyncio.run, work())  # the worker's own context

    return run


def _hooks(request: contextvars.Context, kind: str) -> Batch:
    """Run arq's own steps for each job: (de)serialize, a task per run, the job's own task; fapilog's or the recipe's parts too."""
    traced = vars(Traced)
    dumps = traced["job_serializer"] if kind == "fapilog" else pickle.dumps
    loads = traced["job_deserializer"] if kind == "fapilog" else pickle.loads
    coroutine: _Job = traced["functions"][0].coroutine if kind == "fapilog" else job

    async def one(raw: bytes, ctx: dict[Any, Any]) -> None:
        data = loads(raw)
        if kind == "fapilog":
            await traced["on_job_start"](ctx)
        if kind == "recipe":
            await asyncio.create_task(recipe_job(ctx, *data["a"], **data["k"]))
        else:
            await asyncio.create_task(coroutine(ctx, *data["a"], **data["k"]))
        if kind == "fapilog":
            await traced["on_job_end"](ctx)

    def payload() -> bytes:
        kwargs = {"request_id": correlation_id.get()} if kind == "recipe" else {}
        return dumps({"t": 1, "f": "job", "a": (1,), "k": kwargs, "et": 0})

    async def runs(n: int) -> None:
        for i in range(n):
            raw = request.run(payload)
            ctx = {"job_id": str(i), "job_try": 1}
            await asyncio.create_task(one(raw, ctx), context=contextvars.Context())  # run_job's task

    return lambda n: asyncio.run(runs(n))


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    ours, recipe = request_contexts()
    return compare(
        "arq",
        rounds,
        lambda url: {"fapilog": _through_redis(url, Traced, ours, True), "recipe": _through_redis(url, Plain, recipe, False)},
        {"alone": _hooks(ours, "alone"), "fapilog": _hooks(ours, "fapilog"), "recipe": _hooks(recipe, "recipe")},
        hooks_number=2_000,
    )
