"""Context API against structlog.contextvars: bind two keys, read, clear."""

from __future__ import annotations

import structlog.contextvars as structlog_cv

from benchmarks._timing import Verdict, measure, report
from fapilog import bind_context, clear_context, get_context


def _fapilog_bind(n: int) -> None:
    for _ in range(n):
        bind_context(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")


def _structlog_bind(n: int) -> None:
    for _ in range(n):
        structlog_cv.bind_contextvars(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")


def _fapilog_get(n: int) -> None:
    for _ in range(n):
        get_context()


def _structlog_get(n: int) -> None:
    for _ in range(n):
        structlog_cv.get_contextvars()


def _fapilog_clear(n: int) -> None:
    for _ in range(n):
        clear_context()


def _structlog_clear(n: int) -> None:
    for _ in range(n):
        structlog_cv.clear_contextvars()


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    # Reads and clears work on a context holding the same two keys in both.
    bind_context(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")
    structlog_cv.bind_contextvars(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7")
    timings = measure(
        {
            "fapilog bind_context (2 keys, validated)": _fapilog_bind,
            "structlog bind_contextvars (2 keys)": _structlog_bind,
            "fapilog get_context": _fapilog_get,
            "structlog get_contextvars": _structlog_get,
            "fapilog clear_context": _fapilog_clear,
            "structlog clear_contextvars": _structlog_clear,
        },
        number=20_000,
        rounds=rounds,
    )
    report("context API vs structlog.contextvars", timings)
    t = {name: timing.median for name, timing in timings.items()}
    return [
        Verdict(
            "bind_context / bind_contextvars",
            t["fapilog bind_context (2 keys, validated)"],
            t["structlog bind_contextvars (2 keys)"],
            1.0,  # issue #23
        ),
        Verdict("get_context / get_contextvars", t["fapilog get_context"], t["structlog get_contextvars"], 2.0),
        Verdict("clear_context / clear_contextvars", t["fapilog clear_context"], t["structlog clear_contextvars"], 1.0),
    ]
