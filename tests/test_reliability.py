"""Reliability under load, faults and hostile input: nothing lost, nothing leaked.

Sizes grow under ``nox -s stress`` (``FAPILOG_STRESS=1``); the defaults keep
the suite quick on two cores.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import os
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from fapilog import TraceIDMiddleware, configure_logging, get_context
from fapilog._internal.ids import is_valid_request_id
from fapilog._internal.records import MAX_LINE_LENGTH
from tests.support.http import running_server
from tests.support.records import ALL_NONE, access_records

STRESS = os.environ.get("FAPILOG_STRESS") == "1"
LOAD_REQUESTS = 30_000 if STRESS else 3_000
LOAD_CONCURRENCY = 100
MEMORY_REQUESTS = 100_000 if STRESS else 20_000
HOSTILE_EXAMPLES = 3_000 if STRESS else 300

logger = logging.getLogger("app.reliability")


class NullStream(io.StringIO):
    """A text stream that drops what it is given."""

    def write(self, text: str) -> int:
        return len(text)


def http_scope(path: str = "/", method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    """Return an HTTP scope as a server would build it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


# --- load -------------------------------------------------------------------


def load_app() -> FastAPI:
    app = FastAPI()

    @app.get("/async/{nonce}")
    async def async_endpoint(nonce: int, tasks: BackgroundTasks) -> dict[str, Any]:
        await asyncio.sleep(0)
        tasks.add_task(logger.info, "background after async", extra={"nonce": nonce})
        return {"trace_id": get_context()["trace_id"]}

    @app.get("/sync/{nonce}")
    def sync_endpoint(nonce: int, tasks: BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(logger.info, "background after sync", extra={"nonce": nonce})
        return {"trace_id": get_context()["trace_id"]}

    app.add_middleware(TraceIDMiddleware)
    return app


async def test_load_through_a_real_uvicorn_keeps_every_id_in_its_own_request() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    results: dict[int, tuple[str | None, str, str]] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for nonce in range(LOAD_REQUESTS):
        queue.put_nowait(nonce)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            nonce = queue.get_nowait()
            sent = f"load-{nonce}" if nonce % 2 == 0 else None
            kind = "async" if nonce % 4 < 2 else "sync"
            response = await client.get(f"/{kind}/{nonce}", headers={"X-Request-ID": sent} if sent else {})
            assert response.status_code == 200
            results[nonce] = (sent, response.headers["X-Request-ID"], response.json()["trace_id"])

    limits = httpx.Limits(max_connections=LOAD_CONCURRENCY)
    async with running_server(load_app()) as url:
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            await asyncio.gather(*(worker(client) for _ in range(LOAD_CONCURRENCY)))

    assert len(results) == LOAD_REQUESTS
    mismatched = [n for n, (sent, echoed, seen) in results.items() if echoed != seen or (sent and echoed != sent)]
    assert mismatched == []
    assert len({echoed for _, echoed, _ in results.values()}) == LOAD_REQUESTS
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is JSON
    background = {line["nonce"]: line["trace_id"] for line in lines if line["logger"] == "app.reliability"}
    assert len(background) == LOAD_REQUESTS
    wrong = [nonce for nonce, trace_id in background.items() if trace_id != results[nonce][1]]
    assert wrong == []
    access = [line for line in lines if line["logger"] == "fapilog.access"]
    assert len(access) == LOAD_REQUESTS
    assert {line["trace_id"] for line in access} == {echoed for _, echoed, _ in results.values()}


# --- faults -----------------------------------------------------------------


async def run_app(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    messages: list[Message],
    scope: Scope | None = None,
) -> list[Message]:
    """Call *app* behind the middleware with *messages* as the request; return what it sent."""
    incoming = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # like a server: nothing more until the client acts
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await TraceIDMiddleware(app)(scope or http_scope(), receive, send)
    return sent


async def test_a_client_disconnecting_mid_stream_gives_one_499_record(records: list[logging.LogRecord]) -> None:
    """uvicorn (ASGI spec 2.3) reports the disconnect through receive."""
    first_chunk_sent = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first"
        first_chunk_sent.set()
        await asyncio.Event().wait()  # the client leaves before the next chunk
        yield b"never"

    app = StreamingResponse(chunks())
    incoming: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await first_chunk_sent.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await TraceIDMiddleware(app)(http_scope("/stream"), receive, send)
    [access] = access_records(records)
    assert access["status_code"] == 499
    assert access["res_bytes"] == len(b"first")
    assert get_context() == ALL_NONE


async def test_a_send_failing_because_the_client_left_gives_one_499_record(records: list[logging.LogRecord]) -> None:
    """Servers on ASGI spec 2.4 raise OSError from send instead."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first"
        yield b"second"

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message.get("body") == b"second":
            raise OSError("connection reset by peer")
        sent.append(message)

    scope = http_scope("/stream")
    scope["asgi"]["spec_version"] = "2.4"
    with pytest.raises(ClientDisconnect):  # Starlette's, re-raised untouched
        await TraceIDMiddleware(StreamingResponse(chunks()))(scope, receive, send)
    [access] = access_records(records)
    assert access["status_code"] == 499
    assert access["res_bytes"] == len(b"first")
    assert get_context() == ALL_NONE


async def test_a_request_task_cancelled_while_the_app_awaits_gives_one_record_and_a_clear_context(
    records: list[logging.LogRecord],
) -> None:
    entered = asyncio.Event()
    after_cancel: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        entered.set()
        await asyncio.Event().wait()

    async def request() -> None:
        try:
            await run_app(app, [{"type": "http.request", "body": b""}])
        except asyncio.CancelledError:
            after_cancel.append(dict(get_context()))
            raise

    task = asyncio.create_task(request())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [access] = access_records(records)
    assert access["status_code"] == 500
    assert after_cancel == [ALL_NONE]


async def test_an_exception_in_a_background_task_keeps_the_sent_status(records: list[logging.LogRecord]) -> None:
    app = FastAPI()

    def failing_task() -> None:
        raise RuntimeError("background failed")

    @app.get("/")
    async def endpoint(tasks: BackgroundTasks) -> str:
        tasks.add_task(failing_task)
        return "ok"

    with pytest.raises(RuntimeError, match="background failed"):
        await run_app(app, [{"type": "http.request", "body": b""}])
    [access] = access_records(records)
    assert access["status_code"] == 200
    assert access["res_bytes"] == len(b'"ok"')
    assert get_context() == ALL_NONE


async def test_an_exception_after_the_response_started_gives_one_500_record(records: list[logging.LogRecord]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("failed mid-body")

    with pytest.raises(RuntimeError, match="failed mid-body"):
        await run_app(app, [{"type": "http.request", "body": b""}])
    [access] = access_records(records)
    assert access["status_code"] == 500
    assert access["res_bytes"] == len(b"partial")
    assert get_context() == ALL_NONE


async def test_an_app_that_never_reads_the_body_is_logged_with_the_bytes_it_read(
    records: list[logging.LogRecord],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent = await run_app(app, [{"type": "http.request", "body": b"x" * 100}], http_scope("/", "POST"))
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    [access] = access_records(records)
    assert access["status_code"] == 204
    assert access["req_bytes"] == 0
    assert get_context() == ALL_NONE


async def test_an_app_that_sends_no_response_gives_one_500_record(records: list[logging.LogRecord]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    sent = await run_app(app, [{"type": "http.request", "body": b"abc"}])
    assert sent == []
    [access] = access_records(records)
    assert access["status_code"] == 500
    assert access["req_bytes"] == 3
    assert get_context() == ALL_NONE


async def test_other_messages_pass_through_untouched(records: list[logging.LogRecord]) -> None:
    trailers: Message = {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": False}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"ok"})
        await send(trailers)

    sent = await run_app(app, [{"type": "http.request", "body": b""}])
    assert sent[-1] is trailers
    assert len(access_records(records)) == 1


class FailingFilter(logging.Filter):
    """A broken filter someone attached to the access logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        raise RuntimeError("broken filter")


async def test_a_broken_logging_setup_never_fails_the_request(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("fapilog.access").addFilter(FailingFilter())
    logging.getLogger("fapilog.access").setLevel(logging.INFO)
    logging.getLogger("fapilog.middleware").addFilter(FailingFilter())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})

    sent = await run_app(app, [{"type": "http.request", "body": b""}], http_scope(headers=[(b"x-request-id", b"bad id")]))
    assert sent[-1]["body"] == b"fine"
    assert "broken filter" in capsys.readouterr().err
    assert get_context() == ALL_NONE


# --- hostile input ------------------------------------------------------------

_HEADER_BYTES = st.binary(max_size=300) | st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass"))


@settings(max_examples=HOSTILE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request_id=st.none() | _HEADER_BYTES | st.binary(min_size=5_000, max_size=6_000),
    traceparent=st.none() | _HEADER_BYTES | st.from_regex(r"[0-9a-fA-F]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}.*"),
    user_agent=st.none() | _HEADER_BYTES | st.binary(min_size=5_000, max_size=6_000),
    path=st.text(max_size=3_000),
)
async def test_hostile_headers_and_paths_never_fail_leak_or_break_a_line(
    request_id: bytes | None, traceparent: bytes | str | None, user_agent: bytes | None, path: str
) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    headers = [
        (name, value.encode() if isinstance(value, str) else value)
        for name, value in ((b"x-request-id", request_id), (b"traceparent", traceparent), (b"user-agent", user_agent))
        if value is not None
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        logger.info("handled")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = await run_app(app, [{"type": "http.request", "body": b""}], http_scope("/" + path, headers=headers))
    assert sent[0]["status"] == 200
    [echoed] = [value.decode("ascii") for name, value in sent[0]["headers"] if name == b"x-request-id"]
    parsed = []
    for line in stream.getvalue().splitlines():
        assert len(line) <= MAX_LINE_LENGTH
        parsed.append(json.loads(line))
    # The response echoes the client's own valid request id, else the trace id.
    [access] = [line for line in parsed if line["logger"] == "fapilog.access"]
    trace_id = access["trace_id"]
    assert access["request_id"] == echoed
    assert echoed == trace_id or (request_id is not None and echoed == request_id.decode("ascii"))
    # Every line is one fapilog expects, word for word: nothing incoming leaks in.
    expected_messages = {
        "app.reliability": "handled",
        "fapilog.middleware": f"Ignored an invalid incoming X-Request-ID or traceparent header; the trace id is {trace_id}",
    }
    for line in parsed:
        assert line["trace_id"] == trace_id
        if line["logger"] == "fapilog.access":
            assert line["message"] == f"GET {line['path']} 200"
        else:
            assert line["message"] == expected_messages[line["logger"]]
        for field in ("path", "user_agent"):
            value = line.get(field) or ""
            assert value.isascii() and value.isprintable()
    assert len(parsed) in (2, 3)
    assert is_valid_request_id(echoed)
    assert get_context() == ALL_NONE


# --- memory -------------------------------------------------------------------


async def test_memory_stays_flat_over_many_requests_successes_and_failures() -> None:
    ours = configure_logging(stream=NullStream())
    logging.root.handlers[:] = [ours]  # pytest's capturing handlers keep every record
    app = FastAPI()

    @app.get("/ok")
    async def ok(tasks: BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(logger.info, "background")
        return dict(get_context())

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("failure")

    wrapped = TraceIDMiddleware(app)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    async def requests(count: int) -> None:
        for index in range(count):
            headers = [(b"x-request-id", f"mem-{index}".encode())] if index % 2 else []
            try:
                await wrapped(http_scope("/fail" if index % 10 == 0 else "/ok", headers=headers), receive, send)
            except RuntimeError:
                pass

    await requests(2_000)  # warm-up: caches, lazy imports, free lists
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        await requests(MEMORY_REQUESTS)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = after - before
    print(f"memory growth over {MEMORY_REQUESTS} requests: {growth} bytes")
    assert growth < 256 * 1024
