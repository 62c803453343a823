"""The background writer behind ``enqueue=True``: the thread that logs only queues, one thread per process writes.

A log call then costs its caller the record, its context (``capture``) and a
queue put; formatting and writing happen on the writer thread, so a sink that
stalls (a full pipe to a log shipper, a slow disk) stalls no request.

- **Bounded.** Records below ERROR may fill nine tenths of the queue; past
  that they are dropped and counted, and after the next write that succeeds
  a WARNING on the ``fapilog`` logger says how many (its ``dropped`` field).
  ERROR and above may fill the whole queue, and when even that is full they
  wait for room, as a direct write waits for its sink: never dropped.
- **The same line.** A record whose values could still change after the call
  (a ``dict`` extra, an object as argument) or that carries an exception is
  formatted at once, on the calling thread: the line is the one a direct
  write gives, and the queue holds no traceback (nor its frames).
- **Whole lines.** Lines go out in writes of at most ``PIPE_BUF`` bytes, which
  a pipe shared by several worker processes never interleaves.
- **Nothing left behind.** ``close`` (``logging.shutdown`` at exit,
  ``configure_logging`` replacing the handler) writes everything queued, then
  stops the thread; what is logged later is written at once by its caller.
  ``stop_all`` does it for every writer, where no ``atexit`` will run (and
  at the threads' shutdown, which ``multiprocessing`` children run too).
  After ``fork()`` the child forgets the parent's queue (the parent writes
  it) and starts a writer of its own on its first record.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import logging
import os
import queue
import select
import sys
import threading
import traceback
import uuid
import weakref
from itertools import islice
from typing import Final, TextIO

from fapilog._internal.log_filter import APP_FIELDS
from fapilog._internal.records import log_safely

__all__ = ["ATOMIC_WRITE", "QUEUE_SIZE", "BackgroundWriter", "flush_all", "settled", "stop_all"]

QUEUE_SIZE: Final = 10_000
"""Records a writer queues at most by default; a tenth of it is kept for ERROR and above."""
ATOMIC_WRITE: Final[int] = getattr(select, "PIPE_BUF", 512)  # 4096 on Linux; 512 is POSIX's least
"""Bytes a write may hold and still reach a pipe whole, never interleaved with another process's write."""

_logger: Final = logging.getLogger("fapilog")
_ROOM_POLL: Final = 0.1  # seconds an ERROR record waits for room before it looks again, should a notice be missed

# Types whose values never change once made: a record holding only these is
# written later exactly as it would be now.
_SETTLED_TYPES: Final = frozenset(
    {
        str,
        int,
        float,
        bool,
        type(None),
        bytes,
        uuid.UUID,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        decimal.Decimal,
    }
)
# Every LogRecord has these attributes first: extras and the context come after them.
_STANDARD_COUNT: Final = len(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def settled(record: logging.LogRecord) -> bool:
    """Return whether *record* formatted later gives the line it gives now: no exception, and only values that cannot change.

    The app fields ``ContextFilter`` put on it count as such: a mapping never
    changed once bound, of strings, numbers and ``None``.
    """
    if record.exc_info or type(record.msg) is not str:
        return False
    args = record.args
    if args:
        if type(args) is not tuple:
            return False
        for arg in args:
            if type(arg) not in _SETTLED_TYPES:
                return False
    attributes = record.__dict__
    for item in islice(attributes.values(), _STANDARD_COUNT, None):  # the extras, and what filters added
        if type(item) not in _SETTLED_TYPES and item is not attributes.get(APP_FIELDS):
            return False
    return True


class _Flush:
    """A queue entry that is set once every line queued before it is written."""

    __slots__ = ("written",)

    def __init__(self) -> None:
        self.written = threading.Event()


_STOP: Final = object()
"""The queue entry that ends the writer thread."""


class BackgroundWriter:
    """Queue records for *handler* and write them, formatted by it, to its stream on a thread of its own."""

    def __init__(self, handler: logging.StreamHandler[TextIO], queue_size: int = QUEUE_SIZE) -> None:
        if type(queue_size) is not int or queue_size < 10:
            raise ValueError(f"queue_size must be an int of at least 10, got {queue_size!r}")
        self._handler = handler
        self._capacity = queue_size
        self._limit = queue_size - queue_size // 10  # below ERROR
        self._closed = False
        self._reset()
        _register(self)

    def _reset(self) -> None:
        """Start with an empty queue and no thread: on creation, and in a child after ``fork()``."""
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._running = False  # a writer thread serves the queue
        self._lock = threading.Lock()  # starting, closing, counting drops
        self._writing = threading.Lock()  # held for each write: one at a time, and none across a fork
        self._room = threading.Condition(threading.Lock())
        self._waiting = 0  # ERROR records waiting for room
        self._dropped = 0

    def put(self, record: logging.LogRecord, is_settled: bool) -> None:
        """Queue *record*, or its line formatted now unless *is_settled*; drop it if it is below ERROR and its share is full."""
        item: object = record if is_settled else self._format(record)
        if item is None:
            return
        pending = self._queue
        if pending.qsize() >= self._limit and not self._admit(record.levelno):
            return
        pending.put(item)
        if not self._running:
            self._not_running()

    def _admit(self, levelno: int) -> bool:
        """Return whether a record may join a queue past the share below ERROR; count it as dropped if not."""
        if not self._running or threading.current_thread() is self._thread:
            return True  # no writer: its caller writes it now; or the writer's own report
        if levelno < logging.ERROR:
            with self._lock:
                self._dropped += 1
            return False
        with self._room:
            self._waiting += 1
            try:
                while self._queue.qsize() >= self._capacity and self._running:
                    self._room.wait(_ROOM_POLL)
            finally:
                self._waiting -= 1
        return True

    def _not_running(self) -> None:
        """Start the writer thread on the first record; once closed, or where no thread can start, write here."""
        with self._lock:
            if not self._running and not self._closed:
                thread = threading.Thread(target=self._serve, name="fapilog-writer", daemon=True)
                with contextlib.suppress(RuntimeError):  # the interpreter is shutting down: no new threads
                    thread.start()
                    self._thread = thread
                    self._running = True
            running = self._running
        if not running:
            self._drain()

    def flush(self) -> None:
        """Return once every line queued before the call is written."""
        if threading.current_thread() is self._thread:
            return  # the writer itself: what it queued before is written before what it queues next
        marker = _Flush()
        self._queue.put(marker)
        if not self._running:
            self._drain()
        marker.written.wait()

    def close(self) -> None:
        """Write everything queued and stop the writer thread; what comes later is written by its caller."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            if thread is not threading.current_thread():
                thread.join()
        self._running = False
        self._drain()

    def _serve(self) -> None:
        """Write what is queued as it comes, until told to stop: the writer thread."""
        get = self._queue.get
        while True:
            try:
                marker = self._write_available(get())
            except Exception:  # pragma: no cover - a bug must not end the thread: records would pile up unwritten
                _print_exception()
                continue
            if marker is _STOP:
                return
            if isinstance(marker, _Flush):
                marker.written.set()

    def _drain(self) -> None:
        """Write everything queued, here and now."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            marker = self._write_available(item)
            if isinstance(marker, _Flush):
                marker.written.set()

    def _write_available(self, item: object) -> object:
        """Write *item* and the lines queued after it, in writes of at most ``ATOMIC_WRITE`` bytes.

        Return the marker it stopped at (flush, stop), or ``None`` once the queue is empty.
        """
        next_item = self._queue.get_nowait
        lines: list[str] = []
        size = 0
        while True:
            if type(item) is str:
                line: str | None = item
            elif isinstance(item, logging.LogRecord):
                line = self._format(item)
            else:
                self._write(lines)
                return item
            if line is not None:
                length = len(line) + 1
                if size + length > ATOMIC_WRITE and lines:
                    self._write(lines)
                    lines, size = [], 0
                lines.append(line)
                size += length
            try:
                item = next_item()
            except queue.Empty:
                break
        self._write(lines)
        return None

    def _format(self, record: logging.LogRecord) -> str | None:
        """Return the handler's line for *record*; ``None`` (reported as logging does) if formatting failed."""
        try:
            return self._handler.format(record)
        except Exception:
            self._handler.handleError(record)
            return None

    def _write(self, lines: list[str]) -> None:
        """Write *lines* to the handler's stream in one write, and flush it; then make room and report drops."""
        if not lines:
            return
        terminator = self._handler.terminator
        text = terminator.join(lines) + terminator
        with self._writing:
            try:
                stream = self._handler.stream
                stream.write(text)
                stream.flush()
            except Exception:  # the sink failed: reported as logging reports a failed emit
                _print_exception()
                return
        if self._waiting:
            with self._room:
                self._room.notify_all()
        if self._dropped:
            self._report_drops()

    def _report_drops(self) -> None:
        """Log how many records were dropped since the last report (queued behind the lines written)."""
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        message = "dropped %d log records below ERROR: the log queue was full while the sink stalled"
        log_safely(_logger, logging.WARNING, message, dropped, extra={"dropped": dropped})


def _print_exception() -> None:
    """Report the exception being handled on stderr, as ``logging`` reports an error in a handler."""
    if logging.raiseExceptions:
        with contextlib.suppress(Exception):  # stderr itself may be the sink that failed
            traceback.print_exc(file=sys.stderr)


_writers: Final[weakref.WeakSet[BackgroundWriter]] = weakref.WeakSet()
_held: list[BackgroundWriter] = []  # writers whose write lock a fork in progress holds
_hooked = False


def _register(writer: BackgroundWriter) -> None:
    """Track *writer* for ``fork()`` and ``stop_all``; hook ``fork()`` and the threads' shutdown once, with the first writer.

    ``threading._shutdown`` runs at a normal exit (before ``atexit``) and
    also where a ``multiprocessing`` child ends (Dramatiq's workers), whose
    ``os._exit`` runs no ``atexit``: the queues are written out there too.
    """
    global _hooked
    if not _hooked:
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
        register_at_threads_end = getattr(threading, "_register_atexit", None)  # private, as concurrent.futures uses it
        if register_at_threads_end is not None:
            with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
                register_at_threads_end(stop_all)
        _hooked = True
    _writers.add(writer)


def _before_fork() -> None:
    """Wait until no writer is in the middle of a write: the child inherits no stream mid-write, nor a lock held."""
    _held[:] = list(_writers)
    for writer in _held:
        writer._writing.acquire()


def _after_fork_in_parent() -> None:
    for writer in _held:
        writer._writing.release()
    _held.clear()


def _after_fork_in_child() -> None:
    """Give every writer an empty queue and no thread: the parent writes what it had queued."""
    for writer in _held:
        writer._reset()
    _held.clear()


def flush_all() -> None:
    """Return once every line queued so far, by any writer, is written: where a process will end with ``os._exit``."""
    for writer in list(_writers):
        writer.flush()


def stop_all() -> None:
    """Write out every queue and stop every writer thread: from now on each record is written by its caller.

    For a process about to end where no ``atexit`` runs: killed by a signal's
    default action once its server shut down (uvicorn re-raises SIGTERM), or
    ending with ``os._exit`` (a Celery prefork pool process).
    """
    for writer in list(_writers):
        writer.close()
