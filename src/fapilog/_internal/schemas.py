"""What a log line is called field by field: fapilog's own names, or a backend's.

Elastic, Google Cloud Logging and Datadog each join logs to traces, and give
an HTTP request its own view, only when the fields carry *their* names. Each
layout here writes a record under one backend's names, directly as JSON text
(see ``jsonline``), with the guarantees of the default one: one line, ASCII,
never a clobbered key, every value written or replaced by its text.

A value is written under a backend's typed field only when it has the type
that field is indexed as (a string id, an integer status); anything else an
``extra=`` put there keeps fapilog's own name, so it can never break the
backend's index mapping, and is never lost.

App fields (``ContextFields``) follow the context fields, under their own
name or the key their class gave for the backend (``user.id``): a nested
object where the backend reads dotted names as paths (Elastic, Datadog), a
plain key in Google's ``jsonPayload``; left out while unbound, as every
unknown value is here.
"""

from __future__ import annotations

import json
import logging
import math
import re
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import ClassVar, Final, Literal, TypeAlias, Union, cast

from fapilog._internal.context import CONTEXT_FIELDS, Declared, current_model, declared
from fapilog._internal.jsonline import (
    CACHE_LIMIT,
    Context,
    Extras,
    clashes,
    exception_text,
    integer,
    quote,
    text,
    value,
)
from fapilog._internal.log_filter import SAMPLED_FIELD, app_fields_of, sampled
from fapilog._internal.records import OWN_KEYS

__all__ = [
    "ACCESS_LOGGER",
    "ECS_VERSION",
    "SCHEMAS",
    "Layout",
    "Schema",
    "datadog_id",
    "gcp_duration",
    "key_clash",
    "make_layout",
    "nanoseconds",
]

Schema = Literal["default", "ecs", "gcp", "datadog"]
SCHEMAS: Final[tuple[Schema, ...]] = ("default", "ecs", "gcp", "datadog")

ACCESS_LOGGER: Final = "fapilog.access"
"""Its records carry the request's ``method``, ``path``, ``request_id`` and ``parent_span_id`` too."""
ECS_VERSION: Final = "1.9.0"
"""The first ECS version with every ECS field written here (``http.request.id``: 1.9; ``log.original``, removed in 8.0).

Elastic's ``ecs-logging`` says 1.6.0; ``parent.id`` is Elastic APM's field, in no ECS version."""

_W3C_TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")
_W3C_SPAN_ID: Final = re.compile(r"[0-9a-f]{16}")
_LOW_64_BITS: Final = 16  # hex digits


def _string(item: object) -> str | None:
    """Return *item* as a JSON string if it is a ``str``, else ``None``."""
    return quote(item) if isinstance(item, str) else None


def _finite(item: object) -> float | None:
    """Return *item* if it is a finite int or float (not a bool), else ``None``."""
    if isinstance(item, int | float) and not isinstance(item, bool):
        try:
            number = float(item)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return None


def nanoseconds(milliseconds: object) -> str | None:
    """Return a latency in milliseconds as whole nanoseconds (ECS ``event.duration``, Datadog ``duration``)."""
    number = _finite(milliseconds)
    if number is None:
        return None
    nanos = number * 1_000_000
    return str(round(nanos)) if math.isfinite(nanos) else None


def gcp_duration(milliseconds: object) -> str | None:
    """Return a latency in milliseconds as a protobuf ``Duration`` JSON string, such as ``"0.012s"``."""
    number = _finite(milliseconds)
    if number is None:
        return None
    seconds = f"{number / 1000:.9f}".rstrip("0").rstrip(".")
    return f'"{seconds}s"'


def datadog_id(hex_id: object, length: int) -> str | None:
    """Return a W3C trace (32 hex) or span id (16 hex) as Datadog writes it in logs, else ``None``.

    Datadog correlates a log with a trace by ``dd.trace_id``: the lower 64 bits
    of a 128-bit W3C trace id, and the 64-bit span id, as unsigned decimal
    strings.
    """
    if not isinstance(hex_id, str) or len(hex_id) != length:
        return None
    pattern = _W3C_TRACE_ID if length == 32 else _W3C_SPAN_ID
    if pattern.fullmatch(hex_id) is None or hex_id.count("0") == length:  # all zero: no trace
        return None
    return str(int(hex_id[-_LOW_64_BITS:], 16))


def _int64(item: object) -> str | None:
    """Return an int as protobuf's JSON form of an ``int64`` (Google's ``requestSize``): a decimal string."""
    written = integer(item)
    return None if written is None else f'"{written}"'


def _fields(pairs: Iterable[tuple[str, str | None]]) -> str:
    """Return ``"a":1,"b":2`` for the pairs whose JSON value is not ``None``."""
    return ",".join(f'"{key}":{written}' for key, written in pairs if written is not None)


def _object(key: str, written: str | None) -> str | None:
    """Return ``{"key":written}``, or ``None`` when there is nothing to write."""
    return None if written is None else f'{{"{key}":{written}}}'


def _typed(plain: list[tuple[str, object]], name: str, item: object, convert: Callable[[object], str | None]) -> str | None:
    """Return *item* written by *convert* for a typed field; if it does not fit, keep it in *plain* under *name*."""
    if item is None:
        return None
    written = convert(item)
    if written is None:
        plain.append((name, item))
    return written


def _optional(item: object) -> str | None:
    """Return *item* as JSON, or ``None`` (nothing to write) when it is ``None``."""
    return None if item is None else value(item)


def _plain(plain: list[tuple[str, object]]) -> str:
    """Return the values that fit no typed field, under fapilog's own names."""
    return "".join(f',"{key}":{value(item)}' for key, item in plain)


def _by_number(levelno: int, names: tuple[str, str, str, str, str, str]) -> str:
    """Return the name of the nearest standard level at or below *levelno*: below DEBUG, the first name."""
    below, debug, info, warning, error, critical = names
    if levelno >= logging.CRITICAL:
        return critical
    if levelno >= logging.ERROR:
        return error
    if levelno >= logging.WARNING:
        return warning
    if levelno >= logging.INFO:
        return info
    return debug if levelno >= logging.DEBUG else below


_ACCESS_FIELDS: Final = ("method", "path", "request_id", "parent_span_id")
_MAX_INT64: Final = 1 << 63


Measured = tuple[str, str, int, int, int, float]
"""An access record's method, path, status, request and response bytes and latency, as the middleware gives them."""


def _measured(
    method: object, path: object, status_code: object, req_bytes: object, res_bytes: object, latency_ms: object
) -> Measured | None:
    """Return an access record's values if they have the types fapilog's middleware gives them, else ``None``.

    A layout then writes them directly, as its general path would, without
    the checks that keep a value of another type under fapilog's name.
    """
    if (
        type(method) is str
        and type(path) is str
        and type(status_code) is int
        and type(req_bytes) is int
        and type(res_bytes) is int
        and type(latency_ms) is float
        and 0 <= status_code < _MAX_INT64
        and 0 <= req_bytes < _MAX_INT64
        and 0 <= res_bytes < _MAX_INT64
        and 0.0 <= latency_ms < 1e12
    ):
        return method, path, status_code, req_bytes, res_bytes, latency_ms
    return None


def _optional_text(item: object) -> str | None | bool:
    """Return *item* written as a JSON string, ``None`` for ``None``, ``False`` for any other type."""
    if item is None:
        return None
    return quote(item) if type(item) is str else False
_NOTHING: Final[frozenset[str]] = frozenset()

StaticKey = tuple[object, ...]
"""What a line's unchanging part depends on: level, logger, place in the code, process, thread."""
Tree: TypeAlias = tuple[tuple[str, Union[str, "Tree"]], ...]
"""Where a layout writes the app fields: each key (as JSON) and the field under it, or the keys nested in it."""


class Layout(ABC):
    """How one schema writes a record: ``render`` returns the line, without the newline.

    What does not change between the records of one call site (level,
    logger, place in the code, process and thread) is written once and kept,
    keyed by those attributes, in ``statics``: a bounded cache, emptied when full.
    """

    schema: ClassVar[Schema]
    dotted: ClassVar[bool]  # whether the backend reads a dotted key as a path: app fields' keys are nested

    def __init__(self, formatter: logging.Formatter, extras: Extras) -> None:
        self.formatter = formatter
        self.statics: dict[StaticKey, tuple[str, str]] = {}
        self.extras = extras
        self._declared = Declared()
        self._fields: Tree = ()

    def app_fields(self, record: logging.LogRecord) -> str:
        """Return the ``,"key":value`` pairs of the app fields bound (or given with ``extra=``) on *record*."""
        now = declared.now
        if now is not self._declared:
            self._declare(now)
        if not self._fields:
            return ""
        written = _tree(self._fields, record.__dict__, app_fields_of(record), self.extras.encode)
        return f",{written}" if written else ""

    def _declare(self, now: Declared) -> None:
        """Write the app fields *now* declared from here on, each under its key for this schema."""
        keys = now.keys.get(self.schema, {})
        nested: dict[str, object] = {}
        for name, key in keys.items():
            place = nested
            *path, last = key.split(".") if self.dotted else (key,)
            for part in path:
                place = place.setdefault(part, {})  # type: ignore[assignment]  # a dict: keys are checked not to clash
            place[last] = name
        self._fields = _as_tree(nested)
        self.extras.declare(keys, keys.values())
        self._declared = now

    @abstractmethod
    def render(self, record: logging.LogRecord, created: str, message: str, context: Context) -> str:
        """Return *record* as one JSON line, given its timestamp, its message (as JSON) and its seven context fields."""

    @abstractmethod
    def build_static(self, record: logging.LogRecord) -> tuple[str, str]:
        """Return the unchanging part of *record*'s line: its level, and what follows the first keys."""

    def static(self, record: logging.LogRecord, key: StaticKey) -> tuple[str, str]:
        """Return ``build_static(record)``, and keep it under *key* (the attributes it depends on)."""
        built = self.build_static(record)
        try:
            if len(self.statics) >= CACHE_LIMIT:
                self.statics.clear()
            self.statics[key] = built
        except TypeError:  # an unhashable attribute someone put on the record: not kept
            pass
        return built

    def exception(self, record: logging.LogRecord) -> tuple[str | None, str | None, str | None]:
        """Return the exception of *record*: its type name and its message as JSON, and its rendered traceback."""
        exception = exception_text(self.formatter, record)
        if exception is None:
            return None, None, None
        error_type = error_message = None
        exc_info = record.exc_info
        if isinstance(exc_info, tuple):
            if exc_info[0] is not None:
                error_type = quote(text(exc_info[0].__name__))
            if exc_info[1] is not None:
                error_message = quote(text(exc_info[1]))
        return error_type, error_message, exception

    def stack(self, record: logging.LogRecord) -> str | None:
        """Return the stack *record* asked for (``stack_info=True``), as JSON."""
        return value(self.formatter.formatStack(record.stack_info)) if record.stack_info else None

    def error(self, record: logging.LogRecord) -> str:
        """Return the ``,"key":value`` pairs of *record*'s exception, where this backend reads it."""
        return ""

    def close(self, record: logging.LogRecord, line: str, skip: frozenset[str]) -> str:
        """Return *line* with the record's app fields, its extras (but those in *skip*), its exception and its stack, closed."""
        line += self.app_fields(record) + self.extras.render(record, skip=skip)
        if record.exc_info or record.exc_text:
            line += self.error(record)
        if record.stack_info:
            line += f',"stack":{self.stack(record)}'
        return line + "}"


_ECS_FIELDS: Final = (
    "@timestamp",
    "log.level",
    "message",
    "ecs.version",
    "log.original",
    "log.logger",
    "log.origin.file.line",
    "log.origin.file.name",
    "log.origin.function",
    "process.pid",
    "process.name",
    "process.thread.id",
    "process.thread.name",
    "trace.id",
    "span.id",
    "parent.id",
    "user_agent.original",
    "http.request.method",
    "http.request.id",
    "http.request.body.bytes",
    "http.response.status_code",
    "http.response.body.bytes",
    "url.path",
    "event.duration",
    "error.type",
    "error.message",
    "error.stack_trace",
)
_ECS_ACCESS_EXTRAS: Final = frozenset(_ACCESS_FIELDS)  # ECS has a field for each
_ECS_DOTTED_KEYS: Final = frozenset({"log.level", "ecs.version"})  # dotted as ecs-logging writes them, never nested
_TRACEBACK: Final = "Traceback (most recent call last):\n"


def _place(tree: dict[str, object], path: Sequence[str], item: object) -> bool:
    """Put *item* at *path* in *tree*, making the objects on the way; ``False``, and nothing put, if a value is in the way."""
    node = tree
    for index, part in enumerate(path[:-1]):
        if part not in node:  # the rest of the path is new
            branch = item
            for key in reversed(path[index + 1 :]):
                branch = {key: branch}
            node[part] = branch
            return True
        child = node[part]
        if not isinstance(child, dict):
            return False
        node = child
    if path[-1] in node:
        return False
    node[path[-1]] = item
    return True


Nesting = tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]
"""How dotted extras are written as objects: the text around their values, which value goes after each piece of it,
and the ``,"key":`` that opens each object (which the line must not have already)."""


def _nesting(keys: Sequence[str]) -> Nesting | None:
    """Return how to write the values of *keys* as the objects they name; ``None`` if one runs through another's value."""
    tree: dict[str, object] = {}
    for index, key in enumerate(keys):
        if not _place(tree, key.split("."), index):
            return None
    pieces = [""]
    order: list[int] = []

    def write(node: dict[str, object], opening: str) -> None:
        separator = opening
        for key, child in node.items():
            pieces[-1] += f"{separator}{quote(key)}:"
            separator = ","
            if isinstance(child, dict):
                write(child, "{")
                pieces[-1] += "}"
            else:
                order.append(cast(int, child))
                pieces.append("")

    write(tree, ",")
    return tuple(pieces), tuple(order), tuple(f",{quote(key)}:" for key in tree)


def _merged(line: str) -> str:
    """Return *line* with its dotted keys nested into its objects, as ecs-logging merges them; one with a value in the way stays."""
    parsed: dict[str, object] = json.loads(line)
    tree = {key: item for key, item in parsed.items() if "." not in key or key in _ECS_DOTTED_KEYS}
    for key, item in parsed.items():
        if key not in tree and not _place(tree, key.split("."), item):
            tree[key] = item
    return value(tree)


class EcsLayout(Layout):
    """Elastic Common Schema, as Elastic's ``ecs-logging`` ``StdlibFormatter`` writes a stdlib record.

    ``@timestamp``, ``log.level`` (lower case), ``message``, ``ecs.version``,
    ``log.original`` (the message again), ``log.logger``, ``log.origin``,
    ``process``; the context as ``trace.id``, ``span.id``,
    ``user_agent.original``, ``http.response.status_code``,
    ``http.request.body.bytes``, ``http.response.body.bytes`` and
    ``event.duration`` (nanoseconds); on access records also
    ``http.request.method``, ``url.path``, ``http.request.id`` and
    ``parent.id`` (Elastic APM's name: ECS has no parent span); extras by
    their own names, a dotted one nested as ecs-logging nests it
    (``"user.name"`` -> ``{"user":{"name":…}}``, merged with the objects
    around it; one with a value in its way stays dotted); the exception as
    ``error.type``, ``error.message`` and ``error.stack_trace``: its frames,
    as ecs-logging writes them, after Python's own words for the exceptions
    chained to it. Unknown (``None``) fields and extras are left out, as
    ``ecs-logging`` does.
    """

    schema = "ecs"
    dotted = True

    def __init__(self, formatter: logging.Formatter, encode: Callable[[object], str]) -> None:
        super().__init__(formatter, Extras(_ECS_FIELDS, dotted=True, nested=True, encode=encode))
        self._last_ids: tuple[object, object, object, str] = (None, None, None, "")
        self._nestings: dict[tuple[str, ...], Nesting | None] = {}

    def build_static(self, record: logging.LogRecord) -> tuple[str, str]:
        file = _fields((("line", _optional(record.lineno)), ("name", _optional(record.filename))))
        origin = _fields((("file", file and f"{{{file}}}" or None), ("function", _optional(record.funcName))))
        log = _fields((("logger", value(record.name)), ("origin", origin and f"{{{origin}}}" or None)))
        thread = _fields((("id", _optional(record.thread)), ("name", _optional(record.threadName))))
        process = _fields(
            (
                ("name", _optional(record.processName)),
                ("pid", _optional(record.process)),
                ("thread", thread and f"{{{thread}}}" or None),
            )
        )
        rest = f"{log}}}" + (f',"process":{{{process}}}' if process else "")  # after "log":{"original":…,
        return quote(text(record.levelname).lower()), rest

    def render(self, record: logging.LogRecord, created: str, message: str, context: Context) -> str:
        trace_id, span_id, latency_ms, status_code, req_bytes, res_bytes, user_agent = context
        key = (
            record.levelname,
            record.name,
            record.filename,
            record.lineno,
            record.funcName,
            record.process,
            record.processName,
            record.thread,
            record.threadName,
        )
        try:
            level, static = self.statics[key]
        except (KeyError, TypeError):
            level, static = self.static(record, key)
        line = (
            f'{{"@timestamp":"{created}","log.level":{level},"message":{message},'
            f'"ecs.version":"{ECS_VERSION}","log":{{"original":{message},{static}'
        )
        plain: list[tuple[str, object]] = []  # values that fit no ECS field keep fapilog's name
        last_trace, last_span, last_agent, ids = self._last_ids  # the lines of one request share them
        if trace_id is not last_trace or span_id is not last_span or user_agent is not last_agent:
            ids = "".join(
                f',"{field}":{{"{key}":{written}}}'
                for field, key, written in (
                    ("trace", "id", _typed(plain, "trace_id", trace_id, _string)),
                    ("span", "id", _typed(plain, "span_id", span_id, _string)),
                    ("user_agent", "original", _typed(plain, "user_agent", user_agent, _string)),
                )
                if written is not None
            )
            if not plain:  # strings or None: immutable, safe to keep by identity
                self._last_ids = (trace_id, span_id, user_agent, ids)
        line += ids
        access = record.name == ACCESS_LOGGER
        if access or not latency_ms is status_code is req_bytes is res_bytes is None:
            line += self._measurements(record, access, plain, latency_ms, status_code, req_bytes, res_bytes)
        if plain:
            line += _plain(plain)
        nested: list[tuple[str, object]] = []
        line += self.app_fields(record)
        line += self.extras.render(record, skip=_ECS_ACCESS_EXTRAS if access else _NOTHING, skip_none=True, nested=nested)
        error = self._error(record) if record.exc_info or record.exc_text or record.stack_info else ""
        if not nested:
            return line + error + "}"
        objects = self._nested(line + error, nested)
        if objects is not None:
            return line + objects + error + "}"
        dotted = "".join(f",{quote(key)}:{self.extras.encode(item)}" for key, item in nested)
        return _merged(line + dotted + error + "}")  # rare: parsed and written again

    def _nested(self, written: str, given: list[tuple[str, object]]) -> str | None:
        """Return the dotted extras *given* as the objects their keys name; ``None`` if the whole line must merge them.

        It must (parsed and written again) when one goes into an object the
        line has already (``error.code`` beside ``error.type``), or one runs
        through another's value (``user`` and ``user.name``). How a set of
        keys nests is worked out once and kept.
        """
        keys = tuple(key for key, _ in given)
        try:
            nesting = self._nestings[keys]
        except KeyError:
            if len(self._nestings) >= CACHE_LIMIT:
                self._nestings.clear()
            nesting = self._nestings[keys] = _nesting(keys)
        if nesting is None:
            return None
        pieces, order, openings = nesting
        if any(opening in written for opening in openings):
            return None
        encode = self.extras.encode
        text = pieces[0]
        for index, piece in zip(order, pieces[1:], strict=True):
            text += encode(given[index][1]) + piece
        return text

    def _measurements(
        self,
        record: logging.LogRecord,
        access: bool,
        plain: list[tuple[str, object]],
        latency_ms: object,
        status_code: object,
        req_bytes: object,
        res_bytes: object,
    ) -> str:
        """Return the ``http``, ``url``, ``event`` and ``parent`` objects: what is known of the request."""
        get = record.__dict__.get
        method, path, request_id, parent = (get(name) for name in _ACCESS_FIELDS) if access else (None,) * 4
        measured = _measured(method, path, status_code, req_bytes, res_bytes, latency_ms)
        written_id, written_parent = _optional_text(request_id), _optional_text(parent)
        if measured is not None and written_id is not False and written_parent is not False:
            # fapilog's own access record: written at once
            method_, path_, status, read, written, latency = measured
            id_field = "" if written_id is None else f',"id":{written_id}'
            parent_field = "" if written_parent is None else f',"parent":{{"id":{written_parent}}}'
            return (
                f',"http":{{"request":{{"method":{quote(method_)}{id_field},"body":{{"bytes":{read}}}}},'
                f'"response":{{"status_code":{status},"body":{{"bytes":{written}}}}}}},'
                f'"url":{{"path":{quote(path_)}}},"event":{{"duration":{round(latency * 1_000_000)}}}{parent_field}'
            )
        request = _fields(
            (
                ("method", _typed(plain, "method", method, _string)),
                ("id", _typed(plain, "request_id", request_id, _string)),
                ("body", _object("bytes", _typed(plain, "req_bytes", req_bytes, integer))),
            )
        )
        response = _fields(
            (
                ("status_code", _typed(plain, "status_code", status_code, integer)),
                ("body", _object("bytes", _typed(plain, "res_bytes", res_bytes, integer))),
            )
        )
        http = _fields((("request", request and f"{{{request}}}" or None), ("response", response and f"{{{response}}}" or None)))
        objects = _fields(
            (
                ("http", http and f"{{{http}}}" or None),
                ("url", _object("path", _typed(plain, "path", path, _string))),
                ("event", _object("duration", _typed(plain, "latency_ms", latency_ms, nanoseconds))),
                ("parent", _object("id", _typed(plain, "parent_span_id", parent, _string))),
            )
        )
        return f",{objects}" if objects else ""

    def _error(self, record: logging.LogRecord) -> str:
        """Return the ``error`` object: the exception's type, message and stack trace, then the stack if asked for."""
        error_type, error_message, exception = self.exception(record)
        trace = None if exception is None else _frames(record, exception)
        if record.stack_info:  # ecs-logging writes the stack here when there is no exception; with one, it follows
            stack = self.formatter.formatStack(record.stack_info)
            trace = trace.rstrip("\n") + "\n" + stack if trace else stack
        error = _fields((("type", error_type), ("message", error_message), ("stack_trace", quote(trace) if trace else None)))
        return f',"error":{{{error}}}' if error else ""


def _frames(record: logging.LogRecord, exception: str) -> str:
    """Return the rendered traceback *exception* as ecs-logging writes ``error.stack_trace``: the logged exception's frames.

    Python's first line before them ("Traceback (most recent call last):")
    and the exception's own line after (in ``error.type`` and
    ``error.message``) go; the exceptions chained to it stay before, in
    Python's words (ecs-logging leaves them out). A traceback rendered
    otherwise (a formatter's own ``formatException``, an exception group,
    another process's text) stays whole.
    """
    exc_info = record.exc_info
    if not isinstance(exc_info, tuple) or exc_info[1] is None:
        return exception
    tb = exc_info[2]
    frames = "" if tb is None else "".join(traceback.format_tb(tb))
    ending = ("" if tb is None else _TRACEBACK) + frames + "".join(traceback.format_exception_only(exc_info[0], exc_info[1]))
    rendered = exception + "\n"  # formatException drops the last line break
    return rendered[: -len(ending)] + frames if rendered.endswith(ending) else exception


_GCP_SEVERITIES: Final = frozenset({"DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"})
_GCP_BY_NUMBER: Final = ("DEFAULT", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_GCP_FIELDS: Final = (
    "severity",
    "message",
    "time",
    "timestamp",
    "timestampSeconds",
    "timestampNanos",
    "logging.googleapis.com/trace",
    "logging.googleapis.com/spanId",
    "logging.googleapis.com/trace_sampled",
    "logging.googleapis.com/sourceLocation",
    "logging.googleapis.com/labels",
    "httpRequest",
    "stack_trace",
    "stack",
)
_GCP_ACCESS_EXTRAS: Final = frozenset({"method", "path"})  # in httpRequest; request_id and parent_span_id stay


class GcpLayout(Layout):
    """Google Cloud Logging's structured-logging special fields.

    ``severity``, ``message``, ``time``, ``logging.googleapis.com/trace``
    (``projects/<project>/traces/<trace_id>`` when a project is given, which is
    what links a line to Cloud Trace; else the bare trace id),
    ``…/spanId``, ``…/trace_sampled`` (the sampled flag of the record's
    trace, when known), ``…/sourceLocation`` and the logger
    as label ``python_logger``, as Google's own ``StructuredLogHandler`` writes
    them; access records carry ``httpRequest``. Other context fields keep
    fapilog's names; a traceback goes in ``stack_trace``, which Error Reporting
    reads first.
    """

    schema = "gcp"
    dotted = False

    def __init__(self, formatter: logging.Formatter, encode: Callable[[object], str], project: str | None) -> None:
        super().__init__(formatter, Extras(_GCP_FIELDS, dotted=False, encode=encode))
        self._trace_prefix = "" if project is None else f"projects/{project}/traces/"
        self._last_ids: tuple[object, object, object, str] = (None, None, None, "")

    def build_static(self, record: logging.LogRecord) -> tuple[str, str]:
        name = text(record.levelname)
        severity = name if name in _GCP_SEVERITIES else _by_number(record.levelno, _GCP_BY_NUMBER)
        location = _fields(
            (("file", _optional(record.pathname)), ("line", _optional(record.lineno)), ("function", _optional(record.funcName)))
        )
        rest = (
            f',"logging.googleapis.com/sourceLocation":{{{location}}}'
            f',"logging.googleapis.com/labels":{{"python_logger":{value(record.name)}}}'
        )
        return quote(severity), rest

    def render(self, record: logging.LogRecord, created: str, message: str, context: Context) -> str:
        trace_id, span_id, latency_ms, status_code, req_bytes, res_bytes, user_agent = context
        key = (record.levelname, record.levelno, record.name, record.pathname, record.lineno, record.funcName)
        try:
            severity, static = self.statics[key]
        except (KeyError, TypeError):
            severity, static = self.static(record, key)
        line = f'{{"severity":{severity},"message":{message},"time":"{created}"'
        plain: list[tuple[str, object]] = []
        attributes = record.__dict__
        if SAMPLED_FIELD in attributes:  # what ContextFilter captured, on the thread that logged
            trace_sampled = attributes[SAMPLED_FIELD]
        else:  # no filter ran: formatted where it was logged
            trace_sampled = sampled(current_model(), trace_id)
        last_trace, last_span, last_sampled, ids = self._last_ids  # the lines of one request share them
        if trace_id is not last_trace or span_id is not last_span or trace_sampled is not last_sampled:
            ids = ""
            traced = False
            if isinstance(trace_id, str):
                ids += f',"logging.googleapis.com/trace":{quote(self._trace_prefix + trace_id)}'
                traced = True
            elif trace_id is not None:
                plain.append(("trace_id", trace_id))
            if traced and type(trace_sampled) is bool:
                ids += f',"logging.googleapis.com/trace_sampled":{"true" if trace_sampled else "false"}'
            elif trace_sampled is not None:
                plain.append((SAMPLED_FIELD, trace_sampled))
            span = _typed(plain, "span_id", span_id, _string)
            if span is not None:
                ids += f',"logging.googleapis.com/spanId":{span}'
            if not plain:  # strings, bools or None: safe to keep by identity
                self._last_ids = (trace_id, span_id, trace_sampled, ids)
        line += ids + static
        access = record.name == ACCESS_LOGGER
        if access:
            line += self._http_request(record, plain, latency_ms, status_code, req_bytes, res_bytes, user_agent)
        elif latency_ms is status_code is req_bytes is res_bytes is None:  # the usual line: no response yet
            if user_agent is not None:
                line += f',"user_agent":{quote(user_agent) if type(user_agent) is str else value(user_agent)}'
        else:
            plain += [
                (key, item)
                for key, item in (
                    ("latency_ms", latency_ms),
                    ("status_code", status_code),
                    ("req_bytes", req_bytes),
                    ("res_bytes", res_bytes),
                    ("user_agent", user_agent),
                )
                if item is not None
            ]
        if plain:
            line += _plain(plain)
        return self.close(record, line, _GCP_ACCESS_EXTRAS if access else _NOTHING)

    def error(self, record: logging.LogRecord) -> str:
        """Return the traceback as ``stack_trace``, where Error Reporting reads it first."""
        exception = exception_text(self.formatter, record)
        return f',"stack_trace":{quote(exception)}' if exception else ""

    def _http_request(
        self,
        record: logging.LogRecord,
        plain: list[tuple[str, object]],
        latency_ms: object,
        status_code: object,
        req_bytes: object,
        res_bytes: object,
        user_agent: object,
    ) -> str:
        """Return the ``httpRequest`` object of an access record."""
        get = record.__dict__.get
        measured = _measured(get("method"), get("path"), status_code, req_bytes, res_bytes, latency_ms)
        agent = _optional_text(user_agent)
        if measured is not None and agent is not False:  # fapilog's own access record: written at once
            method, path, status, read, written, latency = measured
            agent_field = "" if agent is None else f',"userAgent":{agent}'
            return (
                f',"httpRequest":{{"requestMethod":{quote(method)},"requestUrl":{quote(path)},"status":{status},'
                f'"requestSize":"{read}","responseSize":"{written}"{agent_field},"latency":{gcp_duration(latency)}}}'
            )
        request = _fields(
            (
                ("requestMethod", _typed(plain, "method", get("method"), _string)),
                ("requestUrl", _typed(plain, "path", get("path"), _string)),
                ("status", _typed(plain, "status_code", status_code, integer)),
                ("requestSize", _typed(plain, "req_bytes", req_bytes, _int64)),
                ("responseSize", _typed(plain, "res_bytes", res_bytes, _int64)),
                ("userAgent", _typed(plain, "user_agent", user_agent, _string)),
                ("latency", _typed(plain, "latency_ms", latency_ms, gcp_duration)),
            )
        )
        return f',"httpRequest":{{{request}}}' if request else ""


_DATADOG_STATUSES: Final = frozenset({"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"})
_DATADOG_BY_NUMBER: Final = ("debug", "debug", "info", "warning", "error", "critical")
_DATADOG_FIELDS: Final = (
    "timestamp",
    "status",
    "message",
    "logger.name",
    "logger.thread_name",
    "logger.method_name",
    "dd.trace_id",
    "dd.span_id",
    "http.method",
    "http.url_details.path",
    "http.status_code",
    "http.useragent",
    "http.request_id",
    "network.bytes_read",
    "network.bytes_written",
    "duration",
    "error.kind",
    "error.message",
    "error.stack",
    "stack",
)
_DATADOG_ACCESS_FIELDS: Final = ("method", "path", "request_id")
_DATADOG_ACCESS_EXTRAS: Final = frozenset(_DATADOG_ACCESS_FIELDS)  # parent_span_id stays


class DatadogLayout(Layout):
    """Datadog's log/trace correlation and standard attributes.

    ``timestamp``, ``status``, ``message``, ``logger.name`` (with
    ``thread_name`` and ``method_name``); ``dd.trace_id`` and ``dd.span_id`` as
    Datadog writes them for W3C ids: the lower 64 bits of the trace id and the
    span id, as unsigned decimal strings. A trace id that is not a W3C one (a
    client's request id) has no Datadog form: it is written as
    ``http.request_id``. The context as ``http.useragent``,
    ``http.status_code``, ``network.bytes_read``, ``network.bytes_written``
    and ``duration`` (nanoseconds); access records add ``http.method`` and
    ``http.url_details.path``; the exception as ``error.kind``,
    ``error.message`` and ``error.stack``.
    """

    schema = "datadog"
    dotted = True

    def __init__(self, formatter: logging.Formatter, encode: Callable[[object], str]) -> None:
        super().__init__(formatter, Extras(_DATADOG_FIELDS, dotted=True, encode=encode))
        self._ids: dict[object, str | None] = {}
        self._last_ids: tuple[object, object, object, str, str, bool] = (None, None, None, "", "", True)

    def build_static(self, record: logging.LogRecord) -> tuple[str, str]:
        lower = text(record.levelname).lower()
        status = lower if lower in _DATADOG_STATUSES else _by_number(record.levelno, _DATADOG_BY_NUMBER)
        fields = _fields(
            (
                ("name", value(record.name)),
                ("thread_name", _optional(record.threadName)),
                ("method_name", _optional(record.funcName)),
            )
        )
        return quote(status), f',"logger":{{{fields}}}'

    def _dd(self, hex_id: object, length: int) -> str | None:
        """Return ``datadog_id(hex_id, length)`` as a JSON string, cached: one request logs many lines."""
        try:
            return self._ids[hex_id]
        except KeyError:
            pass
        except TypeError:  # unhashable: not an id
            return None
        converted = datadog_id(hex_id, length)
        written = None if converted is None else f'"{converted}"'
        if len(self._ids) >= CACHE_LIMIT:
            self._ids.clear()
        if isinstance(hex_id, str) and len(hex_id) == length:  # a 32-hex string is never a 16-hex one
            self._ids[hex_id] = written
        return written

    def render(self, record: logging.LogRecord, created: str, message: str, context: Context) -> str:
        trace_id, span_id, latency_ms, status_code, req_bytes, res_bytes, user_agent = context
        key = (record.levelname, record.levelno, record.name, record.threadName, record.funcName)
        try:
            status, static = self.statics[key]
        except (KeyError, TypeError):
            status, static = self.static(record, key)
        line = f'{{"timestamp":"{created}","status":{status},"message":{message}{static}'
        last_trace, last_span, last_agent, ids, agent, w3c = self._last_ids  # the lines of one request share them
        if trace_id is not last_trace or span_id is not last_span or user_agent is not last_agent:
            dd_trace = None if trace_id is None else self._dd(trace_id, 32)
            dd_span = None if span_id is None else self._dd(span_id, 16)
            ids = _fields((("trace_id", dd_trace), ("span_id", dd_span)))
            ids = f',"dd":{{{ids}}}' if ids else ""
            agent = f',"http":{{"useragent":{quote(user_agent)}}}' if isinstance(user_agent, str) else ""
            w3c = (dd_trace is not None or trace_id is None) and (dd_span is not None or span_id is None)
            if all(item is None or type(item) is str for item in (trace_id, span_id, user_agent)):
                self._last_ids = (trace_id, span_id, user_agent, ids, agent, w3c)  # immutable: safe to keep by identity
        line += ids
        access = record.name == ACCESS_LOGGER
        if access or not w3c:
            return self._rare(record, line, access, trace_id, span_id, latency_ms, status_code, req_bytes, res_bytes, user_agent)
        if status_code is None and (agent or user_agent is None):  # the usual line: no response yet
            line += agent
            if not latency_ms is req_bytes is res_bytes is None:
                line += self._measurements([], latency_ms, req_bytes, res_bytes)
        else:
            plain: list[tuple[str, object]] = []
            http = _fields(
                (
                    ("status_code", _typed(plain, "status_code", status_code, integer)),
                    ("useragent", _typed(plain, "user_agent", user_agent, _string)),
                )
            )
            line += f',"http":{{{http}}}' if http else ""
            line += self._measurements(plain, latency_ms, req_bytes, res_bytes)
        return self._tail(record, line, access)

    def _rare(
        self,
        record: logging.LogRecord,
        line: str,
        access: bool,
        trace_id: object,
        span_id: object,
        latency_ms: object,
        status_code: object,
        req_bytes: object,
        res_bytes: object,
        user_agent: object,
    ) -> str:
        """Finish the line of an access record, or of a record whose ids are not W3C ones."""
        plain: list[tuple[str, object]] = []
        get = record.__dict__.get
        method, path, request_id = (get(name) for name in _DATADOG_ACCESS_FIELDS) if access else (None, None, None)
        if trace_id is not None and self._dd(trace_id, 32) is None:  # a request id, not a W3C trace id
            if request_id is None and isinstance(trace_id, str):
                request_id = trace_id
            elif request_id != trace_id:
                plain.append(("trace_id", trace_id))
        if span_id is not None and self._dd(span_id, 16) is None:
            plain.append(("span_id", span_id))
        measured = _measured(method, path, status_code, req_bytes, res_bytes, latency_ms)
        agent, written_id = _optional_text(user_agent), _optional_text(request_id)
        if measured is not None and agent is not False and written_id is not False:  # fapilog's access record
            method_, path_, status, read, written, latency = measured
            agent_field = "" if agent is None else f',"useragent":{agent}'
            id_field = "" if written_id is None else f',"request_id":{written_id}'
            line += (
                f',"http":{{"method":{quote(method_)},"url_details":{{"path":{quote(path_)}}},"status_code":{status}'
                f'{agent_field}{id_field}}},"network":{{"bytes_read":{read},"bytes_written":{written}}},'
                f'"duration":{round(latency * 1_000_000)}{_plain(plain)}'
            )
            return self._tail(record, line, access)
        http = _fields(
            (
                ("method", _typed(plain, "method", method, _string)),
                ("url_details", _object("path", _typed(plain, "path", path, _string))),
                ("status_code", _typed(plain, "status_code", status_code, integer)),
                ("useragent", _typed(plain, "user_agent", user_agent, _string)),
                ("request_id", _typed(plain, "request_id", request_id, _string)),
            )
        )
        if http:
            line += f',"http":{{{http}}}'
        line += self._measurements(plain, latency_ms, req_bytes, res_bytes)
        return self._tail(record, line, access)

    def _measurements(self, plain: list[tuple[str, object]], latency_ms: object, req_bytes: object, res_bytes: object) -> str:
        """Return ``network`` and ``duration``, then the values that fit no Datadog field."""
        network = _fields(
            (
                ("bytes_read", _typed(plain, "req_bytes", req_bytes, integer)),
                ("bytes_written", _typed(plain, "res_bytes", res_bytes, integer)),
            )
        )
        duration = _typed(plain, "latency_ms", latency_ms, nanoseconds)
        return (
            (f',"network":{{{network}}}' if network else "")
            + ("" if duration is None else f',"duration":{duration}')
            + _plain(plain)
        )

    def _tail(self, record: logging.LogRecord, line: str, access: bool) -> str:
        """Return *line* with the record's extras, exception and stack, closed."""
        return self.close(record, line, _DATADOG_ACCESS_EXTRAS if access else _NOTHING)

    def error(self, record: logging.LogRecord) -> str:
        """Return the exception as Datadog's ``error.kind``, ``error.message`` and ``error.stack``."""
        kind, message, stack = self.exception(record)
        error = _fields((("kind", kind), ("message", message), ("stack", None if stack is None else quote(stack))))
        return f',"error":{{{error}}}' if error else ""


def make_layout(
    schema: str, formatter: logging.Formatter, *, project: str | None, encode: Callable[[object], str]
) -> Layout | None:
    """Return the layout of *schema* (``None`` for the default: the formatter's own); ``ValueError`` for an unknown name."""
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}: choose one of {', '.join(map(repr, SCHEMAS))}")
    if project is not None and schema != "gcp":
        raise ValueError(f"project applies to the 'gcp' schema only, not to {schema!r}")
    if schema == "ecs":
        return EcsLayout(formatter, encode)
    if schema == "gcp":
        return GcpLayout(formatter, encode, project)
    if schema == "datadog":
        return DatadogLayout(formatter, encode)
    return None


def _as_tree(nested: dict[str, object]) -> Tree:
    """Return nested keys as a ``Tree``: keys written as JSON, in order."""
    return tuple((quote(key), item if isinstance(item, str) else _as_tree(item)) for key, item in nested.items())  # type: ignore[arg-type]  # a dict of the same shape


def _tree(tree: Tree, attributes: dict[str, object], fields: Mapping[str, object], encode: Callable[[object], str]) -> str:
    """Return the app fields under *tree* as ``"key":value`` pairs: an ``extra`` of a field's name wins; ``None`` is left out."""
    pairs = []
    for key, place in tree:
        if isinstance(place, str):
            item = attributes[place] if place in attributes else fields.get(place)
            if item is not None:
                pairs.append(f"{key}:{encode(item)}")
        else:
            inner = _tree(place, attributes, fields, encode)
            if inner:
                pairs.append(f"{key}:{{{inner}}}")
    return ",".join(pairs)


_OWN: Final[dict[str, tuple[tuple[str, ...], bool]]] = {
    "ecs": (_ECS_FIELDS, True),
    "gcp": (_GCP_FIELDS, False),
    "datadog": (_DATADOG_FIELDS, True),
}
_PLAIN_KEYS: Final = frozenset({*CONTEXT_FIELDS, *OWN_KEYS})  # written under fapilog's names when no typed field fits


def key_clash(schema: str, key: str, taken: Iterable[str]) -> str | None:
    """Return why an app field cannot be written under *key* in *schema*'s lines, or ``None`` if it can.

    Not empty; not a key the schema or fapilog's records write (with dotted
    paths, not even inside one of their objects); not another field's
    *taken* key, nor a path prefix of one either way (two fields may share
    an object: ``user.id`` and ``user.name``).
    """
    own, dotted = _OWN[schema]
    parts = key.split(".") if dotted else [key]
    if not all(parts):
        return "which is no key"
    if key in own or parts[0] in _PLAIN_KEYS or (dotted and any(parts[0] == written.split(".", 1)[0] for written in own)):
        return "which the schema writes itself: give the field another key there with keys="
    if clashes(key, taken, dotted=dotted):
        return "which another field's key overlaps"
    return None
