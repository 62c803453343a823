"""arq integration: one trace from the request through every job it causes.

Needs the ``arq`` extra (``pip install "fapilog-context[arq]"``)::

    redis = await create_pool(settings, job_serializer=fapilog.arq.serializer())

    # run: arq myapp.WorkerSettings --custom-log-dict fapilog.log_config.LOG_CONFIG
    @fapilog.arq.instrument
    class WorkerSettings:
        functions = [send_receipt]

arq has no hook where a job is published: the job serializer is one. Beside
arq's own fields, a job's payload carries ``trace_headers()`` under the key
``"fapilog"``; a worker that does not know it ignores it. In the worker, each
job runs in a fresh context bound from it by ``bind_trace_headers`` (the HTTP
edge's rules: hostile values are replaced) when arq starts the job, so
arq's own lines about the job carry its trace; the run is logged once on
``fapilog.task`` and leaves the worker's context as it found it. arq runs a
retried job from its stored payload again: fapilog stores it with the
failing run's trace and parent first, when they differ from what it carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import pickle
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from arq.constants import job_key_prefix
from arq.cron import CronJob
from arq.jobs import Deserializer, Serializer
from arq.typing import WorkerCoroutine
from arq.worker import Function, Retry, RetryJob, Worker, func

from fapilog._internal.tasks import FAILURE, RETRY, SUCCESS, Run, carried, current_run, end_run, message_headers, start_run

__all__ = ["instrument", "serializer"]

KEY: Final = "fapilog"
"""The payload key that carries the trace, beside arq's own (``t``, ``f``, ``a``, ``k``, ``et``)."""
_CANCELLED: Final = "CANCELLED"  # arq cancelled the job: a retry or a failure, told apart when it ends
_MAX_TRIES: Final = inspect.signature(Worker).parameters["max_tries"].default
_Settings = TypeVar("_Settings", bound=type)
_Hook = Callable[[dict[Any, Any]], Awaitable[Any]]

# The job run_job just read: the deserializer sets it in run_job's own task,
# which then awaits on_job_start and on_job_end (a job's task copies it).
_job: Final[contextvars.ContextVar[dict[str, Any] | None]] = contextvars.ContextVar("fapilog_arq_job", default=None)
_instrumented: Final[weakref.WeakSet[type]] = weakref.WeakSet()


def serializer(inner: Serializer = pickle.dumps) -> Serializer:
    """Return a job serializer that adds the current trace to every job *inner* serializes.

    For ``create_pool(..., job_serializer=...)`` where jobs are published;
    ``instrument`` sets the worker's own. Results go out unchanged.
    """

    def dumps(data: dict[str, Any]) -> bytes:
        if "s" not in data:  # a job; a result has its success flag
            headers = message_headers(None)
            if headers:
                data = {KEY: headers, **data}
        return inner(data)

    return dumps


def instrument(settings: _Settings) -> _Settings:
    """Carry the trace through every job of the worker *settings* (a class); return them.

    Sets the class's own job serializer and deserializer (wrapping those it
    had), ``on_job_start`` and ``on_job_end`` (its own run inside the trace),
    and wraps its functions and cron jobs to learn how each run ended. Use it
    as a class decorator; instrumenting again changes nothing.
    """
    if settings in _instrumented:
        return settings
    own = vars(settings)  # arq reads only the class's own attributes, never inherited ones
    retry_jobs: bool = own.get("retry_jobs", True)
    max_tries: int = own.get("max_tries", _MAX_TRIES)
    dumps: Serializer = own.get("job_serializer") or pickle.dumps
    loads: Deserializer = own.get("job_deserializer") or pickle.loads
    start: _Hook | None = own.get("on_job_start")
    end: _Hook | None = own.get("on_job_end")

    def traced(function: Any) -> Any:
        """Return *function* (a coroutine, an import path, a ``Function`` or ``CronJob``) wrapped for its outcome."""
        job = function if isinstance(function, Function | CronJob) else func(function)
        tries = max_tries if job.max_tries is None else job.max_tries
        return dataclasses.replace(job, coroutine=_outcome(job.coroutine, retry_jobs=retry_jobs, max_tries=tries))

    def deserializer(raw: bytes) -> dict[str, Any]:
        data = loads(raw)
        _job.set(data)
        return data

    async def on_job_start(ctx: dict[Any, Any]) -> None:
        data = _job.get() or {}
        headers = data.get(KEY)
        start_run(carried(headers) if isinstance(headers, dict) else {}, ctx["job_id"], data.get("f"), ctx["job_try"] - 1)
        if start is not None:
            await start(ctx)

    async def on_job_end(ctx: dict[Any, Any]) -> None:
        try:
            if end is not None:
                await end(ctx)
        finally:
            run = current_run()
            if run is not None and run.task_id == ctx["job_id"]:
                await _end(run, ctx, dumps)

    for name, value in (
        ("functions", [traced(function) for function in own.get("functions", ())]),
        ("cron_jobs", [traced(cron) for cron in own.get("cron_jobs") or ()]),
        ("job_serializer", serializer(dumps)),
        ("job_deserializer", deserializer),
        ("on_job_start", on_job_start),
        ("on_job_end", on_job_end),
    ):
        setattr(settings, name, value)
    _instrumented.add(settings)
    return settings


def _outcome(coroutine: WorkerCoroutine, *, retry_jobs: bool, max_tries: int) -> WorkerCoroutine:
    """Wrap a job *coroutine* so the run in progress learns how it ended: arq tells ``on_job_end`` nothing."""

    async def run(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        current = current_run()
        again = retry_jobs and ctx["job_try"] < max_tries  # whether arq would run it once more
        state = FAILURE
        try:
            result = await coroutine(ctx, *args, **kwargs)
            state = SUCCESS
            return result
        except (Retry, RetryJob):
            state = RETRY if again else FAILURE
            raise
        except asyncio.CancelledError:
            state = _CANCELLED if again else FAILURE
            raise
        finally:
            if current is not None and current.task_id == ctx["job_id"]:
                current.state = state

    run.__qualname__ = coroutine.__qualname__
    return run


async def _end(run: Run, ctx: dict[Any, Any], dumps: Serializer) -> None:
    """End *run*; before a retry, store the job with the run's trace and parent when it carried others."""
    try:
        if run.state == _CANCELLED:  # a worker's shutdown cancels run_job itself: arq runs the job again
            task = asyncio.current_task()
            run.state = RETRY if task is not None and task.cancelling() else FAILURE  # a timeout or an abort
        data = _job.get()
        if run.state == RETRY and data is not None:
            headers = message_headers(run.task_id)
            if data.get(KEY) != headers:
                # Not stored: the retry continues the trace it carried. Never a failure of arq's own handling.
                with contextlib.suppress(Exception):
                    await ctx["redis"].set(job_key_prefix + run.task_id, dumps({**data, KEY: headers}), xx=True, keepttl=True)
    finally:
        end_run(run)
