"""Access-log controls: excluded paths stay quiet while they succeed, and the level follows the status."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from typing import Any, cast

import pytest
from fastapi import FastAPI, Response

from fapilog import TraceIDMiddleware, get_context, instrument_app
from fapilog._internal.middleware import level_by_status
from tests.support.http import http_client
from tests.support.records import ListHandler, access_records


def _app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/metrics/broken")
    async def broken() -> None:
        raise RuntimeError("the exporter failed")

    @app.get("/health")
    @app.get("/health/deep")
    @app.get("/metrics/{name}")
    @app.get("/orders")
    async def ok(response: Response, status: int = 200) -> dict[str, Any]:
        response.status_code = status
        return {"trace_id": get_context()["trace_id"]}

    return instrument_app(app, **options)


def _logged(records: list[logging.LogRecord]) -> list[tuple[str, int, str]]:
    return [(access["path"], access["status_code"], access["levelname"]) for access in access_records(records)]


async def test_a_successful_excluded_path_is_not_logged_but_is_traced(records: list[logging.LogRecord]) -> None:
    async with http_client(_app(exclude_paths=["/health", "/metrics/*"])) as client:
        health = await client.get("/health", headers={"X-Request-ID": "probe-1"})
        metrics = await client.get("/metrics/cpu")
        redirect = await client.get("/metrics/cpu", params={"status": 302})
    assert _logged(records) == []
    assert health.json() == {"trace_id": "probe-1"} and health.headers["x-request-id"] == "probe-1"
    assert metrics.json()["trace_id"] == metrics.headers["x-request-id"]
    assert redirect.status_code == 302


async def test_a_failing_excluded_path_is_logged_at_its_statuss_level(records: list[logging.LogRecord]) -> None:
    async with http_client(_app(exclude_paths=["/health", "/metrics/*"]), raise_app_exceptions=False) as client:
        await client.get("/health", params={"status": 503})
        await client.get("/metrics/cpu", params={"status": 404})
        await client.get("/metrics/broken")
    assert _logged(records) == [
        ("/health", 503, "ERROR"),
        ("/metrics/cpu", 404, "WARNING"),
        ("/metrics/broken", 500, "ERROR"),
    ]


async def test_only_the_exact_path_or_the_prefix_is_excluded(records: list[logging.LogRecord]) -> None:
    async with http_client(_app(exclude_paths=["/health", "/metrics/*"])) as client:
        for path in ("/health/deep", "/orders", "/metrics"):
            await client.get(path)
    assert _logged(records) == [("/health/deep", 200, "INFO"), ("/orders", 200, "INFO"), ("/metrics", 404, "WARNING")]


async def test_levels_follow_the_status_by_default(records: list[logging.LogRecord]) -> None:
    async with http_client(_app()) as client:
        for status in (200, 302, 404, 499, 500, 503):
            await client.get("/orders", params={"status": status})
    assert [(status, level) for _, status, level in _logged(records)] == [
        (200, "INFO"),
        (302, "INFO"),
        (404, "WARNING"),
        (499, "WARNING"),
        (500, "ERROR"),
        (503, "ERROR"),
    ]
    assert [access.levelno for access in records if access.name == "fapilog.access"] == [20, 20, 30, 30, 40, 40]


async def test_a_users_mapping_sets_the_level_and_one_that_fails_falls_back(records: list[logging.LogRecord]) -> None:
    def quiet_404(status: int) -> int:
        if status == 418:
            raise KeyError(status)
        if status == 451:
            return cast(int, "not a level")
        return logging.DEBUG if status == 404 else level_by_status(status)

    async with http_client(_app(access_level=quiet_404)) as client:
        for status in (404, 418, 451, 500):
            response = await client.get("/orders", params={"status": status})
            assert response.status_code == status
    assert [(status, level) for _, status, level in _logged(records)] == [
        (404, "DEBUG"),
        (418, "WARNING"),
        (451, "WARNING"),
        (500, "ERROR"),
    ]


async def test_a_level_below_the_loggers_is_not_written(records: list[logging.LogRecord]) -> None:
    logging.getLogger("fapilog.access").setLevel(logging.ERROR)
    async with http_client(_app()) as client:
        for status in (200, 404, 500):
            await client.get("/orders", params={"status": status})
    assert _logged(records) == [("/orders", 500, "ERROR")]


class _NotFoundDropped(logging.Filter):
    """A filter on ``fapilog.access`` that drops 404s and marks the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.seen_by = "access filter"
        status: object = record.__dict__["status_code"]
        return status != 404


def _disabled_below_warning() -> None:
    logging.disable(logging.INFO)


def _logger_filter() -> None:
    logging.getLogger("fapilog.access").addFilter(_NotFoundDropped())


def _logger_disabled() -> None:
    logging.getLogger("fapilog.access").disabled = True  # as dictConfig's disable_existing_loggers leaves it


_own_handlers_records: list[logging.LogRecord] = []


def _own_handler_not_propagated() -> None:
    """A handler of ``fapilog.access`` that only takes errors, and no propagation to the root."""
    access = logging.getLogger("fapilog.access")
    access.propagate = False
    own = ListHandler(_own_handlers_records)
    own.setLevel(logging.ERROR)
    access.addHandler(own)


@pytest.mark.parametrize(
    ("setup", "root_gets", "own_handler_gets"),
    [
        (_disabled_below_warning, [("/orders", 404, "WARNING"), ("/orders", 500, "ERROR")], []),
        (_logger_filter, [("/orders", 200, "INFO"), ("/orders", 500, "ERROR")], []),
        (_logger_disabled, [], []),
        (_own_handler_not_propagated, [], [("/orders", 500, "ERROR")]),
    ],
    ids=["logging.disable", "logger filter", "logger disabled", "own handler, not propagated"],
)
async def test_the_access_record_obeys_every_rule_of_logging(
    setup: Callable[[], None],
    root_gets: list[tuple[str, int, str]],
    own_handler_gets: list[tuple[str, int, str]],
    records: list[logging.LogRecord],
) -> None:
    """Levels, ``logging.disable``, logger filters, a disabled logger, handler levels and propagation: as for any record."""
    _own_handlers_records.clear()
    setup()
    async with http_client(_app()) as client:
        for status in (200, 404, 500):
            await client.get("/orders", params={"status": status})
    assert _logged(records) == root_gets
    assert _logged(_own_handlers_records) == own_handler_gets
    if setup is _logger_filter:
        assert {access["seen_by"] for access in access_records(records)} == {"access filter"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"exclude_paths": "/health"}, "a collection of paths, got the string '/health'"),
        ({"exclude_paths": ["health"]}, "starting with '/', got 'health'"),
        ({"exclude_paths": [b"/health"]}, "starting with '/', got b'/health'"),
        ({"access_level": lambda status: "ERROR"}, "a logging level (an int), got 'ERROR' for 200"),
        ({"access_level": {200: logging.INFO}.__getitem__}, "access_level failed for status 404: KeyError(404)"),
    ],
)
def test_options_that_could_never_work_are_refused_at_startup(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TraceIDMiddleware(FastAPI(), **options)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        instrument_app(FastAPI(), **options)


UNCONFIGURED_APP = """
import asyncio, logging, sys
import httpx
from fastapi import FastAPI
from fapilog import instrument_app

if sys.argv[1:] == ["configured"]:
    logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
app = FastAPI()

@app.get("/fail")
async def fail() -> None:
    raise RuntimeError("failed on purpose")

async def main() -> None:
    transport = httpx.ASGITransport(instrument_app(app), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        await client.get("/fail")
        await client.get("/missing", headers={"X-Request-ID": "not an id"})

asyncio.run(main())
"""


@pytest.mark.parametrize("setup", ["unconfigured", "configured"])
def test_with_no_logging_set_up_fapilog_prints_nothing_and_with_logging_its_records_go_there(setup: str) -> None:
    """A NullHandler on ``fapilog``, as the logging HOWTO advises: no bare "GET /fail 500" from the last-resort handler."""
    result = subprocess.run([sys.executable, "-c", UNCONFIGURED_APP, setup], capture_output=True, text=True, check=True)
    lines = result.stderr.splitlines()
    if setup == "unconfigured":
        assert lines == []
    else:
        assert "fapilog.access ERROR GET /fail 500" in lines
        assert "fapilog.access WARNING GET /missing 404" in lines
        assert any(line.startswith("fapilog.middleware WARNING ") for line in lines)
