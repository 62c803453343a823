"""fapilog.structlog: the seven fields on structlog's own events and on stdlib records it renders."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import Depends, FastAPI

import fapilog.structlog
from examples.fields import current_tenant, current_user
from fapilog import instrument_app
from fapilog._internal.warn_once import warned
from fapilog.structlog import merge_context
from tests.support.http import http_client, running_server
from tests.support.records import ALL_NONE, UNBOUND, access_records


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """Give structlog back its default configuration, and the bridge its one warning."""
    yield
    structlog.reset_defaults()


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _configure_structlog(stream: io.StringIO) -> None:
    """structlog's own pipeline, as its docs set it up, with merge_context first."""
    structlog.configure(
        processors=[merge_context, structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
    )


def _orders_app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        structlog.get_logger().info("order placed", order_id=order_id)
        return {"order_id": order_id}

    @app.get("/mine")
    def mine() -> str:  # a sync endpoint: the thread pool sees the context too
        structlog.get_logger().info("own ids", trace_id="chosen-by-app", user_agent=None)
        return "ok"

    return instrument_app(app)


def _spans(records: list[logging.LogRecord]) -> list[str]:
    return [access["span_id"] for access in access_records(records)]


async def test_each_event_carries_its_own_requests_fields_and_none_outside_requests(
    records: list[logging.LogRecord],
) -> None:
    stream = io.StringIO()
    _configure_structlog(stream)
    async with http_client(_orders_app()) as client:
        await client.get("/orders/1", headers={"X-Request-ID": "req-1", "User-Agent": "shop/1"})
        await client.get("/orders/2", headers={"X-Request-ID": "req-2", "User-Agent": "shop/2"})
    structlog.get_logger().info("after")
    first_span, second_span = _spans(records)
    assert first_span != second_span
    # Event keys first, the context after them: where merge_contextvars puts its keys.
    assert sorted(list(_json_lines(stream)[0])[:2]) == ["event", "order_id"]
    assert _json_lines(stream) == [
        {
            "event": "order placed",
            "order_id": 1,
            **ALL_NONE,
            **UNBOUND,
            "trace_id": "req-1",
            "span_id": first_span,
            "user_agent": "shop/1",
            "level": "info",
        },
        {
            "event": "order placed",
            "order_id": 2,
            **ALL_NONE,
            **UNBOUND,
            "trace_id": "req-2",
            "span_id": second_span,
            "user_agent": "shop/2",
            "level": "info",
        },
        {"event": "after", **ALL_NONE, **UNBOUND, "level": "info"},
    ]


async def test_each_event_carries_the_app_fields_its_request_bound_and_none_elsewhere() -> None:
    app = FastAPI(dependencies=[Depends(current_user), Depends(current_tenant)])

    @app.get("/pay")
    def pay() -> str:
        structlog.get_logger().info("paid")
        structlog.get_logger().info("paid by", user_id="given-by-call")
        return "ok"

    stream = io.StringIO()
    _configure_structlog(stream)
    async with http_client(instrument_app(app)) as client:
        for user in ("u-1", "u-2"):
            await client.get("/pay", headers={"Authorization": f"Bearer {user}", "X-Tenant-ID": "acme"})
    structlog.get_logger().info("after")
    assert [(line["event"], line["user_id"], line["tenant_id"]) for line in _json_lines(stream)] == [
        ("paid", "u-1", "acme"),
        ("paid by", "given-by-call", "acme"),  # the event's own key wins
        ("paid", "u-2", "acme"),
        ("paid by", "given-by-call", "acme"),
        ("after", None, None),
    ]


async def test_a_key_the_event_already_has_wins_over_the_context(records: list[logging.LogRecord]) -> None:
    stream = io.StringIO()
    _configure_structlog(stream)
    async with http_client(_orders_app()) as client:
        await client.get("/mine", headers={"X-Request-ID": "req-3", "User-Agent": "shop/3"})
    [span_id] = _spans(records)
    assert _json_lines(stream) == [
        {"event": "own ids", **ALL_NONE, **UNBOUND, "trace_id": "chosen-by-app", "span_id": span_id, "level": "info"}
    ]


def _stdlib_through_structlog(stream: io.StringIO) -> None:
    """structlog's documented stdlib setup: both structlog and stdlib lines rendered by ProcessorFormatter."""
    structlog.configure(
        processors=[
            merge_context,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[merge_context, structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


async def test_stdlib_records_rendered_by_processor_formatter_carry_their_request_fields() -> None:
    app = FastAPI()

    @app.get("/pay")
    async def pay() -> str:
        logging.getLogger("shop").info("paid %s", "EUR")
        structlog.get_logger("shop").info("receipt sent")
        return "ok"

    stream = io.StringIO()
    _stdlib_through_structlog(stream)
    async with http_client(instrument_app(app)) as client:
        for request_id in ("pay-1", "pay-2"):
            await client.get("/pay", headers={"X-Request-ID": request_id, "User-Agent": "till/1"})
    lines = _json_lines(stream)
    access = [line for line in lines if line.get("logger") == "fapilog.access"]
    own = [line for line in lines if line.get("logger") == "shop"]
    spans = [line["span_id"] for line in access]
    assert own == [
        {"event": "paid EUR", **ALL_NONE, **UNBOUND, "trace_id": "pay-1", "span_id": spans[0], "user_agent": "till/1", "level": "info", "logger": "shop"},
        {"event": "receipt sent", **ALL_NONE, **UNBOUND, "trace_id": "pay-1", "span_id": spans[0], "user_agent": "till/1", "level": "info", "logger": "shop"},
        {"event": "paid EUR", **ALL_NONE, **UNBOUND, "trace_id": "pay-2", "span_id": spans[1], "user_agent": "till/1", "level": "info", "logger": "shop"},
        {"event": "receipt sent", **ALL_NONE, **UNBOUND, "trace_id": "pay-2", "span_id": spans[1], "user_agent": "till/1", "level": "info", "logger": "shop"},
    ]
    # The access record's own measurements (its extra= attributes) win over the context.
    assert [{key: line[key] for key in ("trace_id", "status_code", "res_bytes", "req_bytes")} for line in access] == [
        {"trace_id": "pay-1", "status_code": 200, "res_bytes": 4, "req_bytes": 0},
        {"trace_id": "pay-2", "status_code": 200, "res_bytes": 4, "req_bytes": 0},
    ]
    assert all(line["latency_ms"] > 0 for line in access)


async def test_a_real_uvicorns_error_line_about_an_escaped_exception_names_the_failed_request() -> None:
    app = FastAPI()

    @app.get("/fail")
    async def fail() -> str:
        raise RuntimeError("handler failed")

    stream = io.StringIO()
    _stdlib_through_structlog(stream)
    async with running_server(instrument_app(app)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/fail", headers={"X-Request-ID": "uv-fail", "User-Agent": "probe/1"})
    assert response.status_code == 500
    lines = _json_lines(stream)
    [access] = [line for line in lines if line.get("logger") == "fapilog.access"]
    [error] = [line for line in lines if line.get("logger") == "uvicorn.error" and line["level"] == "error"]
    assert error["event"] == "Exception in ASGI application\n"
    assert {key: error[key] for key in ALL_NONE} == {
        **ALL_NONE,
        "trace_id": "uv-fail",
        "span_id": access["span_id"],
        "user_agent": "probe/1",
    }


def test_a_misplaced_processor_passes_events_on_unchanged_and_warns_once() -> None:
    stream = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer(), merge_context],  # after the renderer: it gets a str
        logger_factory=structlog.WriteLoggerFactory(file=stream),
    )
    with pytest.warns(RuntimeWarning, match="placed before the renderer") as caught:
        structlog.get_logger().info("first")
        structlog.get_logger().info("second")
    assert len(caught) == 1
    assert _json_lines(stream) == [{"event": "first"}, {"event": "second"}]


def test_a_context_that_cannot_be_read_never_fails_the_logging_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> object:
        raise LookupError("context unavailable")

    monkeypatch.setattr(fapilog.structlog, "current_model", unreadable)
    event = {"event": "still logged"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # even a warning turned into an error does not escape
        assert merge_context(None, "info", event) == {"event": "still logged"}
    assert "structlog" in warned
