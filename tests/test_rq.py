"""fapilog.rq: one trace from a request through its jobs, on a real Redis and real rq workers."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from redis import Redis
from rq import Queue, Retry
from rq.job import Job

import fapilog.rq
from fapilog import TraceIDMiddleware, bind_trace_headers, get_context, trace_headers
from tests.apps import rq_jobs, slow_stderr
from tests.support.queues import (
    HOSTILE_METADATA,
    LOAD,
    TRACEPARENT,
    W3C_TRACE,
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
from tests.support.servers import json_lines

DATABASE = 1  # of the session's Redis: the other queues' tests use others
WORKERS = {
    "worker": ["worker", "--worker-class", "tests.apps.rq_worker.Worker"],  # a forked work horse per job
    "worker-pool": ["worker-pool", "--num-workers", "2", "--worker-class", "tests.apps.rq_worker.SimpleWorker"],
}
JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DESCRIPTION = re.compile(r"tests\.apps\.rq_jobs\.\w+\((\d+)\)")  # how rq names a job in its lines: a(1)
DEQUEUED = re.compile(r": default: tests\.apps\.rq_jobs\.")  # rq's line as it takes a job up, before the run
UNTRACED: list[tuple[Callable[..., object], tuple[object, ...], Retry | None]] = [
    (rq_jobs.b, (3,), Retry(max=1)),  # raises once, rq retries it
    (rq_jobs.again, (3,), None),  # returns a Retry twice
    (rq_jobs.again_and_again, (), None),  # returns a Retry twice, the second past its max
]
RUNS = 2 * 3 + LOAD + 1 + 4 + 2 + 3 + 2  # the chains (A, B twice), the load, the failure, the hostile, the untraced


@pytest.fixture(scope="module")
def url(redis_url: str) -> str:
    return database(redis_url, DATABASE)


@pytest.fixture(scope="module")
def connection(url: str) -> Iterator[Redis]:
    connection = Redis.from_url(url)
    yield connection
    connection.close()


def _api(queue: Queue) -> FastAPI:
    """The web app: each endpoint enqueues a job while serving the request."""
    api = FastAPI()

    @api.post("/chain/{n}")
    def chain(n: int) -> dict[str, str]:
        return {"job_id": queue.enqueue(rq_jobs.a, n).id}

    @api.post("/work/{n}")
    def work(n: int) -> dict[str, str]:
        return {"job_id": queue.enqueue(rq_jobs.work, n).id}

    @api.post("/fail")
    def fail() -> dict[str, str]:
        return {"job_id": queue.enqueue(rq_jobs.fail).id}

    api.add_middleware(TraceIDMiddleware)
    return api


@pytest.fixture(scope="module", params=list(WORKERS))
def worker_run(request: pytest.FixtureRequest, url: str, connection: Redis) -> WorkerRun:
    """Publish the whole exercise, then let one ``rq worker --burst`` (or pool) run it to the end."""
    connection.flushdb()
    queue = rq_jobs.queue(connection)
    with capture_access() as access:
        requests = asyncio.run(send_requests(_api(queue)))
    # Published outside any request: the worker must replace or generate the trace.
    hostile = [queue.enqueue(rq_jobs.work, 10 + i, meta=meta).id for i, meta in enumerate(HOSTILE_METADATA)]
    untraced = [queue.enqueue(job, *args, retry=retry).id for job, args, retry in UNTRACED]
    command = [sys.executable, "-m", "rq.cli", *WORKERS[request.param], "--burst", "--url", url, rq_jobs.QUEUE]
    # PYTHONUNBUFFERED off, even where the environment sets it: a buffered print() must survive a work
    # horse (fapilog flushes it), and is one write: two worker-pool processes cannot interleave its halves.
    with run_worker(command, env={"PYTHONUNBUFFERED": ""}, exits=True) as lines:
        pass

    def chain(a_id: str) -> tuple[str, str]:
        b_id = Job.fetch(a_id, connection=connection).return_value()
        assert isinstance(b_id, str)
        return a_id, b_id

    return WorkerRun(
        lines=lines,
        access=access,
        chain_w3c=chain(requests.chain_w3c),
        chain_plain=chain(requests.chain_plain),
        failed=requests.failed,
        load=requests.load,
        hostile=hostile,
        untraced_retries=untraced,
    )


_about = about_by(JOB_ID, DESCRIPTION)


def _dequeued(record: dict[str, Any]) -> bool:
    """Whether *record* is rq's line that takes a job up: written before the run, it carries no trace."""
    return record["logger"] == "rq.worker" and DEQUEUED.search(record["message"]) is not None


def test_every_worker_line_is_json_but_the_jobs_own_prints(worker_run: WorkerRun) -> None:
    """configure_logging() in the worker class's module: rq's lines, the jobs' and fapilog's are JSON; print() stays print()."""
    assert sorted(worker_run.text) == ["task a 1 printed", "task a 2 printed"]
    assert any(record["logger"] == "rq.worker" for record in worker_run.records)


def test_request_and_its_jobs_share_one_trace_and_the_retried_job_is_a_child_of_its_cause(worker_run: WorkerRun) -> None:
    """Request -> A -> B (fails once, rq retries it): one trace, in rq's own lines about the jobs too."""
    messages = assert_chain(worker_run, _about, before_run=_dequeued)
    assert sum("exception raised while executing" in message for message in messages) == 1  # B's traceback
    assert sum("enqueued for retry" in message for message in messages) == 1
    assert sum("Job OK" in message for message in messages) == 2


def test_trace_id_that_is_no_w3c_id_travels_in_the_request_id_entry(worker_run: WorkerRun) -> None:
    assert_plain_chain(worker_run)


def test_200_jobs_from_200_concurrent_requests_carry_exactly_their_requests_trace(worker_run: WorkerRun) -> None:
    """The job's own line, rq's "Successfully completed", "Job OK" and "result is kept", the fapilog.task record."""
    assert_load(worker_run, _about, 5, before_run=_dequeued)


def test_a_job_never_finds_the_previous_jobs_context(worker_run: WorkerRun) -> None:
    """Before fapilog binds a run, the worker or work horse holds no trace; nor does rq's dequeue line."""
    assert_runs_find_no_context(worker_run, RUNS)
    dequeued = [record for record in worker_run.records if _dequeued(record)]
    assert len(dequeued) == RUNS and {record["trace_id"] for record in dequeued} == {None}


def test_a_failing_job_is_logged_once_and_rqs_traceback_line_carries_its_trace(worker_run: WorkerRun) -> None:
    (run,) = worker_run.task_records(worker_run.failed)
    assert (run["state"], run["retries"], run["level"]) == ("FAILURE", 0, "ERROR")
    (error,) = [r for r in worker_run.records if r["level"] == "ERROR" and r["logger"] == "rq.worker" and _about(r) == worker_run.failed]
    assert error["trace_id"] == run["trace_id"]
    assert "ValueError: fails always" in error["message"]


def test_hostile_metadata_runs_the_job_with_a_clean_trace_and_never_reaches_a_line(worker_run: WorkerRun) -> None:
    """Hostile id, broken traceparent, 100 kB tracestate, values that are no text, no metadata: each job runs."""
    assert_hostile_metadata_never_shows(worker_run)


def test_retries_of_a_job_published_outside_any_trace_continue_its_first_runs_trace(worker_run: WorkerRun) -> None:
    """An exception retry and a returned Retry: every attempt in the trace the first run started, none a child."""
    raised, returned, exhausted = (worker_run.task_records(job_id) for job_id in worker_run.untraced_retries)
    assert_one_trace(raised, ["RETRY", "SUCCESS"])
    assert_one_trace(returned, ["RETRY", "RETRY", "SUCCESS"])
    assert_one_trace(exhausted, ["RETRY", "FAILURE"])


def test_a_spawn_worker_runs_each_job_in_a_fresh_interpreter_inside_its_trace(url: str, connection: Redis) -> None:
    """The spawned horse imports the worker class's module, so it logs JSON too, with the job's trace."""
    connection.flushdb()
    bind_trace_headers({"traceparent": TRACEPARENT})
    publisher = get_context()["span_id"]
    job_id = rq_jobs.queue(connection).enqueue(rq_jobs.work, 7).id
    command = [sys.executable, "-m", "rq.cli", "worker", "--worker-class", "tests.apps.rq_worker.SpawnWorker"]
    with run_worker([*command, "--burst", "--url", url, rq_jobs.QUEUE], exits=True) as lines:
        pass
    records, text = json_lines(lines)
    assert text == []
    (run,) = [record for record in records if record["logger"] == "fapilog.task"]
    assert (run["task_id"], run["trace_id"], run["parent_span_id"], run["state"]) == (job_id, W3C_TRACE, publisher, "SUCCESS")
    about = [record for record in records if _about(record) in (job_id, 7) and not _dequeued(record)]
    assert {record["trace_id"] for record in about} == {W3C_TRACE} and len(about) == 5


def test_a_worker_given_a_job_class_of_its_own_leaves_its_jobs_untraced(connection: Redis, records: list[logging.LogRecord]) -> None:
    """``--job-class`` naming a class that is no fapilog.rq.Job: rq runs its jobs as ever, fapilog stays out."""

    class Plain(Job):
        pass

    connection.flushdb()
    queue = Queue("plain", connection=connection)
    job = queue.enqueue(rq_jobs.context)
    worker = fapilog.rq.SimpleWorker([queue], connection=connection, job_class=Plain)
    handlers = {how: signal.getsignal(how) for how in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.work(burst=True, logging_level="WARNING")
    finally:
        for how, handler in handlers.items():  # rq's worker installs its own in this process
            signal.signal(how, handler)
    assert worker.job_class is Plain
    assert _returned(Job.fetch(job.id, connection=connection))["trace_id"] is None
    assert [record for record in records if record.name == "fapilog.task"] == []


# Without a worker: publishing, and jobs run in the caller's own thread (Queue(is_async=False)).


def test_publishing_puts_the_trace_into_a_copy_of_meta_and_keeps_what_was_set(connection: Redis) -> None:
    """Inside a trace, every way to enqueue carries trace_headers(); the caller's dict and a foreign traceparent stay."""
    queue = rq_jobs.queue(connection)
    outside = queue.enqueue(rq_jobs.work, 1)
    bind_trace_headers({"traceparent": TRACEPARENT, "tracestate": "v=1"})
    headers = trace_headers()
    shared = {"tenant": "blue"}
    inside = queue.enqueue(rq_jobs.work, 2, meta=shared)
    foreign = f"00-{W3C_TRACE}-{'1' * 16}-00"
    kept = queue.enqueue(rq_jobs.work, 3, meta={"traceparent": foreign})
    (many,) = queue.enqueue_many([Queue.prepare_data(rq_jobs.work, (4,))])
    stored = [Job.fetch(job.id, connection=connection).meta for job in (outside, inside, kept, many)]
    assert stored[0] == {}
    assert stored[1] == {**headers, "tenant": "blue"} and shared == {"tenant": "blue"}
    assert headers["traceparent"] == f"00-{W3C_TRACE}-{get_context()['span_id']}-01" and headers["tracestate"] == "v=1"
    assert stored[2]["traceparent"] == foreign and stored[2]["X-Request-ID"] == W3C_TRACE
    assert stored[3] == headers


def _returned(job: Job) -> dict[str, Any]:
    """Return the context a ``context`` job returned."""
    value = job.return_value()
    assert isinstance(value, dict)
    return value


def test_a_synchronous_queue_runs_the_job_as_a_child_of_the_callers_trace_and_gives_the_context_back(
    connection: Redis, records: list[logging.LogRecord]
) -> None:
    queue = Queue("sync", connection=connection, is_async=False, job_class=fapilog.rq.Job)
    bind_trace_headers({"traceparent": TRACEPARENT, "baggage": "tenant=blue"})
    caller = get_context()
    headers = trace_headers()
    inside = _returned(queue.enqueue(rq_jobs.context))
    assert queue.enqueue(rq_jobs.fail).get_status() == "failed"
    assert get_context() == caller and trace_headers() == headers
    assert inside["trace_id"] == W3C_TRACE and inside["span_id"] not in (None, caller["span_id"])
    runs = [(r.trace_id, r.parent_span_id, r.state, r.levelname) for r in records if r.name == "fapilog.task"]  # type: ignore[attr-defined]
    assert runs == [(W3C_TRACE, caller["span_id"], "SUCCESS", "INFO"), (W3C_TRACE, caller["span_id"], "FAILURE", "ERROR")]


def test_with_the_task_log_off_no_record_is_written_and_the_context_still_comes_back(
    connection: Redis, records: list[logging.LogRecord]
) -> None:
    queue = Queue("sync", connection=connection, is_async=False, job_class=fapilog.rq.Job)
    logging.getLogger("fapilog.task").setLevel(logging.CRITICAL)
    bind_trace_headers({"X-Request-ID": "caller-3"})
    caller = get_context()
    assert _returned(queue.enqueue(rq_jobs.context))["trace_id"] == "caller-3"
    assert queue.enqueue(rq_jobs.fail).get_status() == "failed"
    assert get_context() == caller
    assert [record for record in records if record.name == "fapilog.task"] == []


def test_with_enqueue_each_forked_work_horse_writes_its_lines_before_it_exits(
    url: str, connection: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configure_logging(enqueue=True), a stderr that takes 50 ms a write: a horse ends with os._exit, where no atexit runs."""
    monkeypatch.setenv(slow_stderr.ENQUEUE_ENV, "1")
    connection.flushdb()
    job_ids = [rq_jobs.queue(connection).enqueue(rq_jobs.work, n).id for n in range(5)]
    with run_worker([sys.executable, "-m", "rq.cli", *WORKERS["worker"], "--burst", "--url", url, rq_jobs.QUEUE], exits=True) as lines:
        pass
    records, _ = json_lines(lines)
    assert sorted(record["task_id"] for record in records if record["logger"] == "fapilog.task") == sorted(job_ids)
    assert sorted(record["n"] for record in records if record["message"].startswith("work ")) == list(range(5))
