"""The whole per-request tax of each logging stack a FastAPI user can pick, and a plot of it.

The tax is what a request costs with the stack minus what it costs the bare
app with logging off (the same endpoint, its log call disabled), measured in
the same round: the middleware, one JSON access line and one JSON app line
with one ``extra`` field, both carrying the request's id, written to a stream
that drops them. In process, over ASGI, interleaved. The four stacks:

- fapilog: ``instrument_app`` + ``configure_logging``;
- asgi-correlation-id + a hand-written pure-ASGI access-log middleware +
  python-json-logger with asgi-correlation-id's ``CorrelationIdFilter``;
- the widely copied recipe: asgi-correlation-id + structlog through stdlib
  logging (``ProcessorFormatter``) + an ``@app.middleware("http")`` access
  logger that binds the request id with ``bind_contextvars``;
- OpenTelemetry's ASGI middleware (an SDK tracer provider, no exporter) +
  ``LoggingInstrumentor`` (trace ids injected, its log bridge off) +
  python-json-logger, with the same hand-written access-log middleware inside
  it (OpenTelemetry writes no access line).

The peers' access lines carry fewer fields than fapilog's (no span id, byte
counts or user agent), so the comparison favours them. Logging setup is
global (root handlers, the record factory): each case installs its own for
its batch and puts back the previous one after it.

Writes ``request-tax.svg`` beside this module: the tax per stack, at a glance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from asgi_correlation_id import CorrelationIdFilter, CorrelationIdMiddleware
from asgi_correlation_id.context import correlation_id
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from pythonjsonlogger.json import JsonFormatter as PythonJsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks._timing import NullStream, Timing, Verdict, measure, report
from fapilog import clear_context, configure_logging, instrument_app

PLOT = Path(__file__).with_name("request-tax.svg")
NUMBER = 400  # requests per batch
PATH = "/orders/42"

FAPILOG = "fapilog: instrument_app + configure_logging"
CORRELATION_ID = "asgi-correlation-id + pure-ASGI access log + python-json-logger"
STRUCTLOG = "asgi-correlation-id + structlog + @app.middleware access log"
OPENTELEMETRY = "OpenTelemetry ASGI + LoggingInstrumentor + python-json-logger"
PEERS = {CORRELATION_ID: "the asgi-correlation-id stack", STRUCTLOG: "the structlog recipe", OPENTELEMETRY: "the OpenTelemetry stack"}
"""Each peer stack, by the short name its verdict gives."""
BARE = "bare app, logging off"

_SCOPE: Scope = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": PATH,
    "raw_path": PATH.encode(),
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 80),
}

_app_logger = logging.getLogger("app")


async def _stdlib_endpoint() -> PlainTextResponse:
    _app_logger.info("order placed", extra={"order_id": 42})
    return PlainTextResponse("ok")


def _fastapi(endpoint: Callable[[], Awaitable[PlainTextResponse]]) -> FastAPI:
    app = FastAPI()
    app.add_api_route(PATH, endpoint, methods=["GET"])
    return app


class _AccessLog:
    """The hand-written pure-ASGI access-log middleware: one INFO line per request, when its body ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.logger = logging.getLogger("access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                latency_ms = (time.perf_counter() - start) * 1000.0
                method, path = scope["method"], scope["path"]
                extra = {"method": method, "path": path, "status_code": status, "latency_ms": latency_ms}
                self.logger.info("%s %s %s", method, path, status, extra=extra)

        await self.app(scope, receive, send_logged)


@dataclass
class _Stack:
    """An app and the logging setup it is measured with: root handler, level, record factory."""

    app: ASGIApp
    handler: logging.Handler | None
    factory: Callable[..., logging.LogRecord] = logging.LogRecord
    id_field: str = ""
    """The JSON key of the request id in both lines (``request_id`` nested under ``http`` is found too)."""

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Make this stack's logging setup the process's for the block."""
        root = logging.getLogger()
        saved = root.handlers[:], root.level, logging.getLogRecordFactory()
        root.handlers = [] if self.handler is None else [self.handler]
        root.setLevel(logging.WARNING if self.handler is None else logging.INFO)
        logging.setLogRecordFactory(self.factory)
        try:
            yield
        finally:
            root.handlers, level, factory = saved
            root.setLevel(level)
            logging.setLogRecordFactory(factory)


def _bare() -> _Stack:
    return _Stack(_fastapi(_stdlib_endpoint), None)


def _fapilog_stack() -> _Stack:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    handler = configure_logging(stream=NullStream())  # type: ignore[arg-type]  # any object with write() will do
    root.handlers, level = saved
    root.setLevel(level)
    return _Stack(instrument_app(_fastapi(_stdlib_endpoint)), handler, id_field="trace_id")


def _correlation_id_stack() -> _Stack:
    app = _fastapi(_stdlib_endpoint)
    app.add_middleware(_AccessLog)
    app.add_middleware(CorrelationIdMiddleware)  # added last: outside, so the id is set when the line is written
    handler = logging.StreamHandler(NullStream())
    handler.addFilter(CorrelationIdFilter())
    handler.setFormatter(PythonJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s"))
    return _Stack(app, handler, id_field="correlation_id")


def _structlog_stack() -> _Stack:
    """The recipe as it is copied: structlog through stdlib logging, its access line from ``@app.middleware``."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(NullStream())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
        )
    )
    app_logger = structlog.stdlib.get_logger("app")
    access_logger = structlog.stdlib.get_logger("access")

    async def endpoint() -> PlainTextResponse:
        app_logger.info("order placed", order_id=42)
        return PlainTextResponse("ok")

    app = _fastapi(endpoint)

    @app.middleware("http")
    async def log_access(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        structlog.contextvars.clear_contextvars()
        request_id = correlation_id.get()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter_ns()
        response = Response(status_code=500)
        try:
            response = await call_next(request)
        finally:
            process_time = time.perf_counter_ns() - start
            status_code = response.status_code
            method = request.method
            http_version = request.scope["http_version"]
            access_logger.info(
                f'{request.client.host if request.client else ""} - "{method} {request.url.path} HTTP/{http_version}" {status_code}',
                http={"url": str(request.url), "status_code": status_code, "method": method, "request_id": request_id},
                duration=process_time,
            )
            response.headers["X-Process-Time"] = str(process_time / 10**9)
        return response

    app.add_middleware(CorrelationIdMiddleware)
    return _Stack(app, handler, id_field="request_id")


def _opentelemetry_stack() -> _Stack:
    instrumentor = LoggingInstrumentor()
    saved = logging.getLogRecordFactory()
    instrumentor.instrument(inject_trace_context=True, enable_log_auto_instrumentation=False)
    factory = logging.getLogRecordFactory()  # the factory that puts the current span's ids on each record
    instrumentor.uninstrument()
    logging.setLogRecordFactory(saved)
    app = _fastapi(_stdlib_endpoint)
    app.add_middleware(_AccessLog)
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=TracerProvider())
    handler = logging.StreamHandler(NullStream())
    handler.setFormatter(PythonJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(otelTraceID)s %(otelSpanID)s"))
    return _Stack(app, handler, factory, id_field="otelTraceID")


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _request(app: ASGIApp, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    async def send(message: Message) -> None:
        if headers is not None and message["type"] == "http.response.start":
            headers.extend(message["headers"])

    await app(dict(_SCOPE), _receive, send)


def _batch(loop: asyncio.AbstractEventLoop, stack: _Stack) -> Callable[[int], None]:
    async def requests(n: int) -> None:
        for _ in range(n):
            await _request(stack.app)

    def run(n: int) -> None:
        with stack.installed():
            loop.run_until_complete(requests(n))

    return run


class _Lines:
    """A stream that keeps what is written to it, line by line."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def _found(item: object, key: str) -> object:
    """Return the value of *key* in *item* or in a dict nested in it; ``None`` if absent."""
    if not isinstance(item, dict):
        return None
    if key in item:
        return item[key]
    return next((found for value in item.values() if (found := _found(value, key)) is not None), None)


def _check(loop: asyncio.AbstractEventLoop, name: str, stack: _Stack) -> None:
    """Serve one request and check the work: two JSON lines, both with the request's id; the app line with its field."""
    assert isinstance(stack.handler, logging.StreamHandler)
    lines = _Lines()
    null = stack.handler.setStream(lines)
    headers: list[tuple[bytes, bytes]] = []
    try:
        with stack.installed():
            loop.run_until_complete(_request(stack.app, headers))
    finally:
        stack.handler.setStream(null)
    records = [json.loads(line) for line in lines.text.splitlines()]
    ids = {str(_found(record, stack.id_field)) for record in records}
    header = dict(headers).get(b"x-request-id", b"").decode()
    problems = [
        *([f"{len(records)} lines, not 2"] if len(records) != 2 else []),
        *([f"request ids {ids} in the lines"] if len(ids) != 1 or not next(iter(ids)).strip("0") else []),
        *([f"request id header {header!r} is not the lines' {ids}"] if header and {header} != ids else []),
        *(["no order_id in the app line"] if not any(_found(record, "order_id") == 42 for record in records) else []),
    ]
    if problems:
        raise RuntimeError(f"{name} does not do the measured work: {'; '.join(problems)}\n{lines.text}")


def _plot(taxes: dict[str, Timing], cheapest: str, rounds: int) -> None:
    """Write the median tax per stack, with the spread of the middle half of the rounds, to ``PLOT``."""
    import matplotlib  # noqa: PLC0415 - only this benchmark draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    matplotlib.rcParams["svg.hashsalt"] = "fapilog"  # the same drawing gives the same file
    names = list(taxes)
    medians = [taxes[name].median / 1000 for name in names]
    quartiles = [statistics.quantiles(taxes[name].samples, n=4) for name in names]
    low = [median - first / 1000 for median, (first, _, _) in zip(medians, quartiles, strict=True)]
    high = [third / 1000 - median for median, (_, _, third) in zip(medians, quartiles, strict=True)]
    figure, axes = plt.subplots(figsize=(8, 3))
    colours = ["#2a7ab0" if name == FAPILOG else "#9aa5ad" for name in names]
    rows = range(len(names))
    axes.barh(rows, medians, xerr=[low, high], color=colours, capsize=3, error_kw={"elinewidth": 0.8})
    axes.set_yticks(rows, [name.replace(" + ", "\n+ ", 1) if len(name) > 40 else name for name in names], fontsize=8)
    peak = max(medians[row] + high[row] for row in rows)
    for row, name in enumerate(names):
        ratio = taxes[name].median / taxes[cheapest].median
        axes.text(medians[row] + high[row] + peak * 0.01, row, f"{medians[row]:.0f} µs ({ratio:.2f}×)", va="center", fontsize=8)
    target = taxes[cheapest].median / 2000
    axes.axvline(target, color="#2a7ab0", linestyle="--", linewidth=0.8)
    axes.set_ylim(len(names) - 0.5, -0.9)  # room above the bars for the target's label
    axes.text(target + peak * 0.01, -0.7, "fapilog's target: 0.5× the cheapest peer", color="#2a7ab0", fontsize=7, va="center")
    axes.set_xlim(0, peak * 1.2)
    axes.set_xlabel(
        f"µs per request over the bare app: median of {rounds} rounds, whiskers the middle half\n(×): against the cheapest peer",
        fontsize=7,
    )
    axes.set_title("Per-request tax: middleware + JSON access line + JSON app line, in process", fontsize=9)
    axes.tick_params(axis="x", labelsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    figure.savefig(PLOT, metadata={"Date": None})
    plt.close(figure)
    print(f"\n     plot written to {PLOT}")


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdict; write the plot."""
    clear_context()  # what other benchmarks bound would make every request a nested one
    structlog.contextvars.clear_contextvars()
    correlation_id.set(None)
    loop = asyncio.new_event_loop()
    try:
        stacks = {
            FAPILOG: _fapilog_stack(),
            CORRELATION_ID: _correlation_id_stack(),
            STRUCTLOG: _structlog_stack(),
            OPENTELEMETRY: _opentelemetry_stack(),
        }
        for name, stack in stacks.items():
            _check(loop, name, stack)
        timings = measure(
            {BARE: _batch(loop, _bare()), **{name: _batch(loop, stack) for name, stack in stacks.items()}},
            number=NUMBER,
            rounds=rounds,
        )
    finally:
        loop.close()
    taxes = {name: timings[name].minus(timings[BARE]) for name in stacks}
    report("whole request: time per request", timings)
    report("whole request: tax per request over the bare app, logging off (same round)", taxes)
    cheapest = min(PEERS, key=lambda name: taxes[name].median)
    _plot(taxes, cheapest, rounds)
    return [
        Verdict(f"request tax / the cheapest peer, {PEERS[cheapest]}", taxes[FAPILOG].median, taxes[cheapest].median, 0.5),
        *(Verdict(f"request tax / {label}", taxes[FAPILOG].median, taxes[peer].median, None) for peer, label in PEERS.items() if peer != cheapest),
    ]


if __name__ == "__main__":
    for verdict in run(15):
        print(verdict.line())
