"""instrument_app(app): the middleware outside Starlette's whole stack, so 500s and preflights are right."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.applications import Starlette

from fapilog import get_context, instrument_app
from tests.support.http import http_client, preflight
from tests.support.records import access_records


def _app(*, debug: bool = False) -> FastAPI:
    app = FastAPI(debug=debug)

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    @app.get("/teapot")
    async def teapot() -> None:
        raise ValueError("handled by the app")

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"trace_id": get_context()["trace_id"]}, status_code=418)

    return app


async def test_a_500_carries_the_trace_header_and_its_record_the_bytes_sent(records: list[logging.LogRecord]) -> None:
    app = instrument_app(_app())
    async with http_client(app, raise_app_exceptions=False) as client:
        response = await client.get("/fail", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "err-1"
    [access] = access_records(records)
    assert (access["status_code"], access["res_bytes"]) == (500, len(response.content))
    assert access["res_bytes"] > 0


async def test_the_apps_exception_handlers_and_debug_page_still_work(records: list[logging.LogRecord]) -> None:
    async with http_client(instrument_app(_app()), raise_app_exceptions=False) as client:
        handled = await client.get("/teapot", headers={"X-Request-ID": "tea-1"})
    async with http_client(instrument_app(_app(debug=True)), raise_app_exceptions=False) as client:
        debug = await client.get("/fail", headers={"X-Request-ID": "dbg-1", "Accept": "text/html"})
    assert (handled.status_code, handled.json(), handled.headers["X-Request-ID"]) == (418, {"trace_id": "tea-1"}, "tea-1")
    assert debug.status_code == 500 and "RuntimeError" in debug.text and debug.headers["X-Request-ID"] == "dbg-1"
    assert [(a["trace_id"], a["status_code"]) for a in access_records(records)] == [("tea-1", 418), ("dbg-1", 500)]


async def test_a_cors_preflight_added_later_gets_the_trace_header_and_one_access_record(
    records: list[logging.LogRecord],
) -> None:
    app = instrument_app(_app())
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["https://shop.example"],
        allow_headers=["X-Request-ID", "traceparent"],
        expose_headers=["X-Request-ID", "traceresponse"],
    )
    async with http_client(app) as client:
        response = await client.options(
            "/teapot",
            headers={**preflight(), "X-Request-ID": "pre-1"},
        )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "pre-1"
    [access] = access_records(records)
    assert (access["method"], access["status_code"], access["res_bytes"]) == ("OPTIONS", 200, len(response.content))


def test_an_app_is_instrumented_once_and_before_it_serves() -> None:
    app = instrument_app(Starlette())
    with pytest.raises(RuntimeError, match="already instrumented"):
        instrument_app(app)
    started = Starlette()
    started.middleware_stack = started.build_middleware_stack()
    with pytest.raises(RuntimeError, match="before it serves"):
        instrument_app(started)


def test_options_are_checked_when_instrumenting() -> None:
    with pytest.raises(ValueError, match="header_name"):
        instrument_app(Starlette(), header_name="bad name")


async def test_options_reach_the_middleware() -> None:
    async with http_client(instrument_app(_app(), header_name="X-Correlation-ID")) as client:
        response = await client.get("/teapot", headers={"X-Correlation-ID": "corr-1"})
    assert response.headers["X-Correlation-ID"] == "corr-1"
    assert "X-Request-ID" not in response.headers
