"""Per-request overhead of TraceIDMiddleware against asgi-correlation-id and starlette-context.

Each case calls a minimal Starlette app in process over ASGI; the overhead of a
middleware is its time minus the bare app's time in the same round.

The OpenTelemetry bridge is measured last, once OpenTelemetry is imported
(before, the bridge costs one dictionary lookup): with a server span current
around the requests, as OpenTelemetry's ASGI middleware outside leaves it, but
without that middleware's own cost (some 170 µs a request), whose noise would
hide the bridge's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from asgi_correlation_id import CorrelationIdMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope
from starlette_context.middleware import RawContextMiddleware
from starlette_context.plugins import RequestIdPlugin

from benchmarks._timing import Batch, NullStream, Timing, Verdict, measure, only_to, report
from fapilog import TraceIDMiddleware

_SCOPE: Scope = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 80),
}


async def _home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _app(wrap: Callable[[ASGIApp], ASGIApp] | None = None) -> ASGIApp:
    app: ASGIApp = Starlette(routes=[Route("/", _home)])
    return app if wrap is None else wrap(app)


def _batch(
    loop: asyncio.AbstractEventLoop,
    app: ASGIApp,
    around: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> Batch:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    async def requests(n: int) -> None:
        with around():
            for _ in range(n):
                await app(dict(_SCOPE), receive, send)

    return lambda n: loop.run_until_complete(requests(n))


def _opentelemetry_overheads(loop: asyncio.AbstractEventLoop, rounds: int) -> dict[str, Timing]:
    """Return fapilog's overhead with an OpenTelemetry server span current and without, measured together."""
    from opentelemetry import trace  # noqa: PLC0415 - imported only now: see the module docstring
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415

    span = TracerProvider().get_tracer("bench").start_span("GET /", kind=trace.SpanKind.SERVER)

    def current() -> contextlib.AbstractContextManager[object]:
        return trace.use_span(span, end_on_exit=False)

    timings = measure(
        {
            "bare": _batch(loop, _app()),
            "bare, span current": _batch(loop, _app(), current),
            "fapilog": _batch(loop, _app(TraceIDMiddleware)),
            "fapilog, span current": _batch(loop, _app(TraceIDMiddleware), current),
        },
        number=2_000,
        rounds=rounds,
    )
    return {
        "fapilog TraceIDMiddleware, OpenTelemetry imported, no span": timings["fapilog"].minus(timings["bare"]),
        "fapilog TraceIDMiddleware, OpenTelemetry span adopted": timings["fapilog, span current"].minus(
            timings["bare, span current"]
        ),
    }


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    access = logging.getLogger("fapilog.access")
    loop = asyncio.new_event_loop()
    handler = logging.StreamHandler(NullStream())
    try:
        cases = {
            "bare Starlette app": _batch(loop, _app()),
            "fapilog TraceIDMiddleware, access log off": _batch(loop, _app(TraceIDMiddleware)),
            "asgi-correlation-id CorrelationIdMiddleware": _batch(loop, _app(CorrelationIdMiddleware)),
            "starlette-context RawContextMiddleware+RequestIdPlugin": _batch(
                loop, _app(lambda app: RawContextMiddleware(app, plugins=(RequestIdPlugin(),)))
            ),
        }
        access.setLevel(logging.WARNING)
        timings = measure(cases, number=2_000, rounds=rounds)
        # The access log on, to a handler that formats each record and drops it.
        with only_to("fapilog.access", handler):
            logged = measure(
                {
                    "bare Starlette app": cases["bare Starlette app"],
                    "fapilog TraceIDMiddleware, access log on": _batch(loop, _app(TraceIDMiddleware)),
                },
                number=2_000,
                rounds=rounds,
            )
        otel = _opentelemetry_overheads(loop, rounds)
    finally:
        access.setLevel(logging.NOTSET)
        loop.close()
    bare = timings["bare Starlette app"]
    overhead: dict[str, Timing] = {
        name: timing.minus(bare) for name, timing in timings.items() if name != "bare Starlette app"
    }
    overhead["fapilog TraceIDMiddleware, access log on"] = logged[
        "fapilog TraceIDMiddleware, access log on"
    ].minus(logged["bare Starlette app"])
    report("middleware: time per request", {**timings, **logged})
    report("middleware: overhead per request over the bare app (same round)", overhead)
    report("middleware: overhead with OpenTelemetry imported (same round)", otel)
    ours = overhead["fapilog TraceIDMiddleware, access log off"].median
    return [
        Verdict(
            "TraceIDMiddleware overhead, OpenTelemetry bridge active / not",
            otel["fapilog TraceIDMiddleware, OpenTelemetry span adopted"].median,
            otel["fapilog TraceIDMiddleware, OpenTelemetry imported, no span"].median,
            None,
        ),
        Verdict(
            "TraceIDMiddleware / CorrelationIdMiddleware overhead",
            ours,
            overhead["asgi-correlation-id CorrelationIdMiddleware"].median,
            0.6,  # issue #23
        ),
        Verdict(
            "TraceIDMiddleware / RawContextMiddleware overhead",
            ours,
            overhead["starlette-context RawContextMiddleware+RequestIdPlugin"].median,
            1.0,
        ),
    ]
