"""W3C Trace Context end to end: real uvicorns under both HTTP parsers, and OpenTelemetry neighbours.

Service A runs fapilog and calls service B through the httpx integration; B
echoes the trace headers it received. Requests go to A as raw bytes, so what
the parser sees (trailing whitespace, repeated field lines) is exactly what
a client sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from fapilog import TraceIDMiddleware, get_context
from fapilog.httpx import instrument
from tests.apps.echo import header_echo
from tests.support.http import http_client, running_server
from tests.support.records import access_records

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
PARSERS = ("h11", "httptools")



def _service_a(b_url: str) -> ASGIApp:
    async def hop(request: Request) -> JSONResponse:
        async with instrument(httpx.AsyncClient(base_url=b_url)) as client:
            received = (await client.get("/echo")).json()
        return JSONResponse({"a": dict(get_context()), "b": received})

    return TraceIDMiddleware(Starlette(routes=[Route("/hop", hop)]))


@asynccontextmanager
async def _services(parser: Literal["h11", "httptools"], b: ASGIApp | None = None) -> AsyncIterator[str]:
    async with running_server(b or header_echo(), http=parser) as b_url:
        async with running_server(_service_a(b_url), http=parser) as a_url:
            yield a_url


async def _raw_get(url: str, path: str, header_lines: list[bytes]) -> tuple[dict[str, str], dict[str, Any]]:
    """Send one GET with exactly *header_lines*; return the response headers (lowercase) and JSON body."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = b"\r\n".join([f"GET {path} HTTP/1.1".encode(), b"host: a", b"connection: close", *header_lines])
    writer.write(head + b"\r\n\r\n")
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    header_block, body = raw.split(b"\r\n\r\n", 1)
    headers = {}
    for line in header_block.split(b"\r\n")[1:]:
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.lower()] = value.strip()
    return headers, json.loads(body)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("padding", [(b" ", b""), (b"\t", b""), (b"", b" "), (b"", b"\t"), (b"\t ", b" \t")])
async def test_whitespace_around_a_traceparent_is_ignored_under_both_parsers(
    parser: Literal["h11", "httptools"], padding: tuple[bytes, bytes]
) -> None:
    before, after = padding
    async with _services(parser) as a_url:
        _, body = await _raw_get(
            a_url, "/hop", [b"traceparent: " + before + f"00-{TRACE_ID}-{PARENT_ID}-01".encode() + after]
        )
    assert body["a"]["trace_id"] == TRACE_ID
    [traceparent] = body["b"]["traceparent"]
    assert traceparent.startswith(f"00-{TRACE_ID}-") and traceparent.endswith("-01")


@pytest.mark.parametrize("parser", PARSERS)
async def test_two_traceparent_field_lines_restart_the_trace_under_both_parsers(
    parser: Literal["h11", "httptools"],
) -> None:
    async with _services(parser) as a_url:
        headers, body = await _raw_get(
            a_url,
            "/hop",
            [
                f"traceparent: 00-{TRACE_ID}-{PARENT_ID}-01".encode(),
                f"traceparent: 00-{'1' * 32}-{PARENT_ID}-01".encode(),
                b"tracestate: foo=1",
            ],
        )
    assert body["a"]["trace_id"] not in (TRACE_ID, "1" * 32)
    assert body["b"]["tracestate"] == []
    assert headers["traceresponse"].split("-")[1] == body["a"]["trace_id"]


@pytest.mark.parametrize("parser", PARSERS)
async def test_flags_tracestate_and_baggage_reach_the_next_service(
    parser: Literal["h11", "httptools"], records: list[logging.LogRecord]
) -> None:
    async with _services(parser) as a_url:
        _, body = await _raw_get(
            a_url,
            "/hop",
            [
                f"traceparent: 00-{TRACE_ID}-{PARENT_ID}-02".encode(),
                b"tracestate: rojo=00f067aa0ba902b7, \t",
                b"TraceState: congo=t61rcWkgMzE",
                b"baggage: userId=alice,serverNode=DF%2028",
                b"baggage: isProduction=false",
            ],
        )
    [call] = [vars(record) for record in records if record.name == "fapilog.client"]
    assert body["b"] == {
        "traceparent": [f"00-{TRACE_ID}-{call['span_id']}-02"],  # not sampled, random: as the caller said
        "tracestate": ["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"],
        "baggage": ["userId=alice,serverNode=DF%2028,isProduction=false"],
        "x-request-id": [TRACE_ID],
    }
    assert call["parent_span_id"] == body["a"]["span_id"]
    [access] = access_records(records)
    assert access["parent_span_id"] == PARENT_ID


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param([b"tracestate: " + b"k=v," * 25_000], id="tracestate-100kB"),
        pytest.param([b"tracestate: " + ",".join(f"k{i}=v" for i in range(10_000)).encode()], id="tracestate-10k"),
        pytest.param([b"tracestate: a=caf\xc3\xa9"], id="tracestate-utf8"),
        pytest.param([b"baggage: " + b"k=" + b"v" * 100_000], id="baggage-100kB"),
        pytest.param([b"baggage: " + ",".join(f"k{i}=v" for i in range(10_000)).encode()], id="baggage-10k"),
        pytest.param([b"baggage: a=caf\xc3\xa9"], id="baggage-utf8"),
    ],
)
async def test_hostile_tracestate_and_baggage_are_dropped_never_forwarded_or_logged(
    hostile: list[bytes], records: list[logging.LogRecord]
) -> None:
    async with _services("httptools") as a_url:
        headers, body = await _raw_get(a_url, "/hop", [f"traceparent: 00-{TRACE_ID}-{PARENT_ID}-01".encode(), *hostile])
    assert body["a"]["trace_id"] == TRACE_ID
    assert body["b"]["tracestate"] == body["b"]["baggage"] == []
    assert set(headers) >= {"x-request-id", "traceresponse"}
    value = hostile[0].split(b": ", 1)[1].decode("latin-1")
    for record in records:
        assert value[:40] not in record.getMessage() and value[:40] not in str(vars(record))


def _otel_service_b(exporter: InMemorySpanExporter) -> ASGIApp:
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))  # OpenTelemetry's default: follow the caller
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OpenTelemetryMiddleware(header_echo(), tracer_provider=provider)


async def test_an_unsampled_caller_through_fapilog_makes_opentelemetry_export_no_span() -> None:
    exporter = InMemorySpanExporter()
    async with _services("h11", _otel_service_b(exporter)) as a_url, httpx.AsyncClient(base_url=a_url) as client:
        for _ in range(3):
            response = await client.get(
                "/hop",
                headers={
                    "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00",
                    "tracestate": "congo=t61rcWkgMzE",
                    "baggage": "userId=alice",
                },
            )
            assert response.json()["b"]["tracestate"] == ["congo=t61rcWkgMzE"]
            assert response.json()["b"]["baggage"] == ["userId=alice"]
    assert exporter.get_finished_spans() == ()


async def test_opentelemetrys_server_span_is_a_child_of_the_fapilog_client_span(
    records: list[logging.LogRecord],
) -> None:
    exporter = InMemorySpanExporter()
    async with _services("h11", _otel_service_b(exporter)) as a_url, httpx.AsyncClient(base_url=a_url) as client:
        await client.get("/hop", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    [server_span] = [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
    [call] = [vars(record) for record in records if record.name == "fapilog.client"]
    assert server_span.parent is not None
    assert f"{server_span.context.trace_id:032x}" == TRACE_ID
    assert f"{server_span.parent.span_id:016x}" == call["span_id"]
    assert server_span.parent.is_remote


@pytest.mark.parametrize("name", [b"tracestate", b"baggage"])
async def test_control_characters_the_parsers_would_refuse_are_dropped_in_process_too(
    name: bytes, records: list[logging.LogRecord]
) -> None:
    hostile = b"a=\x1b[31mzqx\x00"
    async with running_server(header_echo()) as b_url, http_client(_service_a(b_url)) as client:
        response = await client.get(
            "/hop", headers=[(b"traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01".encode()), (name, hostile)]
        )
    assert response.json()["b"][name.decode()] == []
    for record in records:
        assert "zqx" not in str(vars(record)) and "\x1b" not in record.getMessage()
