"""fapilog.celery: one trace from a request through its tasks, on a real Redis broker and real workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from celery import Celery, signals
from celery.result import AsyncResult
from fastapi import Depends, FastAPI

import fapilog.celery
from examples.fields import Shop, current_tenant, current_user
from fapilog import TraceIDMiddleware, bind_context, bind_fields, bind_trace_headers, get_context, trace_headers
from fapilog._internal import tasks as tasks_module
from tests.apps import celery_tasks, slow_stderr
from tests.support.http import http_client
from tests.support.records import FailingFilter, task_records
from tests.support.queues import HEX32, HOSTILE_METADATA, TRACEPARENT, W3C_PARENT, W3C_TRACE, assert_hostile_metadata_never_shows
from tests.support.servers import ROOT, json_lines, stop

TIMEOUT = 60.0  # seconds a result may take on a slow CI machine; a join, never an assertion
LOAD = 200
LOAD_CONCURRENCY = 20
SHUTDOWN_NOTICE = "worker: Warm shutdown (MainProcess)"  # printed by Celery's signal handler, past logging
POOLS = {"prefork": ["--concurrency", "2"], "threads": ["--concurrency", "8"], "solo": []}


@dataclass
class WorkerRun:
    """What one worker wrote while it ran the exercise, and what the exercise knows."""

    lines: list[str]
    records: list[dict[str, Any]]
    access: list[dict[str, Any]]  # the API's access records, in the test process
    chain_w3c: tuple[str, str]  # task ids of A and B, under a client's traceparent
    chain_plain: tuple[str, str]  # ... under a client's request id that is no W3C trace id
    load: dict[str, str]  # task id -> the trace id its request answered with
    failed: str
    hostile: list[str]
    fields: tuple[str, dict[str, Any]]  # the id of a task a request with app fields sent, and what it found

    def task_records(self, task_id: str) -> list[dict[str, Any]]:
        return [record for record in self.records if record["logger"] == "fapilog.task" and record["task_id"] == task_id]


@pytest.fixture(scope="session")
def broker(redis_url: str) -> str:
    """The session's real Redis, as the test Celery app's broker and result backend.

    An eager run (``task.apply()``) before this caches the app's in-memory
    result backend in the test's thread, where results are read: forgotten here.
    """
    celery_tasks.app.conf.update(broker_url=redis_url, result_backend=redis_url)
    per_thread: Any = getattr(celery_tasks.app, "_local")  # Celery's private cache: the backend, built once per thread
    per_thread.__dict__.pop("backend", None)
    return redis_url


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(vars(record).copy())


def _api() -> FastAPI:
    """The web app: each endpoint enqueues a task while serving the request."""
    api = FastAPI()

    @api.post("/chain/{n}")
    def chain(n: int) -> dict[str, str]:
        return {"task_id": celery_tasks.a.delay(n).id}

    @api.post("/work/{n}")
    def work(n: int) -> dict[str, str]:
        return {"task_id": celery_tasks.work.delay(n).id}

    @api.post("/fail")
    def fail() -> dict[str, str]:
        return {"task_id": celery_tasks.fail.delay().id}

    @api.post("/fields", dependencies=[Depends(current_user), Depends(current_tenant)])
    def fields() -> dict[str, str]:
        return {"task_id": celery_tasks.fields.delay().id}

    api.add_middleware(TraceIDMiddleware)
    return api


def _outcome(task_id: str) -> Any:
    """Wait until the task with *task_id* is done; return its result (or exception)."""
    return AsyncResult(task_id, app=celery_tasks.app).get(timeout=TIMEOUT, propagate=False)


async def _exercise() -> dict[str, Any]:
    """Send the requests and task messages of one worker run; wait for every result."""
    async with http_client(_api()) as client:
        w3c = await client.post("/chain/1", headers={"traceparent": TRACEPARENT, "tracestate": "vendor=v1"})
        plain = await client.post("/chain/2", headers={"X-Request-ID": "order-42"})
        failed = await client.post("/fail")
        fields = await client.post("/fields", headers={"Authorization": "Bearer u-1", "X-Tenant-ID": "acme"})
        gate = asyncio.Semaphore(LOAD_CONCURRENCY)

        async def one(n: int) -> tuple[str, str]:
            async with gate:
                response = await client.post(f"/work/{n}")
            return response.json()["task_id"], response.headers["X-Request-ID"]

        load = dict(await asyncio.gather(*(one(n) for n in range(100, 100 + LOAD))))
    # Published outside any request: the worker must replace or generate the trace.
    hostile = [celery_tasks.work.apply_async((10 + i,), headers=headers).id for i, headers in enumerate(HOSTILE_METADATA)]

    def chain_ids(response_task_id: str) -> tuple[str, str]:
        b_id: str = _outcome(response_task_id)
        _outcome(b_id)
        return response_task_id, b_id

    for task_id in [*load, *hostile]:
        _outcome(task_id)
    failed_id = failed.json()["task_id"]
    _outcome(failed_id)
    fields_id = fields.json()["task_id"]
    return {
        "fields": (fields_id, _outcome(fields_id)),
        "chain_w3c": chain_ids(w3c.json()["task_id"]),
        "chain_plain": chain_ids(plain.json()["task_id"]),
        "load": load,
        "failed": failed_id,
        "hostile": hostile,
    }


@contextlib.contextmanager
def _worker(module: str, *options: str, broker: str) -> Iterator[list[str]]:
    """Run ``celery -A module worker`` on *broker*; yield the list its lines go into once it stopped.

    Stopped by SIGTERM to its pid: a warm shutdown, tasks finished first.
    """
    command = [sys.executable, "-m", "celery", "-A", module, "worker", *options]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", celery_tasks.BROKER_ENV: broker},
            start_new_session=True,
        )
        lines: list[str] = []
        try:
            yield lines
        finally:
            stop(process, signal.SIGTERM, group=False)  # to the main process, as a container stop does
            out.seek(0)
            lines += out.read().decode("utf-8", "replace").splitlines()


@pytest.fixture(scope="module", params=list(POOLS))
def worker_run(request: pytest.FixtureRequest, broker: str) -> WorkerRun:
    """Run ``celery -A tests.apps.celery_worker worker`` with one pool kind through the whole exercise."""
    pool: str = request.param
    captured = _Captured()
    access_logger = logging.getLogger("fapilog.access")
    level = access_logger.level
    access_logger.addHandler(captured)  # module-scoped: set up before, so put back here, not by conftest
    access_logger.setLevel(logging.INFO)
    try:
        with _worker("tests.apps.celery_worker", "--pool", pool, *POOLS[pool], "--hostname", f"{pool}@fapilog", broker=broker) as lines:
            exercised = asyncio.run(_exercise())
    finally:
        access_logger.removeHandler(captured)
        access_logger.setLevel(level)
    records, _ = json_lines(lines)
    return WorkerRun(lines=lines, records=records, access=captured.records, **exercised)


def test_a_worker_without_fapilogs_logging_keeps_celerys_own(broker: str) -> None:
    """instrument() alone changes no logging: Celery's banner and text lines, as before."""
    options = ("--pool", "solo", "-l", "INFO", "--hostname", "plain@fapilog")
    with _worker("tests.apps.celery_tasks", *options, broker=broker) as lines:
        # A task the worker ran is a join: by then its startup lines are written.
        assert _outcome(celery_tasks.work.delay(1).id) == 1
    output = "\n".join(lines)
    assert "[queues]" in output  # the banner
    assert "plain@fapilog ready." in output
    records, text = json_lines(output.splitlines())
    assert records == [] and len(text) > 10


def _about(record: dict[str, Any]) -> str | None:
    """Return the id of the task a worker line is about, if it names one."""
    if record["logger"] == "fapilog.task":
        task_id: str = record["task_id"]
        return task_id
    data = record.get("data")
    return data.get("id") if isinstance(data, dict) else None


def test_every_worker_line_is_json_except_celerys_own_shutdown_notice(worker_run: WorkerRun) -> None:
    """With configure_logging() in the worker module, a plain ``celery worker`` writes only JSON lines."""
    _, text = json_lines(worker_run.lines)
    assert text == ["", SHUTDOWN_NOTICE]  # safe_say() prints a blank line first
    assert any(record["message"].endswith("ready.") for record in worker_run.records)


def test_request_and_its_tasks_share_one_trace_and_the_retried_task_is_a_child_of_its_cause(
    worker_run: WorkerRun,
) -> None:
    """Request -> A -> B (fails once, retries): one trace id; A names the request's span, B names A's."""
    a_id, b_id = worker_run.chain_w3c
    (request,) = [record for record in worker_run.access if record["path"] == "/chain/1"]
    assert request["trace_id"] == W3C_TRACE
    (a,) = worker_run.task_records(a_id)
    b_runs = sorted(worker_run.task_records(b_id), key=lambda run: run["retries"])  # two pool processes may race
    assert [(run["state"], run["retries"]) for run in b_runs] == [("RETRY", 0), ("SUCCESS", 1)]
    assert a["state"] == "SUCCESS"
    assert a["parent_span_id"] == request["span_id"]
    assert [run["parent_span_id"] for run in b_runs] == [a["span_id"], a["span_id"]]
    spans = {request["span_id"], a["span_id"], *(run["span_id"] for run in b_runs)}
    assert len(spans) == 4  # every run is its own span
    about_chain = [record for record in worker_run.records if _about(record) in (a_id, b_id) or record.get("n") == 1]
    executing = [record for record in about_chain if record["logger"] != "celery.worker.strategy"]
    assert {record["trace_id"] for record in executing} == {W3C_TRACE}
    messages = [record["message"] for record in executing]
    assert "task a 1" in messages and "task b 1 attempt 0" in messages and "task b 1 attempt 1" in messages
    assert any(" retry: " in message for message in messages)
    (printed,) = [record for record in worker_run.records if record["message"] == "task a 1 printed"]
    assert printed["logger"] == "celery.redirected" and printed["trace_id"] == W3C_TRACE
    assert sum(" succeeded in " in message for message in messages) == 2


def test_trace_id_that_is_no_w3c_id_travels_in_the_request_id_header(worker_run: WorkerRun) -> None:
    """A client's request id is the trace id of every task it causes; no traceparent, so no parent spans."""
    a_id, b_id = worker_run.chain_plain
    runs = worker_run.task_records(a_id) + worker_run.task_records(b_id)
    assert [(run["trace_id"], run["parent_span_id"]) for run in runs] == [("order-42", None)] * 3
    own = [record for record in worker_run.records if record.get("n") == 2]
    assert len(own) == 3 and {record["trace_id"] for record in own} == {"order-42"}


def test_200_tasks_from_200_concurrent_requests_carry_exactly_their_requests_trace(worker_run: WorkerRun) -> None:
    """Every line about a task, Celery's and the task's own, has the trace id its request answered with."""
    expected = worker_run.load
    by_n = {n: trace for n, trace in zip(range(100, 100 + LOAD), expected.values(), strict=True)}
    checked = wrong = 0
    for record in worker_run.records:
        task_id = _about(record)
        if record["logger"] == "celery.worker.strategy":
            continue  # the consumer's "received" line, before the task is taken up (see below)
        if task_id in expected:
            checked += 1
            wrong += record["trace_id"] != expected[task_id]
        elif record.get("n") in by_n:
            checked += 1
            wrong += record["trace_id"] != by_n[record["n"]]
    assert wrong == 0
    assert checked == 3 * LOAD  # the task's own line, Celery's "succeeded" line, the fapilog.task record
    assert len(set(expected.values())) == LOAD
    assert all(record["state"] == "SUCCESS" for task_id in expected for record in worker_run.task_records(task_id))


def test_a_task_never_finds_the_previous_tasks_context(worker_run: WorkerRun) -> None:
    """Before fapilog binds a run, the process, thread or greenlet holds no trace; nor does the consumer's line."""
    probes = [record for record in worker_run.records if record.get("probe")]
    runs = [record for record in worker_run.records if record["logger"] == "fapilog.task"]
    assert len(probes) == len(runs) == 2 * 3 + LOAD + 1 + 4 + 1
    assert {record["trace_id"] for record in probes} == {None}
    received = [record for record in worker_run.records if record["logger"] == "celery.worker.strategy"]
    assert len(received) == len(runs)
    assert {record["trace_id"] for record in received} == {None}


def test_a_propagated_field_reaches_the_task_and_every_line_of_its_run_and_no_other(worker_run: WorkerRun) -> None:
    """The request binds user_id and tenant_id; only tenant_id is declared for propagation."""
    task_id, found = worker_run.fields
    assert found == {"user_id": None, "tenant_id": "acme"}
    run = [record for record in worker_run.records if record.get("fields_probe") or _about(record) == task_id]
    executing = [record for record in run if record["logger"] != "celery.worker.strategy"]
    assert len(executing) == 3  # the task's own line, Celery's "succeeded" line, the fapilog.task record
    assert {(record["user_id"], record["tenant_id"]) for record in executing} == {(None, "acme")}
    others = [record for record in worker_run.records if record not in executing]
    assert {record["tenant_id"] for record in others} == {None}


def test_a_failing_task_is_logged_once_and_celerys_traceback_line_carries_its_trace(worker_run: WorkerRun) -> None:
    """The failure record and Celery's error line with the traceback share the task's trace id."""
    (run,) = worker_run.task_records(worker_run.failed)
    assert run["state"] == "FAILURE" and run["retries"] == 0
    (error,) = [r for r in worker_run.records if r["level"] == "ERROR" and r["logger"] != "fapilog.task" and _about(r) == worker_run.failed]
    assert run["level"] == "ERROR"
    assert error["trace_id"] == run["trace_id"]
    assert "ValueError: fails always" in error["exception"]


def test_hostile_task_headers_run_with_a_clean_trace_and_never_reach_a_line(worker_run: WorkerRun) -> None:
    """Hostile id, broken traceparent, 100 kB tracestate, odd values, no headers: each task runs, traced."""
    assert_hostile_metadata_never_shows(worker_run)


# In the caller's own thread: task.apply() and task_always_eager, no broker needed.


def test_apply_runs_as_a_child_of_the_callers_trace_and_gives_the_context_back(
    records: list[logging.LogRecord],
) -> None:
    bind_trace_headers({"traceparent": TRACEPARENT, "baggage": "tenant=blue"})
    caller = get_context()
    headers = trace_headers()
    inside = celery_tasks.context.apply().get()
    assert inside["trace_id"] == W3C_TRACE
    assert inside["span_id"] not in (None, caller["span_id"])
    assert get_context() == caller and trace_headers() == headers
    (run,) = [record for record in records if record.name == "fapilog.task"]
    assert (run.trace_id, run.span_id, run.parent_span_id, run.state) == (  # type: ignore[attr-defined]
        W3C_TRACE,
        inside["span_id"],
        caller["span_id"],
        "SUCCESS",
    )


def test_apply_runs_with_the_callers_propagated_fields_and_gives_the_callers_fields_back() -> None:
    bind_trace_headers({"traceparent": TRACEPARENT})
    bind_fields(Shop(user_id="u-1", tenant_id="acme"))
    assert celery_tasks.fields.apply().get() == {"user_id": None, "tenant_id": "acme"}
    assert Shop.current() == Shop(user_id="u-1", tenant_id="acme")


@pytest.mark.usefixtures("eager_celery")
def test_eager_task_outside_a_trace_gets_a_new_one_and_leaves_no_context(records: list[logging.LogRecord]) -> None:
    inside = celery_tasks.context.delay().get()
    assert HEX32.fullmatch(inside["trace_id"])
    assert get_context()["trace_id"] is None
    (run,) = [record for record in records if record.name == "fapilog.task"]
    assert run.trace_id == inside["trace_id"] and run.parent_span_id is None  # type: ignore[attr-defined]


def test_eager_failure_and_retry_are_logged_and_the_caller_keeps_its_context(records: list[logging.LogRecord]) -> None:
    bind_trace_headers({"X-Request-ID": "caller-1"})
    caller = get_context()
    assert celery_tasks.fail.apply().state == "FAILURE"
    assert celery_tasks.b.apply((5,)).get() == 5
    assert get_context() == caller
    runs = [(r.state, r.retries, r.trace_id, r.levelname) for r in records if r.name == "fapilog.task"]  # type: ignore[attr-defined]
    assert runs == [
        ("FAILURE", 0, "caller-1", "ERROR"),
        ("RETRY", 0, "caller-1", "WARNING"),
        ("SUCCESS", 1, "caller-1", "INFO"),
    ]


def test_publishing_puts_the_trace_into_the_message_headers_and_keeps_a_foreign_traceparent() -> None:
    """Inside a trace, a published message carries trace_headers(); someone else's traceparent stays."""
    app = fapilog.celery.instrument(Celery("publisher", broker="memory://"), header_name="X-Trace")
    seen: list[dict[str, Any]] = []

    def after(headers: dict[str, Any], **_: Any) -> None:  # connected after fapilog's receiver
        seen.append(dict(headers))

    signals.before_task_publish.connect(after, weak=False)
    try:
        app.send_task("outside")
        bind_trace_headers({"traceparent": TRACEPARENT, "tracestate": "v=1"})
        app.send_task("inside")
        foreign = f"00-{W3C_TRACE}-{'1' * 16}-00"
        app.send_task("foreign", headers={"traceparent": foreign})
    finally:
        signals.before_task_publish.disconnect(after)
    outside, inside, kept = seen
    assert not {"X-Trace", "X-Request-ID", "traceparent", "tracestate"} & set(outside)
    assert inside["traceparent"] == f"00-{W3C_TRACE}-{get_context()['span_id']}-01"
    assert inside["tracestate"] == "v=1" and inside["X-Trace"] == W3C_TRACE
    assert kept["traceparent"] == foreign


def test_a_task_of_an_app_fapilog_does_not_instrument_runs_in_the_callers_context(
    records: list[logging.LogRecord],
) -> None:
    other = Celery("other")

    @other.task
    def seen() -> str | None:
        return get_context()["trace_id"]

    bind_trace_headers({"X-Request-ID": "caller-2"})
    assert seen.apply().get() == "caller-2"
    assert [record for record in records if record.name == "fapilog.task"] == []


def test_with_the_task_log_off_no_record_is_built_and_the_context_still_comes_back(
    records: list[logging.LogRecord],
) -> None:
    logging.getLogger("fapilog.task").setLevel(logging.WARNING)
    try:
        bind_trace_headers({"X-Request-ID": "caller-3"})
        caller = get_context()
        assert celery_tasks.context.apply().get()["trace_id"] == "caller-3"
    finally:
        logging.getLogger("fapilog.task").setLevel(logging.NOTSET)
    assert get_context() == caller
    assert [record for record in records if record.name == "fapilog.task"] == []


def test_instrument_rejects_a_header_name_that_is_no_http_token() -> None:
    with pytest.raises(ValueError, match="header_name"):
        fapilog.celery.instrument(Celery("bad"), header_name="bad header")


def test_the_task_record_gives_the_runs_latency_in_milliseconds(
    monkeypatch: pytest.MonkeyPatch, records: list[logging.LogRecord]
) -> None:
    """A fake clock: the task body takes 125 ms."""
    clock = [100.0]
    monkeypatch.setattr(tasks_module, "_now", lambda: clock[0])  # the clock every queue's runs are timed by
    app = fapilog.celery.instrument(Celery("timed", set_as_current=False))

    @app.task
    def slow() -> str:
        clock[0] += 0.125
        return "done"

    assert slow.apply().get() == "done"
    [run] = task_records(records)
    assert run["latency_ms"] == pytest.approx(125.0)


def test_a_logging_filter_that_raises_never_costs_a_run_its_record_or_the_caller_its_context(
    records: list[logging.LogRecord],
) -> None:
    """The run's bind warns about a trace id no header can carry on; that warning fails."""
    logging.getLogger("fapilog.incoming").addFilter(FailingFilter())
    bind_context(trace_id="no header id", span_id=W3C_PARENT)
    caller = get_context()
    inside = celery_tasks.context.apply().get()
    assert HEX32.fullmatch(inside["trace_id"])
    assert get_context() == caller
    [run] = task_records(records)
    assert (run["trace_id"], run["state"]) == (inside["trace_id"], "SUCCESS")


def test_with_enqueue_a_prefork_worker_writes_every_line_once_through_a_warm_shutdown(
    broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configure_logging(enqueue=True), a stderr that takes 0.3 s a write: lines are still queued at shutdown.

    The pool processes, forked from the main process, end with os._exit,
    where no atexit runs: each line is written once, and none is lost.
    """
    monkeypatch.setenv(slow_stderr.ENQUEUE_ENV, "1")
    monkeypatch.setenv(slow_stderr.WRITE_TIME_ENV, "0.3")
    options = ("--pool", "prefork", *POOLS["prefork"], "--hostname", "enqueue@fapilog")
    with _worker("tests.apps.celery_worker", *options, broker=broker) as lines:
        task_ids = [celery_tasks.work.delay(n).id for n in range(20)]
        assert [_outcome(task_id) for task_id in task_ids] == list(range(20))
    records, text = json_lines(lines)
    assert text == ["", SHUTDOWN_NOTICE]
    assert sorted(record["message"] for record in records if record.get("n") is not None) == sorted(f"work {n}" for n in range(20))
    assert sorted(record["task_id"] for record in records if record["logger"] == "fapilog.task") == sorted(task_ids)
    assert sum(record["message"].endswith("ready.") for record in records) == 1
