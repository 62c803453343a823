"""TraceIDMiddleware, through HTTP: headers echoed, context bound, access records written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import pathlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import pytest
from pydantic import BaseModel
from fastapi import BackgroundTasks, FastAPI, Header, Request, Response
from fastapi.responses import StreamingResponse
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from fapilog import JsonFormatter, TraceIDMiddleware, configure_logging, get_context, instrument_app
from fapilog._internal import middleware as middleware_module
from fapilog._internal.context import attached_context
from fapilog._internal.ids import is_valid_request_id
from fapilog._internal.records import MAX_LINE_LENGTH, MAX_USER_AGENT_LENGTH
from tests.support.http import http_client, running_server
from tests.support.records import ALL_NONE, access_records, rendered

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")
TRACEPARENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACEPARENT_TRACE_ID}-00f067aa0ba902b7-01"
STREAM_CHUNKS = (b"a" * 10, b"b" * 20, b"c" * 30)


class ClientHeaders(BaseModel):
    """Every header httpx sends, as FastAPI's "Forbid Extra Headers" model: any other one is a 422."""

    model_config = {"extra": "forbid"}
    host: str
    accept: str
    accept_encoding: str
    connection: str
    user_agent: str
    x_request_id: str | None = None
    traceparent: str | None = None



class Seen:
    """What the app's code observed, filled in by the endpoints."""

    def __init__(self) -> None:
        self.contexts: dict[str, dict[str, Any]] = {}
        self.release = asyncio.Event()
        self.spawned_done = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()


def make_app(seen: Seen) -> FastAPI:
    """Return a FastAPI app whose endpoints record the context they see."""
    app = FastAPI()

    @app.get("/context")
    async def context_endpoint() -> dict[str, Any]:
        return dict(get_context())

    @app.get("/request-id")
    async def request_id_endpoint(request: Request) -> list[str]:
        return request.headers.getlist("X-Request-ID")

    @app.get("/sync")
    def sync_endpoint() -> dict[str, Any]:
        return dict(get_context())

    @app.get("/stream")
    async def stream_endpoint() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for chunk in STREAM_CHUNKS:
                yield chunk

        return StreamingResponse(chunks())

    @app.post("/upload")
    async def upload_endpoint(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.get("/fail")
    async def fail_endpoint() -> None:
        raise RuntimeError("boom")

    @app.get("/app-header")
    async def app_header_endpoint() -> Response:
        return Response("x", headers={"X-Request-ID": "set-by-the-app"})

    @app.get("/background")
    async def background_endpoint(tasks: BackgroundTasks) -> dict[str, Any]:
        def remember() -> None:
            seen.contexts["background"] = dict(get_context())

        tasks.add_task(remember)
        return dict(get_context())

    @app.get("/spawn")
    async def spawn_endpoint() -> dict[str, Any]:
        async def fire_and_forget() -> None:
            await seen.release.wait()  # released only after the response was received
            seen.contexts["spawned"] = dict(get_context())
            seen.spawned_done.set()

        task = asyncio.create_task(fire_and_forget())
        seen.tasks.add(task)
        return dict(get_context())

    return app


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def app(seen: Seen) -> FastAPI:
    app = make_app(seen)
    app.add_middleware(TraceIDMiddleware)
    return app


async def test_add_middleware_binds_the_context_and_echoes_the_trace_id(app: FastAPI) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"User-Agent": "probe/1.0"})
    body = response.json()
    assert HEX32.fullmatch(body["trace_id"])
    assert HEX16.fullmatch(body["span_id"])
    assert body["user_agent"] == "probe/1.0"
    assert response.headers.get_list("X-Request-ID") == [body["trace_id"]]


async def test_wrapping_the_app_works_the_same(seen: Seen) -> None:
    app = TraceIDMiddleware(make_app(seen), header_name="X-Trace")
    async with http_client(app) as client:
        response = await client.get("/context", headers={"X-Trace": "from-client"})
    assert response.json()["trace_id"] == "from-client"
    assert response.headers.get_list("X-Trace") == ["from-client"]
    assert "X-Request-ID" not in response.headers


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        TraceIDMiddleware(FastAPI(), "X-Trace")  # type: ignore[call-arg]  # a positional option is the point


def test_a_header_name_that_is_not_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match="header_name"):
        TraceIDMiddleware(FastAPI(), header_name="X Bad\r\n")


def test_a_generator_whose_ids_the_validator_rejects_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="generator"):
        TraceIDMiddleware(FastAPI(), generator=lambda: "bad id\n")


async def test_custom_generator_and_validator_are_used(seen: Seen) -> None:
    app = TraceIDMiddleware(make_app(seen), generator=lambda: "gen-1", validator=lambda value: value.startswith("ok-"))
    async with http_client(app) as client:
        accepted = await client.get("/context", headers={"X-Request-ID": "ok-123"})
        rejected = await client.get("/context", headers={"X-Request-ID": "abc"})
    assert accepted.json()["trace_id"] == "ok-123"
    assert rejected.json()["trace_id"] == "gen-1"
    assert rejected.headers["X-Request-ID"] == "gen-1"


async def test_every_request_gets_new_trace_and_span_ids(app: FastAPI) -> None:
    async with http_client(app) as client:
        bodies = [(await client.get("/context")).json() for _ in range(20)]
    assert len({body["trace_id"] for body in bodies}) == 20
    assert len({body["span_id"] for body in bodies}) == 20


async def test_the_trace_header_replaces_one_the_app_set(app: FastAPI) -> None:
    async with http_client(app) as client:
        response = await client.get("/app-header", headers={"X-Request-ID": "incoming-1"})
    assert response.headers.get_list("X-Request-ID") == ["incoming-1"]


async def test_a_valid_incoming_request_id_is_adopted_and_echoed(
    app: FastAPI, records: list[logging.LogRecord]
) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"X-Request-ID": "req-42.a_b:c"})
    assert response.json()["trace_id"] == "req-42.a_b:c"
    assert response.headers["X-Request-ID"] == "req-42.a_b:c"
    [access] = access_records(records)
    assert access["trace_id"] == "req-42.a_b:c"
    assert not [record for record in records if record.levelno >= logging.WARNING]


async def test_a_valid_traceparent_gives_its_trace_id_and_a_fresh_span_id(app: FastAPI) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"traceparent": TRACEPARENT})
    body = response.json()
    assert body["trace_id"] == TRACEPARENT_TRACE_ID
    assert HEX16.fullmatch(body["span_id"])
    assert body["span_id"] != "00f067aa0ba902b7"
    assert response.headers["X-Request-ID"] == TRACEPARENT_TRACE_ID


async def test_a_future_traceparent_version_with_more_fields_is_accepted(app: FastAPI) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"traceparent": f"cc-{TRACEPARENT[3:]}-what-the-future-holds"})
    assert response.json()["trace_id"] == TRACEPARENT_TRACE_ID


async def test_a_valid_traceparent_takes_precedence_over_the_request_id(app: FastAPI) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-1"})
    assert response.json()["trace_id"] == TRACEPARENT_TRACE_ID


async def test_an_invalid_traceparent_falls_back_to_the_request_id(app: FastAPI) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"traceparent": "garbage", "X-Request-ID": "req-1"})
    assert response.json()["trace_id"] == "req-1"


async def test_trusting_only_the_request_id_ignores_traceparent(seen: Seen) -> None:
    app = TraceIDMiddleware(make_app(seen), trust_incoming="request-id")
    async with http_client(app) as client:
        with_id = await client.get("/context", headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-1"})
        without_id = await client.get("/context", headers={"traceparent": TRACEPARENT})
    assert with_id.json()["trace_id"] == "req-1"
    assert without_id.json()["trace_id"] != TRACEPARENT_TRACE_ID
    assert HEX32.fullmatch(without_id.json()["trace_id"])


async def test_the_client_keeps_its_own_request_id_when_a_traceparent_sets_the_trace(
    app: FastAPI, records: list[logging.LogRecord]
) -> None:
    async with http_client(app) as client:
        response = await client.get("/request-id", headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-1"})
    assert response.headers["X-Request-ID"] == "req-1"
    assert response.json() == ["req-1"]
    [access] = access_records(records)
    assert (access["request_id"], access["trace_id"]) == ("req-1", TRACEPARENT_TRACE_ID)
    assert access["parent_span_id"] == "00f067aa0ba902b7"
    assert not [record for record in records if record.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="absent"),
        pytest.param({"X-Request-ID": ""}, id="empty"),
        pytest.param({"X-Request-ID": "bad id"}, id="invalid"),
        pytest.param({"traceparent": TRACEPARENT}, id="traceparent-only"),
        pytest.param({"X-Request-ID": "req-1"}, id="valid"),
    ],
)
async def test_by_default_the_app_sees_exactly_the_request_headers_the_client_sent(
    records: list[logging.LogRecord], headers: dict[str, str]
) -> None:
    """FastAPI's "Forbid Extra Headers" model answers 422 to any header the client did not send."""

    api = instrument_app(FastAPI())

    @api.get("/headers")
    async def headers_endpoint(request: Request, model: Annotated[ClientHeaders, Header()]) -> list[list[str]]:
        return [[name.decode(), value.decode()] for name, value in request.headers.raw]

    async with http_client(api) as client:
        response = await client.get("/headers", headers=headers)
    assert response.status_code == 200, response.text
    sent = [[name.decode(), value.decode()] for name, value in response.request.headers.raw]
    assert response.json() == [[name.lower(), value] for name, value in sent]
    [access] = access_records(records)
    assert access["request_id"] == access["trace_id"] == response.headers["X-Request-ID"]
    assert get_context()["trace_id"] is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="absent"),
        pytest.param({"X-Request-ID": ""}, id="empty"),
        pytest.param({"X-Request-ID": "bad id"}, id="invalid"),
        pytest.param({"traceparent": TRACEPARENT}, id="traceparent-only"),
    ],
)
async def test_with_update_request_header_the_app_sees_in_its_request_headers_the_id_the_response_echoes(
    seen: Seen, records: list[logging.LogRecord], headers: dict[str, str]
) -> None:
    app = TraceIDMiddleware(make_app(seen), update_request_header=True)
    async with http_client(app) as client:
        response = await client.get("/request-id", headers=headers)
    assert response.json() == [response.headers["X-Request-ID"]]
    [access] = access_records(records)
    assert access["request_id"] == access["trace_id"] == response.headers["X-Request-ID"]
    warned = [record for record in records if record.levelno == logging.WARNING]
    assert len(warned) == (1 if headers.get("X-Request-ID") == "bad id" else 0)


async def test_the_traceresponse_names_the_trace_this_span_and_the_flags(app: FastAPI) -> None:
    async with http_client(app) as client:
        new = await client.get("/context")
        adopted = await client.get("/context", headers={"traceparent": f"{TRACEPARENT[:-2]}00"})
        from_request_id = await client.get("/context", headers={"X-Request-ID": "req-1"})
    assert new.headers["traceresponse"] == f"00-{new.json()['trace_id']}-{new.json()['span_id']}-03"
    assert adopted.headers["traceresponse"] == f"00-{TRACEPARENT_TRACE_ID}-{adopted.json()['span_id']}-00"
    assert "traceresponse" not in from_request_id.headers  # "req-1" cannot be a W3C trace id


async def test_a_traceresponse_the_app_set_is_replaced(seen: Seen) -> None:
    api = make_app(seen)

    @api.get("/own-traceresponse")
    async def own() -> Response:
        return Response("x", headers={"traceresponse": f"00-{'1' * 32}-{'2' * 16}-01"})

    async with http_client(TraceIDMiddleware(api)) as client:
        response = await client.get("/own-traceresponse")
    [traceresponse] = response.headers.get_list("traceresponse")
    assert traceresponse.split("-")[1] == response.headers["X-Request-ID"]


async def test_sampled_false_starts_new_traces_unsampled_and_keeps_the_callers_decision(seen: Seen) -> None:
    app = TraceIDMiddleware(make_app(seen), sampled=False)
    async with http_client(app) as client:
        new = await client.get("/context")
        sampled_by_caller = await client.get("/context", headers={"traceparent": TRACEPARENT})
    assert new.headers["traceresponse"].endswith("-02")
    assert sampled_by_caller.headers["traceresponse"].endswith("-01")


async def test_the_access_record_has_no_parent_span_without_a_traceparent(
    app: FastAPI, records: list[logging.LogRecord]
) -> None:
    async with http_client(app) as client:
        await client.get("/context", headers={"X-Request-ID": "req-1"})
    [access] = access_records(records)
    assert (access["parent_span_id"], access["request_id"]) == (None, "req-1")


UNFIT_REQUEST_IDS = [  # refused whatever the validator says: no id can carry them into a header or a line
    pytest.param(b"abc\r\nX-Injected: 1", id="crlf"),
    pytest.param(b"evil\nline", id="lf"),
    pytest.param(b"x" * 5000, id="5000-chars"),
    pytest.param("caf\u00e9-\u2028-\u65e5\u672c".encode(), id="non-ascii"),
    pytest.param(b"\x1b[31mred\x1b[0m", id="ansi"),
    pytest.param(b"x" * 129, id="129-chars"),
]
HOSTILE_REQUEST_IDS = [
    *UNFIT_REQUEST_IDS,
    pytest.param(b'"quoted"', id="quotes"),
    pytest.param(b"%s%d%(trace_id)s%n", id="percent-formats"),
    pytest.param(b"has spaces in it", id="spaces"),
    pytest.param(b"a/b", id="slash"),
]
PERMISSIVE_VALIDATORS = [
    pytest.param(lambda value: len(value) <= 64, id="at-most-64"),
    pytest.param(lambda value: True, id="accept-all"),
]


@pytest.mark.parametrize(
    ("hostile", "validator"),
    [
        *[pytest.param(*case.values, is_valid_request_id, id=case.id) for case in HOSTILE_REQUEST_IDS],
        *[
            pytest.param(*case.values, *validator.values, id=f"{case.id}-{validator.id}")
            for case in UNFIT_REQUEST_IDS
            for validator in PERMISSIVE_VALIDATORS
        ],
    ],
)
async def test_a_hostile_request_id_is_replaced_and_never_echoed_bound_or_logged(
    seen: Seen, records: list[logging.LogRecord], hostile: bytes, validator: Callable[[str], bool]
) -> None:
    app = make_app(seen)
    app.add_middleware(TraceIDMiddleware, validator=validator)
    async with http_client(app) as client:
        response = await client.get("/context", headers={b"X-Request-ID": hostile})
    trace_id = response.json()["trace_id"]
    assert HEX32.fullmatch(trace_id)
    assert response.headers.raw.count((b"x-request-id", trace_id.encode())) == 1
    assert all(value != hostile for name, value in response.headers.raw)
    text = hostile.decode("latin-1")
    assert records
    for record in records:
        assert text not in rendered(record)
        assert text.encode("unicode_escape").decode() not in rendered(record)
    [warning] = [record for record in records if record.levelno == logging.WARNING]
    assert trace_id in warning.getMessage()


async def test_an_empty_request_id_is_replaced(app: FastAPI) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"X-Request-ID": ""})
    assert HEX32.fullmatch(response.json()["trace_id"])
    assert response.headers["X-Request-ID"] == response.json()["trace_id"]


HOSTILE_TRACEPARENTS = [
    pytest.param(f"00-{'0' * 32}-00f067aa0ba902b7-01", id="zero-trace-id"),
    pytest.param(f"00-{TRACEPARENT_TRACE_ID}-{'0' * 16}-01", id="zero-parent-id"),
    pytest.param(TRACEPARENT.upper(), id="uppercase"),
    pytest.param(TRACEPARENT[:-3], id="too-short"),
    pytest.param(f"ff-{TRACEPARENT[3:]}", id="version-ff"),
    pytest.param(f"{TRACEPARENT}-extra", id="version-00-with-extra-field"),
    pytest.param("garbage", id="garbage"),
    pytest.param(f"00-{TRACEPARENT_TRACE_ID}\r\n-00f067aa0ba902b7-01", id="crlf"),
]


@pytest.mark.parametrize("traceparent", HOSTILE_TRACEPARENTS)
async def test_an_invalid_traceparent_is_ignored_whole(
    app: FastAPI, records: list[logging.LogRecord], traceparent: str
) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"traceparent": traceparent})
    trace_id = response.json()["trace_id"]
    assert HEX32.fullmatch(trace_id)
    assert trace_id != TRACEPARENT_TRACE_ID
    assert response.headers["X-Request-ID"] == trace_id
    for record in records:
        assert traceparent not in rendered(record)


async def test_a_long_or_hostile_user_agent_is_bound_cut_and_escaped(app: FastAPI) -> None:
    async with http_client(app) as client:
        long = await client.get("/context", headers={"User-Agent": "u" * 5000})
        hostile = await client.get("/context", headers={b"User-Agent": b"agent\x1b[31m\x00end"})
    assert long.json()["user_agent"] == "u" * MAX_USER_AGENT_LENGTH
    assert hostile.json()["user_agent"] == "agent\\x1b[31m\\x00end"


async def test_a_head_response_logs_the_bytes_actually_sent(app: FastAPI, records: list[logging.LogRecord]) -> None:
    app.add_api_route("/head", lambda: {"body": "never sent for HEAD"}, methods=["HEAD", "GET"])
    async with http_client(app) as client:
        head = await client.head("/head")
        get = await client.get("/head")
    assert (head.content, len(get.content) > 0) == (b"", True)
    assert [(a["method"], a["res_bytes"]) for a in access_records(records)] == [("HEAD", 0), ("GET", len(get.content))]


async def test_the_user_agent_is_decoded_and_escaped_as_the_path_is(app: FastAPI, records: list[logging.LogRecord]) -> None:
    async with http_client(app) as client:
        response = await client.get("/caf%C3%A9", headers={b"User-Agent": "caf\u00e9/1.0 \xff".encode("utf-8") + b"\xff"})
    [access] = access_records(records)
    assert access["path"] == "/caf\\xe9"
    assert access["user_agent"] == "caf\\xe9/1.0 \\xff\\ufffd"  # an invalid byte: U+FFFD, as in a path
    assert response.status_code == 404


async def test_a_hostile_method_is_cut_and_escaped_so_the_line_stays_bounded(
    app: FastAPI, records: list[logging.LogRecord]
) -> None:
    async with http_client(app) as client:
        await client.request("X" * 20_000, "/context")
    [access] = access_records(records)
    assert access["method"] == "X" * 32
    assert len(JsonFormatter().format(next(r for r in records if r.name == "fapilog.access"))) < MAX_LINE_LENGTH


async def test_one_access_record_carries_all_fields(app: FastAPI, records: list[logging.LogRecord]) -> None:
    async with http_client(app) as client:
        response = await client.get("/context", headers={"User-Agent": "probe/1.0", "X-Request-ID": "acc-1"})
    [access] = access_records(records)
    assert access["levelno"] == logging.INFO
    assert access["message"] == "GET /context 200"
    assert access["trace_id"] == "acc-1"
    assert access["span_id"] == response.json()["span_id"]
    assert access["user_agent"] == "probe/1.0"
    assert access["status_code"] == 200
    assert access["req_bytes"] == 0
    assert access["res_bytes"] == len(response.content)
    assert access["method"] == "GET"
    assert access["path"] == "/context"
    assert isinstance(access["latency_ms"], float)
    assert access["latency_ms"] >= 0


async def test_a_chunked_upload_without_content_length_is_counted(
    app: FastAPI, records: list[logging.LogRecord]
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for size in (100, 200, 300):
            yield b"z" * size

    async with http_client(app) as client:
        response = await client.post("/upload", content=body())
    assert response.json() == {"received": 600}
    [access] = access_records(records)
    assert access["req_bytes"] == 600


async def test_a_streaming_response_is_counted(app: FastAPI, records: list[logging.LogRecord]) -> None:
    async with http_client(app) as client:
        response = await client.get("/stream")
    assert response.content == b"".join(STREAM_CHUNKS)
    [access] = access_records(records)
    assert access["res_bytes"] == 60
    assert access["status_code"] == 200


async def test_latency_ends_at_the_last_body_byte_not_after_background_tasks(
    monkeypatch: pytest.MonkeyPatch, records: list[logging.LogRecord]
) -> None:
    """A fake clock: the endpoint takes 5 ms, its background task 300 ms."""
    clock = [1000.0]
    monkeypatch.setattr(middleware_module, "_now", lambda: clock[0])

    async def slow_background() -> None:
        clock[0] += 0.300

    async def endpoint(tasks: BackgroundTasks) -> str:
        clock[0] += 0.005
        tasks.add_task(slow_background)
        return "done"

    app = FastAPI()
    app.get("/slow")(endpoint)
    app.add_middleware(TraceIDMiddleware)
    async with http_client(app) as client:
        await client.get("/slow")
    [access] = access_records(records)
    assert access["latency_ms"] == pytest.approx(5.0)
    assert clock[0] == pytest.approx(1000.305)


async def test_an_unhandled_exception_logs_500_reraises_and_leaves_the_context_clear(
    app: FastAPI, records: list[logging.LogRecord]
) -> None:
    async with http_client(app) as client:
        with pytest.raises(RuntimeError, match="boom"):
            await client.get("/fail", headers={"X-Request-ID": "fail-1"})
    [access] = access_records(records)
    assert access["status_code"] == 500
    assert access["trace_id"] == "fail-1"
    assert get_context() == ALL_NONE


async def test_in_wrap_mode_the_500_response_still_carries_the_header(
    seen: Seen, records: list[logging.LogRecord]
) -> None:
    app = TraceIDMiddleware(make_app(seen))
    async with http_client(app, raise_app_exceptions=False) as client:
        response = await client.get("/fail", headers={"X-Request-ID": "fail-2"})
    assert response.status_code == 500
    assert response.headers.get_list("X-Request-ID") == ["fail-2"]
    [access] = access_records(records)
    assert access["status_code"] == 500
    assert get_context() == ALL_NONE


async def test_the_escaping_exception_carries_the_request_context(app: FastAPI) -> None:
    async with http_client(app) as client:
        with pytest.raises(RuntimeError) as excinfo:
            await client.get("/fail", headers={"X-Request-ID": "fail-3"})
    attached = attached_context(excinfo.value)
    assert attached is not None
    assert attached.context["trace_id"] == "fail-3"
    assert HEX16.fullmatch(str(attached.context["span_id"]))


async def test_background_tasks_see_the_request_context(app: FastAPI, seen: Seen) -> None:
    async with http_client(app) as client:
        response = await client.get("/background", headers={"X-Request-ID": "bg-1"})
    assert response.json()["trace_id"] == "bg-1"
    background = seen.contexts["background"]
    assert background == {**response.json(), "trace_id": "bg-1"}


async def test_sync_endpoints_in_the_threadpool_see_the_request_context(app: FastAPI) -> None:
    async with http_client(app) as client:
        response = await client.get("/sync", headers={"X-Request-ID": "sync-1"})
    assert response.json()["trace_id"] == "sync-1"
    assert HEX16.fullmatch(response.json()["span_id"])


async def test_fire_and_forget_tasks_keep_the_trace_id_after_the_request_ended(app: FastAPI, seen: Seen) -> None:
    async with http_client(app) as client:
        response = await client.get("/spawn", headers={"X-Request-ID": "spawn-1"})
    assert get_context() == ALL_NONE
    seen.release.set()
    await seen.spawned_done.wait()
    assert response.json()["trace_id"] == "spawn-1"
    assert seen.contexts["spawned"]["trace_id"] == "spawn-1"


async def test_300_concurrent_requests_each_see_and_echo_their_own_id(app: FastAPI) -> None:
    async with http_client(app) as client:
        responses = await asyncio.gather(
            *(client.get("/context", headers={"X-Request-ID": f"concurrent-{i}"}) for i in range(300))
        )
    for index, response in enumerate(responses):
        assert response.json()["trace_id"] == f"concurrent-{index}"
        assert response.headers["X-Request-ID"] == f"concurrent-{index}"
    assert get_context() == ALL_NONE


async def test_100_concurrent_requests_without_ids_all_get_distinct_ids(app: FastAPI) -> None:
    async with http_client(app) as client:
        responses = await asyncio.gather(*(client.get("/sync") for _ in range(100)))
    trace_ids = {response.json()["trace_id"] for response in responses}
    assert len(trace_ids) == 100
    assert trace_ids == {response.headers["X-Request-ID"] for response in responses}


async def test_the_next_request_sees_nothing_of_the_previous_one(app: FastAPI) -> None:
    async with http_client(app) as client:
        first = await client.get("/context", headers={"X-Request-ID": "first", "User-Agent": "one"})
        second = await client.get("/context", headers={"User-Agent": "two"})
    assert first.json()["trace_id"] == "first"
    assert second.json()["trace_id"] != "first"
    assert second.json()["user_agent"] == "two"
    assert second.json()["status_code"] is None
    assert get_context() == ALL_NONE


async def _access_records_once_written(records: list[logging.LogRecord], count: int) -> list[dict[str, Any]]:
    """Wait (bounded) until the server wrote *count* access records: a WebSocket's is written once its app returns."""
    for _ in range(500):
        if len(access_records(records)) >= count:
            break
        await asyncio.sleep(0.01)
    return access_records(records)


def _websocket_app() -> Starlette:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept(headers=[(b"x-request-id", b"set-by-the-app")])
        while (message := await websocket.receive())["type"] == "websocket.receive":
            data = message["bytes"].decode() if message.get("bytes") is not None else message["text"]
            await websocket.send_json({"echo": data, **get_context()})

    async def refuse(websocket: WebSocket) -> None:
        await websocket.close(code=1008)

    async def fail(websocket: WebSocket) -> None:
        await websocket.accept()
        raise RuntimeError("the socket failed on purpose")

    async def deny(websocket: WebSocket) -> None:
        await websocket.send_denial_response(PlainTextResponse("no entry", status_code=401))

    endpoints = {"/ws": echo, "/refuse": refuse, "/deny": deny, "/fail": fail}
    routes = [WebSocketRoute(path, endpoint) for path, endpoint in endpoints.items()]
    return instrument_app(Starlette(routes=routes))


async def test_a_websocket_sees_its_trace_and_gets_one_access_record_when_it_closes(
    records: list[logging.LogRecord],
) -> None:
    async with running_server(_websocket_app()) as url:
        headers = {"X-Request-ID": "ws-1"}
        async with connect(f"ws{url[4:]}/ws", additional_headers=headers, user_agent_header="ws-agent") as websocket:
            assert websocket.response is not None
            accepted = websocket.response.headers.get_all("X-Request-ID")
            replies = []
            for data in ("hello", b"again!"):
                await websocket.send(data)
                replies.append(await websocket.recv(decode=True))
        [access] = await _access_records_once_written(records, 1)
    seen = [json.loads(reply) for reply in replies]
    assert accepted == ["ws-1"]
    assert [reply["echo"] for reply in seen] == ["hello", "again!"]
    assert {(reply["trace_id"], reply["user_agent"]) for reply in seen} == {("ws-1", "ws-agent")}
    assert HEX16.fullmatch(seen[0]["span_id"]) and seen[1]["span_id"] == seen[0]["span_id"] == access["span_id"]
    assert {key: access[key] for key in ("message", "trace_id", "request_id", "status_code", "method", "path")} == {
        "message": "GET /ws 101",
        "trace_id": "ws-1",
        "request_id": "ws-1",
        "status_code": 101,
        "method": "GET",
        "path": "/ws",
    }
    assert (access["messages_in"], access["messages_out"], access["close_code"]) == (2, 2, 1000)
    assert (access["req_bytes"], access["res_bytes"]) == (11, sum(len(str(reply).encode()) for reply in replies))
    assert access["latency_ms"] > 0
    assert get_context() == ALL_NONE


async def test_a_refused_or_failing_websocket_gets_its_access_record_with_the_status_and_close_code(
    records: list[logging.LogRecord],
) -> None:
    async with running_server(_websocket_app()) as url:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws{url[4:]}/refuse"):
                pass
        with pytest.raises(InvalidStatus) as denied:
            async with connect(f"ws{url[4:]}/deny"):
                pass
        async with connect(f"ws{url[4:]}/fail") as websocket:
            with pytest.raises(ConnectionClosedError):  # the server drops it
                await websocket.recv()
        access = await _access_records_once_written(records, 3)
    assert refused.value.response.status_code == 403
    assert (denied.value.response.status_code, denied.value.response.body) == (401, b"no entry")
    assert denied.value.response.headers["X-Request-ID"] == access[1]["trace_id"]
    assert [(line["path"], line["status_code"], line["close_code"], line["levelname"]) for line in access] == [
        ("/refuse", 403, 1008, "WARNING"),
        ("/deny", 401, None, "WARNING"),
        ("/fail", 500, None, "ERROR"),
    ]


LIFESPAN: list[Message] = [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_lifespan_passes_through_untouched(records: list[logging.LogRecord]) -> None:
    calls: list[tuple[Scope, Receive]] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive))
        assert get_context() == ALL_NONE
        for message in LIFESPAN:
            await send(message)

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await TraceIDMiddleware(app)(scope, receive, send)
    assert calls == [(scope, receive)]
    assert sent == LIFESPAN
    assert [record for record in records if record.name.startswith("fapilog")] == []


async def test_as_the_lifespan_ends_queued_lines_are_written_and_later_ones_at_once() -> None:
    """A server may end its process by a signal once the app shut down: no line may wait in a queue by then."""
    stream = io.StringIO()
    configure_logging(stream=stream, enqueue=True)
    written: list[list[str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for n in range(100):
            logging.getLogger("app").info("line %d", n)
        await send({"type": "lifespan.shutdown.complete"})

    async def send(message: Message) -> None:  # the server: it logs its last line, then may end by a signal
        written.append(stream.getvalue().splitlines())
        logging.getLogger("uvicorn.error").info("Finished server process")
        written.append(stream.getvalue().splitlines())

    await TraceIDMiddleware(app)({"type": "lifespan", "asgi": {"version": "3.0"}}, _never_called, send)
    at_shutdown, after_last_line = written
    assert [json.loads(line)["message"] for line in at_shutdown] == [f"line {n}" for n in range(100)]
    assert json.loads(after_last_line[-1])["message"] == "Finished server process"


async def _never_called() -> Message:
    raise AssertionError("not called")


async def test_an_app_that_sends_no_response_gets_a_500_access_record(records: list[logging.LogRecord]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    async with http_client(TraceIDMiddleware(app)) as client:
        with pytest.raises(AssertionError):  # httpx's ASGITransport asserts that a response started
            await client.get("/silent")
    [access] = access_records(records)
    assert access["status_code"] == 500
    assert get_context() == ALL_NONE


async def test_the_access_record_is_skipped_when_its_logger_is_off(
    app: FastAPI, records: list[logging.LogRecord]
) -> None:
    logging.getLogger("fapilog.access").setLevel(logging.WARNING)
    async with http_client(app) as client:
        response = await client.get("/context")
    assert response.status_code == 200
    assert access_records(records) == []


async def test_a_pathsend_response_counts_the_file_size(
    tmp_path: pathlib.Path, records: list[logging.LogRecord]
) -> None:
    """Servers with the pathsend extension get the file path instead of body messages."""
    served = tmp_path / "served.bin"
    served.write_bytes(b"f" * 1234)
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(served)})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/file", "headers": [], "extensions": {"http.response.pathsend": {}}}
    await TraceIDMiddleware(app)(scope, receive, send)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.pathsend"]
    [access] = access_records(records)
    assert access["res_bytes"] == 1234
    assert access["status_code"] == 200


async def test_an_odd_status_from_the_app_is_passed_on_and_logged_as_sent(records: list[logging.LogRecord]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 42, "headers": []})
        await send({"type": "http.response.body", "body": b"odd"})

    async with http_client(TraceIDMiddleware(app)) as client:
        response = await client.get("/odd")
    assert response.status_code == 42
    assert response.content == b"odd"
    [access] = access_records(records)
    assert access["status_code"] == 42
    assert access["res_bytes"] == 3


class ReadOnlyError(Exception):
    """An exception type that refuses every attribute but the ones raising needs."""

    def __setattr__(self, name: str, value: object) -> None:
        if name not in {"__traceback__", "__context__", "__cause__", "__suppress_context__"}:
            raise AttributeError(f"{type(self).__name__} is read-only")
        super().__setattr__(name, value)


async def test_an_exception_that_refuses_attributes_is_reraised_unchanged(records: list[logging.LogRecord]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ReadOnlyError("read-only")

    async with http_client(TraceIDMiddleware(app)) as client:
        with pytest.raises(ReadOnlyError) as excinfo:
            await client.get("/read-only")
    assert excinfo.value.args == ("read-only",)
    assert attached_context(excinfo.value) is None
    [access] = access_records(records)
    assert access["status_code"] == 500


async def test_a_request_served_in_process_inside_another_leaves_the_outer_context_intact(
    records: list[logging.LogRecord],
) -> None:
    """An app calling another app over ASGITransport runs it in the same task."""
    inner = FastAPI()

    @inner.get("/inner")
    async def inner_endpoint() -> dict[str, Any]:
        return dict(get_context())

    inner.add_middleware(TraceIDMiddleware)
    outer = FastAPI()

    @outer.get("/outer")
    async def outer_endpoint() -> dict[str, Any]:
        async with http_client(inner) as client:
            inner_seen = (await client.get("/inner", headers={"X-Request-ID": "inner-1"})).json()
        return {"inner": inner_seen, "outer_after": dict(get_context())}

    outer.add_middleware(TraceIDMiddleware)
    async with http_client(outer) as client:
        body = (await client.get("/outer", headers={"X-Request-ID": "outer-1"})).json()
    assert body["inner"]["trace_id"] == "inner-1"
    assert body["outer_after"]["trace_id"] == "outer-1"
    assert [access["trace_id"] for access in access_records(records)] == ["inner-1", "outer-1"]
    assert get_context() == ALL_NONE


async def test_a_mounted_sub_app_instrumented_too_writes_one_access_record_naming_the_traceresponse_span(
    records: list[logging.LogRecord],
) -> None:
    """Each app set up the README's way: the inner middleware passes the outer one's request through."""
    inner = instrument_app(FastAPI())

    @inner.get("/items")
    async def items() -> dict[str, Any]:
        logging.getLogger("shop").info("items listed")
        return dict(get_context())

    outer = instrument_app(FastAPI())
    outer.mount("/sub", inner)
    async with http_client(outer) as client:
        response = await client.get("/sub/items")
    [access] = access_records(records)
    _, trace_id, span_id, _ = response.headers["traceresponse"].split("-")
    assert response.headers.get_list("X-Request-ID") == [trace_id]
    assert (access["path"], access["trace_id"], access["span_id"]) == ("/sub/items", trace_id, span_id)
    assert (response.json()["trace_id"], response.json()["span_id"]) == (trace_id, span_id)
    [line] = [record for record in records if record.name == "shop"]
    assert (getattr(line, "trace_id"), getattr(line, "span_id")) == (trace_id, span_id)  # set by the ContextFilter


async def test_a_scope_without_headers_is_served_and_logged(records: list[logging.LogRecord]) -> None:
    """Starlette reads a scope without "headers" as having none; so does fapilog."""

    async def home(request: Request) -> Response:
        return Response(get_context()["trace_id"])

    app = TraceIDMiddleware(Starlette(routes=[Route("/", home)]), update_request_header=True)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "scheme": "http"}
    await app(scope, receive, send)
    trace_id = sent[1]["body"].decode()
    assert (sent[0]["status"], dict(sent[0]["headers"])[b"x-request-id"]) == (200, trace_id.encode())
    [access] = access_records(records)
    assert (access["trace_id"], access["status_code"], access["path"]) == (trace_id, 200, "/")
