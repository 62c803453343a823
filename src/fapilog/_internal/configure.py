"""``configure_logging``: JSON lines with the request context, in one call."""

from __future__ import annotations

import logging
import sys
from typing import Final, TextIO

from fapilog._internal.json_formatter import Encoder, JsonFormatter
from fapilog._internal.log_filter import ContextFilter
from fapilog._internal.schemas import Schema

__all__ = ["SERVER_ACCESS_LOGGERS", "SERVER_LOGGERS", "FapilogHandler", "configure_logging"]

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


class FapilogHandler(logging.StreamHandler[TextIO]):
    """The handler fapilog installs: context filter and JSON formatter, recognisable on a second call.

    *schema*, *project* and *encoder* are ``JsonFormatter``'s; a ``dictConfig``
    handler entry passes them as keys beside ``class``.
    """

    def __init__(
        self, stream: TextIO | None = None, *, schema: Schema = "default", project: str | None = None, encoder: Encoder = "json"
    ) -> None:
        formatter = JsonFormatter(schema, project=project, encoder=encoder)  # first: a bad name raises before any setup
        super().__init__(stream)
        self.setFormatter(formatter)
        self.addFilter(ContextFilter())


def configure_logging(
    level: int | str = logging.INFO,
    *,
    stream: TextIO | None = None,
    server_access_log: bool = False,
    schema: Schema = "default",
    project: str | None = None,
    encoder: Encoder = "json",
) -> logging.Handler:
    """Send every record to *stream* (default: stderr) as a JSON line with the context.

    Installs one handler, with ``ContextFilter`` and ``JsonFormatter``, on the
    root logger at *level*, and hands the loggers of uvicorn, hypercorn,
    granian and gunicorn to it, so the server's own lines come out the same
    way. The servers' access logs are silenced (fapilog's access record
    replaces them) unless *server_access_log*. *schema* names the fields the
    way a log backend reads them (``"ecs"``, ``"gcp"`` with the Google Cloud
    *project*, ``"datadog"``; see ``JsonFormatter``), and *encoder*
    ``"orjson"`` uses the ``fapilog[orjson]`` extra. Calling it again replaces
    the handler it installed before, also one installed by fapilog's logging
    config file; handlers installed by others are left alone. An unknown
    schema or encoder raises ``ValueError`` and changes nothing. Returns the handler.
    """
    handler = FapilogHandler(sys.stderr if stream is None else stream, schema=schema, project=project, encoder=encoder)
    root = logging.getLogger()
    for old in [old for old in root.handlers if isinstance(old, FapilogHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        for server_handler in logger.handlers[:]:
            logger.removeHandler(server_handler)
        logger.propagate = True
        if name in SERVER_ACCESS_LOGGERS:
            logger.setLevel(logging.NOTSET if server_access_log else logging.WARNING)
    return handler
