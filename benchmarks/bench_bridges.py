"""The structlog and loguru bridges against each library's own context mechanism.

structlog: ``merge_context`` against ``merge_contextvars`` with three keys
bound, one processor call on a fresh event dict (the target), and the same
through a whole JSON pipeline.

loguru: ``logger.info`` to a sink that drops the line. ``contextualize`` pays
once per ``with`` block (a lock, a dict merge, a ContextVar set and reset)
and next to nothing per record; the patcher pays a little per record and
nothing per request. So the target compares a request's records: ten of
them inside one ``contextualize`` for three keys, against ten patched ones.
Also reported: ``contextualize`` entered once for all records (its cheapest
use; the patcher's cost then shows as about 1%), and each bridge's cost per
record over a bare call.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import structlog
from loguru import logger as loguru_logger

from benchmarks._timing import NullStream, Verdict, measure, report
from fapilog import bind_context, clear_context
from fapilog.loguru import patcher
from fapilog.structlog import merge_context

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
USER_AGENT = "curl/8.5.0"
RECORDS_PER_REQUEST = 10  # a request that logs ten lines: more than most do
_Processor = Callable[[object, str, structlog.typing.EventDict], structlog.typing.EventDict]


def _processor_case(processor: _Processor) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            processor(None, "info", {"event": "order placed", "order_id": 42})

    return run


def _pipeline_case(processor: _Processor) -> Callable[[int], None]:
    logger = structlog.wrap_logger(
        structlog.WriteLogger(NullStream()),  # type: ignore[arg-type]  # any object with write() will do
        processors=[processor, structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )

    def run(n: int) -> None:
        for _ in range(n):
            logger.info("order placed", order_id=42)

    return run


def _drop(message: object) -> None:
    """A loguru sink that drops the formatted line, so only the logging path is measured."""


def _loguru_bare(n: int) -> None:
    for _ in range(n):
        loguru_logger.info("order {} placed", 42)


def _loguru_contextualize(n: int) -> None:
    with loguru_logger.contextualize(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT):
        for _ in range(n):
            loguru_logger.info("order {} placed", 42)


def _loguru_contextualize_per_request(n: int) -> None:
    for _ in range(n // RECORDS_PER_REQUEST):
        with loguru_logger.contextualize(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT):
            for _ in range(RECORDS_PER_REQUEST):
                loguru_logger.info("order {} placed", 42)


def _loguru_patched() -> Callable[[int], None]:
    patched = loguru_logger.patch(patcher)

    def run(n: int) -> None:
        for _ in range(n):
            patched.info("order {} placed", 42)

    return run


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT)
    structlog.contextvars.bind_contextvars(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT)
    loguru_logger.remove()
    loguru_logger.add(_drop, format="{message}")
    try:
        timings = measure(
            {
                "fapilog merge_context (processor call)": _processor_case(merge_context),
                "structlog merge_contextvars, 3 keys (processor call)": _processor_case(
                    structlog.contextvars.merge_contextvars
                ),
                "fapilog merge_context + JSONRenderer": _pipeline_case(merge_context),
                "structlog merge_contextvars, 3 keys + JSONRenderer": _pipeline_case(
                    structlog.contextvars.merge_contextvars
                ),
                "loguru logger.info, bare": _loguru_bare,
                "loguru logger.info, fapilog patcher": _loguru_patched(),
                "loguru logger.info, contextualize (3 keys) per 10 records": _loguru_contextualize_per_request,
                "loguru logger.info, contextualize (3 keys) entered once": _loguru_contextualize,
            },
            number=5_000,
            rounds=rounds,
        )
    finally:
        loguru_logger.remove()
        loguru_logger.add(sys.stderr)  # loguru's default handler, as the process found it
        structlog.contextvars.clear_contextvars()
        clear_context()
    report("bridges vs structlog.contextvars and loguru.contextualize", timings)
    t = {name: timing.median for name, timing in timings.items()}
    bare = timings["loguru logger.info, bare"]
    return [
        Verdict(
            "merge_context / merge_contextvars (3 keys), per event",
            t["fapilog merge_context (processor call)"],
            t["structlog merge_contextvars, 3 keys (processor call)"],
            1.0,
        ),
        Verdict(
            "structlog JSON line: merge_context / merge_contextvars",
            t["fapilog merge_context + JSONRenderer"],
            t["structlog merge_contextvars, 3 keys + JSONRenderer"],
            None,
        ),
        Verdict(
            "loguru, 10 records a request: patcher / contextualize (3 keys)",
            t["loguru logger.info, fapilog patcher"],
            t["loguru logger.info, contextualize (3 keys) per 10 records"],
            1.0,
        ),
        Verdict(
            "loguru record, contextualize entered once: patcher / it",
            t["loguru logger.info, fapilog patcher"],
            t["loguru logger.info, contextualize (3 keys) entered once"],
            None,
        ),
        Verdict(
            "loguru, per record over a bare call: patcher / contextualize",
            timings["loguru logger.info, fapilog patcher"].minus(bare).median,
            timings["loguru logger.info, contextualize (3 keys) per 10 records"].minus(bare).median,
            None,
        ),
    ]
