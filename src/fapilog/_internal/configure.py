"""``configure_logging``: JSON lines with the request context, in one call."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Final, TextIO

from fapilog._internal.json_formatter import Encoder, JsonFormatter
from fapilog._internal.log_filter import ContextFilter, capture
from fapilog._internal.schemas import Schema
from fapilog._internal.writer import QUEUE_SIZE, BackgroundWriter, settled

__all__ = ["SERVER_ACCESS_LOGGERS", "SERVER_LOGGERS", "FapilogHandler", "HandlerOptions", "configure_logging"]

SERVER_ACCESS_LOGGERS: Final = ("uvicorn.access", "hypercorn.access", "granian.access", "gunicorn.access")
"""The servers' own access logs: fapilog's ``fapilog.access`` replaces them."""
SERVER_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "hypercorn.error",
    "_granian",
    "gunicorn.error",
    *SERVER_ACCESS_LOGGERS,
)


_STEPS: Final = ("filter", "acquire", "release", "format", "emit", "flush")
"""What ``Handler.handle`` calls: a class that overrides none lets ``FapilogHandler.handle`` do them in one step."""


@dataclass(frozen=True)
class HandlerOptions:
    """What a ``FapilogHandler`` writes and how: what ``configure_logging`` keeps when it replaces one."""

    schema: Schema = "default"
    project: str | None = None
    encoder: Encoder = "json"
    enqueue: bool = False
    queue_size: int = QUEUE_SIZE


class FapilogHandler(logging.StreamHandler[TextIO]):
    """The handler fapilog installs: context filter and JSON formatter, recognisable on a second call.

    *schema*, *project* and *encoder* are ``JsonFormatter``'s; a ``dictConfig``
    handler entry passes them as keys beside ``class``. With *enqueue*, the
    thread that logs only captures the record's context and queues it (at
    most *queue_size* records); a writer thread of its own formats and writes
    it (see ``configure_logging``), and ``flush()`` returns once every line
    queued before is written.
    """

    def __new__(cls, *args: Any, enqueue: bool = False, **kwargs: Any) -> FapilogHandler:
        # Two classes, so neither mode pays for the other's branch on every record.
        return super().__new__(_QueuedHandler if enqueue and cls is FapilogHandler else cls)

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        schema: Schema = "default",
        project: str | None = None,
        encoder: Encoder = "json",
        enqueue: bool = False,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        if enqueue and not isinstance(self, _QueuedHandler):
            raise TypeError(f"enqueue=True is FapilogHandler's own: {type(self).__name__} writes directly")
        formatter = JsonFormatter(schema, project=project, encoder=encoder)  # first: a bad name raises before any setup
        super().__init__(stream)
        self.setFormatter(formatter)
        self._context: Final = ContextFilter()
        self.addFilter(self._context)
        self.options: Final = HandlerOptions(schema, project, encoder, enqueue, queue_size)
        cls = type(self)
        self._plain: Final = all(getattr(cls, name) is getattr(logging.StreamHandler, name) for name in _STEPS)

    def handle(self, record: logging.LogRecord) -> bool:
        """Enrich, format and write *record* as ``StreamHandler`` does, in one step while nothing was added or overridden.

        With its own ``ContextFilter`` its only filter, a formatter set and
        ``StreamHandler``'s methods: the context captured, the lock taken once,
        the line written and flushed, a failure passed to ``handleError``.
        Otherwise ``Handler.handle``, step by step.
        """
        filters = self.filters
        formatter = self.formatter
        if not self._plain or len(filters) != 1 or filters[0] is not self._context or formatter is None:
            return super().handle(record)
        capture(record)
        lock = self.lock
        if lock:
            lock.acquire()
        try:
            try:
                stream = self.stream
                stream.write(formatter.format(record) + self.terminator)  # issue 35046: one write
                if bool(stream) and hasattr(stream, "flush"):
                    stream.flush()
            except RecursionError:  # as StreamHandler: see issue 36272
                raise
            except Exception:
                self.handleError(record)
        finally:
            if lock:
                lock.release()
        return True


class _QueuedHandler(FapilogHandler):
    """``FapilogHandler(enqueue=True)``: records go to a ``BackgroundWriter``."""

    def __init__(self, stream: TextIO | None = None, *, queue_size: int = QUEUE_SIZE, **options: Any) -> None:
        super().__init__(stream, queue_size=queue_size, **options)  # FapilogHandler's options, checked there
        self.writer: Final = BackgroundWriter(self, queue_size)

    def handle(self, record: logging.LogRecord) -> bool:
        """Run the filters (``ContextFilter`` captures the context, here on the logging thread) and queue *record*.

        No lock: the queue is safe to share, and the writer's own lock keeps
        writes apart.
        """
        filters = self.filters
        if len(filters) == 1 and filters[0] is self._context:
            # The usual case, at the least cost: the context captured never
            # changes, so whether the record is settled is known before.
            is_settled = settled(record)
            capture(record)
        else:
            kept: object = self.filter(record)
            if not kept:
                return False
            if isinstance(kept, logging.LogRecord):  # Python 3.12: a filter may return the record to use instead
                record = kept
            is_settled = settled(record)
        self.writer.put(record, is_settled)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Queue *record*."""
        self.writer.put(record, settled(record))

    def flush(self) -> None:
        """Return once every line queued before the call is written."""
        self.writer.flush()

    def close(self) -> None:
        """Write everything queued and stop the writer thread (later records are written at once)."""
        self.writer.close()
        super().close()


def configure_logging(
    level: int | str = logging.INFO,
    *,
    stream: TextIO | None = None,
    server_access_log: bool = False,
    schema: Schema | None = None,
    project: str | None = None,
    encoder: Encoder | None = None,
    enqueue: bool | None = None,
    queue_size: int | None = None,
) -> FapilogHandler:
    """Send every record to *stream* (default: stderr) as a JSON line with the context.

    Installs one handler, with ``ContextFilter`` and ``JsonFormatter``, on the
    root logger at *level*, and hands the loggers of uvicorn, hypercorn,
    granian and gunicorn to it, so the server's own lines come out the same
    way. The servers' access logs are silenced (fapilog's access record
    replaces them) unless *server_access_log*. *schema* names the fields the
    way a log backend reads them (``"ecs"``, ``"gcp"`` with the Google Cloud
    *project*, ``"datadog"``; see ``JsonFormatter``), and *encoder*
    ``"orjson"`` uses the ``orjson`` extra.

    *enqueue* moves formatting and writing off the thread that logs: it only
    captures the context and queues the record, and a writer thread per
    process writes it, so a stalled sink stalls no request. At most
    *queue_size* records wait; past nine tenths of that, records below ERROR
    are dropped and a WARNING on ``fapilog`` with a ``dropped`` field counts
    them once writing resumes; ERROR and above wait for room instead. The
    queue is written out at exit, when the handler is replaced, as an
    instrumented app's lifespan ends, in a Celery pool process before it
    ends (``fapilog.celery.instrument``), and by the returned handler's
    ``flush()``; after ``fork()`` each process writes its own lines.

    Calling it again replaces the handler it installed before, also one
    installed by fapilog's logging config file, after writing out its queue;
    handlers installed by others are left alone. *schema*, *encoder* and
    *enqueue* left out (``None``) are those of the handler it replaces (with
    the schema goes its *project*, with *enqueue* its *queue_size*), so an
    app's own call never undoes the schema or the queue a server's
    ``--log-config`` chose; with no handler to replace, ``"default"``,
    ``"json"`` and ``False``. An unknown schema or encoder raises
    ``ValueError`` and changes nothing. Returns the handler.
    """
    root = logging.getLogger()
    replaced = [old for old in root.handlers if isinstance(old, FapilogHandler)]
    kept = replaced[-1].options if replaced else HandlerOptions()
    if schema is None:
        schema, project = kept.schema, kept.project if project is None else project
    if enqueue is None:
        enqueue, queue_size = kept.enqueue, kept.queue_size if queue_size is None else queue_size
    handler = FapilogHandler(
        sys.stderr if stream is None else stream,
        schema=schema,
        project=project,
        encoder=kept.encoder if encoder is None else encoder,
        enqueue=enqueue,
        queue_size=QUEUE_SIZE if queue_size is None else queue_size,
    )
    # One assignment: a record logged meanwhile on another thread meets the old handler or the new one, never neither.
    root.handlers = [*(other for other in root.handlers if other not in replaced), handler]
    for old in replaced:
        old.close()
    root.setLevel(level)
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        for server_handler in logger.handlers[:]:
            logger.removeHandler(server_handler)
        logger.propagate = True
        if name in SERVER_ACCESS_LOGGERS:
            logger.setLevel(logging.NOTSET if server_access_log else logging.WARNING)
    return handler
