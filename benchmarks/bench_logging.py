"""One enriched JSON log line against python-json-logger and structlog.

The line: ``logger.info`` with one ``%s`` argument and one extra field, the
context bound, formatted and written to a stream that drops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import structlog
from asgi_correlation_id import CorrelationIdFilter
from asgi_correlation_id.context import correlation_id
from pythonjsonlogger.json import JsonFormatter as PythonJsonFormatter

from benchmarks._timing import NullStream, Verdict, measure, report
from fapilog import ContextFilter, JsonFormatter, bind_context

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def _stdlib_logger(name: str, log_filter: logging.Filter, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.StreamHandler(NullStream())
    handler.addFilter(log_filter)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _stdlib_case(logger: logging.Logger) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            logger.info("order %s placed", 42, extra={"order_id": 42})

    return run


def _structlog_case() -> Callable[[int], None]:
    logger = structlog.wrap_logger(
        structlog.WriteLogger(NullStream()),  # type: ignore[arg-type]  # any object with write() will do
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )

    def run(n: int) -> None:
        for _ in range(n):
            logger.info("order %s placed", 42, order_id=42)

    return run


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    correlation_id.set(TRACE_ID)
    structlog.contextvars.bind_contextvars(trace_id=TRACE_ID, span_id=SPAN_ID)
    ours = _stdlib_logger("bench.fapilog", ContextFilter(), JsonFormatter())
    peer = _stdlib_logger(
        "bench.python_json_logger",
        CorrelationIdFilter(),
        PythonJsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"),
    )
    timings = measure(
        {
            "fapilog ContextFilter + JsonFormatter": _stdlib_case(ours),
            "python-json-logger + CorrelationIdFilter": _stdlib_case(peer),
            "structlog merge_contextvars + JSONRenderer": _structlog_case(),
        },
        number=5_000,
        rounds=rounds,
    )
    report("one enriched JSON log line", timings)
    t = {name: timing.median for name, timing in timings.items()}
    ours_ns = t["fapilog ContextFilter + JsonFormatter"]
    return [
        Verdict(
            "JSON line / python-json-logger + CorrelationIdFilter",
            ours_ns,
            t["python-json-logger + CorrelationIdFilter"],
            1.0,
        ),
        Verdict("JSON line / structlog merge_contextvars + JSONRenderer", ours_ns, t["structlog merge_contextvars + JSONRenderer"], None),
    ]
