"""fapilog.sentry: every event captured during a request carries that request's trace id."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import Depends, FastAPI
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.httpx import HttpxIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.transport import Transport
from starlette.types import ASGIApp

import fapilog.httpx
import fapilog.sentry
from examples.fields import current_tenant, current_user
from fapilog import TraceIDMiddleware, instrument_app
from fapilog.sentry import FapilogIntegration
from tests.apps.echo import recording_transport
from tests.support.http import http_client
from tests.support.records import ALL_NONE, access_records

DSN = "http://public@127.0.0.1:1/1"  # never contacted: the transport keeps events in memory


class _Recorder(Transport):
    """A transport that keeps every event it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event() or envelope.get_transaction_event()
        if event is not None:
            self.events.append(dict(event))


Init = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def sentry_init() -> Iterator[Init]:
    """Initialise Sentry with a recording transport; return its events. Uninitialise it after the test."""

    def init(*integrations: Integration, **options: Any) -> list[dict[str, Any]]:
        transport = _Recorder()
        # No default integrations: they would patch logging and threads for the rest of the session.
        sentry_sdk.init(
            dsn=DSN, transport=transport, default_integrations=False, integrations=list(integrations), **options
        )
        return transport.events

    yield init
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/message")
    async def message() -> str:
        sentry_sdk.capture_message("stock low")
        return "ok"

    @app.get("/fail")
    async def fail() -> str:
        raise RuntimeError("payment failed")

    return app


def _integrations() -> list[Integration]:
    return [StarletteIntegration(), FastApiIntegration(), FapilogIntegration()]


def _fields(event: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """Return what a Sentry user sees of fapilog on *event*: its trace_id tag and its fapilog context."""
    return event.get("tags", {}).get("trace_id"), event.get("contexts", {}).get("fapilog")


@pytest.mark.parametrize(
    "wrap",
    [instrument_app, TraceIDMiddleware],
    ids=["sentry-outside-fapilog", "fapilog-outside-sentry"],
)
async def test_events_of_each_request_carry_its_trace_id_and_nothing_leaks_into_the_next(
    sentry_init: Init, records: list[logging.LogRecord], wrap: Callable[[FastAPI], ASGIApp]
) -> None:
    events = sentry_init(*_integrations())
    async with http_client(wrap(_app()), raise_app_exceptions=False) as client:
        for n in (1, 2):
            await client.get("/message", headers={"X-Request-ID": f"msg-{n}", "User-Agent": "shop/1"})
            failed = await client.get("/fail", headers={"X-Request-ID": f"fail-{n}", "User-Agent": "shop/1"})
            assert failed.status_code == 500
    sentry_sdk.capture_message("after the requests")
    spans = {access["trace_id"]: access["span_id"] for access in access_records(records)}
    assert [(event.get("message"), _fields(event)) for event in events] == [
        *(
            (
                message,
                (
                    request_id,
                    {**ALL_NONE, "trace_id": request_id, "span_id": spans[request_id], "user_agent": "shop/1"},
                ),
            )
            for n in (1, 2)
            for message, request_id in (("stock low", f"msg-{n}"), (None, f"fail-{n}"))
        ),
        ("after the requests", (None, None)),
    ]
    failures = [event["exception"]["values"][-1] for event in events if "exception" in event]
    assert [(value["type"], value["value"]) for value in failures] == [("RuntimeError", "payment failed")] * 2


def _app_fields(event: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """Return the user_id and tenant_id tags of *event*, and its user's id."""
    tags = event.get("tags", {})
    return tags.get("user_id"), tags.get("tenant_id"), (event.get("user") or {}).get("id")


@pytest.mark.parametrize(
    "wrap",
    [instrument_app, TraceIDMiddleware],
    ids=["sentry-outside-fapilog", "fapilog-outside-sentry"],
)
async def test_events_and_the_transaction_of_a_request_carry_the_app_fields_it_bound_as_tags_and_user(
    sentry_init: Init, wrap: Callable[[FastAPI], ASGIApp]
) -> None:
    """sentry-python#5371: what the app binds in an endpoint also reaches the transaction Sentry's middleware sends."""
    events = sentry_init(*_integrations(), traces_sample_rate=1.0)
    app = FastAPI(dependencies=[Depends(current_user), Depends(current_tenant)])

    @app.get("/message")
    def message() -> str:
        sentry_sdk.capture_message("stock low")
        return "ok"

    async with http_client(wrap(app)) as client:
        for user in ("u-1", "u-2"):
            await client.get("/message", headers={"Authorization": f"Bearer {user}", "X-Tenant-ID": "acme"})
        await client.get("/message", headers={"X-Tenant-ID": "acme"})  # not signed in: 401
    sentry_sdk.capture_message("after the requests")
    assert [(event.get("type", "event"), _app_fields(event)) for event in events] == [
        ("event", ("u-1", "acme", "u-1")),
        ("transaction", ("u-1", "acme", "u-1")),  # sent after fapilog's teardown when Sentry is outside
        ("event", ("u-2", "acme", "u-2")),
        ("transaction", ("u-2", "acme", "u-2")),
        ("transaction", (None, None, None)),  # refused before any bind
        ("event", (None, None, None)),
    ]


async def test_a_trace_id_tag_the_app_sets_wins(sentry_init: Init) -> None:
    events = sentry_init(*_integrations())
    app = FastAPI()

    @app.get("/")
    async def home() -> str:
        sentry_sdk.set_tag("trace_id", "set-by-app")
        sentry_sdk.capture_message("tagged")
        return "ok"

    async with http_client(instrument_app(app)) as client:
        await client.get("/", headers={"X-Request-ID": "req-1"})
    [event] = events
    assert event["tags"]["trace_id"] == "set-by-app"
    assert event["contexts"]["fapilog"]["trace_id"] == "req-1"


async def test_a_client_without_the_integration_gets_no_fapilog_fields(sentry_init: Init) -> None:
    sentry_init(*_integrations())  # the integration's processor is now installed in this process
    events = sentry_init(StarletteIntegration(), FastApiIntegration())
    async with http_client(instrument_app(_app())) as client:
        await client.get("/message", headers={"X-Request-ID": "req-1"})
    [event] = events
    assert event["message"] == "stock low"
    assert _fields(event) == (None, None)


async def test_without_sentry_initialised_requests_and_captures_go_on_untouched(sentry_init: Init) -> None:
    sentry_init(*_integrations())
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    async with http_client(instrument_app(_app())) as client:
        response = await client.get("/message", headers={"X-Request-ID": "req-1"})
    assert (response.status_code, response.headers["X-Request-ID"]) == (200, "req-1")
    assert sentry_sdk.capture_message("nobody listens") is None


async def test_an_event_it_cannot_tag_goes_on_unchanged_with_one_warning(sentry_init: Init) -> None:
    events = sentry_init(*_integrations())
    app = FastAPI()

    @app.get("/")
    async def home() -> str:
        for n in (1, 2):
            sentry_sdk.capture_event({"message": f"odd {n}", "tags": "not a mapping"})  # type: ignore[typeddict-item]  # what a careless caller may pass
        return "ok"

    # fapilog outside Sentry: no scope tag of fapilog's, so the malformed event reaches the processor.
    with pytest.warns(RuntimeWarning, match="could not tag an event") as caught:
        async with http_client(TraceIDMiddleware(app)) as client:
            await client.get("/", headers={"X-Request-ID": "req-1"})
    assert len(caught) == 1
    assert [(event["message"], event["tags"]) for event in events] == [("odd 1", "not a mapping"), ("odd 2", "not a mapping")]


def test_a_warning_turned_into_an_error_never_fails_the_capture(sentry_init: Init) -> None:
    events = sentry_init(*_integrations())
    fapilog.bind_context(trace_id="req-1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sentry_sdk.capture_event({"message": "odd", "tags": "not a mapping"})  # type: ignore[typeddict-item]  # as above
    assert [event["message"] for event in events] == ["odd"]


async def test_an_error_line_logged_about_an_escaped_exception_names_the_failed_request(
    sentry_init: Init, records: list[logging.LogRecord]
) -> None:
    """A server that logs the traceback as text while handling the exception (granian) gets an event too."""
    events = sentry_init(*_integrations(), LoggingIntegration(event_level=logging.ERROR))
    async with http_client(instrument_app(_app())) as client:
        try:
            await client.get("/fail", headers={"X-Request-ID": "fail-1", "User-Agent": "probe/1"})
        except RuntimeError:  # the exception reaches the server, here the test: it logs it, as text
            logging.getLogger("granian").error("Application callable raised an exception: RuntimeError: payment failed")
    [access] = access_records(records)
    fields = {**ALL_NONE, "trace_id": "fail-1", "span_id": access["span_id"], "user_agent": "probe/1"}
    assert [(event.get("logger"), _fields(event)) for event in events] == [
        ("fapilog.access", ("fail-1", fields)),  # the access record at ERROR, logged within the request
        (None, ("fail-1", fields)),  # Sentry's ASGI middleware: the exception itself
        ("granian", ("fail-1", fields)),  # Sentry's logging integration: the server's line
    ]


async def test_each_requests_transaction_carries_its_trace_id_on_its_isolation_scope_and_nothing_leaks(
    sentry_init: Init,
) -> None:
    """With tracing on and Sentry outside fapilog (instrument_app), the transaction is sent after fapilog's teardown."""
    events = sentry_init(*_integrations(), traces_sample_rate=1.0)
    async with http_client(instrument_app(_app())) as client:
        for n in (1, 2):
            await client.get("/message", headers={"X-Request-ID": f"req-{n}"})
    sentry_sdk.capture_message("after the requests")
    assert [(event.get("type", "event"), event.get("tags", {}).get("trace_id")) for event in events] == [
        ("event", "req-1"),
        ("transaction", "req-1"),
        ("event", "req-2"),
        ("transaction", "req-2"),
        ("event", None),
    ]


INCOMING_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INNER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def _trace_of(event: dict[str, Any]) -> tuple[str | None, str | None]:
    """Return the trace id Sentry files *event* under, and its ``trace_id`` tag."""
    return event["contexts"]["trace"]["trace_id"], event.get("tags", {}).get("trace_id")


@pytest.mark.parametrize("tracing", [{}, {"traces_sample_rate": 1.0}], ids=["errors-only", "tracing"])
@pytest.mark.parametrize("incoming", [{}, {"traceparent": f"00-{INCOMING_TRACE_ID}-00f067aa0ba902b7-01"}], ids=["new", "w3c"])
async def test_sentry_its_outgoing_headers_and_the_logs_name_the_requests_one_trace(
    sentry_init: Init, tracing: dict[str, float], incoming: dict[str, str]
) -> None:
    """Sentry takes fapilog's trace id; Sentry's httpx integration writes baggage first, fapilog adds its members."""
    events = sentry_init(*_integrations(), HttpxIntegration(), **tracing)
    sent: list[httpx.Request] = []
    downstream = fapilog.httpx.instrument(httpx.AsyncClient(transport=recording_transport(sent)))
    app = FastAPI()

    @app.get("/call")
    async def call() -> str:
        await downstream.get("http://stock.internal/level")
        sentry_sdk.capture_message("stock checked")
        return "ok"

    @app.get("/fail")
    async def fail() -> str:
        raise RuntimeError("payment failed")

    async with http_client(instrument_app(app), raise_app_exceptions=False) as client:
        called = await client.get("/call", headers={**incoming, "baggage": "tenant=acme"})
        failed = await client.get("/fail", headers=incoming)
    trace_id = called.headers["traceresponse"].split("-")[1]
    failed_trace_id = failed.headers["traceresponse"].split("-")[1]
    if incoming:
        assert trace_id == failed_trace_id == INCOMING_TRACE_ID
    traces = [(event.get("type", "event"), _trace_of(event)) for event in events]
    assert traces == [
        ("event", (trace_id, trace_id)),
        *([("transaction", (trace_id, trace_id))] if tracing else []),
        ("event", (failed_trace_id, failed_trace_id)),
        *([("transaction", (failed_trace_id, failed_trace_id))] if tracing else []),
    ]
    [request] = sent
    assert request.headers["traceparent"].split("-")[1] == trace_id
    assert request.headers["sentry-trace"].split("-")[0] == trace_id
    baggage = request.headers["baggage"].split(",")
    assert "tenant=acme" in baggage and f"sentry-trace_id={trace_id}" in baggage


async def test_a_request_served_in_process_inside_another_gives_sentry_back_the_outer_trace(sentry_init: Init) -> None:
    """An inner instrumented app called through httpx.ASGITransport shares the outer request's Sentry scope."""
    events = sentry_init(*_integrations(), traces_sample_rate=1.0)
    inner = FastAPI()

    @inner.get("/inner")
    async def inner_endpoint() -> str:
        sentry_sdk.capture_message("inside")
        return "ok"

    outer = FastAPI()

    @outer.get("/outer")
    async def outer_endpoint() -> str:
        sentry_sdk.capture_message("before")
        async with http_client(instrument_app(inner)) as client:
            await client.get("/inner", headers={"traceparent": f"00-{INNER_TRACE_ID}-00f067aa0ba902b7-01"})
        sentry_sdk.capture_message("after")
        return "ok"

    async with http_client(instrument_app(outer)) as client:
        response = await client.get("/outer")
    outer_trace_id = response.headers["traceresponse"].split("-")[1]
    assert [(event.get("message"), _trace_of(event)) for event in events] == [
        ("before", (outer_trace_id, outer_trace_id)),
        ("inside", (INNER_TRACE_ID, INNER_TRACE_ID)),
        ("after", (outer_trace_id, outer_trace_id)),
        (None, (outer_trace_id, outer_trace_id)),  # the outer request's transaction
    ]
