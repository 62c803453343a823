"""``JsonFormatter``: one log record, one line of valid JSON, whatever it holds."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Final

from fapilog._internal.context import CONTEXT_FIELDS
from fapilog._internal.log_filter import record_context

__all__ = ["JsonFormatter"]

# Attributes every LogRecord has (and the two Formatter adds): anything else is
# an ``extra``. uvicorn's ``color_message`` repeats the message with ANSI codes.
_NOT_EXTRA: Final = frozenset(
    {
        *vars(logging.LogRecord("", 0, "", 0, "", None, None)),
        "message",
        "asctime",
        "taskName",
        "color_message",
        *CONTEXT_FIELDS,
    }
)
# Keys of the line that an ``extra`` of the same name must not replace.
_CORE_KEYS: Final = frozenset({"timestamp", "level", "logger", "exception", "stack"})


def _fallback(value: object) -> str:
    """Return a JSON-able stand-in for a value ``json`` cannot encode."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return _text(value)


def _text(value: object) -> str:
    """Return ``str(value)``, or a placeholder when even that fails."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"


# ensure_ascii: U+2028, NEL and other line breaks a log shipper may split on are
# written as \u escapes; allow_nan=False: NaN is not JSON, so it goes through
# the per-field fallback instead.
_encode: Final = json.JSONEncoder(ensure_ascii=True, allow_nan=False, default=_fallback, separators=(",", ":")).encode


def _encode_each(payload: dict[str, Any]) -> str:
    """Encode *payload* field by field, replacing what cannot be encoded by text."""
    safe: dict[str, Any] = {}
    for key, value in payload.items():
        try:
            _encode(value)
        except Exception:
            value = _text(value)
        safe[key] = value
    return _encode(safe)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object on one line.

    Keys: ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    the seven context fields (``null`` when unknown; the current context when
    no ``ContextFilter`` put them on the record), every ``extra`` field,
    and ``exception`` / ``stack`` when present. Non-ASCII and control
    characters are escaped, so no value can break the line or the JSON.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        """Return *created* as ``2026-11-21T23:38:52.123Z``."""
        second = int(created)
        cached_second, text = self._second
        if second != cached_second:  # the date part changes once a second
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)  # one assignment: safe across threads
        return f"{text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line for *record*, without the newline."""
        attributes = record.__dict__
        payload: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        if "trace_id" in attributes:  # put there by ContextFilter, or by extra=
            for key in CONTEXT_FIELDS:
                payload[key] = attributes.get(key)
        else:  # no ContextFilter ran: the formatter alone still writes the context
            for key, value in record_context(record).items():
                payload[key] = attributes.get(key, value)
        for key, value in attributes.items():
            if key not in _NOT_EXTRA:
                payload[f"extra_{key}" if key in _CORE_KEYS else key] = value
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        try:
            return _encode(payload)
        except Exception:
            return _encode_each(payload)


def _message(record: logging.LogRecord) -> str:
    """Return the record's message; if its arguments do not fit, say so and keep both."""
    try:
        return record.getMessage()
    except Exception:
        return f"{_text(record.msg)} (unformattable arguments: {_text(record.args)})"
