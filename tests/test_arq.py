"""fapilog.arq: one trace from a request through its jobs, on a real Redis and a real arq worker.

arq pins an older Redis client than Celery's transport needs: these tests run
in their own session (``nox -s arq``) and are skipped where arq is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("arq", reason="arq's tests run in their own session: nox -s arq")

from arq.connections import ArqRedis, RedisSettings, create_pool  # noqa: E402
from arq.jobs import Job  # noqa: E402
from arq.worker import create_worker, func  # noqa: E402
from fastapi import FastAPI  # noqa: E402

import fapilog.arq  # noqa: E402
from fapilog import TraceIDMiddleware, bind_trace_headers, get_context, trace_headers  # noqa: E402
from tests.apps import arq_jobs  # noqa: E402
from tests.support.queues import (  # noqa: E402
    HOSTILE_METADATA,
    LOAD,
    TIMEOUT,
    TRACEPARENT,
    W3C_TRACE,
    Requests,
    WorkerRun,
    about_by,
    assert_chain,
    assert_hostile_metadata_never_shows,
    assert_load,
    assert_one_trace,
    assert_plain_chain,
    assert_runs_find_no_context,
    capture_access,
    database,
    run_worker,
    send_requests,
)

DATABASE = 3  # of the session's Redis: the other queues' tests use others
POLL_INTERVAL = 0.01
WORKER = ["tests.apps.arq_jobs.WorkerSettings", "--burst", "--custom-log-dict", "fapilog.log_config.LOG_CONFIG"]
JOB_ID = re.compile(r"[0-9a-f]{32}")  # arq's job ids: uuid4().hex
RUNS = 2 * 3 + LOAD + 1 + 4 + 2  # the chains (A, B twice), the load, the failure, the hostile, the untraced retry


@pytest.fixture(scope="module")
def url(redis_url: str) -> str:
    return database(redis_url, DATABASE)


def _api(pool: ArqRedis) -> FastAPI:
    """The web app: each endpoint enqueues a job while serving the request."""
    api = FastAPI()

    async def enqueue(function: str, *args: Any) -> dict[str, str]:
        job = await pool.enqueue_job(function, *args)
        assert job is not None
        return {"job_id": job.job_id}

    @api.post("/chain/{n}")
    async def chain(n: int) -> dict[str, str]:
        return await enqueue("a", n)

    @api.post("/work/{n}")
    async def work(n: int) -> dict[str, str]:
        return await enqueue("work", n)

    @api.post("/fail")
    async def fail() -> dict[str, str]:
        return await enqueue("fail")

    api.add_middleware(TraceIDMiddleware)
    return api


def _carrying(metadata: dict[str, object]) -> Callable[[dict[str, Any]], bytes]:
    """Return a job serializer that writes *metadata* where fapilog's carries the trace (nothing when empty)."""
    return lambda job: pickle.dumps({**job, fapilog.arq.KEY: metadata} if metadata else job)


async def _publish(url: str) -> tuple[Requests, list[str], list[str]]:
    """Send the requests, then the hostile and untraced jobs, through a producer pool with fapilog's serializer."""
    pool = await create_pool(RedisSettings.from_dsn(url), job_serializer=fapilog.arq.serializer())
    try:
        await pool.flushdb()
        requests = await send_requests(_api(pool))
        hostile = []
        for i, metadata in enumerate(HOSTILE_METADATA):  # published outside any request
            pool.job_serializer = _carrying(metadata)
            job = await pool.enqueue_job("work", 10 + i)
            assert job is not None
            hostile.append(job.job_id)
        pool.job_serializer = fapilog.arq.serializer()
        untraced = await pool.enqueue_job("b", 3)
        assert untraced is not None
        return requests, hostile, [untraced.job_id]
    finally:
        await pool.aclose()


async def _results(url: str, *job_ids: str) -> list[Any]:
    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        return [await Job(job_id, pool).result(timeout=TIMEOUT) for job_id in job_ids]
    finally:
        await pool.aclose()


@pytest.fixture(scope="module")
def worker_run(url: str) -> WorkerRun:
    """Publish the whole exercise, then let one ``arq ... --burst`` worker run it to the end."""
    with capture_access() as access:
        requests, hostile, untraced = asyncio.run(_publish(url))
    with run_worker([sys.executable, "-m", "arq", *WORKER], env={arq_jobs.REDIS_ENV: url}, exits=True) as lines:
        pass
    b_w3c, b_plain = asyncio.run(_results(url, requests.chain_w3c, requests.chain_plain))
    return WorkerRun(
        lines=lines,
        access=access,
        chain_w3c=(requests.chain_w3c, b_w3c),
        chain_plain=(requests.chain_plain, b_plain),
        failed=requests.failed,
        load=requests.load,
        hostile=hostile,
        untraced_retries=untraced,
    )


_about = about_by(JOB_ID)


def test_every_worker_line_is_json_but_the_jobs_own_prints(worker_run: WorkerRun) -> None:
    """--custom-log-dict fapilog.log_config.LOG_CONFIG: arq's lines, the jobs' and fapilog's are JSON, each once."""
    assert sorted(worker_run.text) == ["task a 1 printed", "task a 2 printed"]
    starting = [record for record in worker_run.records if record["message"].startswith("Starting worker for")]
    assert len(starting) == 1


def test_request_and_its_jobs_share_one_trace_and_the_retried_job_is_a_child_of_its_cause(worker_run: WorkerRun) -> None:
    """Request -> A -> B (raises Retry once): one trace, in arq's own lines about the jobs too."""
    messages = assert_chain(worker_run, _about)
    assert sum("retrying job" in message for message in messages) == 1
    assert sum(" ← " in message for message in messages) == 2  # arq's "done" line of A and of B's second run


def test_trace_id_that_is_no_w3c_id_travels_in_the_request_id_entry(worker_run: WorkerRun) -> None:
    assert_plain_chain(worker_run)


def test_200_jobs_from_200_concurrent_requests_carry_exactly_their_requests_trace(worker_run: WorkerRun) -> None:
    """arq's "→" and "←" lines, the job's own, the fapilog.task record."""
    assert_load(worker_run, _about, 4)


def test_a_job_never_finds_the_previous_jobs_context(worker_run: WorkerRun) -> None:
    """Before fapilog binds a run, its asyncio task holds no trace; once the run ended, it holds none again."""
    assert_runs_find_no_context(worker_run, RUNS)
    assert_runs_find_no_context(worker_run, RUNS, probe="probe_after")


def test_a_failing_job_is_logged_once_and_arqs_traceback_line_carries_its_trace(worker_run: WorkerRun) -> None:
    (run,) = worker_run.task_records(worker_run.failed)
    assert (run["state"], run["retries"], run["level"], run["task_name"]) == ("FAILURE", 0, "ERROR", "fail")
    (error,) = [r for r in worker_run.records if r["level"] == "ERROR" and r["logger"] == "arq.worker"]
    assert error["trace_id"] == run["trace_id"] and worker_run.failed in error["message"]
    assert "ValueError: fails always" in error["exception"]


def test_hostile_metadata_runs_the_job_with_a_clean_trace_and_never_reaches_a_line(worker_run: WorkerRun) -> None:
    """Hostile id, broken traceparent, 100 kB tracestate, values that are no text, no metadata: each job runs."""
    assert_hostile_metadata_never_shows(worker_run)


def test_retries_of_a_job_published_outside_any_trace_continue_its_first_runs_trace(worker_run: WorkerRun) -> None:
    """arq runs the stored job again: fapilog stores it first with the run's trace, which the retry continues."""
    (job_id,) = worker_run.untraced_retries
    assert_one_trace(worker_run.task_records(job_id), ["RETRY", "SUCCESS"])


# In process: an arq worker in the test's own event loop.


def test_the_module_exports_instrument_and_serializer() -> None:
    assert fapilog.arq.__all__ == ["instrument", "serializer"]


def test_the_serializer_adds_the_trace_to_jobs_only_inside_one_and_keeps_what_was_there() -> None:
    dumps = fapilog.arq.serializer()
    job = {"t": 1, "f": "work", "a": (1,), "k": {}, "et": 0}
    assert pickle.loads(dumps(job)) == job  # noqa: S301
    bind_trace_headers({"traceparent": TRACEPARENT})
    assert pickle.loads(dumps(job)) == {**job, "fapilog": trace_headers()}  # noqa: S301
    result = {**job, "s": True, "r": 1}
    assert pickle.loads(dumps(result)) == result  # noqa: S301
    foreign = {**job, "fapilog": {"traceparent": f"00-{W3C_TRACE}-{'1' * 16}-00"}}
    assert pickle.loads(dumps(foreign)) == foreign  # noqa: S301


class _Hooked:
    """Worker settings with the app's own hooks and a job that outlasts its timeout."""

    functions = [arq_jobs.context, func(arq_jobs.slow, timeout=0.2)]
    seen: list[tuple[str, str | None]] = []

    @staticmethod
    async def on_job_start(ctx: dict[Any, Any]) -> None:
        _Hooked.seen.append(("start", get_context()["trace_id"]))

    @staticmethod
    async def on_job_end(ctx: dict[Any, Any]) -> None:
        _Hooked.seen.append(("end", get_context()["trace_id"]))


def test_the_apps_own_hooks_run_inside_the_trace_and_a_timeout_is_a_failure(url: str, records: list[logging.LogRecord]) -> None:
    settings = fapilog.arq.instrument(fapilog.arq.instrument(_Hooked))  # twice: no change the second time

    async def run() -> Any:
        pool = await create_pool(RedisSettings.from_dsn(url), job_serializer=fapilog.arq.serializer())
        await pool.flushdb()
        bind_trace_headers({"traceparent": TRACEPARENT})
        inside = await pool.enqueue_job("context")
        timed_out = await pool.enqueue_job("slow")
        assert inside is not None and timed_out is not None
        worker = create_worker(dict(vars(settings)), redis_pool=pool, burst=True, handle_signals=False, poll_delay=0.01)
        try:
            await worker.main()
            return await inside.result(timeout=TIMEOUT)
        finally:
            await pool.aclose()  # the worker's own close() calls one redis deprecates

    inside = asyncio.run(run())
    assert inside["trace_id"] == W3C_TRACE
    assert sorted(_Hooked.seen) == [("end", W3C_TRACE)] * 2 + [("start", W3C_TRACE)] * 2
    runs = sorted((r.task_name, r.state, r.levelname) for r in records if r.name == "fapilog.task")  # type: ignore[attr-defined]
    assert runs == [("context", "SUCCESS", "INFO"), ("slow", "FAILURE", "ERROR")]


def test_a_job_a_stopping_worker_cancels_is_a_retry(url: str, records: list[logging.LogRecord]) -> None:
    """arq's warm stop cancels the jobs in progress and runs them again later: the run ends as RETRY."""

    async def run() -> None:
        started = asyncio.Event()

        async def waits(ctx: dict[Any, Any]) -> None:
            started.set()
            await asyncio.Event().wait()

        @fapilog.arq.instrument
        class Stopping:
            functions = [func(waits, name="waits")]

        pool = await create_pool(RedisSettings.from_dsn(url), job_serializer=fapilog.arq.serializer())
        await pool.flushdb()
        bind_trace_headers({"traceparent": TRACEPARENT})
        await pool.enqueue_job("waits")
        worker = create_worker(dict(vars(Stopping)), redis_pool=pool, handle_signals=False, poll_delay=0.01)
        running = asyncio.create_task(worker.async_run())
        try:
            await asyncio.wait_for(started.wait(), TIMEOUT)
            worker.handle_sig(signal.SIGTERM)
            with contextlib.suppress(asyncio.CancelledError):
                await running
            for _ in range(int(TIMEOUT / POLL_INTERVAL)):  # the cancelled run ends in its own task
                if any(record.name == "fapilog.task" for record in records):
                    break
                await asyncio.sleep(POLL_INTERVAL)
        finally:
            await pool.aclose()

    asyncio.run(run())
    runs = [(r.task_name, r.state, r.levelname, r.trace_id) for r in records if r.name == "fapilog.task"]  # type: ignore[attr-defined]
    assert runs == [("waits", "RETRY", "WARNING", W3C_TRACE)]
