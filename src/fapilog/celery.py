"""Celery integration: one trace from the request through every task it causes.

Needs the ``celery`` extra (``pip install "fapilog-context[celery]"``)::

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
A prefork pool process ends with ``os._exit``, where no ``atexit`` runs: it
writes out what ``configure_logging(enqueue=True)`` queued before it ends.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from celery import Celery, signals
from celery.app.task import Task

from fapilog._internal.configure import FapilogHandler
from fapilog._internal.context import current_model
from fapilog._internal.ids import DEFAULT_HEADER_NAME
from fapilog._internal.incoming import TraceReader
from fapilog._internal.propagation import outgoing_headers
from fapilog._internal.tasks import FAILURE, current_run, end_run, message_headers, start_run
from fapilog._internal.writer import stop_all

__all__ = ["instrument"]

_UID: Final = "fapilog.celery"
_TRACE_HEADERS: Final = ("traceparent", "tracestate", "baggage")

# The instrumented apps and the headers a message carries to them, their own
# header name first (apps live as long as their process).
_header_names: dict[Celery, tuple[str, ...]] = {}
_published_names: tuple[str, ...] = ()  # every name above once: a message may reach any app's worker


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
    signals.worker_process_shutdown.connect(_write_out_logs, weak=False, dispatch_uid=_UID)
    return app


def _write_out_logs(**_: Any) -> None:
    """Write what fapilog queued (``enqueue=True``) in a pool process about to end with ``os._exit``."""
    stop_all()


def _publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Put the current trace into a task message's *headers*; keep any someone else set.

    A retry is published by the failing run itself: it goes out with that
    run's own parent, so every attempt of a task is a child of what caused it.
    """
    if headers is None:
        return
    for name, value in message_headers(headers.get("id"), _published_names).items():
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
    if request.is_eager:  # in the caller's own thread: a child of the caller's trace
        caller = current_model()
        carrier = outgoing_headers(caller, header_name, caller.span_id)
    else:  # the message's headers are attributes of the request
        carrier = {name: value for name in names if (value := getattr(request, name, None))}
    start_run(carrier, request.id, task.name, request.retries, header_name=header_name)


def _end(task: Task | None = None, task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    """Write the run's ``fapilog.task`` record, then put back the context the run found."""
    run = current_run()
    if task is None or run is None or run.task_id != task_id:  # a task fapilog did not start
        return
    run.state = state or FAILURE  # None: a BaseException ended the run
    end_run(run)


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
