"""The pieces of a JSON log line, written directly as text.

Building a dict and handing it to ``json`` used to cost as much as the rest of
a log call together. The keys of a line are known in advance and most values
are strings, ints or ``None``, which ``encode_basestring_ascii`` and
``int.__repr__`` (what ``json`` itself calls, in C) write at once; only the
other values go through a ``json`` encoder, one by one, and a value even that
cannot write becomes its text. So one bad value never costs the line, and the
output is the same as ``json`` with ``ensure_ascii`` would give: ASCII only,
every line break and control character escaped.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Iterable
from json import JSONEncoder
from json.encoder import encode_basestring_ascii
from typing import Final

from fapilog._internal.context import CONTEXT_FIELDS
from fapilog._internal.log_filter import APP_FIELDS, SAMPLED_FIELD, record_context
from fapilog._internal.records import RECORD_ATTRIBUTES

__all__ = [
    "BIG",
    "CACHE_LIMIT",
    "Context",
    "Extras",
    "MILLISECONDS",
    "NOT_EXTRA",
    "Plan",
    "Quoted",
    "SMALL",
    "context_fields",
    "context_of",
    "date_of",
    "exception_text",
    "integer",
    "message_of",
    "quote",
    "second",
    "text",
    "timestamp",
    "value",
]

quote: Final[Callable[[str], str]] = encode_basestring_ascii
"""Return a ``str`` as a JSON string: ASCII, with ``\\u`` escapes (``json``'s own, in C)."""

NOT_EXTRA: Final = frozenset({*RECORD_ATTRIBUTES, *CONTEXT_FIELDS, SAMPLED_FIELD, APP_FIELDS})
"""A record's attributes that are no ``extra``: a LogRecord's own, and what ``ContextFilter`` adds."""


def text(value: object) -> str:
    """Return ``str(value)``, or a placeholder when even that fails."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"


def _fallback(value: object) -> str:
    """Return a JSON-able stand-in for a value ``json`` cannot encode."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return text(value)


# One C encoder, built once (json.dumps builds one per call, which costs more
# than the encoding). allow_nan=False: NaN is not JSON, so it goes through the
# fallback to text instead. No markers: a value that contains itself ends in
# RecursionError, and so as its text, as json's own circular check would.
try:
    from _json import make_encoder
except ImportError:  # pragma: no cover - an interpreter without json's C accelerator: json as it is
    _encode: Callable[[object], str] = JSONEncoder(ensure_ascii=True, allow_nan=False, default=_fallback, separators=(",", ":")).encode
else:
    _iterencode = make_encoder(None, _fallback, encode_basestring_ascii, None, ":", ",", False, False, False)

    def _encode(item: object) -> str:
        return "".join(_iterencode(item, 0))


def value(item: object) -> str:
    """Return *item* as JSON text, as ``json`` with ``ensure_ascii`` writes it; its text when ``json`` cannot."""
    if type(item) is str:
        return quote(item)
    if item is None:
        return "null"
    if type(item) is bool:
        return "true" if item else "false"
    try:
        if type(item) is int:
            return int.__repr__(item)  # raises past sys.get_int_max_str_digits()
        if type(item) is float and item - item == 0:  # false for NaN and the infinities
            return float.__repr__(item)
        return _encode(item)
    except Exception:
        return quote(text(item))


def integer(item: object) -> str | None:
    """Return *item* as a JSON integer if it is an int (not a bool), else ``None``."""
    if isinstance(item, int) and not isinstance(item, bool):
        try:
            return int.__repr__(item)
        except ValueError:  # more digits than int_max_str_digits allows
            return None
    return None


BIG: Final = 10**600
"""Ints between ``SMALL`` and this are written by ``int.__repr__`` at once; longer ones may pass
``sys.get_int_max_str_digits()`` (640 at least), and ``value()`` copes."""
SMALL: Final = -BIG

CACHE_LIMIT: Final = 4096
"""Entries a cache of written text keeps at most: logger names, keys, places in the code are few."""


class Quoted(dict[str, str]):
    """Strings already written as JSON: logger names, level names. Bounded."""

    def __missing__(self, key: str) -> str:
        if type(key) is not str:  # a record attribute someone replaced: written, not kept
            return value(key)
        quoted = quote(key)
        if len(self) < CACHE_LIMIT:
            self[key] = quoted
        return quoted


Plan = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
"""Where a record's extras go in a line: each one's attribute name and its ``,"key":``, in order; then, for a
schema that nests them, each dotted one's attribute name and key."""


def clashes(name: str, keys: Iterable[str], *, dotted: bool) -> bool:
    """Return whether a key *name* clashes with one of *keys*: the same, or (*dotted*) a path prefix one way or the other."""
    if not dotted:
        return name in keys
    return any(name == key or key.startswith(f"{name}.") or name.startswith(f"{key}.") for key in keys)


class Extras:
    """The keys a schema writes extras under: their own name, or ``extra_<name>`` where it would clash.

    A clash is an extra named like a key the schema writes; for a schema whose
    backend reads dotted names as paths (Elasticsearch, Datadog) also a name
    that is a path prefix of one of those keys, or has one as a prefix. With
    *nested*, an extra whose key is dotted is handed to the caller, which
    writes it as the path it names. The app fields are the schema's keys too
    (an ``extra`` named like a field is that field's value, written where the
    field goes): see ``declare``.

    Which attributes of a record are extras, and under what key each goes, is
    worked out once per record shape (its attribute names, in order) and kept:
    the records of one call site all have the same, and a service has few
    (its own lines, the access record, a server's).
    """

    def __init__(self, reserved: Iterable[str], *, dotted: bool, nested: bool = False, encode: Callable[[object], str]) -> None:
        self._schema_keys = frozenset(reserved)
        self._reserved = self._schema_keys
        self._fields: frozenset[str] = frozenset()
        self._dotted = dotted
        self._nested = nested
        self.encode = encode
        """Writes an extra's value: ``value``, or orjson's stand-in for it."""
        self.plans: dict[tuple[str, ...], Plan | None] = {}
        """The plan of every record shape seen, bounded by ``CACHE_LIMIT``."""

    def declare(self, fields: Iterable[str], keys: Iterable[str]) -> None:
        """Leave the app *fields* to the layout, which writes them under *keys*: no extra takes one of those."""
        self._fields = frozenset(fields)
        self._reserved = self._schema_keys | frozenset(keys)
        self.plans.clear()

    def _clashes(self, name: str) -> bool:
        if name in self._reserved:
            return True
        return self._dotted and clashes(name, self._reserved, dotted=True)

    def _key(self, name: str) -> str:
        return f"extra_{name}" if self._clashes(name) else name

    def plan(self, keys: tuple[str, ...]) -> Plan | None:
        """Return the plan for a record whose attributes are *keys*; ``None`` if two extras share a key."""
        written: set[str] = set()
        pairs = []
        paths = []
        for name in keys:
            if name not in NOT_EXTRA and name not in self._fields:
                key = self._key(name)
                if key in written:  # extra_level given, and level renamed to it
                    return None
                written.add(key)
                if self._nested and "." in key:
                    paths.append((name, key))
                else:
                    pairs.append((name, f",{quote(key)}:"))
        plan = tuple(pairs), tuple(paths)
        if len(self.plans) >= CACHE_LIMIT:  # records built with ever new attributes: start over
            self.plans.clear()
        self.plans[keys] = plan
        return plan

    def render(
        self,
        record: logging.LogRecord,
        *,
        skip: frozenset[str] = frozenset(),
        skip_none: bool = False,
        nested: list[tuple[str, object]] | None = None,
    ) -> str:
        """Return *record*'s extras, but those in *skip* (and ``None`` ones if *skip_none*), as ``,"key":value`` pairs.

        With *nested*, the dotted ones go there instead, as (key, value).
        """
        attributes = record.__dict__
        keys = tuple(attributes)
        try:
            plan = self.plans[keys]
        except KeyError:
            plan = self.plan(keys)
        if plan is None:
            return self.write(record, skip=skip, skip_none=skip_none, nested=nested)
        pairs, paths = plan
        line = ""
        for name, key in pairs:
            item = attributes[name]
            if name in skip:
                continue
            kind = type(item)
            if kind is str:  # the usual extras, written inline: a call costs as much as a field
                line += key + quote(item)
            elif kind is int and SMALL < item < BIG:
                line += key + int.__repr__(item)
            elif item is None:
                if not skip_none:
                    line += key + "null"
            else:
                line += key + self.encode(item)
        for name, dotted in paths:
            item = attributes[name]
            if name not in skip and (item is not None or not skip_none):
                if nested is None:
                    line += f",{quote(dotted)}:{self.encode(item)}"
                else:
                    nested.append((dotted, item))
        return line

    def write(
        self,
        record: logging.LogRecord,
        *,
        skip: frozenset[str] = frozenset(),
        skip_none: bool = False,
        nested: list[tuple[str, object]] | None = None,
    ) -> str:
        """Return *record*'s extras as ``render`` does; of two under one key, the last value in the first place."""
        attributes = record.__dict__
        unique: dict[str, object] = {}
        for name in attributes:
            if name not in NOT_EXTRA and name not in self._fields and name not in skip and (attributes[name] is not None or not skip_none):
                unique[self._key(name)] = attributes[name]
        if nested is not None and self._nested:
            nested.extend((key, item) for key, item in unique.items() if "." in key)
            return "".join(f",{quote(key)}:{self.encode(item)}" for key, item in unique.items() if "." not in key)
        return "".join(f",{quote(key)}:{self.encode(item)}" for key, item in unique.items())


MILLISECONDS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
"""The end of a timestamp, by its milliseconds."""
second: tuple[int, str] = (-1, "")
"""The last second a timestamp was written for, and its date part: one tuple, swapped whole (thread-safe)."""


def date_of(whole_second: int) -> str:
    """Return ``2026-11-21T23:38:52`` for *whole_second* (UTC), and remember it as ``second``."""
    global second
    date = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole_second))
    second = (whole_second, date)
    return date


def timestamp(created: float) -> str:
    """Return *created* as ``2026-11-21T23:38:52.123Z`` (ISO 8601, UTC)."""
    whole_second = int(created)
    cached, date = second
    if whole_second != cached:  # the date part changes once a second
        date = date_of(whole_second)
    return date + MILLISECONDS[int((created - whole_second) * 1000)]


def message_of(record: logging.LogRecord) -> str:
    """Return the record's message; if its arguments do not fit, say so and keep both."""
    msg = record.msg
    args = record.args
    try:
        if type(msg) is str:
            return msg % args if args else msg  # what getMessage does, without its str() copy
        return record.getMessage()
    except Exception:
        return f"{text(msg)} (unformattable arguments: {text(args)})"


Context = tuple[object, object, object, object, object, object, object]
"""The seven context fields of a record, in ``CONTEXT_FIELDS`` order."""
context_fields: Final[Callable[[dict[str, object]], Context]] = operator.itemgetter(*CONTEXT_FIELDS)
"""Return the seven fields from a record's attributes, at once; ``KeyError`` if one is missing."""


def context_of(record: logging.LogRecord) -> Context:
    """Return the seven context fields of a record no ``ContextFilter`` ran on, in ``CONTEXT_FIELDS`` order.

    (With the filter, ``context_fields`` reads them at once.) The current
    context, or the one an escaping exception carried, each field still
    overridden by an ``extra`` of the same name.
    """
    attributes = record.__dict__
    get = attributes.get
    if "trace_id" in attributes:  # given with extra=, and no filter ran: the rest is unknown
        return (
            attributes["trace_id"],
            get("span_id"),
            get("latency_ms"),
            get("status_code"),
            get("req_bytes"),
            get("res_bytes"),
            get("user_agent"),
        )
    fields = record_context(record).context
    return (
        get("trace_id", fields["trace_id"]),
        get("span_id", fields["span_id"]),
        get("latency_ms", fields["latency_ms"]),
        get("status_code", fields["status_code"]),
        get("req_bytes", fields["req_bytes"]),
        get("res_bytes", fields["res_bytes"]),
        get("user_agent", fields["user_agent"]),
    )


def exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """Return the rendered exception of *record* (rendered once, kept on the record as logging does)."""
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None
