"""What the RQ, Dramatiq and arq tests share: the requests that publish jobs, hostile metadata, and a worker's lines.

Each test module runs one real worker through one exercise: a FastAPI app
(``/chain/{n}``, ``/work/{n}``, ``/fail``, each publishing a job while it
serves the request) gets a request with a client ``traceparent``, one with a
request id that is no W3C trace id, one that fails and ``LOAD`` concurrent
ones; then jobs published outside any request carry hostile metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from starlette.types import ASGIApp

from tests.support.http import http_client
from tests.support.servers import ROOT, json_lines, stop, wait_for_output

__all__ = [
    "HEX32",
    "About",
    "Exercised",
    "HOSTILE_ID",
    "HOSTILE_METADATA",
    "HOSTILE_TRACESTATE",
    "LOAD",
    "TIMEOUT",
    "TRACEPARENT",
    "W3C_PARENT",
    "W3C_TRACE",
    "Requests",
    "WorkerRun",
    "about_by",
    "assert_chain",
    "assert_hostile_metadata_never_shows",
    "assert_load",
    "assert_one_trace",
    "assert_plain_chain",
    "assert_runs_find_no_context",
    "capture_access",
    "database",
    "run_worker",
    "send_requests",
]

TIMEOUT: Final = 120.0  # seconds a worker may take on a slow CI machine; a bound, never an assertion
LOAD: Final = 200
LOAD_CONCURRENCY: Final = 20
HEX32: Final = re.compile(r"[0-9a-f]{32}")
W3C_TRACE: Final = "0af7651916cd43dd8448eb211c80319c"
W3C_PARENT: Final = "b7ad6b7169203331"
TRACEPARENT: Final = f"00-{W3C_TRACE}-{W3C_PARENT}-01"
HOSTILE_ID: Final = "evil\r\nX-Injected: yes"
HOSTILE_TRACESTATE: Final = "hostile=" + "x" * 250 + "," + ",".join(f"k{i}=v" for i in range(12_000))  # > 100 kB
HOSTILE_METADATA: Final[list[dict[str, object]]] = [
    {"X-Request-ID": HOSTILE_ID, "traceparent": "00-junk"},  # both invalid: a new trace
    {"traceparent": TRACEPARENT, "tracestate": HOSTILE_TRACESTATE},  # the trace adopted, its tracestate dropped whole
    {"X-Request-ID": 12345, "baggage": ["not", "text"]},  # no text: a new trace
    {},  # nothing at all: a new trace
]
"""What jobs published outside any request carry, in this order; none may reach a line."""


def database(redis_url: str, number: int) -> str:
    """Return *redis_url* on its Redis database *number*: each queue's tests see only their own jobs."""
    return f"{redis_url.rsplit('/', 1)[0]}/{number}"


@dataclass
class Requests:
    """The ids of the jobs the requests published, and the trace ids the load requests answered with."""

    chain_w3c: str  # job A, under a client's traceparent
    chain_plain: str  # job A, under a client's request id that is no W3C trace id
    failed: str
    load: dict[str, str]  # job id -> the trace id its request answered with


async def send_requests(app: ASGIApp) -> Requests:
    """Send the exercise's requests to *app*; each endpoint answers ``{"job_id": ...}``."""
    async with http_client(app) as client:
        w3c = await client.post("/chain/1", headers={"traceparent": TRACEPARENT, "tracestate": "vendor=v1"})
        plain = await client.post("/chain/2", headers={"X-Request-ID": "order-42"})
        failed = await client.post("/fail")
        gate = asyncio.Semaphore(LOAD_CONCURRENCY)

        async def one(n: int) -> tuple[str, str]:
            async with gate:
                response = await client.post(f"/work/{n}")
            return response.json()["job_id"], response.headers["X-Request-ID"]

        load = dict(await asyncio.gather(*(one(n) for n in range(100, 100 + LOAD))))
    return Requests(w3c.json()["job_id"], plain.json()["job_id"], failed.json()["job_id"], load)


@dataclass
class WorkerRun:
    """What one worker wrote while it ran the exercise, and what the exercise knows."""

    lines: list[str]
    access: list[dict[str, Any]]  # the API's access records, in the test process
    chain_w3c: tuple[str, str]  # job ids of A and B
    chain_plain: tuple[str, str]
    failed: str
    load: dict[str, str]
    hostile: list[str]  # job ids, in HOSTILE_METADATA's order
    untraced_retries: list[str]  # jobs published outside any trace that fail once and retry
    records: list[dict[str, Any]] = field(init=False)
    text: list[str] = field(init=False)  # the lines that are no JSON object

    def __post_init__(self) -> None:
        self.records, self.text = json_lines(self.lines)

    def task_records(self, job_id: str) -> list[dict[str, Any]]:
        """Return the ``fapilog.task`` records of *job_id*'s runs, by attempt."""
        runs = [record for record in self.records if record["logger"] == "fapilog.task" and record["task_id"] == job_id]
        return sorted(runs, key=lambda run: run["retries"])  # two worker processes may write them out of order


class _Captured(logging.Handler):
    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__(logging.INFO)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(vars(record).copy())


@contextlib.contextmanager
def capture_access() -> Iterator[list[dict[str, Any]]]:
    """Collect the ``fapilog.access`` records of the block (a module fixture's: conftest's reset comes too late)."""
    records: list[dict[str, Any]] = []
    handler = _Captured(records)
    access_logger = logging.getLogger("fapilog.access")
    level = access_logger.level
    access_logger.addHandler(handler)
    access_logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        access_logger.removeHandler(handler)
        access_logger.setLevel(level)


@contextlib.contextmanager
def run_worker(
    command: Sequence[str], *, env: dict[str, str] | None = None, exits: bool = False, ready: tuple[str, int] | None = None
) -> Iterator[list[str]]:
    """Run a worker *command* from the repository; yield the list its lines (stdout, stderr) go into once it stopped.

    With *ready* (a text and a count), the block starts once the output holds
    the text that many times: every worker process is up, so none is still
    starting when it is told to stop. When the block ends, a worker that
    *exits* by itself (a burst worker) is waited for, at most ``TIMEOUT``; any
    other gets SIGTERM, a warm shutdown that finishes the jobs in progress first.
    """
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        lines: list[str] = []
        try:
            if ready is not None:
                wait_for_output(out, *ready)
            yield lines
            if exits:
                process.wait(timeout=TIMEOUT)
        finally:
            stop(process, signal.SIGTERM, group=False)  # to the main process, as a container stop does
            out.seek(0)
            lines += out.read().decode("utf-8", "replace").splitlines()


About = Callable[[dict[str, Any]], str | int | None]
"""Which job a worker line is about: its id, or the ``n`` the exercise gave it."""


def about_by(job_id: re.Pattern[str], arguments: re.Pattern[str] | None = None) -> About:
    """Return what tells the job a line is about: a ``fapilog.task`` record's id, a *job_id* in the
    message, the ``n`` the job logs, or the one its *arguments* show in the queue's own lines (``b(1)``)."""

    def about(record: dict[str, Any]) -> str | int | None:
        if record["logger"] == "fapilog.task":
            task_id: str = record["task_id"]
            return task_id
        message: str = record["message"]
        if record["logger"] != "fapilog.incoming" and (found := job_id.search(message)) is not None:
            return found.group()  # fapilog.incoming names a trace id, never a job
        if "n" in record:
            n: int = record["n"]
            return n
        if arguments is not None and (shown := arguments.search(message)) is not None:
            return int(shown.group(1))
        return None

    return about


def _never(record: dict[str, Any]) -> bool:
    return False


def assert_chain(run: WorkerRun, about: About, *, before_run: Callable[[dict[str, Any]], bool] = _never) -> list[str]:
    """Request -> A -> B (retried once): one trace id, A names the request's span, both Bs name A's.

    Every line about the chain but those written *before_run* carries the
    trace; returns their messages, for the queue's own lines to be checked.
    """
    a_id, b_id = run.chain_w3c
    (request,) = [record for record in run.access if record["path"] == "/chain/1"]
    assert request["trace_id"] == W3C_TRACE
    (a,) = run.task_records(a_id)
    b_runs = run.task_records(b_id)
    assert [(b["state"], b["retries"], b["level"]) for b in b_runs] == [("RETRY", 0, "WARNING"), ("SUCCESS", 1, "INFO")]
    assert (a["state"], a["level"]) == ("SUCCESS", "INFO")
    assert a["parent_span_id"] == request["span_id"]
    assert [b["parent_span_id"] for b in b_runs] == [a["span_id"], a["span_id"]]
    assert len({request["span_id"], a["span_id"], *(b["span_id"] for b in b_runs)}) == 4  # every run is its own span
    about_chain = [record for record in run.records if about(record) in (a_id, b_id, 1) and not before_run(record)]
    assert {record["trace_id"] for record in about_chain} == {W3C_TRACE}
    messages = [record["message"] for record in about_chain]
    assert {"task a 1", "task b 1 attempt 0", "task b 1 attempt 1"} <= set(messages)
    return messages


def assert_plain_chain(run: WorkerRun) -> None:
    """A client's request id that is no W3C trace id is the trace id of A, both Bs and their lines; no parent spans."""
    a_id, b_id = run.chain_plain
    runs = run.task_records(a_id) + run.task_records(b_id)
    assert [(record["trace_id"], record["parent_span_id"]) for record in runs] == [("order-42", None)] * 3
    own = [record for record in run.records if record.get("n") == 2]
    assert len(own) == 3 and {record["trace_id"] for record in own} == {"order-42"}


def assert_load(run: WorkerRun, about: About, lines_per_job: int, *, before_run: Callable[[dict[str, Any]], bool] = _never) -> None:
    """Each of the LOAD jobs' *lines_per_job* lines has exactly the trace id its request answered with."""
    expected = run.load
    by_n = dict(zip(range(100, 100 + LOAD), expected.values(), strict=True))
    checked = wrong = 0
    for record in run.records:
        job = about(record)
        trace = expected.get(job) if isinstance(job, str) else None if job is None else by_n.get(job)
        if trace is not None and not before_run(record):
            checked += 1
            wrong += record["trace_id"] != trace
    assert wrong == 0
    assert checked == lines_per_job * LOAD
    assert len(set(expected.values())) == LOAD
    assert all(record["state"] == "SUCCESS" for job_id in expected for record in run.task_records(job_id))


def assert_runs_find_no_context(run: WorkerRun, runs: int, probe: str = "probe") -> None:
    """The worker's probe, logged before fapilog binds each of the *runs*, found no trace each time."""
    probes = [record for record in run.records if record.get(probe)]
    records = [record for record in run.records if record["logger"] == "fapilog.task"]
    assert len(probes) == len(records) == runs
    assert {record["trace_id"] for record in probes} == {None}


class Exercised(Protocol):
    """What a hostile-metadata check reads of a worker's run: Celery's run as well as the other queues'."""

    lines: list[str]
    records: list[dict[str, Any]]
    hostile: list[str]

    def task_records(self, job_id: str) -> list[dict[str, Any]]: ...


def assert_hostile_metadata_never_shows(run: Exercised) -> None:
    """Each job with HOSTILE_METADATA ran, in a new trace or the valid traceparent's; no line shows the rest."""
    runs = [run.task_records(job_id) for job_id in run.hostile]
    assert [[record["state"] for record in job_runs] for job_runs in runs] == [["SUCCESS"]] * 4
    traces = [job_runs[0]["trace_id"] for job_runs in runs]
    assert traces[1] == W3C_TRACE  # a valid traceparent is adopted; its tracestate is discarded whole
    generated = [traces[0], traces[2], traces[3]]
    assert all(HEX32.fullmatch(trace) for trace in generated) and len(set(generated)) == 3
    everything = "\n".join(run.lines)
    assert "evil" not in everything and "Injected" not in everything and "hostile=" not in everything
    warnings = [record for record in run.records if record["logger"] == "fapilog.incoming"]
    assert [record["trace_id"] for record in warnings] == [traces[0]]  # "replaced", naming only the new id


def assert_one_trace(runs: list[dict[str, Any]], states: list[str]) -> None:
    """The *runs* of one job published outside any trace ended in *states*, all in the new trace its first run began."""
    assert [(record["state"], record["retries"]) for record in runs] == [(state, i) for i, state in enumerate(states)]
    assert len({record["trace_id"] for record in runs}) == 1 and HEX32.fullmatch(runs[0]["trace_id"])
    assert {record["parent_span_id"] for record in runs} == {None}
