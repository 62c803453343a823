"""The context API: bind, read, clear, copy — typed, validated, atomic, isolated."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import pydantic
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from fapilog import (
    RequestContext,
    TraceIDMiddleware,
    bind_context,
    clear_context,
    configure_logging,
    context_copy,
    get_context,
)
from tests.support.http import http_client
from tests.support.records import ALL_NONE

FIELDS = tuple(ALL_NONE)


def test_get_context_outside_any_bind_has_the_seven_keys_all_none() -> None:
    assert get_context() == ALL_NONE
    assert list(get_context()) == list(FIELDS)


def test_bound_values_are_returned_under_their_keys() -> None:
    bind_context(trace_id="t-1", span_id="00f067aa0ba902b7", status_code=201, latency_ms=1.5)
    assert get_context() == {
        **ALL_NONE,
        "trace_id": "t-1",
        "span_id": "00f067aa0ba902b7",
        "status_code": 201,
        "latency_ms": 1.5,
    }


def test_bind_merges_with_earlier_binds_and_overwrites_repeated_keys() -> None:
    bind_context(trace_id="first", user_agent="curl/8")
    bind_context(trace_id="second", req_bytes=10)
    assert get_context() == {**ALL_NONE, "trace_id": "second", "user_agent": "curl/8", "req_bytes": 10}


def test_binding_none_unsets_a_value() -> None:
    bind_context(trace_id="abc", status_code=200)
    bind_context(status_code=None)
    assert get_context() == {**ALL_NONE, "trace_id": "abc"}


def test_an_int_is_accepted_for_latency() -> None:
    bind_context(latency_ms=3)
    assert get_context()["latency_ms"] == 3


def test_clear_context_wipes_every_value() -> None:
    bind_context(
        trace_id="a", span_id="b", latency_ms=1.0, status_code=500, req_bytes=1, res_bytes=2, user_agent="ua"
    )
    clear_context()
    assert get_context() == ALL_NONE


def test_get_context_returns_a_fresh_dict_each_call() -> None:
    bind_context(trace_id="abc")
    first = get_context()
    first["trace_id"] = "mutated"
    second = get_context()
    assert second["trace_id"] == "abc"
    assert first is not second


def stored_model() -> RequestContext:
    """Return the model the context variable holds."""
    return next(value for value in context_copy().values() if isinstance(value, RequestContext))


def test_get_context_is_what_was_bound_in_the_cards_key_order() -> None:
    bind_context(trace_id="abc", res_bytes=7, latency_ms=0.25)
    expected = {**ALL_NONE, "trace_id": "abc", "latency_ms": 0.25, "res_bytes": 7}
    assert list(get_context().items()) == list(expected.items())


def test_the_stored_model_behaves_exactly_like_a_validated_one() -> None:
    bind_context(trace_id="abc", latency_ms=3)
    bind_context(status_code=204, user_agent="ua")
    stored = stored_model()
    validated = RequestContext(trace_id="abc", latency_ms=3, status_code=204, user_agent="ua")
    assert stored == validated
    assert hash(stored) == hash(validated)
    assert repr(stored) == repr(validated)
    assert stored.model_dump_json() == validated.model_dump_json()
    assert stored.model_copy(update={"span_id": "s"}).span_id == "s"
    assert type(stored.latency_ms) is float


def test_the_model_is_immutable() -> None:
    model = RequestContext(trace_id="abc")
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        model.trace_id = "other"  # type: ignore[misc]  # assigning to a frozen field is the point
    assert model.trace_id == "abc"


def test_the_model_rejects_unknown_fields() -> None:
    with pytest.raises(pydantic.ValidationError, match="bogus"):
        RequestContext(bogus=1)  # type: ignore[call-arg]  # the unknown field is the point


def test_a_snapshot_does_not_change_when_the_context_changes_later() -> None:
    bind_context(trace_id="before")
    snapshot = context_copy()
    bind_context(trace_id="after")
    clear_context()
    assert snapshot.run(get_context)["trace_id"] == "before"
    assert get_context()["trace_id"] is None


def test_a_bind_inside_a_snapshot_stays_inside_it() -> None:
    bind_context(trace_id="outer")
    snapshot = context_copy()
    snapshot.run(bind_context, trace_id="inner")
    assert snapshot.run(get_context)["trace_id"] == "inner"
    assert get_context()["trace_id"] == "outer"


async def test_binds_in_a_child_task_never_reach_the_parent() -> None:
    bind_context(trace_id="parent")

    async def child() -> str | None:
        bind_context(trace_id="child", status_code=418)
        return get_context()["trace_id"]

    assert await asyncio.create_task(child()) == "child"
    assert get_context() == {**ALL_NONE, "trace_id": "parent"}


async def test_200_concurrent_tasks_each_see_only_their_own_values() -> None:
    count = 200
    all_bound = asyncio.Event()
    bound = 0

    async def worker(index: int) -> tuple[int, dict[str, Any]]:
        nonlocal bound
        bind_context(trace_id=f"trace-{index}", req_bytes=index)
        bound += 1
        if bound == count:
            all_bound.set()
        await all_bound.wait()  # every task has bound before any reads
        return index, dict(get_context())

    results = await asyncio.gather(*(worker(i) for i in range(count)))
    for index, seen in results:
        assert seen == {**ALL_NONE, "trace_id": f"trace-{index}", "req_bytes": index}
    assert get_context() == ALL_NONE


@pytest.mark.parametrize(
    ("kwargs", "offending"),
    [
        ({"bogus": 1}, "bogus"),
        ({"status_code": "abc"}, "status_code"),
        ({"status_code": "200"}, "status_code"),
        ({"status_code": True}, "status_code"),
        ({"status_code": 99}, "status_code"),
        ({"status_code": 1000}, "status_code"),
        ({"trace_id": 123}, "trace_id"),
        ({"trace_id": b"abc"}, "trace_id"),
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"req_bytes": -1}, "req_bytes"),
        ({"res_bytes": 1.5}, "res_bytes"),
        ({"trace_id": "valid", "bogus": 1}, "bogus"),
        ({"span_id": "valid", "status_code": "abc"}, "status_code"),
    ],
)
def test_a_bad_bind_raises_naming_the_key_and_changes_nothing(kwargs: dict[str, Any], offending: str) -> None:
    bind_context(trace_id="kept", status_code=200)
    before = get_context()
    with pytest.raises(pydantic.ValidationError) as excinfo:
        bind_context(**kwargs)
    assert [error["loc"] for error in excinfo.value.errors()] == [(offending,)]
    assert str(excinfo.value).startswith("1 validation error for bind_context\n")  # the call the user made
    assert get_context() == before


_VALID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "trace_id": st.none() | st.text(max_size=40),
    "span_id": st.none() | st.text(max_size=20),
    "latency_ms": st.none() | st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    "status_code": st.none() | st.integers(100, 999),
    "req_bytes": st.none() | st.integers(min_value=0),
    "res_bytes": st.none() | st.integers(min_value=0),
    "user_agent": st.none() | st.text(max_size=40),
}
_INVALID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "trace_id": st.integers() | st.binary() | st.floats(),
    "span_id": st.integers() | st.lists(st.text(), max_size=2),
    "latency_ms": st.text() | st.just(float("inf")) | st.floats(max_value=-0.001),
    "status_code": st.text() | st.integers(max_value=99) | st.integers(min_value=1000) | st.booleans(),
    "req_bytes": st.text() | st.integers(max_value=-1) | st.floats(),
    "res_bytes": st.text() | st.integers(max_value=-1) | st.floats(),
    "user_agent": st.integers() | st.binary(),
}
_UNKNOWN_KEYS = st.text(min_size=1, max_size=12).filter(lambda key: key not in FIELDS)


@st.composite
def _binds(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    """Draw keyword arguments for one bind, and whether they are all valid."""
    kwargs: dict[str, Any] = {}
    valid = True
    for key in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=len(FIELDS))):
        if draw(st.booleans()):
            kwargs[key] = draw(_VALID_VALUES[key])
        else:
            kwargs[key] = draw(_INVALID_VALUES[key])
            valid = False
    for key in draw(st.lists(_UNKNOWN_KEYS, unique=True, max_size=2)):
        kwargs[key] = draw(st.integers() | st.text())
        valid = False
    return kwargs, valid


@given(st.lists(_binds(), min_size=1, max_size=6))
def test_every_bind_is_applied_whole_or_not_at_all(binds: list[tuple[dict[str, Any], bool]]) -> None:
    clear_context()
    expected = dict(ALL_NONE)
    for kwargs, valid in binds:
        if valid:
            bind_context(**kwargs)
            expected.update(kwargs)
        else:
            with pytest.raises(pydantic.ValidationError):
                bind_context(**kwargs)
        assert get_context() == expected
        assert stored_model() == RequestContext(**expected)


# The user story's four checks, through a real request and the JSON log.


def _story_app(spawned: list[asyncio.Task[None]], release: asyncio.Event) -> FastAPI:
    app = FastAPI()

    @app.get("/context")
    async def read() -> dict[str, Any]:
        return dict(get_context())

    @app.get("/cleared")
    async def cleared() -> dict[str, Any]:
        before = dict(get_context())
        clear_context()
        return {"before": before, "after": dict(get_context())}

    @app.get("/spawn")
    async def spawn() -> dict[str, Any]:
        async def log_later() -> None:
            await release.wait()  # released once the request is over
            logging.getLogger("app.tasks").info("background work done")

        spawned.append(asyncio.create_task(context_copy().run(log_later)))
        return dict(get_context())

    app.add_middleware(TraceIDMiddleware)
    return app


async def test_story_get_context_returns_the_expected_keys_with_the_request_values() -> None:
    async with http_client(_story_app([], asyncio.Event())) as client:
        response = await client.get("/context", headers={"X-Request-ID": "story-1", "User-Agent": "story/1"})
    seen = response.json()
    assert list(seen) == list(FIELDS)
    assert seen["trace_id"] == "story-1"
    assert re.fullmatch(r"[0-9a-f]{16}", seen["span_id"])
    assert seen["user_agent"] == "story/1"
    assert seen["status_code"] is None


async def test_story_clear_context_wipes_the_values() -> None:
    async with http_client(_story_app([], asyncio.Event())) as client:
        response = await client.get("/cleared", headers={"X-Request-ID": "story-2"})
    assert response.json()["before"]["trace_id"] == "story-2"
    assert response.json()["after"] == ALL_NONE
    assert get_context() == ALL_NONE


async def test_story_a_task_from_context_copy_logs_with_the_original_trace_id() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    spawned: list[asyncio.Task[None]] = []
    release = asyncio.Event()
    async with http_client(_story_app(spawned, release)) as client:
        response = await client.get("/spawn", headers={"X-Request-ID": "story-3"})
    assert get_context() == ALL_NONE  # the request's context is cleared...
    release.set()
    await asyncio.gather(*spawned)  # ...before the task logs
    [line] = [json.loads(text) for text in stream.getvalue().splitlines() if '"app.tasks"' in text]
    assert line["message"] == "background work done"
    assert line["trace_id"] == "story-3"
    assert line["span_id"] == response.json()["span_id"]


async def test_story_a_new_separate_request_receives_a_different_trace_id() -> None:
    async with http_client(_story_app([], asyncio.Event())) as client:
        first = (await client.get("/context")).json()
        second = (await client.get("/context")).json()
    assert re.fullmatch(r"[0-9a-f]{32}", first["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{32}", second["trace_id"])
    assert first["trace_id"] != second["trace_id"]
    assert first["span_id"] != second["span_id"]


# The idioms that really carry a request's context into other tasks and threads, as its log
# lines show: each runs a function that logs from inside a request.



async def _run(work: Callable[[], None]) -> None:
    work()


_IDIOMS: dict[str, Callable[[Callable[[], None]], Awaitable[object]]] = {
    "asyncio.create_task(coro, context=context_copy())": lambda work: asyncio.create_task(_run(work), context=context_copy()),
    "loop.run_in_executor(None, context_copy().run, work)": lambda work: asyncio.get_running_loop().run_in_executor(
        None, context_copy().run, work
    ),
    "asyncio.to_thread(work)": asyncio.to_thread,
    "anyio.to_thread.run_sync(work)": anyio.to_thread.run_sync,
    "loop.run_in_executor(None, work)": lambda work: asyncio.get_running_loop().run_in_executor(None, work),
}
_COPIES_NOTHING = "loop.run_in_executor(None, work)"


@pytest.mark.parametrize("idiom", _IDIOMS)
async def test_work_handed_over_by_the_documented_idioms_logs_with_the_requests_trace(
    idiom: str, records: list[logging.LogRecord]
) -> None:
    app = FastAPI()

    @app.get("/hand-over")
    async def hand_over() -> None:
        await _IDIOMS[idiom](lambda: logging.getLogger("app.work").info("handed over"))

    async with http_client(TraceIDMiddleware(app)) as client:
        response = await client.get("/hand-over", headers={"X-Request-ID": "hand-over-1"})
    [line] = [record for record in records if record.name == "app.work"]
    expected = None if idiom == _COPIES_NOTHING else "hand-over-1"  # executors copy nothing: the line has no trace
    assert (response.headers["X-Request-ID"], line.__dict__["trace_id"]) == ("hand-over-1", expected)
