"""OpenTelemetry outside fapilog: every line names OpenTelemetry's span, and both propagate as one.

The real instrumentations (FastAPI, raw ASGI, httpx) export to an in-memory
exporter; the ids fapilog logs and sends must be the exported spans' ids.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import Attributes

import fapilog.httpx
from fapilog import TraceIDMiddleware, get_context, instrument_app
from tests.apps.echo import header_echo
from tests.support.http import http_client
from tests.support.records import access_records

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
CALLER = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "congo=t61rcWkgMzE"}
app_logger = logging.getLogger("app.otel")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))  # OpenTelemetry's default: follow the caller
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _ids(span: ReadableSpan) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def _spans(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    """The finished spans of *kind*; the ASGI instrumentation's own send/receive spans are INTERNAL."""
    return [span for span in exporter.get_finished_spans() if span.kind is kind]



def _fastapi_app(call: Callable[[], httpx.AsyncClient] | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/work")
    async def work() -> dict[str, Any]:
        app_logger.info("working")
        received = None
        if call is not None:
            async with call() as client:
                received = (await client.get("/echo")).json()
        return {"context": dict(get_context()), "received": received}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    return app


@asynccontextmanager
async def _instrumented(app: FastAPI, provider: TracerProvider) -> AsyncIterator[httpx.AsyncClient]:
    """OpenTelemetry's FastAPI instrumentation first, then fapilog's: OpenTelemetry ends up outside."""
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    instrument_app(app)
    try:
        async with http_client(app, raise_app_exceptions=False) as client:
            yield client
    finally:
        FastAPIInstrumentor.uninstrument_app(app)


def _lines(records: list[logging.LogRecord], name: str) -> list[dict[str, Any]]:
    return [vars(record) for record in records if record.name == name]


async def test_every_line_of_a_request_names_opentelemetrys_server_span(
    exporter: InMemorySpanExporter, provider: TracerProvider, records: list[logging.LogRecord]
) -> None:
    async with _instrumented(_fastapi_app(), provider) as client:
        response = await client.get("/work", headers=CALLER)
    [server] = _spans(exporter, SpanKind.SERVER)
    trace_id, span_id = _ids(server)
    assert trace_id == TRACE_ID and span_id != PARENT_ID
    assert response.json()["context"]["trace_id"] == trace_id
    assert response.json()["context"]["span_id"] == span_id
    [line] = _lines(records, "app.otel")
    [access] = access_records(records)
    for record in (line, access):
        assert (record["trace_id"], record["span_id"]) == (trace_id, span_id)
    assert access["parent_span_id"] == PARENT_ID
    assert response.headers["traceresponse"] == f"00-{trace_id}-{span_id}-01"
    assert response.headers["x-request-id"] == trace_id


async def test_a_new_trace_is_opentelemetrys_and_nothing_leaks_into_the_next_request(
    exporter: InMemorySpanExporter, provider: TracerProvider, records: list[logging.LogRecord]
) -> None:
    async with _instrumented(_fastapi_app(), provider) as client:
        first = await client.get("/work")
        second = await client.get("/work", headers={"x-request-id": "order-42"})
    spans = [_ids(span) for span in _spans(exporter, SpanKind.SERVER)]
    assert len({trace_id for trace_id, _ in spans}) == 2
    logged = [(record["trace_id"], record["span_id"]) for record in _lines(records, "app.otel")]
    assert logged == [(response.json()["context"]["trace_id"], response.json()["context"]["span_id"]) for response in (first, second)]
    assert logged == spans
    [first_access, second_access] = access_records(records)
    assert first_access["parent_span_id"] is None and first.headers["x-request-id"] == spans[0][0]
    # The caller's own request id is still echoed, and logged beside OpenTelemetry's trace id.
    assert second.headers["x-request-id"] == second_access["request_id"] == "order-42"
    assert second_access["trace_id"] == spans[1][0]


async def test_opentelemetrys_sampling_decision_and_tracestate_go_on_with_the_next_call(
    exporter: InMemorySpanExporter, records: list[logging.LogRecord]
) -> None:
    never = TracerProvider(sampler=ALWAYS_OFF)  # OpenTelemetry drops what the caller sampled
    never.add_span_processor(SimpleSpanProcessor(exporter))
    echo = httpx.ASGITransport(header_echo())
    app = _fastapi_app(lambda: fapilog.httpx.instrument(httpx.AsyncClient(transport=echo, base_url="http://b")))
    async with _instrumented(app, never) as client:
        response = await client.get("/work", headers=CALLER)
    assert exporter.get_finished_spans() == ()
    context = response.json()["context"]
    assert context["trace_id"] == TRACE_ID and context["span_id"] != PARENT_ID
    assert response.headers["traceresponse"] == f"00-{TRACE_ID}-{context['span_id']}-00"
    received = response.json()["received"]
    [call] = _lines(records, "fapilog.client")
    assert received["traceparent"] == [f"00-{TRACE_ID}-{call['span_id']}-00"]
    assert received["tracestate"] == ["congo=t61rcWkgMzE"]
    assert call["parent_span_id"] == context["span_id"]


@pytest.mark.parametrize("otel_first", [True, False], ids=["otel-inside-fapilog", "otel-outside-fapilog"])
async def test_a_client_instrumented_by_both_sends_opentelemetrys_span_and_logs_it(
    otel_first: bool, exporter: InMemorySpanExporter, provider: TracerProvider, records: list[logging.LogRecord]
) -> None:
    def both() -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(header_echo()), base_url="http://b")
        if otel_first:  # OpenTelemetry wraps the transport, fapilog wraps that: fapilog's header goes first
            HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
            return fapilog.httpx.instrument(client)
        fapilog.httpx.instrument(client)
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
        return client

    async with _instrumented(_fastapi_app(both), provider) as client:
        response = await client.get("/work", headers=CALLER)
    [server] = _spans(exporter, SpanKind.SERVER)
    [outgoing] = _spans(exporter, SpanKind.CLIENT)
    trace_id, client_span = _ids(outgoing)
    assert response.json()["received"]["traceparent"] == [f"00-{trace_id}-{client_span}-01"]
    assert response.json()["received"]["x-request-id"] == [TRACE_ID]
    [call] = _lines(records, "fapilog.client")
    assert (call["trace_id"], call["span_id"], call["parent_span_id"]) == (TRACE_ID, client_span, _ids(server)[1])


async def test_raw_asgi_instrumentation_outside_the_middleware_is_adopted_too(
    exporter: InMemorySpanExporter, provider: TracerProvider, records: list[logging.LogRecord]
) -> None:
    app = OpenTelemetryMiddleware(TraceIDMiddleware(_fastapi_app()), tracer_provider=provider)
    async with http_client(app) as client:
        response = await client.get("/work", headers=CALLER)
    [server] = _spans(exporter, SpanKind.SERVER)
    assert (response.json()["context"]["trace_id"], response.json()["context"]["span_id"]) == _ids(server)
    assert access_records(records)[0]["span_id"] == _ids(server)[1]


async def test_a_500_is_still_logged_and_answered_by_fapilog_inside_opentelemetry(
    exporter: InMemorySpanExporter, provider: TracerProvider, records: list[logging.LogRecord]
) -> None:
    async with _instrumented(_fastapi_app(), provider) as client:
        response = await client.get("/fail", headers=CALLER)
    [server] = _spans(exporter, SpanKind.SERVER)
    assert response.status_code == 500
    assert response.headers["traceresponse"] == f"00-{TRACE_ID}-{_ids(server)[1]}-01"
    [access] = access_records(records)
    assert (access["status_code"], access["span_id"]) == (500, _ids(server)[1])


async def test_without_a_current_span_fapilog_keeps_its_own_ids(
    exporter: InMemorySpanExporter, provider: TracerProvider, records: list[logging.LogRecord]
) -> None:
    app = _fastapi_app()
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="work")
    instrument_app(app)
    try:
        async with http_client(app) as client:
            response = await client.get("/work", headers=CALLER)
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    assert exporter.get_finished_spans() == ()
    context = response.json()["context"]
    assert context["trace_id"] == TRACE_ID
    assert response.headers["traceresponse"] == f"00-{TRACE_ID}-{context['span_id']}-01"


async def test_an_enclosing_span_that_is_no_server_span_is_not_adopted(provider: TracerProvider) -> None:
    with provider.get_tracer("test").start_as_current_span("startup") as outer:
        async with http_client(TraceIDMiddleware(_fastapi_app())) as client:
            responses = [await client.get("/work", headers=CALLER) for _ in range(2)]
    contexts = [response.json()["context"] for response in responses]
    assert [context["trace_id"] for context in contexts] == [TRACE_ID, TRACE_ID]
    assert f"{outer.get_span_context().span_id:016x}" not in {context["span_id"] for context in contexts}
    assert contexts[0]["span_id"] != contexts[1]["span_id"]


async def test_an_invalid_current_span_leaves_fapilogs_ids() -> None:
    with trace.use_span(trace.INVALID_SPAN):
        async with http_client(TraceIDMiddleware(_fastapi_app())) as client:
            response = await client.get("/work", headers=CALLER)
    context = response.json()["context"]
    assert context["trace_id"] == TRACE_ID and context["span_id"] != f"{0:016x}"
    assert response.headers["traceresponse"] == f"00-{TRACE_ID}-{context['span_id']}-01"


class _BrokenSpan(trace.NonRecordingSpan):
    """A span from a broken tracer: reading its context fails."""

    def get_span_context(self) -> trace.SpanContext:
        raise RuntimeError("broken tracer")

    def set_attributes(self, attributes: Attributes) -> None:
        pass


@pytest.fixture
def broken_span() -> Iterator[None]:
    with trace.use_span(_BrokenSpan(trace.INVALID_SPAN_CONTEXT)):
        yield


@pytest.mark.usefixtures("broken_span")
async def test_a_span_that_cannot_be_read_leaves_fapilogs_ids_and_warns_once() -> None:
    with pytest.warns(RuntimeWarning, match="could not read OpenTelemetry's current span") as caught:
        async with http_client(TraceIDMiddleware(_fastapi_app())) as client:
            responses = [await client.get("/work", headers=CALLER) for _ in range(2)]
    for response in responses:
        assert response.status_code == 200
        assert response.json()["context"]["trace_id"] == TRACE_ID
    assert len(caught) == 1


_WITHOUT_OPENTELEMETRY = """
import asyncio, sys
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from fapilog import TraceIDMiddleware, get_context

async def home(request: Request) -> JSONResponse:
    return JSONResponse(dict(get_context()))

async def main() -> None:
    app = TraceIDMiddleware(Starlette(routes=[Route("/", home)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        response = await client.get("/", headers={"traceparent": sys.argv[1]})
    print(response.json()["trace_id"], response.headers["traceresponse"].split("-")[2] == response.json()["span_id"])
    print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))

asyncio.run(main())
"""


def test_without_opentelemetry_a_request_keeps_fapilogs_ids_and_never_imports_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OPENTELEMETRY, CALLER["traceparent"]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [f"{TRACE_ID} True", "[]"]
