"""``JsonFormatter``: one log record, one line of valid JSON, whatever it holds."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from typing import Final, Literal

from fapilog._internal import jsonline
from fapilog._internal.context import Declared, declared
from fapilog._internal.jsonline import (
    BIG,
    MILLISECONDS,
    SMALL,
    Extras,
    Quoted,
    context_fields,
    context_of,
    exception_text,
    message_of,
    quote,
    text,
    timestamp,
    value,
)
from fapilog._internal.log_filter import APP_FIELDS, app_fields_of
from fapilog._internal.schemas import Schema, make_layout

__all__ = ["ENCODERS", "JsonFormatter"]

Encoder = Literal["json", "orjson"]
ENCODERS: Final[tuple[Encoder, ...]] = ("json", "orjson")

_names: Final = Quoted()  # logger names, written as JSON: few, and on every line
_UNMEASURED: Final = ',"latency_ms":null,"status_code":null,"req_bytes":null,"res_bytes":null,"user_agent":'


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object on one line.

    With the ``"default"`` *schema*, the keys are ``timestamp`` (ISO 8601,
    UTC), ``level``, ``logger``, ``message``, the seven context fields
    (``null`` when unknown; the current context when no ``ContextFilter`` put
    them on the record), every app field declared (``ContextFields``; ``null``
    when unbound), every ``extra`` field, and ``exception`` / ``stack`` when
    present. An ``extra`` named like a context or app field is that field's
    value. ``"ecs"``, ``"gcp"`` and ``"datadog"`` write the same record
    under the names Elastic, Google Cloud Logging and Datadog read natively;
    *project* (``"gcp"`` only) is the Google Cloud project id that makes the
    trace field a link to Cloud Trace. Under every schema, non-ASCII and
    control characters are escaped, so no value can break the line or the
    JSON, an ``extra`` never replaces a key the schema writes, and a value
    ``json`` cannot encode is written as its text.

    *encoder* ``"orjson"`` (the ``orjson`` extra) lets orjson write
    the ``dict`` and ``list`` extras it is known to write byte for byte as
    ``json`` does; the line is the same either way.
    """

    def __init__(self, schema: Schema = "default", *, project: str | None = None, encoder: Encoder = "json") -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}: choose one of {', '.join(map(repr, ENCODERS))}")
        self._value = _orjson_value() if encoder == "orjson" else value
        self._layout = make_layout(schema, self, project=project, encode=self._value)
        self.schema: Final = schema
        self.encoder: Final = encoder
        self._levels = Quoted()
        self._extras = Extras(("timestamp", "level", "logger", "exception", "stack"), dotted=False, encode=self._value)
        self._last_context: tuple[object, object, str | None] = (None, None, None)
        self._declared = Declared()
        self._app_keys: tuple[tuple[str, str], ...] = ()  # each app field's name, and its ``,"name":``

    def _declare(self, now: Declared) -> None:
        """Write the app fields *now* declared from here on: after the seven, in order."""
        self._app_keys = tuple((name, f",{quote(name)}:") for name in now.names)
        self._extras.declare(now.names, now.names)
        self._declared = now

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line for *record*, without the newline.

        What every schema writes first (timestamp, message, the seven fields)
        and the default schema itself are written here, inline on purpose:
        this is the cost of every log line, and a function call costs as
        much as a field.
        """
        try:
            attributes = record.__dict__
            created = record.created
            second = int(created)
            cached_second, date = jsonline.second
            if second != cached_second:
                date = jsonline.date_of(second)
            msg = record.msg
            args = record.args
            try:
                message = quote((msg % args if args else msg) if type(msg) is str else message_of(record))
            except Exception:
                message = quote(message_of(record))
            try:  # what ContextFilter (or extra=) put on the record
                trace_id, span_id, latency_ms, status_code, req_bytes, res_bytes, user_agent = context_fields(attributes)
            except KeyError:
                trace_id, span_id, latency_ms, status_code, req_bytes, res_bytes, user_agent = context_of(record)
            if self._layout is not None:
                return self._layout.render(
                    record,
                    date + MILLISECONDS[int((created - second) * 1000)],
                    message,
                    (trace_id, span_id, latency_ms, status_code, req_bytes, res_bytes, user_agent),
                )
            last_trace, last_span, context = self._last_context  # lines of one request share it
            if trace_id is not last_trace or span_id is not last_span or context is None:
                context = (
                    f'"trace_id":{quote(trace_id) if type(trace_id) is str else value(trace_id)},'
                    f'"span_id":{quote(span_id) if type(span_id) is str else value(span_id)}'
                )
                if type(trace_id) is str and type(span_id) is str:  # immutable: safe to keep by identity
                    self._last_context = (trace_id, span_id, context)
            line = (
                f'{{"timestamp":"{date}{MILLISECONDS[int((created - second) * 1000)]}",'
                f'"level":{self._levels[record.levelname]},"logger":{_names[record.name]},'
                f'"message":{message},{context}'
            )
            if latency_ms is status_code is req_bytes is res_bytes is None:  # before the response: the usual line
                line += _UNMEASURED + (quote(user_agent) if type(user_agent) is str else value(user_agent))
            elif (
                type(latency_ms) is float
                and type(status_code) is int
                and type(req_bytes) is int
                and type(res_bytes) is int
                and latency_ms - latency_ms == 0  # finite
                and SMALL < status_code < BIG
                and SMALL < req_bytes < BIG
                and SMALL < res_bytes < BIG
            ):  # an access record: its measurements written directly, as value() writes them
                line += (
                    f',"latency_ms":{float.__repr__(latency_ms)},"status_code":{int.__repr__(status_code)},'
                    f'"req_bytes":{int.__repr__(req_bytes)},"res_bytes":{int.__repr__(res_bytes)},'
                    f'"user_agent":{quote(user_agent) if type(user_agent) is str else value(user_agent)}'
                )
            else:
                line += (
                    f',"latency_ms":{value(latency_ms)},"status_code":{value(status_code)},'
                    f'"req_bytes":{value(req_bytes)},"res_bytes":{value(res_bytes)},"user_agent":{value(user_agent)}'
                )
            now = declared.now
            if now is not self._declared:
                self._declare(now)
            if self._app_keys:
                fields = attributes.get(APP_FIELDS)
                if fields is None:
                    fields = app_fields_of(record)
                encode = self._value
                for name, key in self._app_keys:
                    item = attributes[name] if name in attributes else fields.get(name)
                    if type(item) is str:
                        line += key + quote(item)
                    elif item is None:
                        line += key + "null"
                    else:
                        line += key + encode(item)
            line += self._extras.render(record)
            if record.exc_info or record.exc_text:
                exception = exception_text(self, record)
                if exception:
                    line += f',"exception":{quote(exception)}'
            if record.stack_info:
                line += f',"stack":{value(self.formatStack(record.stack_info))}'
            return line + "}"
        except Exception:  # a broken record or formatter subclass: still one line, and why
            return _last_resort(record)


def _orjson_value() -> Callable[[object], str]:
    """Return the orjson-backed writer of extras, importing orjson now; a clear error without it."""
    try:
        from fapilog._internal import orjson_values  # here, not at the top: orjson is optional
    except ImportError as error:
        raise ImportError('encoder="orjson" needs orjson: pip install "fapilog-context[orjson]"') from error
    return orjson_values.value


def _last_resort(record: logging.LogRecord) -> str:
    """Return a minimal line for a record the schema could not write; never raises."""
    try:
        created = timestamp(record.created)
    except Exception:
        created = ""
    problem = "".join(traceback.format_exception_only(*sys.exc_info()[:2])).strip()
    fields = (
        ("timestamp", created),
        ("level", text(getattr(record, "levelname", ""))),
        ("logger", text(getattr(record, "name", ""))),
        ("message", text(getattr(record, "msg", ""))),
        ("format_error", problem),
    )
    return "{" + ",".join(f'"{key}":{quote(item)}' for key, item in fields) + "}"
