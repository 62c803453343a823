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
import re
import socket
import struct
import sys
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from fapilog import FapilogHandler, TraceIDMiddleware, configure_logging, get_context, instrument_app, trace_headers
from fapilog._internal.ids import is_header_safe, is_valid_request_id
from fapilog._internal.incoming import Trust
from fapilog._internal.records import MAX_LINE_LENGTH
from fapilog.httpx import instrument
from tests.support.http import running_server
from tests.support.records import ALL_NONE, FailingFilter, access_records, rendered

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
    **options: Any,
) -> list[Message]:
    """Call *app* behind the middleware (with *options*) with *messages* as the request; return what it sent."""
    incoming = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # like a server: nothing more until the client acts
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await TraceIDMiddleware(app, **options)(scope or http_scope(), receive, send)
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
    """Servers on ASGI spec 2.4 raise OSError from send instead.

    Starlette then raises ``ClientDisconnect``: the client's doing, not passed
    on for the server to log as an ERROR traceback.
    """

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
    await TraceIDMiddleware(StreamingResponse(chunks()))(scope, receive, send)
    [access] = access_records(records)
    assert (access["status_code"], access["levelno"]) == (499, logging.WARNING)
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


@pytest.mark.parametrize("raise_exceptions", [True, False])
async def test_a_broken_logging_setup_never_fails_the_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, raise_exceptions: bool
) -> None:
    """Reported on stderr as logging's own handleError does: only while ``logging.raiseExceptions`` is on."""
    monkeypatch.setattr(logging, "raiseExceptions", raise_exceptions)
    logging.getLogger("fapilog.access").addFilter(FailingFilter())
    logging.getLogger("fapilog.access").setLevel(logging.INFO)
    logging.getLogger("fapilog.middleware").addFilter(FailingFilter())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})

    sent = await run_app(app, [{"type": "http.request", "body": b""}], http_scope(headers=[(b"x-request-id", b"bad id")]))
    assert sent[-1]["body"] == b"fine"
    assert ("broken filter" in capsys.readouterr().err) is raise_exceptions
    assert get_context() == ALL_NONE


# --- through a real uvicorn: what a client or a broken setup does -----------------

JOIN_TIMEOUT = 30.0  # seconds a join may take on a slow machine; never an assertion
HEX32 = re.compile(r"[0-9a-f]{32}")


async def until(condition: Callable[[], object]) -> None:
    """Wait, bounded, until *condition* holds: what a server does after a client left is seen only in its records."""
    for _ in range(int(JOIN_TIMEOUT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the condition did not hold")


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a raw TCP connection to the server at *url*: a client that can vanish mid-request."""
    parsed = httpx.URL(url)
    return await asyncio.open_connection(parsed.host, parsed.port)


def reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection as a crashed client or a dropped network does: a TCP reset, no goodbye."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_through_a_real_uvicorn_a_validator_that_raises_rejects_the_id_and_the_request_is_served(
    records: list[logging.LogRecord],
) -> None:
    app = FastAPI()

    @app.get("/")
    async def home() -> dict[str, str | None]:
        return {"trace_id": get_context()["trace_id"]}

    async with running_server(instrument_app(app, validator=lambda value: uuid.UUID(value).version == 4)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=JOIN_TIMEOUT) as client:
            response = await client.get("/", headers={"X-Request-ID": "zq-not-a-uuid"})
    trace_id = response.json()["trace_id"]
    assert (response.status_code, response.headers.get("connection")) == (200, None)
    assert HEX32.fullmatch(trace_id) and response.headers["X-Request-ID"] == trace_id
    [access] = access_records(records)
    assert (access["status_code"], access["trace_id"], access["request_id"]) == (200, trace_id, trace_id)
    assert [record.getMessage() for record in records if record.levelno >= logging.WARNING] == [
        f"Ignored an invalid incoming X-Request-ID or traceparent header; the trace id is {trace_id}"
    ]
    assert not [record for record in records if "zq" in rendered(record)]


async def test_through_a_real_uvicorn_a_client_gone_mid_upload_is_one_499_warning_and_no_traceback(
    records: list[logging.LogRecord],
) -> None:
    """Reset after 3,000 of 100,000 bytes: Starlette raises ClientDisconnect, its error middleware answers a 500 to nobody."""
    uploaded = asyncio.Event()
    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received >= 3_000:
                uploaded.set()
        return {"received": received}

    async with running_server(instrument_app(app)) as url:
        _, writer = await connect(url)
        head = b"POST /upload HTTP/1.1\r\nHost: test\r\nX-Request-ID: upload-1\r\nContent-Length: 100000\r\n\r\n"
        writer.write(head + b"u" * 3_000)
        await writer.drain()
        await asyncio.wait_for(uploaded.wait(), JOIN_TIMEOUT)
        reset(writer)
        await until(lambda: access_records(records))
    [access] = access_records(records)
    assert access["message"] == "POST /upload 499"
    assert (access["status_code"], access["levelno"], access["request_id"]) == (499, logging.WARNING, "upload-1")
    assert (access["req_bytes"], access["res_bytes"]) == (3_000, 0)  # the 500 went nowhere: nothing was written
    assert [record for record in records if record.levelno >= logging.ERROR or record.exc_info] == []


async def test_through_a_real_uvicorn_a_client_gone_mid_stream_is_one_499_warning_with_the_bytes_sent(
    records: list[logging.LogRecord],
) -> None:
    app = FastAPI()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first chunk\n"
            await asyncio.Event().wait()  # the client leaves before the next chunk
            yield b"never sent\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    async with running_server(instrument_app(app)) as url:
        reader, writer = await connect(url)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"first chunk\n"), JOIN_TIMEOUT)
        reset(writer)
        await until(lambda: access_records(records))
    [access] = access_records(records)
    assert (access["status_code"], access["levelno"]) == (499, logging.WARNING)
    assert access["res_bytes"] == len(b"first chunk\n")
    assert [record for record in records if record.levelno >= logging.ERROR or record.exc_info] == []


async def test_through_a_real_uvicorn_every_request_succeeds_with_stderr_and_the_log_stream_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fapilog's handler cannot write, and logging's own error report (to stderr) fails too."""
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    logging.getLogger("fapilog").addHandler(FapilogHandler(closed))
    app = FastAPI()

    @app.get("/")
    async def home() -> dict[str, str | None]:
        return {"trace_id": get_context()["trace_id"]}

    @app.get("/call")
    async def call(request: Request) -> dict[str, int]:
        async with instrument(httpx.AsyncClient(base_url=str(request.base_url), timeout=JOIN_TIMEOUT)) as client:
            return {"status": (await client.get("/")).status_code}

    async with running_server(instrument_app(app)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=JOIN_TIMEOUT) as client:
            plain = await client.get("/")
            hostile = await client.get("/", headers={"X-Request-ID": "bad id"})  # a warning on the way in
            called = await client.get("/call")  # an outgoing call's record too
    assert [response.status_code for response in (plain, hostile, called)] == [200, 200, 200]
    assert HEX32.fullmatch(hostile.headers["X-Request-ID"])
    assert called.json() == {"status": 200}


# --- hostile input ------------------------------------------------------------

_HEADER_BYTES = st.binary(max_size=300) | st.text(max_size=300).map(lambda text: text.encode("utf-8", "surrogatepass"))
_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "default": is_valid_request_id,
    "at-most-64": lambda value: len(value) <= 64,
    "accept-all": lambda value: True,
    "raises": lambda value: uuid.UUID(value).version == 4,
}
_BAGGAGE = st.from_regex(r"[a-z]{1,6} ?= ?[a-z0-9%]{0,6}(;[a-z]{1,3})?(,[a-z]{1,6}=[a-z0-9]{0,6}){0,4}", fullmatch=True)


@settings(max_examples=HOSTILE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    request_id=st.none() | _HEADER_BYTES | st.binary(min_size=5_000, max_size=6_000),
    traceparent=st.none() | _HEADER_BYTES | st.from_regex(r"[0-9a-fA-F]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}.*"),
    tracestate=st.none() | _HEADER_BYTES | st.from_regex(r"[a-z]{1,8}=[a-z0-9]{1,8}(,[a-z]{1,8}=[a-z0-9]{1,8}){0,3}", fullmatch=True),
    baggage=st.none() | _HEADER_BYTES | _BAGGAGE,
    user_agent=st.none() | _HEADER_BYTES | st.binary(min_size=5_000, max_size=6_000),
    path=st.text(max_size=3_000),
    validator=st.sampled_from(sorted(_VALIDATORS)),
    trust=st.sampled_from(["all", "request-id", "none"]),
    baggage_keys=st.none() | st.lists(st.sampled_from(["a", "b", "tenant"]), max_size=2),
)
async def test_hostile_headers_and_paths_never_fail_leak_or_break_a_line(
    request_id: bytes | None,
    traceparent: bytes | str | None,
    tracestate: bytes | str | None,
    baggage: bytes | str | None,
    user_agent: bytes | None,
    path: str,
    validator: str,
    trust: Trust,
    baggage_keys: list[str] | None,
) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    headers = [
        (name, value.encode() if isinstance(value, str) else value)
        for name, value in (
            (b"x-request-id", request_id),
            (b"traceparent", traceparent),
            (b"tracestate", tracestate),
            (b"baggage", baggage),
            (b"user-agent", user_agent),
        )
        if value is not None
    ]
    forwarded: list[dict[str, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        logger.info("handled")
        forwarded.append(trace_headers())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    options = {"validator": _VALIDATORS[validator], "trust_incoming": trust, "baggage_keys": baggage_keys}
    sent = await run_app(app, [{"type": "http.request", "body": b""}], http_scope("/" + path, headers=headers), **options)
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
    client_id = request_id.decode("latin-1") if request_id is not None else None
    assert echoed == trace_id or echoed == client_id
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
    assert 0 < len(echoed) <= 128 and is_header_safe(echoed)
    if validator == "default":
        assert is_valid_request_id(echoed)
    # What goes on to the next service is what the trust options let through.
    [outgoing] = forwarded
    if trust == "none":
        assert trace_id != client_id and f"-{trace_id}-".encode() not in dict(headers).get(b"traceparent", b"")
    if baggage_keys is not None:
        members = outgoing.get("baggage", "").split(",") if "baggage" in outgoing else []
        assert {member.split("=")[0].strip() for member in members} <= set(baggage_keys)
    elif trust != "all":
        assert "baggage" not in outgoing
    if trust != "all":
        assert "tracestate" not in outgoing
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
