"""``configure_logging``: JSON lines with the request context, in one call."""

from __future__ import annotations

import logging
import sys
from typing import Final, TextIO

from fapilog._internal.json_formatter import JsonFormatter
from fapilog._internal.log_filter import ContextFilter

__all__ = ["configure_logging"]

UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _FapilogHandler(logging.StreamHandler[TextIO]):
    """The handler ``configure_logging`` installs, recognisable on a second call."""


def configure_logging(level: int | str = logging.INFO, *, stream: TextIO | None = None) -> logging.Handler:
    """Send every record to *stream* (default: stderr) as a JSON line with the context.

    Installs one handler, with ``ContextFilter`` and ``JsonFormatter``, on the
    root logger at *level*, and hands uvicorn's loggers to it, so that
    ``uvicorn.error`` and ``uvicorn.access`` records come out the same way.
    Calling it again replaces the handler it installed before; handlers
    installed by others are left alone. Returns the handler.
    """
    handler = _FapilogHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in [old for old in root.handlers if isinstance(old, _FapilogHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        for uvicorn_handler in logger.handlers[:]:
            logger.removeHandler(uvicorn_handler)
        logger.propagate = True
    return handler
