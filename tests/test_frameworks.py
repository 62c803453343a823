"""Other ASGI frameworks under ``TraceIDMiddleware``, each served by a real uvicorn: the app behaves as without fapilog.

Each app of ``tests/apps/frameworks`` runs twice as a subprocess with
fapilog's log config: plain, then under ``TraceIDMiddleware``. Both runs get
the same requests, and must answer the same (status, body, headers but the
two fapilog adds, streamed chunks as they come, the WebSocket's messages and
close code); the traced run must also write one access record per request
and put the request's trace on every line the app and the framework log.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any

import httpx
import pytest
from litestar import Litestar, asgi
from litestar.logging.config import LoggingConfig
from litestar.types import Receive, Scope, Send
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import connect

from fapilog import TraceIDMiddleware, configure_logging
from fapilog.log_config import PATH
from tests.support.http import http_client
from tests.support.records import access_records
from tests.support.servers import json_lines, serve

BIN = sys.executable.rsplit("/", 1)[0]
FRAMEWORKS = ["bare", "litestar", "quart", "django"]
FAPILOG_HEADERS = {"x-request-id", "traceresponse"}
VARYING_HEADERS = {"date"}  # the clock's, not the app's

Outcome = tuple[str, Any]


def _http(url: str, path: str, request_id: str) -> Outcome:
    """One request on its own connection: status, headers but fapilog's (and the date), body."""
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.get(path, headers={"X-Request-ID": request_id})
    headers = [(name, value) for name, value in response.headers.multi_items() if name not in FAPILOG_HEADERS | VARYING_HEADERS]
    return path, (response.status_code, headers, response.text)


def _stream(url: str) -> Outcome:
    """Read the first chunk before the app may send the second: fapilog must pass each chunk on as it comes."""
    with httpx.Client(base_url=url, timeout=10) as client:
        with client.stream("GET", "/stream", headers={"X-Request-ID": "stream-2"}) as response:
            chunks = response.iter_raw()
            first = next(chunks)
            released = _http(url, "/release", "release-3")
            rest = b"".join(chunks)
    return "/stream", (response.status_code, first, rest, released)


def _websocket(url: str) -> Outcome:
    try:
        with connect(f"ws{url[4:]}/ws", additional_headers={"X-Request-ID": "ws-5"}) as socket:
            socket.send("hi")
            reply = socket.recv(timeout=10)
            with pytest.raises(ConnectionClosedOK) as closed:
                socket.recv(timeout=10)
    except InvalidStatus as refused:  # Django serves no WebSocket, with fapilog or without
        return "/ws", ("refused", refused.response.status_code)
    assert closed.value.rcvd is not None
    return "/ws", ("accepted", reply, closed.value.rcvd.code)


def _exercise(url: str) -> list[Outcome]:
    return [
        _http(url, "/hello", "hello-1"),
        _stream(url),
        _http(url, "/fail", "fail-4"),
        _websocket(url),
        _http(url, "/missing", "missing-6"),
    ]


def _run(framework: str, attribute: str) -> tuple[list[Outcome], list[dict[str, Any]]]:
    command = [f"{BIN}/uvicorn", f"tests.apps.frameworks.{framework}_app:{attribute}", "--port", "{port}"]
    run = serve([*command, "--log-config", str(PATH), "--no-access-log"], _exercise)
    lines, text = json_lines(run.lines)
    assert text == [], f"{framework} wrote lines that are not JSON"
    return run.result, lines


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_an_app_answers_as_without_fapilog_with_one_access_record_and_the_trace_on_every_line(framework: str) -> None:
    plain, _ = _run(framework, "app")
    traced, lines = _run(framework, "traced")
    assert traced == plain
    django = framework == "django"
    assert dict(traced)["/hello"][2] == ("hello no lifespan" if django else "hello ready")  # lifespan ran
    assert dict(traced)["/stream"][1:3] == (b"one\n", b"two\n")

    access = [line for line in lines if line["logger"] == "fapilog.access"]
    statuses = {line["trace_id"]: line["status_code"] for line in access}
    assert len(access) == len(statuses) == 6
    assert statuses == {
        "hello-1": 200,
        "stream-2": 200,
        "release-3": 200,
        "fail-4": 500,
        "ws-5": 500 if django else 101,
        "missing-6": 404,
    }
    [stream] = [line for line in access if line["trace_id"] == "stream-2"]
    assert stream["res_bytes"] == 8
    [ws] = [line for line in access if line["trace_id"] == "ws-5"]
    if not django:
        assert (ws["messages_in"], ws["messages_out"], ws["close_code"]) == (1, 1, 1000)

    def traces_of(message: str) -> set[str | None]:
        return {line["trace_id"] for line in lines if line["message"] == message}

    failures = {line["trace_id"] for line in lines if "failed on purpose" in line["message"] + line.get("exception", "")}
    assert failures == {"fail-4"}, "the framework's (or the server's) error line names the failed request"
    assert traces_of("hello") == {"hello-1"}
    if not django:
        assert traces_of("ws got hi") == {"ws-5"}
        assert traces_of("started") == {None}  # lifespan startup: no request


logging.getLogger("litestar")  # created now, so the autouse fixture puts back what Litestar's config does to it
README_LITESTAR_LOGGING = LoggingConfig(
    configure_root_logger=False, loggers={"litestar": {"level": "INFO", "handlers": [], "propagate": True}}
)


@pytest.mark.parametrize(
    ("logging_config", "kept"),
    [({}, False), ({"logging_config": None}, True), ({"logging_config": README_LITESTAR_LOGGING}, True)],
    ids=["default", "none", "readme"],
)
def test_litestars_default_logging_config_replaces_fapilogs_handler_and_the_readmes_keep_it(
    logging_config: dict[str, Any], kept: bool
) -> None:
    stream = io.StringIO()
    handler = configure_logging(stream=stream)
    Litestar(route_handlers=[], **logging_config)
    logging.getLogger("litestar").warning("a line of Litestar's")
    assert (handler in logging.root.handlers) is kept
    assert ('"logger":"litestar","message":"a line of Litestar\'s"' in stream.getvalue()) is kept


async def test_the_access_record_names_the_path_the_client_asked_for_when_litestar_strips_a_mount_prefix(
    records: list[logging.LogRecord],
) -> None:
    @asgi("/mounted", is_mount=True, copy_scope=False)  # Litestar 2's default: the mount strips its prefix in place
    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": ()})
        await send({"type": "http.response.body", "body": scope["path"].encode(), "more_body": False})

    app = TraceIDMiddleware(Litestar(route_handlers=[mounted], logging_config=None), exclude_paths=["/mounted/health"])
    async with http_client(app) as client:
        seen = [(await client.get(path)).text for path in ("/mounted/sub/x", "/mounted/health")]
    assert seen == ["/sub/x/", "/health/"]  # what Litestar gives the mounted app
    assert [(access["method"], access["path"]) for access in access_records(records)] == [("GET", "/mounted/sub/x")]
