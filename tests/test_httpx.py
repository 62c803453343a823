"""The httpx integration: outgoing requests carry the trace, across real services."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from fapilog import TraceIDMiddleware, bind_context, get_context
from fapilog.httpx import async_request_hook, instrument, request_hook
from tests._support import access_records, running_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def _echo(sent: list[httpx.Request]) -> httpx.MockTransport:
    """A transport that records each request and answers 200."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    return httpx.MockTransport(handler)


def test_a_sync_client_sends_the_trace_headers() -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    with instrument(httpx.Client(transport=_echo(sent))) as client:
        client.get("http://next.service/")
    assert sent[0].headers["X-Request-ID"] == TRACE_ID
    assert sent[0].headers["traceparent"] == f"00-{TRACE_ID}-{SPAN_ID}-01"


@pytest.mark.anyio
async def test_an_async_client_sends_the_trace_headers_of_the_calling_task() -> None:
    sent: list[httpx.Request] = []
    async with instrument(httpx.AsyncClient(transport=_echo(sent))) as client:

        async def call(trace_id: str) -> None:
            bind_context(trace_id=trace_id)
            await client.get("http://next.service/")

        await asyncio.gather(call("task-a"), call("task-b"))
        await client.get("http://next.service/")
    assert sorted(request.headers.get("X-Request-ID", "") for request in sent) == ["", "task-a", "task-b"]


def test_headers_the_caller_set_are_not_overwritten() -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    client = instrument(httpx.Client(transport=_echo(sent), headers={"x-request-id": "client-default"}))
    with client:
        client.get("http://next.service/", headers={"traceparent": "explicit"})
    assert sent[0].headers.get_list("X-Request-ID") == ["client-default"]
    assert sent[0].headers.get_list("traceparent") == ["explicit"]


def test_a_custom_header_name_and_the_existing_hooks_are_kept() -> None:
    sent: list[httpx.Request] = []
    seen_by_user_hook: list[str] = []
    client = httpx.Client(
        transport=_echo(sent), event_hooks={"request": [lambda request: seen_by_user_hook.append(request.url.host)]}
    )
    bind_context(trace_id="req-7")
    with instrument(client, header_name="X-Correlation-ID"):
        client.get("http://next.service/")
    assert seen_by_user_hook == ["next.service"]
    assert sent[0].headers["X-Correlation-ID"] == "req-7"
    assert "X-Request-ID" not in sent[0].headers
    assert "traceparent" not in sent[0].headers


def test_nothing_is_added_when_no_trace_is_bound() -> None:
    sent: list[httpx.Request] = []
    with instrument(httpx.Client(transport=_echo(sent))) as client:
        client.get("http://next.service/")
    assert "X-Request-ID" not in sent[0].headers
    assert "traceparent" not in sent[0].headers


def test_a_trace_id_that_would_inject_a_header_line_is_not_sent() -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id="evil\r\nX-Injected: 1", span_id=SPAN_ID)
    with instrument(httpx.Client(transport=_echo(sent))) as client:
        client.get("http://next.service/")
    assert "X-Injected" not in sent[0].headers
    assert "X-Request-ID" not in sent[0].headers


@pytest.mark.anyio
async def test_the_hooks_can_be_installed_by_hand() -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id="by-hand")
    async with httpx.AsyncClient(transport=_echo(sent), event_hooks={"request": [async_request_hook()]}) as client:
        await client.get("http://next.service/")
    with httpx.Client(transport=_echo(sent), event_hooks={"request": [request_hook()]}) as sync_client:
        sync_client.get("http://next.service/")
    assert [request.headers["X-Request-ID"] for request in sent] == ["by-hand", "by-hand"]


def _service_b() -> FastAPI:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {"context": dict(get_context()), "traceparent": request.headers.get("traceparent")}

    app.add_middleware(TraceIDMiddleware)
    return app


def _service_a(b_url: str) -> FastAPI:
    app = FastAPI()

    @app.get("/call")
    async def call() -> dict[str, Any]:
        async with instrument(httpx.AsyncClient(base_url=b_url)) as client:
            b = (await client.get("/whoami")).json()
        return {"a": dict(get_context()), "b": b}

    @app.get("/call-sync")
    def call_sync() -> dict[str, Any]:
        with instrument(httpx.Client(base_url=b_url)) as client:
            b = client.get("/whoami").json()
        return {"a": dict(get_context()), "b": b}

    app.add_middleware(TraceIDMiddleware)
    return app


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/call", "/call-sync"])
async def test_service_b_joins_service_as_trace_with_a_new_span(path: str, records: list[logging.LogRecord]) -> None:
    async with running_server(_service_b()) as b_url, running_server(_service_a(b_url)) as a_url:
        async with httpx.AsyncClient(base_url=a_url) as client:
            response = await client.get(path)
    body = response.json()
    a, b = body["a"], body["b"]["context"]
    assert re.fullmatch(r"[0-9a-f]{32}", a["trace_id"])
    assert b["trace_id"] == a["trace_id"] == response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", b["span_id"])
    assert b["span_id"] != a["span_id"]
    assert body["b"]["traceparent"] == f"00-{a['trace_id']}-{a['span_id']}-01"
    [b_access] = [access for access in access_records(records) if access["path"] == "/whoami"]
    assert b_access["trace_id"] == a["trace_id"]
    assert b_access["span_id"] == b["span_id"]


@pytest.mark.anyio
async def test_50_concurrent_calls_each_keep_their_own_trace_across_the_hop(records: list[logging.LogRecord]) -> None:
    async with running_server(_service_b()) as b_url, running_server(_service_a(b_url)) as a_url:
        async with httpx.AsyncClient(base_url=a_url, timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.get("/call", headers={"X-Request-ID": f"hop-{i}"} if i % 2 == 0 else {})
                    for i in range(50)
                )
            )
    trace_ids = set()
    for index, response in enumerate(responses):
        a, b = response.json()["a"], response.json()["b"]["context"]
        if index % 2 == 0:
            assert a["trace_id"] == f"hop-{index}"
        assert b["trace_id"] == a["trace_id"] == response.headers["X-Request-ID"]
        assert b["span_id"] != a["span_id"]
        trace_ids.add(a["trace_id"])
    assert len(trace_ids) == 50
    b_access = {access["trace_id"] for access in access_records(records) if access["path"] == "/whoami"}
    assert b_access == trace_ids
