"""One enriched JSON log line against python-json-logger and structlog, per schema, with json and orjson.

The line: ``logger.info`` with one ``%s`` argument and two extra fields, three
context fields bound (trace id, span id, user agent: a line logged while a
request is served), formatted and written to a stream that drops it.
Measured in the same run:

- the stdlib floor: the same ``logger.info`` through a handler whose formatter
  returns a constant (record creation, ``findCaller``, handler lock): the
  share of fapilog's line that is not fapilog's;
- the same line through ``FapilogHandler``, the handler ``configure_logging``
  installs (its filter and formatter in one step under its lock);
- fapilog's line under each schema, against the default one;
- fapilog with ``encoder="orjson"`` against structlog rendering with orjson,
  on the same line and on one with a 16-item ``dict`` extra too (the only
  thing orjson writes for fapilog).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TextIO, cast

import orjson
import structlog
from asgi_correlation_id import CorrelationIdFilter
from asgi_correlation_id.context import correlation_id
from pythonjsonlogger.json import JsonFormatter as PythonJsonFormatter

from benchmarks._timing import NullStream, Verdict, measure, report
from fapilog import ContextFilter, FapilogHandler, JsonFormatter, bind_context
from fapilog._internal.schemas import Schema

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
EXTRA: dict[str, object] = {"order_id": 42, "customer": "c-1187"}
ORDER: dict[str, object] = {f"item_{index}": f"sku-{index}" if index % 2 else index for index in range(16)}

FAPILOG = "fapilog ContextFilter + JsonFormatter"
FAPILOG_HANDLER = "fapilog FapilogHandler (configure_logging's)"
FLOOR = "stdlib floor (constant formatter, no filter)"
PYTHON_JSON_LOGGER = "python-json-logger + CorrelationIdFilter"
STRUCTLOG = "structlog merge_contextvars + JSONRenderer"
STRUCTLOG_ORJSON = "structlog ... + JSONRenderer(orjson) + BytesLogger"
FAPILOG_ORJSON = 'fapilog JsonFormatter(encoder="orjson")'
SCHEMAS: tuple[Schema, ...] = ("ecs", "gcp", "datadog")


class _Constant(logging.Formatter):
    """A formatter that does no work: what is left is logging's own cost."""

    def format(self, record: logging.LogRecord) -> str:
        return "{}"


class _NullBytes:
    """A binary stream that drops what it is given."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


def _stdlib_logger(name: str, log_filter: logging.Filter | None, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.StreamHandler(NullStream())
    if log_filter is not None:
        handler.addFilter(log_filter)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _stdlib_case(logger: logging.Logger, extra: Mapping[str, object] | None = None) -> Callable[[int], None]:
    extra = EXTRA if extra is None else extra

    def run(n: int) -> None:
        for _ in range(n):
            logger.info("order %s placed", 42, extra=extra)

    return run


def _structlog_case(*, use_orjson: bool, extra: Mapping[str, object] | None = None) -> Callable[[int], None]:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_orjson:  # as structlog's performance chapter recommends: orjson, straight to a bytes stream
        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        target: Any = structlog.BytesLogger(_NullBytes())  # type: ignore[arg-type]  # any object with write() will do
    else:
        processors.append(structlog.processors.JSONRenderer())
        target = structlog.WriteLogger(NullStream())  # type: ignore[arg-type]  # any object with write() will do
    logger = structlog.wrap_logger(
        target,
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
    extra = EXTRA if extra is None else extra

    def run(n: int) -> None:
        for _ in range(n):
            logger.info("order %s placed", 42, **extra)

    return run


def _access_case(schema: Schema) -> Callable[[int], None]:
    """Format the access record the middleware writes for a request, as *schema* lays it out."""
    record = logging.LogRecord("fapilog.access", logging.INFO, __file__, 1, "%s %s %s", ("GET", "/orders/42", 200), None)
    record.__dict__.update(
        latency_ms=12.3456, status_code=200, req_bytes=0, res_bytes=512, method="GET", path="/orders/42",
        parent_span_id=SPAN_ID, request_id=TRACE_ID,
    )
    ContextFilter().filter(record)
    formatter = JsonFormatter(schema)

    def run(n: int) -> None:
        for _ in range(n):
            formatter.format(record)

    return run


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT)
    correlation_id.set(TRACE_ID)
    structlog.contextvars.bind_contextvars(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT)
    ours = _stdlib_logger("bench.fapilog", ContextFilter(), JsonFormatter())
    ours_orjson = _stdlib_logger("bench.fapilog.orjson", ContextFilter(), JsonFormatter(encoder="orjson"))
    handler_logger = logging.getLogger("bench.fapilog.handler")
    handler_logger.handlers[:] = [FapilogHandler(cast(TextIO, NullStream()))]  # a TextIO for what a handler calls: write, flush
    handler_logger.setLevel(logging.INFO)
    handler_logger.propagate = False
    cases = {
        FAPILOG: _stdlib_case(ours),
        FAPILOG_HANDLER: _stdlib_case(handler_logger),
        **{
            f"fapilog schema={schema!r}": _stdlib_case(_stdlib_logger(f"bench.fapilog.{schema}", ContextFilter(), JsonFormatter(schema)))
            for schema in SCHEMAS
        },
        FAPILOG_ORJSON: _stdlib_case(ours_orjson),
        FLOOR: _stdlib_case(_stdlib_logger("bench.floor", None, _Constant())),
        PYTHON_JSON_LOGGER: _stdlib_case(
            _stdlib_logger(
                "bench.python_json_logger",
                CorrelationIdFilter(),
                PythonJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"),
            )
        ),
        STRUCTLOG: _structlog_case(use_orjson=False),
        STRUCTLOG_ORJSON: _structlog_case(use_orjson=True),
    }
    timings = measure(cases, number=5_000, rounds=rounds)
    report("one enriched JSON log line", timings)
    t = {name: timing.median for name, timing in timings.items()}
    with_dict: dict[str, object] = {**EXTRA, "order": ORDER}
    dict_timings = measure(
        {
            FAPILOG: _stdlib_case(ours, with_dict),
            FAPILOG_ORJSON: _stdlib_case(ours_orjson, with_dict),
            STRUCTLOG: _structlog_case(use_orjson=False, extra=with_dict),
            STRUCTLOG_ORJSON: _structlog_case(use_orjson=True, extra=with_dict),
        },
        number=2_000,
        rounds=rounds,
    )
    report("the same line, with a 16-item dict extra too", dict_timings)
    d = {name: timing.median for name, timing in dict_timings.items()}
    access_timings = measure(
        {"default": _access_case("default"), **{schema: _access_case(schema) for schema in SCHEMAS}},
        number=5_000,
        rounds=rounds,
    )
    report("an access record, formatted (no logging call around it)", access_timings)
    a = {name: timing.median for name, timing in access_timings.items()}
    ours_ns = t[FAPILOG]
    return [
        Verdict(f"JSON line / {PYTHON_JSON_LOGGER}", ours_ns, t[PYTHON_JSON_LOGGER], 1.0),
        Verdict(f"JSON line / {STRUCTLOG}", ours_ns, t[STRUCTLOG], 1.0),
        Verdict("JSON line / stdlib floor (the rest is fapilog's)", ours_ns, t[FLOOR], 1.5),  # issue #23
        Verdict("JSON line through FapilogHandler / stdlib floor", t[FAPILOG_HANDLER], t[FLOOR], None),
        *(Verdict(f"JSON line, schema {schema!r} / default schema", t[f"fapilog schema={schema!r}"], ours_ns, 1.1) for schema in SCHEMAS),
        *(Verdict(f"access record, schema {schema!r} / default schema", a[schema], a["default"], None) for schema in SCHEMAS),
        Verdict("orjson JSON line / structlog with orjson", t[FAPILOG_ORJSON], t[STRUCTLOG_ORJSON], None),
        Verdict("stdlib floor / structlog with orjson (logging's own cost)", t[FLOOR], t[STRUCTLOG_ORJSON], None),
        Verdict("dict-extra line: orjson / json", d[FAPILOG_ORJSON], d[FAPILOG], None),
        Verdict("dict-extra line: orjson / structlog with orjson", d[FAPILOG_ORJSON], d[STRUCTLOG_ORJSON], None),
        Verdict("dict-extra line: json / structlog", d[FAPILOG], d[STRUCTLOG], None),
    ]


if __name__ == "__main__":
    for verdict in run(15):
        print(verdict.line())
