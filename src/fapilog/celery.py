"""Celery integration: one trace from the request through every task it causes.

Needs the ``celery`` extra (``pip install fapilog[celery]``)::

    app = Celery("tasks", broker=...)
    configure_logging()          # in the worker too: every worker line is JSON
    fapilog.celery.instrument(app)

Publishing a task puts ``trace_headers()`` into its message headers. In the
worker, the task runs in a fresh context bound from those headers by
``bind_trace_headers`` (the HTTP edge's rules: hostile values are replaced),
is logged once on ``fapilog.task``, and leaves the context as it found it,
so the next task on that process, thread or greenlet starts clean. A task run
in the caller's own thread (``task.apply()``, ``task_always_eager``) is a
child span of the caller's trace, and the caller's context comes back after.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any, Final, NamedTuple

from celery import Celery, signals
from celery._state import get_current_task
from celery.app.task import Task

from fapilog._internal.configure import FapilogHandler
from fapilog._internal.context import RequestContext, current_model, restore_model, trace_state
from fapilog._internal.ids import DEFAULT_HEADER_NAME
from fapilog._internal.incoming import TraceReader, bind_trace_headers
from fapilog._internal.propagation import outgoing_headers
from fapilog._internal.records import MAX_PATH_LENGTH, log_safely, printable

__all__ = ["instrument"]

task_logger: Final = logging.getLogger("fapilog.task")
# As the access log's levels: a failed run alerts like a 5xx, a retry warns like a 4xx.
_LEVELS: Final = {"FAILURE": logging.ERROR, "RETRY": logging.WARNING}
_UID: Final = "fapilog.celery"
_TRACE_HEADERS: Final = ("traceparent", "tracestate", "baggage")
_now: Final = time.perf_counter

# The instrumented apps and the headers a message carries to them, their own
# header name first (apps live as long as their process).
_header_names: dict[Celery, tuple[str, ...]] = {}
_published_names: tuple[str, ...] = ()  # every name above once: a message may reach any app's worker


class _Run(NamedTuple):
    """One task run, from its start to its end."""

    task_id: str
    retries: int
    outer: RequestContext  # the context the run found: put back when it ends
    enclosing: _Run | None  # the run this one runs inside (an eager task's caller), if any
    start: float


# The run in progress. Celery's signals for its start and end come from the
# same thread and context; an eager run inside another one stacks on it.
_run: Final[contextvars.ContextVar[_Run | None]] = contextvars.ContextVar("fapilog_task_run", default=None)


def instrument(app: Celery, *, header_name: str = DEFAULT_HEADER_NAME) -> Celery:
    """Carry the trace through every task of *app*; return *app*.

    *header_name* carries a trace id that cannot go into a ``traceparent``,
    as at the HTTP edge; a name that is not an HTTP token is a ``ValueError``.
    In a worker whose root logger has fapilog's handler (``configure_logging``),
    Celery keeps that setup instead of installing its own, and skips its text
    banner. Instrumenting again only changes the header name.
    """
    global _published_names  # rebuilt here, read per message
    TraceReader(header_name=header_name)  # checks the name: a ValueError for a bad one
    _header_names[app] = (header_name, *_TRACE_HEADERS)
    _published_names = tuple(dict.fromkeys(names[0] for names in _header_names.values()))
    signals.before_task_publish.connect(_publish, weak=False, dispatch_uid=_UID)
    signals.task_prerun.connect(_start, weak=False, dispatch_uid=_UID)
    signals.task_postrun.connect(_end, weak=False, dispatch_uid=_UID)
    signals.celeryd_init.connect(_keep_logging, weak=False, dispatch_uid=_UID)
    return app


def _publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Put the current trace into a task message's *headers*; keep any someone else set.

    A retry is published by the failing run itself: it goes out with that
    run's own parent, so every attempt of a task is a child of what caused it.
    """
    context = current_model()
    if headers is None or context.trace_id is None:
        return
    parent_id = context.span_id
    if headers.get("retries"):  # a retry, or a message sent again by hand
        running = get_current_task()
        if running is not None and running.request.id == headers.get("id"):
            parent_id = trace_state(context).parent_span_id
    for header_name in _published_names:
        for name, value in outgoing_headers(context, header_name, parent_id).items():
            headers.setdefault(name, value)


def _start(task: Task | None = None, **_: Any) -> None:
    """Bind the trace a task run continues, before the task body runs.

    Celery's signal dispatch logs a receiver's exception and goes on, so a
    failure here could never fail the task: it would run untraced.
    """
    names = None if task is None else _header_names.get(task.app)
    if task is None or names is None:
        return
    header_name = names[0]
    request = task.request
    outer = current_model()
    if request.is_eager:  # in the caller's own thread: a child of the caller's trace
        carrier = outgoing_headers(outer, header_name, outer.span_id)
    else:  # the message's headers are attributes of the request
        carrier = {name: value for name in names if (value := getattr(request, name, None))}
    bind_trace_headers(carrier, header_name=header_name)
    _run.set(_Run(request.id, request.retries or 0, outer, _run.get(), _now()))


def _end(task: Task | None = None, task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    """Write the run's ``fapilog.task`` record, then put back the context the run found."""
    run = _run.get()
    if task is None or run is None or run.task_id != task_id:  # a task fapilog did not start
        return
    try:
        outcome = state or "FAILURE"  # None: a BaseException ended the run
        level = _LEVELS.get(outcome, logging.INFO)
        if task_logger.isEnabledFor(level):
            name = printable(str(task.name), MAX_PATH_LENGTH)
            task_id = printable(str(task_id), MAX_PATH_LENGTH)
            context = current_model()
            extra = {
                **context.__dict__,
                "parent_span_id": trace_state(context).parent_span_id,
                "task_name": name,
                "task_id": task_id,
                "state": outcome,
                "retries": run.retries,
                "latency_ms": (_now() - run.start) * 1000.0,
            }
            log_safely(task_logger, level, "%s[%s] %s", name, task_id, outcome, extra=extra)
    finally:
        _run.set(run.enclosing)
        restore_model(run.outer)


def _keep_logging(instance: Any = None, **_: Any) -> None:
    """In a worker whose root logger writes fapilog's JSON, keep that instead of Celery's setup."""
    if instance is None or not any(isinstance(handler, FapilogHandler) for handler in logging.getLogger().handlers):
        return
    instance.quiet = True  # the banner is text, printed past logging
    logging.captureWarnings(True)  # Celery's own warnings (running as root, say) as JSON lines too

    def keep(loglevel: int | None = None, **_: Any) -> None:
        # A connected receiver is how Celery is told logging is set up. The
        # more verbose of configure_logging's level and the worker's -l wins.
        root = logging.getLogger()
        if loglevel and loglevel < root.getEffectiveLevel():
            root.setLevel(loglevel)
        if instance.redirect_stdouts:  # Celery's default: print() becomes a log line, JSON too
            instance.app.log.redirect_stdouts(instance.redirect_stdouts_level)

    signals.setup_logging.connect(keep, weak=False, dispatch_uid=_UID)
