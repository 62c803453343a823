"""fapilog.dramatiq: one trace from a request through its messages, on a real Redis and a real dramatiq worker."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, AsyncIO, Retries
from fastapi import FastAPI

import fapilog.dramatiq
from examples.fields import Shop
from fapilog import TraceIDMiddleware, bind_fields, bind_trace_headers, get_context, trace_headers
from tests.apps import dramatiq_actors, slow_stderr
from tests.support.queues import (
    HOSTILE_METADATA,
    LOAD,
    TIMEOUT,
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

DATABASE = 2  # of the session's Redis: the other queues' tests use others
WORKER = ["--processes", "2", "--threads", "2", "--skip-logging"]
_READY = "Worker process is ready for action."  # each worker process says it once it consumes
RUNS = 2 * 3 + LOAD + 1 + 4 + 2  # the chains (A, B twice), the load, the failure, the hostile, the untraced retry
POLL_INTERVAL = 0.1
MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DESCRIPTION = re.compile(r"message (?:a|b|work)\((\d+)\)")  # how Dramatiq names a message in its lines: b(1)


@pytest.fixture(scope="module")
def url(redis_url: str) -> str:
    return database(redis_url, DATABASE)


@pytest.fixture(scope="module")
def broker(url: str) -> Iterator[RedisBroker]:
    """The test process's own instrumented broker, on the worker's Redis database."""
    broker = fapilog.dramatiq.instrument(RedisBroker(url=url))  # type: ignore[no-untyped-call]  # dramatiq's RedisBroker.__init__ has no annotations
    yield broker
    broker.close()


def _send(broker: RedisBroker, actor: dramatiq.Actor[Any, Any], *args: Any, **options: Any) -> str:
    """Send a message for *actor* through *broker*, as ``actor.send_with_options`` does through its own; return its id."""
    return broker.enqueue(actor.message_with_options(args=args, **options)).message_id


def _api(broker: RedisBroker) -> FastAPI:
    """The web app: each endpoint sends a message while serving the request."""
    api = FastAPI()

    @api.post("/chain/{n}")
    def chain(n: int) -> dict[str, str]:
        return {"job_id": _send(broker, dramatiq_actors.a, n)}

    @api.post("/work/{n}")
    def work(n: int) -> dict[str, str]:
        return {"job_id": _send(broker, dramatiq_actors.work, n)}

    @api.post("/fail")
    def fail() -> dict[str, str]:
        return {"job_id": _send(broker, dramatiq_actors.fail)}

    api.add_middleware(TraceIDMiddleware)
    return api


def _wait_for_runs(broker: RedisBroker, count: int) -> None:
    """Wait until the actors have started *count* runs (bounded)."""
    deadline = time.monotonic() + TIMEOUT
    while broker.client.llen(dramatiq_actors.RAN) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not start {count} runs")
        time.sleep(POLL_INTERVAL)


@pytest.fixture(scope="module")
def worker_run(url: str, broker: RedisBroker) -> WorkerRun:
    """Run ``dramatiq tests.apps.dramatiq_worker`` (2 processes, 2 threads each) through the whole exercise."""
    broker.client.flushdb()
    command = [sys.executable, "-m", "dramatiq", "tests.apps.dramatiq_worker", *WORKER]
    with capture_access() as access, run_worker(command, env={dramatiq_actors.BROKER_ENV: url}) as lines:
        requests = asyncio.run(send_requests(_api(broker)))
        # Sent outside any request: the worker must replace or generate the trace.
        hostile = [_send(broker, dramatiq_actors.work, 10 + i, **meta) for i, meta in enumerate(HOSTILE_METADATA)]
        untraced = [_send(broker, dramatiq_actors.b, 3)]
        _wait_for_runs(broker, RUNS)  # then SIGTERM: a warm shutdown finishes the runs in progress
    records, _ = json_lines(lines)
    sent = {record["n"]: record["sent"] for record in records if "sent" in record}  # A logs the id of the B it sent
    return WorkerRun(
        lines=lines,
        access=access,
        chain_w3c=(requests.chain_w3c, sent[1]),
        chain_plain=(requests.chain_plain, sent[2]),
        failed=requests.failed,
        load=requests.load,
        hostile=hostile,
        untraced_retries=untraced,
    )


_about = about_by(MESSAGE_ID, DESCRIPTION)


def test_every_worker_line_is_json(worker_run: WorkerRun) -> None:
    """configure_logging() in the broker module and --skip-logging: every line of every worker process is JSON."""
    assert worker_run.text == []
    assert any(record["logger"].startswith("dramatiq.") for record in worker_run.records)


def test_request_and_its_messages_share_one_trace_and_the_retried_one_is_a_child_of_its_cause(worker_run: WorkerRun) -> None:
    """Request -> A -> B (fails once, Retries sends it again): one trace, in Dramatiq's own lines about them too."""
    messages = assert_chain(worker_run, _about)
    assert sum(message == "Failed to process message b(1) with unhandled exception." for message in messages) == 1
    assert sum(message.startswith("Retrying message") for message in messages) == 1


def test_trace_id_that_is_no_w3c_id_travels_in_the_request_id_option(worker_run: WorkerRun) -> None:
    assert_plain_chain(worker_run)


def test_200_messages_from_200_concurrent_requests_carry_exactly_their_requests_trace(worker_run: WorkerRun) -> None:
    """The actor's own line and the fapilog.task record: Dramatiq logs no success."""
    assert_load(worker_run, _about, 2)


def test_a_message_never_finds_the_previous_messages_context(worker_run: WorkerRun) -> None:
    """Before fapilog binds a run, the worker thread holds no trace."""
    assert_runs_find_no_context(worker_run, RUNS)


def test_a_failing_message_is_logged_once_and_dramatiqs_traceback_line_carries_its_trace(worker_run: WorkerRun) -> None:
    (run,) = worker_run.task_records(worker_run.failed)
    assert (run["state"], run["retries"], run["level"]) == ("FAILURE", 0, "ERROR")
    (error,) = [r for r in worker_run.records if r["level"] == "ERROR" and r["logger"] != "fapilog.task" and r["trace_id"] == run["trace_id"]]
    assert "ValueError: fails always" in error["exception"]


def test_hostile_options_run_the_message_with_a_clean_trace_and_never_reach_a_line(worker_run: WorkerRun) -> None:
    """Hostile id, broken traceparent, 100 kB tracestate, values that are no text, no options: each message runs."""
    assert_hostile_metadata_never_shows(worker_run)


def test_retries_of_a_message_sent_outside_any_trace_continue_its_first_runs_trace(worker_run: WorkerRun) -> None:
    (job_id,) = worker_run.untraced_retries
    assert_one_trace(worker_run.task_records(job_id), ["RETRY", "SUCCESS"])


# In process: dramatiq's own worker threads on a StubBroker.


@pytest.fixture
def stub() -> Iterator[StubBroker]:
    broker = fapilog.dramatiq.instrument(StubBroker())
    yield broker
    broker.close()


def _run_all(broker: StubBroker) -> None:
    """Process every message *broker* holds with a real dramatiq worker, then stop it."""
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        for queue_name in broker.queues:
            broker.join(queue_name, timeout=int(TIMEOUT * 1000), fail_fast=False)
        worker.join()
    finally:
        worker.stop()


def test_publishing_puts_the_trace_into_the_options_and_keeps_what_was_set(stub: StubBroker) -> None:
    @dramatiq.actor(broker=stub)
    def noop() -> None:
        """Never run here."""

    outside = noop.send()
    bind_trace_headers({"traceparent": TRACEPARENT, "tracestate": "v=1"})
    headers = trace_headers()
    inside = noop.send()
    foreign = f"00-{W3C_TRACE}-{'1' * 16}-00"
    kept = noop.send_with_options(traceparent=foreign)
    assert not set(headers) & set(outside.options)
    assert {name: inside.options[name] for name in headers} == headers
    assert headers["traceparent"] == f"00-{W3C_TRACE}-{get_context()['span_id']}-01"
    assert kept.options["traceparent"] == foreign and kept.options["X-Request-ID"] == W3C_TRACE


def test_a_message_a_later_middleware_skips_is_logged_once_as_skipped(stub: StubBroker, records: list[logging.LogRecord]) -> None:
    """AgeLimit (after fapilog) skips an expired message: its run ends, with the publisher's trace, as SKIPPED."""

    @dramatiq.actor(broker=stub, max_age=60_000)
    def expired() -> None:
        """Never runs: sent at the epoch."""

    bind_trace_headers({"traceparent": TRACEPARENT})
    stub.enqueue(expired.message().copy(message_timestamp=0))
    _run_all(stub)
    assert [type(middleware) for middleware in stub.middleware][1] is AgeLimit
    runs = [(r.task_name, r.state, r.trace_id, r.levelname) for r in records if r.name == "fapilog.task"]  # type: ignore[attr-defined]
    assert runs == [("expired", "SKIPPED", W3C_TRACE, "INFO")]


def test_an_async_actor_runs_inside_its_messages_trace_on_the_event_loop_thread(stub: StubBroker) -> None:
    """Dramatiq runs ``async def`` actors on its event loop thread, which takes the worker thread's context along."""
    stub.add_middleware(AsyncIO())
    seen: list[tuple[str | None, str]] = []

    @dramatiq.actor(broker=stub)
    async def in_loop() -> None:
        seen.append((get_context()["trace_id"], threading.current_thread().name))

    bind_trace_headers({"traceparent": TRACEPARENT})
    in_loop.send()
    _run_all(stub)
    assert [trace for trace, _ in seen] == [W3C_TRACE]
    assert seen[0][1] != threading.current_thread().name


def test_a_propagated_app_field_travels_in_the_messages_baggage_to_its_run(stub: StubBroker) -> None:
    """The shared task seam carries the fields for every queue: here through a real dramatiq worker thread."""
    seen: list[Shop] = []

    @dramatiq.actor(broker=stub)
    def with_fields() -> None:
        seen.append(Shop.current())

    bind_trace_headers({"traceparent": TRACEPARENT})
    bind_fields(Shop(user_id="u-1", tenant_id="acme"))
    with_fields.send()
    _run_all(stub)
    assert seen == [Shop(tenant_id="acme")]  # user_id is not declared for propagation


def test_instrumenting_twice_adds_the_middleware_once() -> None:
    broker = StubBroker(middleware=[Retries()])
    fapilog.dramatiq.instrument(fapilog.dramatiq.instrument(broker))
    empty = fapilog.dramatiq.instrument(StubBroker(middleware=[]))
    assert [type(middleware).__name__ for middleware in broker.middleware] == ["_TraceMiddleware", "Retries"]
    assert [type(middleware).__name__ for middleware in empty.middleware] == ["_TraceMiddleware"]


def test_with_enqueue_each_worker_process_writes_its_lines_through_a_warm_shutdown(
    url: str, broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configure_logging(enqueue=True), a stderr that takes 50 ms a write: a worker process closes its stderr after its last line."""
    monkeypatch.setenv(slow_stderr.ENQUEUE_ENV, "1")
    broker.client.flushdb()
    command = [sys.executable, "-m", "dramatiq", "tests.apps.dramatiq_worker", *WORKER]
    with run_worker(command, env={dramatiq_actors.BROKER_ENV: url}, ready=(_READY, 2)) as lines:
        for n in range(10):
            _send(broker, dramatiq_actors.work, n)
        _wait_for_runs(broker, 10)  # then SIGTERM: a warm shutdown
    records, _ = json_lines(lines)
    assert sorted(record["n"] for record in records if record["message"].startswith("work ")) == list(range(10))
    assert len([record for record in records if record["logger"] == "fapilog.task"]) == 10
    shutdown = [record["message"] for record in records if record["logger"] == "dramatiq.worker.Worker"]
    assert sorted(shutdown) == ["Shutting down..."] * 2 + ["Worker has been shut down."] * 2  # each process's last lines too
