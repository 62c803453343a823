"""fapilog.loguru: the seven fields in every record's ``extra``, serialized and formatted."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from loguru import logger

import fapilog.loguru
from examples.fields import current_tenant, current_user
from fapilog import instrument_app
from fapilog.loguru import patcher
from tests.support.http import http_client, running_server
from tests.support.records import ALL_NONE, UNBOUND, access_records

if TYPE_CHECKING:
    from loguru import Message, Record


def _no_patcher(record: Record) -> None:
    """Stand in for 'no patcher': loguru's configure cannot remove one."""


@pytest.fixture
def sink() -> Iterator[list[Message]]:
    """Capture what loguru writes, serialized, for this test only; then undo the test's loguru setup."""
    messages: list[Message] = []
    handler_id = logger.add(messages.append, serialize=True, level="DEBUG")
    yield messages
    logger.remove(handler_id)
    logger.configure(patcher=_no_patcher)


def _extras(messages: list[Message]) -> list[dict[str, Any]]:
    """Return each serialized line's message and extra, as a user's log shipper reads them."""
    return [
        {"message": record["message"], **record["extra"]}
        for record in (json.loads(message)["record"] for message in messages)
    ]


def _orders_app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        logger.info("order {} placed", order_id)
        logger.bind(trace_id="bound-by-app").info("bound")
        with logger.contextualize(user_agent="contextualized"):
            logger.info("contextualized", span_id="given-by-call")
        return {"order_id": order_id}

    return instrument_app(app)


async def test_configured_patcher_puts_each_requests_fields_in_extra_and_none_outside(
    sink: list[Message], records: list[logging.LogRecord]
) -> None:
    logger.configure(patcher=patcher)
    async with http_client(_orders_app()) as client:
        await client.get("/orders/1", headers={"X-Request-ID": "req-1", "User-Agent": "shop/1"})
        await client.get("/orders/2", headers={"X-Request-ID": "req-2", "User-Agent": "shop/2"})
    logger.info("after")
    first, second = (access["span_id"] for access in access_records(records))
    assert first != second
    expected: list[dict[str, Any]] = []
    for n, (request_id, span_id) in enumerate((("req-1", first), ("req-2", second)), 1):
        fields = {**ALL_NONE, **UNBOUND, "trace_id": request_id, "span_id": span_id, "user_agent": f"shop/{n}"}
        expected += [
            {"message": f"order {n} placed", **fields},
            {"message": "bound", **fields, "trace_id": "bound-by-app"},  # the call's own keys win
            {"message": "contextualized", **fields, "user_agent": "contextualized", "span_id": "given-by-call"},
        ]
    assert _extras(sink) == [*expected, {"message": "after", **ALL_NONE, **UNBOUND}]


async def test_each_record_carries_the_app_fields_its_request_bound_in_extra_and_none_elsewhere(sink: list[Message]) -> None:
    app = FastAPI(dependencies=[Depends(current_user), Depends(current_tenant)])

    @app.get("/pay")
    def pay() -> str:
        logger.info("paid")
        logger.bind(user_id="bound-by-app").info("paid by")
        return "ok"

    logger.configure(patcher=patcher)
    async with http_client(instrument_app(app)) as client:
        for user in ("u-1", "u-2"):
            await client.get("/pay", headers={"Authorization": f"Bearer {user}", "X-Tenant-ID": "acme"})
    logger.info("after")
    assert [(line["message"], line["user_id"], line["tenant_id"]) for line in _extras(sink)] == [
        ("paid", "u-1", "acme"),
        ("paid by", "bound-by-app", "acme"),  # the call's own keys win
        ("paid", "u-2", "acme"),
        ("paid by", "bound-by-app", "acme"),
        ("after", None, None),
    ]


async def test_a_patched_logger_fills_the_format_string_field(sink: list[Message]) -> None:
    lines: list[Message] = []
    handler_id = logger.add(lines.append, format="{extra[trace_id]} {extra[status_code]} {message}")
    patched = logger.patch(patcher)
    app = FastAPI()

    @app.get("/")
    async def home() -> str:
        patched.info("home")
        return "ok"

    try:
        async with http_client(instrument_app(app)) as client:
            await client.get("/", headers={"X-Request-ID": "fmt-1"})
            await client.get("/", headers={"X-Request-ID": "fmt-2"})
        patched.info("idle")
    finally:
        logger.remove(handler_id)
    assert lines == ["fmt-1 None home\n", "fmt-2 None home\n", "None None idle\n"]


class _InterceptHandler(logging.Handler):
    """loguru's documented recipe: route stdlib records (a server's) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.opt(exception=record.exc_info).log(record.levelname, record.getMessage())


async def test_a_real_uvicorns_error_line_routed_to_loguru_names_the_failed_request(
    sink: list[Message], records: list[logging.LogRecord]
) -> None:
    app = FastAPI()

    @app.get("/fail")
    async def fail() -> str:
        raise RuntimeError("handler failed")

    logger.configure(patcher=patcher)
    intercept = _InterceptHandler()
    logging.getLogger("uvicorn.error").addHandler(intercept)
    try:
        async with running_server(instrument_app(app)) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/fail", headers={"X-Request-ID": "uv-fail", "User-Agent": "probe/1"})
    finally:
        logging.getLogger("uvicorn.error").removeHandler(intercept)
    assert response.status_code == 500
    errors = [json.loads(message)["record"] for message in sink if message.record["level"].name == "ERROR"]
    assert [(error["message"], error["exception"]["type"]) for error in errors] == [
        ("Exception in ASGI application\n", "RuntimeError")
    ]
    [access] = access_records(records)
    assert errors[0]["extra"] == {**ALL_NONE, **UNBOUND, "trace_id": "uv-fail", "span_id": access["span_id"], "user_agent": "probe/1"}


def test_a_record_that_cannot_be_enriched_goes_on_unchanged_with_one_warning(sink: list[Message]) -> None:
    broken: Any = {"extra": None, "exception": None}  # what no loguru release passes: extra must be a dict
    with pytest.warns(RuntimeWarning, match="fapilog.loguru.patcher could not add the request context") as caught:
        patcher(broken)
        patcher(broken)
    assert len(caught) == 1
    assert broken == {"extra": None, "exception": None}


def test_a_context_that_cannot_be_read_never_fails_the_logging_call(
    sink: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable() -> object:
        raise LookupError("context unavailable")

    monkeypatch.setattr(fapilog.loguru, "current_model", unreadable)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # even a warning turned into an error does not escape
        logger.patch(patcher).info("still logged", order_id=7)
    assert _extras(sink) == [{"message": "still logged", "order_id": 7}]
