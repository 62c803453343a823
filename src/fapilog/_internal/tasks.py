"""Task runs: what every queue integration does to a job, the same way.

Publishing puts the current trace into the job's metadata, with the app
fields declared for propagation in its ``baggage``. A worker runs each job
in a fresh context bound from that metadata by the HTTP edge's rules (a
child span of the publisher's, with those fields), writes one
``fapilog.task`` record when the run ends, and puts back the context and
app fields it found, so the next job on that process, thread or asyncio task
starts clean.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Final

from fapilog._internal.context import RequestContext, current_model, restore_model, restore_unscoped, trace_state, unscoped_fields
from fapilog._internal.ids import DEFAULT_HEADER_NAME
from fapilog._internal.incoming import bind_trace_headers
from fapilog._internal.propagation import outgoing_headers
from fapilog._internal.records import MAX_PATH_LENGTH, log_own, printable

__all__ = [
    "FAILURE",
    "RETRY",
    "SUCCESS",
    "TRACE_NAMES",
    "Run",
    "carried",
    "current_run",
    "end_run",
    "message_headers",
    "start_run",
]

_task_logger: Final = logging.getLogger("fapilog.task")
SUCCESS: Final = "SUCCESS"
FAILURE: Final = "FAILURE"
RETRY: Final = "RETRY"
# As the access log's levels: a failed run alerts like a 5xx, a retry warns like a 4xx.
_LEVELS: Final = {FAILURE: logging.ERROR, RETRY: logging.WARNING}
TRACE_NAMES: Final = (DEFAULT_HEADER_NAME, "traceparent", "tracestate", "baggage")
"""The names ``trace_headers()`` writes: what a job's metadata carries."""
_now: Final = time.perf_counter


class Run:
    """One run of a job, from its start to its end."""

    __slots__ = ("enclosing", "outer", "outer_fields", "resent", "retries", "start", "state", "task_id", "task_name")

    def __init__(
        self, task_id: str, task_name: object, retries: int, outer: RequestContext, outer_fields: dict[str, object], enclosing: Run | None
    ) -> None:
        self.task_id = task_id
        self.task_name = task_name
        self.retries = retries
        self.outer = outer  # the context the run found: put back when it ends
        self.outer_fields = outer_fields  # and the app fields bound outside a request's scope
        self.enclosing = enclosing  # the run this one runs inside (a job run in its caller's thread), if any
        self.start = _now()
        self.state = FAILURE  # until the integration learns better: a run cut short failed
        self.resent = False  # the run published its own job again: a retry


# The run in progress. Each integration starts and ends a run in one thread or
# asyncio task; a run inside another one (an eager or synchronous job) stacks on it.
_run: Final[contextvars.ContextVar[Run | None]] = contextvars.ContextVar("fapilog_task_run", default=None)

current_run: Final = _run.get
"""Return the run in progress in this context, if any."""


def carried(metadata: Mapping[str, object]) -> dict[str, str]:
    """Return the text entries of a job's *metadata* that may carry its trace.

    Only these few reach the parser, however much else the metadata holds;
    a value of any other type carries nothing.
    """
    return {name: value for name in TRACE_NAMES if isinstance(value := metadata.get(name), str)}


def message_headers(task_id: object, header_names: Iterable[str] = (DEFAULT_HEADER_NAME,)) -> dict[str, str]:
    """Return the headers a job published now carries, each of *header_names* with the trace id; empty outside a trace.

    The current span is the job's parent. A job that is the running one sent
    again (a retry) goes with that run's own parent instead, so every attempt
    of a job is a child of what caused the first; the run learns it was resent.
    """
    context = current_model()
    if context.trace_id is None:
        return {}
    parent_id = context.span_id
    run = _run.get()
    if run is not None and run.task_id == task_id:
        run.resent = True
        parent_id = trace_state(context).parent_span_id
    headers: dict[str, str] = {}
    for header_name in header_names:
        headers.update(outgoing_headers(context, header_name, parent_id))
    return headers


def start_run(
    carrier: Mapping[str, str], task_id: str, task_name: object, retries: object, *, header_name: str = DEFAULT_HEADER_NAME
) -> Run:
    """Bind the trace *carrier* continues in a fresh context, as a new span; return the run, now in progress.

    By the HTTP edge's rules (``bind_trace_headers``): hostile values are
    replaced, never raised or logged; no valid trace starts a new one.
    *retries*, as a job's metadata counts them, is 0 unless a positive ``int``.
    """
    outer = current_model()
    outer_fields = unscoped_fields()
    bind_trace_headers(carrier, header_name=header_name)
    count = retries if type(retries) is int and retries > 0 else 0
    run = Run(task_id, task_name, count, outer, outer_fields, _run.get())
    _run.set(run)
    return run


def end_run(run: Run) -> None:
    """Write the run's ``fapilog.task`` record, then put back the context, app fields and run it found."""
    try:
        state = run.state
        level = _LEVELS.get(state, logging.INFO)
        if _task_logger.isEnabledFor(level):
            name = printable(str(run.task_name), MAX_PATH_LENGTH)
            task_id = printable(str(run.task_id), MAX_PATH_LENGTH)
            context = current_model()
            extra = {
                **context.__dict__,
                "parent_span_id": trace_state(context).parent_span_id,
                "task_name": name,
                "task_id": task_id,
                "state": state,
                "retries": run.retries,
                "latency_ms": (_now() - run.start) * 1000.0,
            }
            log_own(_task_logger, level, "%s[%s] %s", name, task_id, state, extra=extra)
    finally:
        _run.set(run.enclosing)
        restore_model(run.outer)
        restore_unscoped(run.outer_fields)
