"""What fapilog's own records share: bounded printable text, and logging that never fails the caller."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, Final

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_METHOD_LENGTH",
    "MAX_PATH_LENGTH",
    "MAX_USER_AGENT_LENGTH",
    "OWN_KEYS",
    "RECORD_ATTRIBUTES",
    "log_own",
    "log_safely",
    "printable",
]

# What the logging HOWTO asks of a library: with no logging set up at all, fapilog's records (a 5xx
# access record, a warning) are dropped, not printed as bare text by Python's last-resort handler.
logging.getLogger("fapilog").addHandler(logging.NullHandler())

MAX_METHOD_LENGTH: Final = 32
"""Longest HTTP method in a record; servers pass on any token, however long."""
MAX_USER_AGENT_LENGTH: Final = 512
"""Longest ``user_agent`` bound or logged; longer values are cut."""
MAX_PATH_LENGTH: Final = 2048
"""Longest ``path`` (or client ``url``) in a record; longer ones are cut."""
MAX_LINE_LENGTH: Final = 16 * 1024
"""Longest JSON line fapilog writes about a request or call, whatever it held.

Request ids are at most 128 characters, and method, user agent, path and URL
are cut and escaped to printable ASCII, so even with every character JSON-escaped a
record stays below this (Docker's log driver splits longer lines)."""

# uvicorn's ``color_message`` repeats the message with ANSI codes.
RECORD_ATTRIBUTES: Final = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName", "color_message"}
)
"""Attributes every LogRecord has, and those ``Formatter``, Python 3.12 and uvicorn add: never an ``extra``."""
OWN_KEYS: Final = frozenset(
    {
        *("timestamp", "level", "logger", "exception", "stack", "trace_sampled"),  # the default schema's own
        *("method", "path", "request_id", "parent_span_id", "messages_in", "messages_out", "close_code"),  # access
        *("url", "error"),  # fapilog.client
        *("task_name", "task_id", "state", "retries"),  # fapilog.task
        "dropped",  # the writer's report
    }
)
"""Keys fapilog's own lines and records write beside the seven fields: no app field may take one."""


def printable(value: str, limit: int) -> str:
    """Return *value* cut to *limit* characters of printable ASCII, the rest escaped."""
    value = value[:limit]
    if value.isascii() and value.isprintable():
        return value
    return value.encode("unicode_escape", "backslashreplace").decode("ascii")[:limit]


def log_safely(logger: logging.Logger, level: int, message: str, *args: object, **kwargs: Any) -> None:
    """Log, but never let a broken logging setup (a filter, a handler, a closed stream) fail the caller.

    The failure is reported as logging's own ``Handler.handleError`` does: on
    stderr, only while ``logging.raiseExceptions`` is on, and never raising,
    even when stderr itself is closed or gone.
    """
    try:
        logger.log(level, message, *args, **kwargs)
    except Exception:
        _report_failure()


def _report_failure() -> None:
    """Print the exception being handled on stderr, as ``Handler.handleError`` does; never raise."""
    if logging.raiseExceptions and sys.stderr is not None:
        with contextlib.suppress(Exception):
            traceback.print_exc(file=sys.stderr)


# fapilog's own records (access, client, task) without the caller lookup and makeRecord.
#
# Their caller is always log_safely's logger.log line, so what Logger.log would
# find and build is known: log_own builds the same LogRecord directly and hands
# it to logger.handle, where the logger's filters, handlers, propagation and
# lastResort apply as ever. _Probe records once, at import, what Logger.log
# makes through log_safely; log_own writes those attributes in that order, and
# only where they are the ones its literal below writes (Python 3.11's).


class _Probe(logging.Logger):
    """A logger, never registered, that keeps the plain ``LogRecord`` ``Logger.log`` makes, whatever the record factory."""

    record: logging.LogRecord | None = None

    def isEnabledFor(self, level: int) -> bool:
        return True

    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:  # Logger._log passes ten, by position
        name, level, fn, lno, msg, args_, exc_info, func, extra, sinfo = args
        return logging.LogRecord(name, level, fn, lno, msg, args_, exc_info, func, sinfo)

    def handle(self, record: logging.LogRecord) -> None:
        self.record = record


def _probe() -> logging.LogRecord:
    """Return the record ``Logger.log`` makes for ``log_safely`` here, factory aside; one without attributes if it failed."""
    probe = _Probe("fapilog.probe")
    log_safely(probe, logging.INFO, "%s %s", "fapilog", "probe")
    return probe.record or _new(logging.LogRecord)


_new: Final = object.__new__
_made: Final = _probe()
_ATTRIBUTES: Final = (
    *("name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info", "exc_text"),
    *("stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated", "thread", "threadName"),
    *("processName", "process"),
)
_STANDARD_LOGGER: Final = (logging.Logger.log, logging.Logger._log, logging.Logger.findCaller, logging.Logger.makeRecord)
_direct: Final = (
    tuple(vars(_made)) == _ATTRIBUTES
    and sys.version_info[:2] == (3, 11)
    and _made.msecs == int((_made.created - int(_made.created)) * 1000) + 0.0  # gh-89047's rule, as log_own computes it
    and all(method.__module__ == "logging" for method in _STANDARD_LOGGER)
)
"""Whether this Python makes the records ``log_own`` builds: else it always takes ``log_safely``."""
_PATHNAME, _FILENAME, _MODULE, _LINENO, _FUNCTION = (
    (_made.pathname, _made.filename, _made.module, _made.lineno, _made.funcName) if _direct else ("", "", "", 0, "")
)
_Logger: Final = logging.Logger
_LogRecord: Final = logging.LogRecord
_log, _log_record, _find_caller, _make_record = _STANDARD_LOGGER
_srcfile: Final = logging._srcfile
_time: Final = time.time
_get_ident: Final = threading.get_ident
_current_thread: Final = threading.current_thread
_getpid: Final = os.getpid
_level_names: Final = logging._levelToName
_modules: Final = sys.modules
_logging: Final = vars(logging)  # its globals that typeshed leaves out


def log_own(logger: logging.Logger, level: int, message: str, *args: object, extra: dict[str, object]) -> None:
    """Log one of fapilog's own records, as ``log_safely`` would, once ``logger.isEnabledFor(level)`` said yes.

    The record is the one ``Logger.log`` makes for ``log_safely``: the same
    attributes, in the same order, with the same values (its caller is
    ``log_safely``'s logging call), built without looking for the caller.
    With a record factory, a ``Logger`` subclass, a ``Logger`` method
    replaced, ``logging._srcfile`` changed, one argument (which may be a
    mapping) or on another Python, it is ``log_safely`` itself.
    """
    if not (
        _direct
        and _logging["_logRecordFactory"] is _LogRecord
        and type(logger) is _Logger
        and _Logger.log is _log
        and _Logger._log is _log_record
        and _Logger.findCaller is _find_caller
        and _Logger.makeRecord is _make_record
        and logging._srcfile is _srcfile
        and len(args) != 1
    ):
        log_safely(logger, level, message, *args, extra=extra)
        return
    try:
        created = _time()
        if logging.logMultiprocessing:
            process_name: str | None = "MainProcess"
            multiprocessing = _modules.get("multiprocessing")
            if multiprocessing is not None:
                try:
                    process_name = multiprocessing.current_process().name
                except Exception:  # as LogRecord: multiprocessing may be half imported
                    pass
        else:
            process_name = None
        threads = logging.logThreads
        record = _new(_LogRecord)
        record.__dict__ = {
            "name": logger.name,
            "msg": message,
            "args": args,
            "levelname": _level_names.get(level) or logging.getLevelName(level),
            "levelno": level,
            "pathname": _PATHNAME,
            "filename": _FILENAME,
            "module": _MODULE,
            "exc_info": None,
            "exc_text": None,
            "stack_info": None,
            "lineno": _LINENO,
            "funcName": _FUNCTION,
            "created": created,
            "msecs": int((created - int(created)) * 1000) + 0.0,
            "relativeCreated": (created - _logging["_startTime"]) * 1000,
            "thread": _get_ident() if threads else None,
            "threadName": _current_thread().name if threads else None,
            "processName": process_name,
            "process": _getpid() if logging.logProcesses else None,
            **extra,
        }
        logger.handle(record)
    except Exception:
        _report_failure()
