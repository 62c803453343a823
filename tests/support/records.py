"""Log records as tests build and read them: one record factory, and views of what a handler received."""

from __future__ import annotations

import contextvars
import logging
from typing import Any, Final, Unpack

import examples.fields  # noqa: F401  # declares the session's app fields: see UNBOUND
from fapilog import ContextFields, bind_context, bind_fields
from fapilog._internal.context import ContextUpdate, attach_context

__all__ = [
    "ALL_NONE",
    "UNBOUND",
    "FailingFilter",
    "ListHandler",
    "access_records",
    "client_records",
    "escaped_error",
    "make_record",
    "rendered",
    "task_records",
]

ALL_NONE: Final = dict.fromkeys(("trace_id", "span_id", "latency_ms", "status_code", "req_bytes", "res_bytes", "user_agent"))
"""The seven context fields of an empty context, written out (not read from fapilog)."""
UNBOUND: Final = dict.fromkeys(("user_id", "tenant_id"))
"""The app fields every test process declares (``examples.fields.Shop``, imported here), unbound.

A class a test declares is forgotten after it (``_clean_state``): only these stay."""


def make_record(
    msg: object = "hello",
    args: Any = None,
    exc_info: Any = None,
    *,
    name: str = "app.module",
    levelno: int = logging.INFO,
    pathname: str = "/srv/app/module.py",
    lineno: int = 10,
    func: str | None = None,
    created: float | None = None,
    extra: dict[str, object] | None = None,
    **more: object,
) -> logging.LogRecord:
    """Build a record as ``logging.getLogger(name).log(levelno, msg, *args, extra={**extra, **more})`` would.

    *created* fixes the record's time (and ``msecs``, as ``LogRecord`` computes it).
    """
    record = logging.LogRecord(name, levelno, pathname, lineno, msg, args, exc_info, func=func)
    if created is not None:
        record.created = created
        record.msecs = int((created - int(created)) * 1000) + 0.0
    record.__dict__.update({**(extra or {}), **more})
    return record


def escaped_error(fields: ContextFields | None = None, **context: Unpack[ContextUpdate]) -> RuntimeError:
    """Return an exception that escaped a request bound with *context* and app *fields*: the middleware attached them to it."""
    error = RuntimeError("escaped")

    def attach() -> None:
        bind_context(**context)
        if fields is not None:
            bind_fields(fields)
        attach_context(error)

    contextvars.Context().run(attach)  # an empty context of its own: the test's is left alone
    return error


class ListHandler(logging.Handler):
    """Keep every record it handles."""

    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class FailingFilter(logging.Filter):
    """A broken filter someone attached to a logger: it raises on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        raise RuntimeError("broken filter")


def _of(logger: str, records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [{**vars(record), "message": record.getMessage()} for record in records if record.name == logger]


def access_records(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """Return the attributes of the ``fapilog.access`` records among *records*, message rendered."""
    return _of("fapilog.access", records)


def client_records(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """Return the attributes of the ``fapilog.client`` records among *records*, message rendered."""
    return _of("fapilog.client", records)


def task_records(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """Return the attributes of the ``fapilog.task`` records among *records*, message rendered."""
    return _of("fapilog.task", records)


def rendered(record: logging.LogRecord) -> str:
    """Return everything a handler could write of *record*: message and attributes."""
    return " ".join([record.getMessage(), *(str(value) for value in vars(record).values())])
