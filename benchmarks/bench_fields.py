"""App fields (``ContextFields``) against what an app would do without them.

- ``bind_fields`` with two fields against structlog's ``bind_contextvars``
  with two keys: outside a request (a new scope in the ContextVar, as
  ``bind_context``) and inside one (the request's shared scope, under its lock).
- One JSON line carrying two app fields against the same line with the two
  values given as ``extra=``, with no ``ContextFields`` declared: the same
  bytes either way (checked before timing). Declared fields are process-wide,
  so each case puts its own registry in place for its batch.
- ``TraceIDMiddleware``'s overhead over the bare app, for an app that
  declares fields but binds none, against the same app declaring none:
  access log off (the request's scope, opened and put back), and on (its
  record, formatted, two null fields longer).

The registry is put back as it was afterwards: the other benchmarks run in
this process too.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable

import structlog.contextvars as structlog_cv

from benchmarks._timing import NullStream, Timing, Verdict, measure, only_to, report
from benchmarks.bench_middleware import _app, _batch
from fapilog import ContextFields, ContextFilter, JsonFormatter, TraceIDMiddleware, bind_context, bind_fields, clear_context
from fapilog._internal.context import Declared, FieldScope, TraceState, bind_trace, current_model, declared, restore_model

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
FIELDS = {"user_id": "u-1187", "tenant_id": "acme"}


def _declare() -> type[ContextFields]:
    """Declare the two fields of the README's example, as an app does once at import."""

    class Shop(ContextFields, propagate=["tenant_id"], keys={"user_id": {"ecs": "user.id", "datadog": "usr.id"}}):
        user_id: str | None = None
        tenant_id: str | None = None

    return Shop


def _bind_cases(shop_class: type[ContextFields]) -> dict[str, Callable[[int], None]]:
    shop = shop_class(**FIELDS)

    def fapilog_scoped(n: int) -> None:
        for _ in range(n):
            bind_fields(shop)

    def fapilog_in_request(n: int) -> None:
        outer = current_model()
        bind_trace(TRACE_ID, SPAN_ID, None, TraceState(TRACE_ID), FieldScope())  # as the middleware binds a request
        try:
            for _ in range(n):
                bind_fields(shop)
        finally:
            restore_model(outer)

    def structlog_bind(n: int) -> None:
        for _ in range(n):
            structlog_cv.bind_contextvars(user_id="u-1187", tenant_id="acme")

    return {
        "fapilog bind_fields (2 fields), outside a request": fapilog_scoped,
        "fapilog bind_fields (2 fields), in a request's scope": fapilog_in_request,
        "structlog bind_contextvars (2 keys)": structlog_bind,
    }


def _logger(name: str, stream: io.StringIO | NullStream) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _line_cases(with_fields: Declared, without: Declared) -> dict[str, Callable[[int], None]]:
    logger = _logger("bench.fields", NullStream())

    def fields(n: int) -> None:
        declared.now = with_fields
        for _ in range(n):
            logger.info("order %s placed", 42)

    def extras(n: int) -> None:
        declared.now = without
        for _ in range(n):
            logger.info("order %s placed", 42, extra=FIELDS)

    return {"JSON line, 2 app fields bound": fields, "JSON line, the same 2 values as extra=": extras}


def _same_line(with_fields: Declared, without: Declared) -> None:
    """Check both line cases write the same line, but for the timestamp."""
    stream = io.StringIO()
    logger = _logger("bench.fields.check", stream)
    declared.now = with_fields
    logger.info("order %s placed", 42)
    declared.now = without
    logger.info("order %s placed", 42, extra=FIELDS)
    first, second = (line.split(",", 1)[1] for line in stream.getvalue().splitlines())
    assert first == second, (first, second)


def _middleware_overheads(with_fields: Declared, without: Declared, rounds: int) -> dict[str, Timing]:
    """Return the middleware's overhead per request, access log off and on, declaring fields or not."""
    loop = asyncio.new_event_loop()
    access = logging.getLogger("fapilog.access")
    bare_batch = _batch(loop, _app())
    ours = _batch(loop, _app(TraceIDMiddleware))

    def declaring(registry: Declared) -> Callable[[int], object]:
        def run(n: int) -> object:
            declared.now = registry
            return ours(n)

        return run

    handler = logging.StreamHandler(NullStream())
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    overheads: dict[str, Timing] = {}
    try:
        for label, level in (("access log off", logging.WARNING), ("access log on", logging.INFO)):
            with only_to("fapilog.access", handler):
                access.setLevel(level)
                timings = measure(
                    {"bare": bare_batch, "none declared": declaring(without), "2 declared": declaring(with_fields)},
                    number=2_000,
                    rounds=rounds,
                )
            for case in ("none declared", "2 declared"):
                overheads[f"TraceIDMiddleware, {label}, app fields {case}"] = timings[case].minus(timings["bare"])
    finally:
        access.setLevel(logging.NOTSET)
        loop.close()
    return overheads


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    before = declared.now
    try:
        without = declared.now = Declared()
        shop_class = _declare()
        with_fields = declared.now
        binds = measure(_bind_cases(shop_class), number=20_000, rounds=rounds)
        report("bind_fields vs structlog.contextvars", binds)
        clear_context()
        bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT)
        bind_fields(shop_class(**FIELDS))
        _same_line(with_fields, without)
        lines = measure(_line_cases(with_fields, without), number=5_000, rounds=rounds)
        report("a JSON line: app fields against extras", lines)
        clear_context()
        overheads = _middleware_overheads(with_fields, without, rounds)
        report("middleware overhead per request: an app that declares fields but binds none", overheads)
    finally:
        declared.now = before
        clear_context()
        structlog_cv.clear_contextvars()
    b = {name: timing.median for name, timing in binds.items()}
    line = {name: timing.median for name, timing in lines.items()}
    o = {name: timing.median for name, timing in overheads.items()}
    return [
        Verdict(
            "bind_fields / bind_contextvars (2 keys, outside a request)",
            b["fapilog bind_fields (2 fields), outside a request"],
            b["structlog bind_contextvars (2 keys)"],
            1.0,
        ),
        Verdict(
            "bind_fields / bind_contextvars (2 keys, in a request)",
            b["fapilog bind_fields (2 fields), in a request's scope"],
            b["structlog bind_contextvars (2 keys)"],
            1.0,
        ),
        Verdict(
            "JSON line: 2 app fields / the same 2 as extra=",
            line["JSON line, 2 app fields bound"],
            line["JSON line, the same 2 values as extra="],
            1.05,
        ),
        *(
            Verdict(
                f"middleware overhead, {label}: 2 fields declared / none",
                o[f"TraceIDMiddleware, {label}, app fields 2 declared"],
                o[f"TraceIDMiddleware, {label}, app fields none declared"],
                bound,
            )
            # off: one scope made per request, within the runs' spread; on: the line also writes the two null fields
            for label, bound in (("access log off", 1.05), ("access log on", None))
        ),
    ]


if __name__ == "__main__":
    for verdict in run(15):
        print(verdict.line())
