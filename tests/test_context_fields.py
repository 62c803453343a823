"""App fields (``ContextFields``, ``bind_fields``): typed, validated, on every line of the request that bound them, and no other."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import types
from collections.abc import Callable
from typing import Annotated, Any, Literal

import httpx
import pydantic
import pytest
from fastapi import Depends, FastAPI
from pydantic import ConfigDict, Field, PrivateAttr

from examples.fields import Shop, current_tenant, current_user
from examples.fields import app as shop_app
from fapilog import (
    ContextFields,
    ContextFilter,
    bind_context,
    bind_fields,
    clear_context,
    context_copy,
    get_context,
    instrument_app,
)
from fapilog._internal.schemas import Schema
from fapilog.httpx import instrument
from fapilog.log_config import ENQUEUE_PATH, PATH
from tests.apps.echo import recording_transport
from tests.support.http import http_client, running_server
from tests.support.lines import SCHEMAS, format_line
from tests.support.records import ALL_NONE
from tests.support.servers import json_lines, serve

CONCURRENT = 200
BIN = sys.executable.rsplit("/", 1)[0]


def _signed_in(user: str, tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {user}", "X-Tenant-ID": tenant}


# The API: validated at construction, bound whole or not at all, read back typed.


def test_misuse_is_a_validation_error_at_construction_and_an_instance_is_frozen() -> None:
    with pytest.raises(pydantic.ValidationError, match="user_id"):
        Shop(user_id=1)  # type: ignore[arg-type]  # the misuse under test
    with pytest.raises(pydantic.ValidationError, match="bogus"):
        Shop(bogus="x")  # type: ignore[call-arg]  # the misuse under test
    shop = Shop(user_id="u-1")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        shop.user_id = "u-2"  # type: ignore[misc]  # the misuse under test


def test_current_is_all_none_until_a_bind_and_then_the_fields_that_bind_was_given() -> None:
    assert Shop.current() == Shop()
    assert Shop.current().model_fields_set == set()
    bind_fields(Shop(user_id="u-1"))
    bind_fields(Shop(tenant_id="acme"))  # user_id, not given, keeps its value
    assert (Shop.current().user_id, Shop.current().tenant_id) == ("u-1", "acme")
    bind_fields(Shop(user_id=None))  # given as None: unbound
    assert Shop.current() == Shop(tenant_id="acme")
    assert Shop.current().model_fields_set == {"user_id", "tenant_id"}


def test_a_failed_bind_changes_nothing() -> None:
    bind_fields(Shop(user_id="u-1", tenant_id="acme"))
    with pytest.raises(pydantic.ValidationError):
        bind_fields(Shop(user_id="u-2", tenant_id=7))  # type: ignore[arg-type]  # the misuse under test
    with pytest.raises(TypeError, match="ContextFields"):
        bind_fields({"user_id": "u-2"})  # type: ignore[arg-type]  # the misuse under test
    assert Shop.current() == Shop(user_id="u-1", tenant_id="acme")


def test_the_card_holds_get_context_has_the_seven_keys_and_bind_context_refuses_an_app_field() -> None:
    bind_fields(Shop(user_id="u-1"))
    bind_context(trace_id="t-1")
    assert get_context() == {**ALL_NONE, "trace_id": "t-1"}
    with pytest.raises(pydantic.ValidationError, match="user_id"):
        bind_context(user_id="u-2")  # type: ignore[call-arg]  # the misuse under test
    assert Shop.current().user_id == "u-1"


def test_clear_context_unbinds_the_app_fields_too() -> None:
    bind_fields(Shop(user_id="u-1"))
    clear_context()
    assert Shop.current() == Shop()


async def test_outside_a_request_a_bind_is_scoped_like_bind_context() -> None:
    bind_fields(Shop(user_id="parent"))
    snapshot = context_copy()

    async def child() -> str | None:
        bind_fields(Shop(user_id="child"))
        return Shop.current().user_id

    def in_thread() -> str | None:
        bind_fields(Shop(user_id="thread"))
        return Shop.current().user_id

    assert await asyncio.create_task(child()) == "child"
    assert await asyncio.to_thread(in_thread) == "thread"
    bind_fields(Shop(tenant_id="later"))
    assert Shop.current() == Shop(user_id="parent", tenant_id="later")
    assert snapshot.run(Shop.current) == Shop(user_id="parent")  # a snapshot never changes


async def test_200_concurrent_tasks_each_see_only_their_own_fields() -> None:
    everyone_bound = asyncio.Barrier(CONCURRENT)

    async def task(n: int) -> Shop:
        bind_fields(Shop(user_id=f"u-{n}"))
        await everyone_bound.wait()
        return Shop.current()

    seen = await asyncio.gather(*(task(n) for n in range(CONCURRENT)))
    assert [shop.user_id for shop in seen] == [f"u-{n}" for n in range(CONCURRENT)]
    assert Shop.current() == Shop()


# Class creation: a subclass that could break a line, a bind or another subclass is refused.


def _declare(**options: Any) -> Callable[[dict[str, Any]], type[ContextFields]]:
    """Return a function that declares a ContextFields subclass with *options* and the given namespace."""

    def declare(namespace: dict[str, Any]) -> type[ContextFields]:
        declared: type[ContextFields] = types.new_class("Declared", (ContextFields,), options, lambda body: body.update(namespace))
        return declared

    return declare


def _fields(**annotations: Any) -> dict[str, Any]:
    return {"__annotations__": annotations, **dict.fromkeys(annotations)}


@pytest.mark.parametrize(
    ("options", "namespace", "problem"),
    [
        ({}, _fields(trace_id=str | None), "fapilog's own"),
        ({}, _fields(user_id=str | None), "already declared by Shop"),
        ({}, _fields(method=str | None), "fapilog's own"),
        ({}, _fields(name=str | None), "fapilog's own"),  # a LogRecord attribute
        ({}, {"__annotations__": {"fresh_a": str | None}, "fresh_a": "x"}, "default is None"),
        ({}, {"__annotations__": {"fresh_a": str | None}, "fresh_a": Field(default_factory=lambda: None)}, "default is None"),
        ({}, _fields(fresh_a=str), "or None"),
        ({}, _fields(fresh_a=list[str] | None), "or None"),
        ({}, _fields(fresh_a=dict[str, str] | None), "or None"),
        ({}, {**_fields(fresh_a=str | None), "model_config": ConfigDict(frozen=False)}, "frozen, strict"),
        ({"strict": False}, _fields(fresh_a=str | None), "frozen, strict"),
        ({}, {**_fields(fresh_a=str | None), "_secret": PrivateAttr(default=None)}, "no private"),
        ({"propagat": ["fresh_a"]}, _fields(fresh_a=str | None), "unknown ContextFields options"),
        ({"propagate": "fresh_a"}, _fields(fresh_a=str | None), "collection of field names"),
        ({"propagate": ["fresh_b"]}, _fields(fresh_a=str | None), "not a field it declares"),
        ({"propagate": ["fresh_a"]}, _fields(fresh_a=int | None), "only a str field"),
        ({"keys": ["fresh_a"]}, _fields(fresh_a=str | None), "keys maps field names"),
        ({"keys": {"fresh_b": {"ecs": "fresh.b"}}}, _fields(fresh_a=str | None), "not a field it declares"),
        ({"keys": {"fresh_a": {"elastic": "fresh.a"}}}, _fields(fresh_a=str | None), "for ecs, gcp, datadog"),
        ({"keys": {"fresh_a": {"ecs": "trace.tenant"}}}, _fields(fresh_a=str | None), "schema writes itself"),
        ({"keys": {"fresh_a": {"ecs": "user"}}}, _fields(fresh_a=str | None), "another field's key"),  # Shop's user.id
        ({"keys": {"fresh_a": {"datadog": "usr.id"}}}, _fields(fresh_a=str | None), "another field's key"),
        ({"keys": {"fresh_a": {"ecs": "fresh..a"}}}, _fields(fresh_a=str | None), "no key"),
        ({}, _fields(status=str | None), "schema writes itself"),  # Datadog's own key
    ],
)
def test_a_subclass_that_breaks_the_rules_fails_when_it_is_created_and_declares_nothing(
    options: dict[str, Any], namespace: dict[str, Any], problem: str
) -> None:
    with pytest.raises(TypeError, match=problem):
        _declare(**options)(namespace)
    if "fresh_a" in namespace and problem not in ("fapilog's own", "already declared by Shop"):
        fine = _declare()(_fields(fresh_a=str | None))  # its name is still free
        assert list(fine.model_fields) == ["fresh_a"]


def test_a_field_may_be_constrained_a_literal_or_a_number() -> None:
    class Order(ContextFields, keys={"order_id": {"ecs": "order.id"}, "channel": {"ecs": "order.channel"}}):
        order_id: Annotated[str, Field(max_length=8)] | None = None
        channel: Literal["web", "app"] | None = None
        items: int | None = None
        total: float | None = None
        paid: bool | None = None

    with pytest.raises(pydantic.ValidationError):
        Order(order_id="o" * 9)
    with pytest.raises(pydantic.ValidationError):
        Order(channel="fax")  # type: ignore[arg-type]  # the misuse under test
    bind_fields(Order(order_id="o-1", channel="web", items=3, total=9.5, paid=True))
    assert Order.current() == Order(order_id="o-1", channel="web", items=3, total=9.5, paid=True)
    record = logging.makeLogRecord({"msg": "paid"})
    ContextFilter().filter(record)
    written = json.loads(format_line(record, "default"))
    assert [written[name] for name in ("order_id", "channel", "items", "total", "paid")] == ["o-1", "web", 3, 9.5, True]
    assert json.loads(format_line(record, "ecs"))["order"] == {"id": "o-1", "channel": "web"}


# The FastAPI app of the README: a sync dependency binds user_id, an async one tenant_id.


def _app_fields_of(line: str, schema: Schema) -> tuple[object, object]:
    """Return the user_id and tenant_id a JSON line of *schema* carries, as its backend reads them."""
    parsed = json.loads(line)
    if schema == "ecs":
        return parsed.get("user", {}).get("id"), parsed.get("tenant_id")
    if schema == "datadog":
        return parsed.get("usr", {}).get("id"), parsed.get("tenant_id")
    if schema == "gcp":
        return parsed.get("user_id"), parsed.get("tenant_id")
    assert "user_id" in parsed and "tenant_id" in parsed  # the default schema: null when unbound
    return parsed["user_id"], parsed["tenant_id"]


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_every_line_of_the_request_carries_the_fields_its_dependencies_bound_in_every_schema(
    schema: Schema, records: list[logging.LogRecord]
) -> None:
    async with http_client(shop_app) as client:
        signed_in = await client.get("/orders/7", headers=_signed_in("u-7"))
        anonymous = await client.get("/")
    assert signed_in.json() == {"order_id": 7, "user_id": "u-7", "tenant_id": "acme"}
    assert anonymous.json() == {"user_id": None, "tenant_id": None}
    by_trace = {signed_in.headers["X-Request-ID"]: ("u-7", "acme"), anonymous.headers["X-Request-ID"]: (None, None)}
    served = [record for record in records if record.__dict__["trace_id"] in by_trace]
    assert [
        (record.getMessage(), _app_fields_of(format_line(record, schema), schema), by_trace[record.__dict__["trace_id"]])
        for record in served
    ] == [
        ("order 7 looked up", ("u-7", "acme"), ("u-7", "acme")),
        ("GET /orders/7 200", ("u-7", "acme"), ("u-7", "acme")),
        ("receipt for order 7 sent", ("u-7", "acme"), ("u-7", "acme")),  # a BackgroundTask, after the response
        ("home visited", (None, None), (None, None)),
        ("GET / 200", (None, None), (None, None)),
    ]


async def test_200_concurrent_requests_with_distinct_users_give_no_line_with_another_requests_user(
    records: list[logging.LogRecord],
) -> None:
    async with http_client(shop_app) as client:
        responses = await asyncio.gather(
            *(client.get(f"/orders/{n}", headers=_signed_in(f"u-{n}", f"t-{n}")) for n in range(CONCURRENT))
        )
    expected = {response.headers["X-Request-ID"]: (f"u-{n}", f"t-{n}") for n, response in enumerate(responses)}
    lines = [json.loads(format_line(record, "default")) for record in records if record.name in ("shop", "fapilog.access")]
    assert len(lines) == 3 * CONCURRENT
    assert [line for line in lines if (line["user_id"], line["tenant_id"]) != expected[line["trace_id"]]] == []


def _lines_of(run_lines: list[str]) -> list[dict[str, Any]]:
    parsed, text = json_lines(run_lines)
    assert text == []
    return parsed


@pytest.mark.parametrize("config", [PATH, ENQUEUE_PATH], ids=["direct", "enqueue"])
def test_through_a_real_uvicorn_200_concurrent_requests_each_log_their_own_user_and_tenant(config: Any) -> None:
    async def requests(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=CONCURRENT)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            return await asyncio.gather(  # every other request signed in
                *(client.get(f"/orders/{n}", headers=_signed_in(f"u-{n}", f"t-{n}")) if n % 2 else client.get("/") for n in range(CONCURRENT))
            )

    def exercise(url: str) -> list[httpx.Response]:
        return asyncio.run(requests(url))

    command = [f"{BIN}/uvicorn", "examples.fields:app", "--port", "{port}", "--log-config", str(config), "--no-access-log"]
    run = serve(command, exercise)
    responses: list[httpx.Response] = run.result
    assert [response.status_code for response in responses] == [200] * CONCURRENT
    expected = {
        response.headers["X-Request-ID"]: (f"u-{n}", f"t-{n}") if n % 2 else (None, None) for n, response in enumerate(responses)
    }
    lines = [line for line in _lines_of(run.lines) if line["trace_id"] in expected]
    assert sorted(line["message"].split(" ")[0] for line in lines) == sorted(
        ["GET"] * CONCURRENT + ["order"] * (CONCURRENT // 2) + ["receipt"] * (CONCURRENT // 2) + ["home"] * (CONCURRENT // 2)
    )
    assert [line for line in lines if (line["user_id"], line["tenant_id"]) != expected[line["trace_id"]]] == []


def _app_with_calls(sent: list[httpx.Request]) -> FastAPI:
    """The shop's dependencies on endpoints that call another service, and that fail."""
    app = FastAPI(dependencies=[Depends(current_user), Depends(current_tenant)])

    @app.get("/call")
    async def call() -> None:
        async with instrument(httpx.AsyncClient(transport=recording_transport(sent))) as client:
            await client.get("http://stock.internal/items")

    @app.get("/fail")
    def fail() -> None:  # sync: in the thread pool too
        raise RuntimeError("the endpoint failed")

    return instrument_app(app)


async def test_client_records_carry_the_fields_bound_before_the_call(records: list[logging.LogRecord]) -> None:
    async with http_client(_app_with_calls([])) as client:
        await client.get("/call", headers=_signed_in("u-3"))
    [call] = [record for record in records if record.name == "fapilog.client"]
    assert _app_fields_of(format_line(call, "default"), "default") == ("u-3", "acme")


async def test_the_servers_error_line_about_an_escaped_exception_carries_the_requests_fields(
    records: list[logging.LogRecord],
) -> None:
    async with running_server(_app_with_calls([])) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            failed = await client.get("/fail", headers=_signed_in("u-9", "globex"))
            anonymous = await client.get("/fail", headers={"X-Tenant-ID": "globex"})
    assert (failed.status_code, anonymous.status_code) == (500, 401)
    [error] = [record for record in records if record.name == "uvicorn.error" and record.levelno == logging.ERROR]
    for schema in SCHEMAS:
        assert _app_fields_of(format_line(error, schema), schema) == ("u-9", "globex"), schema
    assert json.loads(format_line(error, "default"))["trace_id"] == failed.headers["X-Request-ID"]


async def test_a_request_served_in_process_inside_another_leaves_the_outer_requests_fields_intact(
    records: list[logging.LogRecord],
) -> None:
    inner = FastAPI(dependencies=[Depends(current_user), Depends(current_tenant)])

    @inner.get("/inner")
    async def inner_endpoint() -> dict[str, Any]:
        return Shop.current().model_dump()

    outer = FastAPI(dependencies=[Depends(current_user), Depends(current_tenant)])

    @outer.get("/outer")
    async def outer_endpoint() -> dict[str, Any]:
        async with http_client(instrument_app(inner)) as client:
            seen = (await client.get("/inner", headers=_signed_in("u-inner", "inner"))).json()
        logging.getLogger("shop").info("after the inner request")
        return {"inner": seen, "outer": Shop.current().model_dump()}

    async with http_client(instrument_app(outer)) as client:
        response = await client.get("/outer", headers=_signed_in("u-outer", "outer"))
    assert response.json() == {
        "inner": {"user_id": "u-inner", "tenant_id": "inner"},
        "outer": {"user_id": "u-outer", "tenant_id": "outer"},
    }
    [after] = [record for record in records if record.getMessage() == "after the inner request"]
    assert _app_fields_of(format_line(after, "default"), "default") == ("u-outer", "outer")
    accesses = [record for record in records if record.name == "fapilog.access"]
    assert [(access.__dict__["path"], _app_fields_of(format_line(access, "default"), "default")) for access in accesses] == [
        ("/inner", ("u-inner", "inner")),
        ("/outer", ("u-outer", "outer")),
    ]
    assert Shop.current() == Shop()


async def test_a_request_served_in_process_that_clears_its_context_leaves_its_callers_fields_intact() -> None:
    app = FastAPI()

    @app.get("/clears")
    async def clears() -> dict[str, Any]:
        clear_context()  # the request's scope is gone: this bind lands where a script's would
        bind_fields(Shop(user_id="after-clear"))
        return Shop.current().model_dump()

    bind_fields(Shop(user_id="script", tenant_id="acme"))
    async with http_client(instrument_app(app)) as client:
        response = await client.get("/clears")
    assert response.json() == {"user_id": "after-clear", "tenant_id": None}
    assert Shop.current() == Shop(user_id="script", tenant_id="acme")


async def test_a_bind_in_a_task_the_request_spawned_reaches_the_request_and_a_task_outliving_it_keeps_them() -> None:
    release = asyncio.Event()
    spawned: list[asyncio.Task[Shop]] = []
    app = FastAPI(dependencies=[Depends(current_user)])

    @app.get("/spawn")
    async def spawn() -> dict[str, Any]:
        async def later() -> Shop:
            await release.wait()
            return Shop.current()

        await asyncio.create_task(asyncio.to_thread(bind_fields, Shop(tenant_id="from-a-thread")))
        spawned.append(asyncio.create_task(later()))
        return Shop.current().model_dump()

    async with http_client(instrument_app(app)) as client:
        response = await client.get("/spawn", headers={"Authorization": "Bearer u-5"})
    assert response.json() == {"user_id": "u-5", "tenant_id": "from-a-thread"}
    release.set()
    assert await spawned[0] == Shop(user_id="u-5", tenant_id="from-a-thread")
    assert Shop.current() == Shop()
