"""The httpx integration: each outgoing request is a logged child span, across real services."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

import fapilog.httpx
from examples.fields import Shop, current_tenant, current_user
from fapilog import JsonFormatter, TraceIDMiddleware, bind_context, bind_trace_headers, get_context, instrument_app
from fapilog._internal.records import MAX_LINE_LENGTH
from fapilog.httpx import instrument
from tests.apps.echo import recording_transport, whoami
from tests.support.http import http_client, running_server
from tests.support.records import access_records, client_records

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"




def test_a_sync_client_sends_the_trace_headers_with_a_child_span_it_logs(records: list[logging.LogRecord]) -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    with instrument(httpx.Client(transport=recording_transport(sent))) as client:
        client.get("http://next.service/orders/7?token=secret#frag")
    [record] = client_records(records)
    assert sent[0].headers["X-Request-ID"] == TRACE_ID
    assert sent[0].headers["traceparent"] == f"00-{TRACE_ID}-{record['span_id']}-01"
    assert re.fullmatch(r"[0-9a-f]{16}", record["span_id"]) and record["span_id"] != SPAN_ID
    assert {key: record[key] for key in ("trace_id", "parent_span_id", "method", "url", "status_code")} == {
        "trace_id": TRACE_ID,
        "parent_span_id": SPAN_ID,
        "method": "GET",
        "url": "http://next.service/orders/7",
        "status_code": 200,
    }
    assert record["latency_ms"] >= 0
    assert record["message"] == "GET http://next.service/orders/7 200"
    assert "secret" not in record["message"]


async def test_three_calls_from_one_request_carry_three_parent_ids(records: list[logging.LogRecord]) -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    async with instrument(httpx.AsyncClient(transport=recording_transport(sent))) as client:
        for _ in range(3):
            await client.get("http://next.service/")
    parents = [request.headers["traceparent"].split("-")[2] for request in sent]
    assert len(set(parents)) == 3
    assert parents == [record["span_id"] for record in client_records(records)]
    assert {record["parent_span_id"] for record in client_records(records)} == {SPAN_ID}


async def test_a_call_that_fails_is_logged_once_with_its_error_class(records: list[logging.LogRecord]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    async with instrument(httpx.AsyncClient(transport=httpx.MockTransport(refuse))) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://down.service/x?q=1")
    with instrument(httpx.Client(transport=httpx.MockTransport(refuse))) as sync_client:
        with pytest.raises(httpx.ConnectError):
            sync_client.post("http://down.service/y")
    assert [(r["url"], r["status_code"], r["error"], r["message"]) for r in client_records(records)] == [
        ("http://down.service/x", None, "ConnectError", "GET http://down.service/x failed: ConnectError"),
        ("http://down.service/y", None, "ConnectError", "POST http://down.service/y failed: ConnectError"),
    ]


def test_a_traceparent_set_by_someone_else_is_kept_and_its_span_logged(records: list[logging.LogRecord]) -> None:
    sent: list[httpx.Request] = []
    theirs = f"00-{TRACE_ID}-b7ad6b7169203331-01"
    bind_trace_headers({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "tracestate": "ours=1", "baggage": "a=1"})
    with instrument(httpx.Client(transport=recording_transport(sent))) as client:
        client.get("http://next.service/", headers={"traceparent": theirs})
    assert sent[0].headers.get_list("traceparent") == [theirs]
    assert "tracestate" not in sent[0].headers  # it belongs with our traceparent, not theirs
    assert sent[0].headers["baggage"] == "a=1"
    [record] = client_records(records)
    assert record["span_id"] == "b7ad6b7169203331"


def test_instrumenting_twice_and_mounted_transports_give_one_span_per_call(records: list[logging.LogRecord]) -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    client = httpx.Client(transport=recording_transport(sent), mounts={"http://mounted.service": recording_transport(sent), "http://unmounted.service": None})
    with instrument(instrument(client)):
        client.get("http://next.service/")
        client.get("http://mounted.service/")
    assert [record["url"] for record in client_records(records)] == [
        "http://next.service/",
        "http://mounted.service/",
    ]
    assert all(len(request.headers.get_list("traceparent")) == 1 for request in sent)


async def test_an_async_client_with_mounts_instrumented_twice_gives_one_span_per_call(
    records: list[logging.LogRecord],
) -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    client = httpx.AsyncClient(transport=recording_transport(sent), mounts={"http://mounted.service": recording_transport(sent), "http://unmounted.service": None})
    async with instrument(instrument(client)):
        await client.get("http://next.service/")
        await client.get("http://mounted.service/")
    assert [record["url"] for record in client_records(records)] == [
        "http://next.service/",
        "http://mounted.service/",
    ]
    assert [len(request.headers.get_list("traceparent")) for request in sent] == [1, 1]


def test_a_request_id_the_caller_set_is_kept_beside_our_traceparent() -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    with instrument(httpx.Client(transport=recording_transport(sent))) as client:
        client.get("http://next.service/", headers={"X-Request-ID": "callers-own"})
    assert sent[0].headers.get_list("X-Request-ID") == ["callers-own"]
    assert sent[0].headers["traceparent"].startswith(f"00-{TRACE_ID}-")


def test_each_hop_of_a_redirect_is_its_own_span(records: list[logging.LogRecord]) -> None:
    sent: list[httpx.Request] = []

    def redirect_once(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/old":
            return httpx.Response(302, headers={"Location": "/new"})
        return httpx.Response(200)

    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    with instrument(httpx.Client(transport=httpx.MockTransport(redirect_once), follow_redirects=True)) as client:
        client.get("http://next.service/old")
    parents = [request.headers["traceparent"].split("-")[2] for request in sent]
    assert parents == [record["span_id"] for record in client_records(records)]
    assert len(set(parents)) == 2


def test_a_foreign_traceparent_fapilog_cannot_read_never_fails_the_call(records: list[logging.LogRecord]) -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    with instrument(httpx.Client(transport=recording_transport(sent))) as client:
        response = client.get("http://next.service/", headers={b"traceparent": "\u20ac".encode()})
    assert response.status_code == 200
    [record] = client_records(records)
    assert (record["span_id"], record["status_code"]) == (None, 200)


def test_a_hostile_method_is_cut_in_the_client_record(records: list[logging.LogRecord]) -> None:
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    with instrument(httpx.Client(transport=recording_transport([]))) as client:
        client.request("X" * 20_000, "http://next.service/")
    [record] = client_records(records)
    assert record["method"] == "X" * 32
    assert len(JsonFormatter().format(next(r for r in records if r.name == "fapilog.client"))) < MAX_LINE_LENGTH


def test_the_client_record_of_a_hostile_url_stays_bounded_and_printable(records: list[logging.LogRecord]) -> None:
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    with instrument(httpx.Client(transport=recording_transport([]))) as client:
        client.get("http://next.service/" + "%E2%80%A8caf%C3%A9%1B[31m" * 2_000)  # decoded in url.path
    [record] = client_records(records)
    assert record["url"].isascii() and record["url"].isprintable()
    line = JsonFormatter().format(next(r for r in records if r.name == "fapilog.client"))
    assert len(line) < MAX_LINE_LENGTH


async def test_an_async_client_sends_the_trace_headers_of_the_calling_task() -> None:
    sent: list[httpx.Request] = []
    async with instrument(httpx.AsyncClient(transport=recording_transport(sent))) as client:

        async def call(trace_id: str) -> None:
            bind_context(trace_id=trace_id)
            await client.get("http://next.service/")

        await asyncio.gather(call("task-a"), call("task-b"))
        await client.get("http://next.service/")
    assert sorted(request.headers.get("X-Request-ID", "") for request in sent) == ["", "task-a", "task-b"]


def test_headers_the_caller_set_are_not_overwritten() -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    client = instrument(httpx.Client(transport=recording_transport(sent), headers={"x-request-id": "client-default"}))
    with client:
        client.get("http://next.service/", headers={"traceparent": "explicit"})
    assert sent[0].headers.get_list("X-Request-ID") == ["client-default"]
    assert sent[0].headers.get_list("traceparent") == ["explicit"]


def test_a_baggage_already_set_gets_the_traces_members_it_lacks_within_w3c_limits() -> None:
    """Sentry's httpx integration writes its baggage first: fapilog adds the caller's members, never drops either side."""
    sent: list[httpx.Request] = []
    big = "big=" + "v" * 4000
    bind_trace_headers({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "baggage": f"tenant=acme,region=eu,{big}"})
    full = "full=" + "x" * 5000
    many = ",".join(f"k{n}=v" for n in range(179))
    with instrument(httpx.Client(transport=recording_transport(sent))) as client:
        for present in ("sentry-trace_id=abc,region=us", full, many, ""):
            client.get("http://next.service/", headers={"baggage": present})
    assert [request.headers["baggage"] for request in sent] == [
        f"sentry-trace_id=abc,region=us,tenant=acme,{big}",  # its own region kept
        f"{full},tenant=acme,region=eu",  # big would pass 8,192 bytes
        f"{many},tenant=acme",  # 180 members at most
        f"tenant=acme,region=eu,{big}",  # an empty one
    ]


def test_calls_outside_any_trace_carry_nothing_and_are_still_logged(records: list[logging.LogRecord]) -> None:
    sent: list[httpx.Request] = []
    with instrument(httpx.Client(transport=recording_transport(sent))) as client:
        client.get("http://next.service/")
    assert not {"X-Request-ID", "traceparent", "tracestate", "baggage"} & set(sent[0].headers)
    [record] = client_records(records)
    assert (record["trace_id"], record["span_id"], record["status_code"]) == (None, None, 200)


def test_a_custom_header_name_and_the_existing_hooks_are_kept() -> None:
    sent: list[httpx.Request] = []
    seen_by_user_hook: list[str] = []
    client = httpx.Client(
        transport=recording_transport(sent), event_hooks={"request": [lambda request: seen_by_user_hook.append(request.url.host)]}
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
    with instrument(httpx.Client(transport=recording_transport(sent))) as client:
        client.get("http://next.service/")
    assert "X-Request-ID" not in sent[0].headers
    assert "traceparent" not in sent[0].headers


def test_a_trace_id_that_would_inject_a_header_line_is_not_sent() -> None:
    sent: list[httpx.Request] = []
    bind_context(trace_id="evil\r\nX-Injected: 1", span_id=SPAN_ID)
    with instrument(httpx.Client(transport=recording_transport(sent))) as client:
        client.get("http://next.service/")
    assert "X-Injected" not in sent[0].headers
    assert "X-Request-ID" not in sent[0].headers



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


@pytest.mark.parametrize("path", ["/call", "/call-sync"])
async def test_service_b_joins_service_as_trace_with_a_new_span(path: str, records: list[logging.LogRecord]) -> None:
    async with running_server(whoami()) as b_url, running_server(_service_a(b_url)) as a_url:
        async with httpx.AsyncClient(base_url=a_url) as client:
            response = await client.get(path)
    body = response.json()
    a, b = body["a"], body["b"]["context"]
    assert re.fullmatch(r"[0-9a-f]{32}", a["trace_id"])
    assert b["trace_id"] == a["trace_id"] == response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", b["span_id"])
    assert b["span_id"] != a["span_id"]
    [call] = client_records(records)
    assert call["parent_span_id"] == a["span_id"]
    assert body["b"]["traceparent"] == f"00-{a['trace_id']}-{call['span_id']}-03"
    [b_access] = [access for access in access_records(records) if access["path"] == "/whoami"]
    assert b_access["trace_id"] == a["trace_id"]
    assert b_access["span_id"] == b["span_id"]
    assert b_access["parent_span_id"] == call["span_id"]


def _tenant_service_a(b_url: str, elsewhere: list[httpx.Request]) -> FastAPI:
    """Service A: its dependencies bind the user and the tenant; ``/call`` calls B, and a host outside ``propagate_to``."""
    app = FastAPI(dependencies=[Depends(current_user), Depends(current_tenant)])

    @app.get("/call")
    async def call() -> Any:
        async with instrument(httpx.AsyncClient(base_url=b_url), propagate_to=["127.0.0.1"]) as client:
            b = (await client.get("/whoami")).json()
        outside = instrument(httpx.AsyncClient(transport=recording_transport(elsewhere)), propagate_to=["127.0.0.1"])
        async with outside:
            await outside.get("http://api.payments.example/charge")
        return b

    return instrument_app(app)


def _tenant_service_b() -> FastAPI:
    """Service B: answers the fields it bound and the baggage it received."""
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {"fields": Shop.current().model_dump(), "baggage": request.headers.get("baggage")}

    return instrument_app(app)


async def test_a_propagated_field_reaches_a_second_real_service_in_the_baggage_of_the_allowed_hosts_only(
    records: list[logging.LogRecord],
) -> None:
    elsewhere: list[httpx.Request] = []
    async with running_server(_tenant_service_b()) as b_url, running_server(_tenant_service_a(b_url, elsewhere)) as a_url:
        async with httpx.AsyncClient(base_url=a_url) as client:
            headers = {"Authorization": "Bearer u-1", "X-Tenant-ID": "acme", "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}
            response = await client.get("/call", headers={**headers, "baggage": "locale=fr"})
    assert response.json() == {
        "fields": {"user_id": None, "tenant_id": "acme"},  # user_id is not declared for propagation
        "baggage": "tenant_id=acme,locale=fr",  # merged with the trace's baggage
    }
    [outside] = elsewhere
    assert "baggage" not in outside.headers  # not a propagate_to host
    [b_access] = [record for record in records if record.name == "fapilog.access" and record.__dict__["path"] == "/whoami"]
    line = json.loads(JsonFormatter().format(b_access))
    assert (line["trace_id"], line["user_id"], line["tenant_id"]) == (TRACE_ID, None, "acme")


async def test_50_concurrent_calls_each_keep_their_own_trace_across_the_hop(records: list[logging.LogRecord]) -> None:
    async with running_server(whoami()) as b_url, running_server(_service_a(b_url)) as a_url:
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


async def test_the_client_record_gives_the_calls_latency_in_milliseconds(
    monkeypatch: pytest.MonkeyPatch, records: list[logging.LogRecord]
) -> None:
    """A fake clock: the service called takes 250 ms to answer."""
    clock = [500.0]
    monkeypatch.setattr(fapilog.httpx, "_now", lambda: clock[0])
    slow = FastAPI()

    @slow.get("/slow")
    async def answer() -> str:
        clock[0] += 0.250
        return "done"

    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    async with instrument(httpx.AsyncClient(transport=httpx.ASGITransport(slow), base_url="http://slow")) as client:
        await client.get("/slow")
    [record] = client_records(records)
    assert record["latency_ms"] == pytest.approx(250.0)


# propagate_to: internal state only to the hosts the app allows

EDGE_HEADERS = {
    "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01",
    "tracestate": "congo=t61rcWkgMzE",
    "baggage": "tenant=blue",
}


async def test_tracestate_and_baggage_go_only_to_the_hosts_the_app_allows() -> None:
    sent: list[httpx.Request] = []
    app = FastAPI()

    @app.get("/checkout")
    async def checkout() -> None:
        client = instrument(httpx.AsyncClient(transport=recording_transport(sent)), propagate_to=["orders", "*.svc.internal"])
        async with client:
            for url in (
                "http://orders/",
                "http://ORDERS:8080/",
                "http://pay.svc.internal/",
                "http://a.b.svc.internal/",
                "http://svc.internal/",
                "https://api.payments.example/",
                "http://orders.evil.example/",
            ):
                await client.get(url)

    async with http_client(instrument_app(app)) as client:
        await client.get("/checkout", headers=EDGE_HEADERS)
    carried = [
        (request.url.host, request.headers.get("tracestate"), request.headers.get("baggage"), request.headers["traceparent"][:35])
        for request in sent
    ]
    state = ("congo=t61rcWkgMzE", "tenant=blue", f"00-{TRACE_ID}")
    assert carried == [
        ("orders", *state),
        ("orders", *state),
        ("pay.svc.internal", *state),
        ("a.b.svc.internal", *state),
        ("svc.internal", None, None, f"00-{TRACE_ID}"),  # "*." is for subdomains only
        ("api.payments.example", None, None, f"00-{TRACE_ID}"),
        ("orders.evil.example", None, None, f"00-{TRACE_ID}"),
    ]


def test_a_redirect_to_a_host_not_allowed_loses_the_state_fapilog_added_but_not_the_callers_own() -> None:
    sent: list[httpx.Request] = []

    def redirect_away(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.host == "orders":
            return httpx.Response(302, headers={"Location": "https://api.payments.example/"})
        return httpx.Response(200)

    bind_trace_headers(EDGE_HEADERS)
    client = httpx.Client(transport=httpx.MockTransport(redirect_away), follow_redirects=True)
    with instrument(client, propagate_to=["orders"]):
        client.get("http://orders/")
        client.get("http://orders/", headers={"baggage": "callers=own"})
    first, redirected, own_first, own_redirected = sent
    assert (first.headers.get("tracestate"), first.headers.get("baggage")) == ("congo=t61rcWkgMzE", "tenant=blue")
    assert (redirected.headers.get("tracestate"), redirected.headers.get("baggage")) == (None, None)
    assert redirected.headers["traceparent"].startswith(f"00-{TRACE_ID}-")
    assert own_first.headers.get_list("baggage") == ["callers=own,tenant=blue"]  # the trace's members added
    assert own_redirected.headers.get_list("baggage") == ["callers=own"]  # and taken out again


@pytest.mark.parametrize("hosts", ["orders", ["orders", ""], ["*"], ["*."], ["a*b.example"], [7]])
def test_propagate_to_entries_that_are_no_hosts_are_refused(hosts: Any) -> None:
    with pytest.raises(ValueError, match="propagate_to"):
        instrument(httpx.Client(), propagate_to=hosts)
