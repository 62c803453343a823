"""What fapilog's own records share: bounded printable text, and logging that never fails the caller."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from typing import Any, Final

__all__ = [
    "MAX_LINE_LENGTH",
    "MAX_METHOD_LENGTH",
    "MAX_PATH_LENGTH",
    "MAX_USER_AGENT_LENGTH",
    "OWN_KEYS",
    "RECORD_ATTRIBUTES",
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
        if logging.raiseExceptions and sys.stderr is not None:
            with contextlib.suppress(Exception):
                traceback.print_exc(file=sys.stderr)
