"""Dramatiq integration: one trace from the request through every message it causes.

Needs the ``dramatiq`` extra (``pip install "fapilog-context[dramatiq]"``)::

    # myapp/broker.py; run: dramatiq myapp.broker --skip-logging
    configure_logging()          # every worker line JSON (--skip-logging: none of Dramatiq's text)
    broker = fapilog.dramatiq.instrument(RedisBroker(url=...))
    dramatiq.set_broker(broker)

Sending a message puts ``trace_headers()`` into its options; options someone
else set stay. In the worker, each message is processed in a fresh context
bound from them by ``bind_trace_headers`` (the HTTP edge's rules: hostile
values are replaced), is logged once on ``fapilog.task``, and leaves the
worker thread's context as it found it. fapilog's middleware goes first, so
every other middleware's work on a message runs inside its trace: the
``Retries`` middleware's re-send is recognised as a retry (sent with the
failing run's parent) and its lines, like the worker's error line with the
traceback, carry the trace. As a worker shuts down, the lines
``configure_logging(enqueue=True)`` queued are written out.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from dramatiq.broker import Broker, MessageProxy
from dramatiq.message import Message
from dramatiq.middleware import Middleware
from dramatiq.worker import Worker

from fapilog._internal.tasks import FAILURE, RETRY, SUCCESS, carried, current_run, end_run, message_headers, start_run
from fapilog._internal.writer import stop_all

__all__ = ["instrument"]

_Broker = TypeVar("_Broker", bound=Broker)

SKIPPED: Final = "SKIPPED"
"""The state of a run that a later middleware skipped (``AgeLimit``, say): the actor never ran."""


class _TraceMiddleware(Middleware):
    """Carries the trace in a message's options, and binds it around the message's processing."""

    def before_enqueue(self, broker: Broker, message: Message[Any], delay: int) -> None:
        """Put the current trace into *message*'s options; keep what is there."""
        for name, value in message_headers(message.message_id).items():
            message.options.setdefault(name, value)

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        """Bind the trace *message* carries, before any other middleware sees it."""
        options: object = message.options  # as the message came: a dict, unless forged
        metadata = options if isinstance(options, dict) else {}
        start_run(carried(metadata), message.message_id, message.actor_name, metadata.get("retries"))  # Retries' count

    def after_process_message(
        self, broker: Broker, message: MessageProxy, *, result: Any | None = None, exception: BaseException | None = None
    ) -> None:
        """Log the run and put back the context, after every other middleware (the Retries' re-send) is done."""
        run = current_run()
        if run is not None and run.task_id == message.message_id:
            run.state = SUCCESS if exception is None else RETRY if run.resent else FAILURE
            end_run(run)

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        """Log a skipped run and put back the context."""
        run = current_run()
        if run is not None and run.task_id == message.message_id:
            run.state = SKIPPED
            end_run(run)

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        """Write out what ``configure_logging(enqueue=True)`` queued: the worker process closes its stderr pipe next.

        Its last line, and any after, are then written at once.
        """
        stop_all()


def instrument(broker: _Broker) -> _Broker:
    """Carry the trace through every message of *broker*; return *broker*.

    fapilog's middleware goes before every other: its after-hooks then run
    last, once the others (``Retries`` re-sending a failed message) are done.
    Instrumenting again changes nothing.
    """
    if any(isinstance(middleware, _TraceMiddleware) for middleware in broker.middleware):
        return broker
    if broker.middleware:
        broker.add_middleware(_TraceMiddleware(), before=type(broker.middleware[0]))
    else:
        broker.add_middleware(_TraceMiddleware())
    return broker
