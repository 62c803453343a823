"""Read a JSON line of any schema back under fapilog's own names, so one test checks every schema."""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from fapilog import JsonFormatter
from fapilog._internal.schemas import SCHEMAS, Schema

__all__ = ["ENCODERS", "RENAMED", "SCHEMAS", "SCHEMA_KEYS", "fapilog_view", "format_line"]

ENCODERS: Final = ("json", "orjson")

SCHEMA_KEYS: Final[dict[Schema, frozenset[str]]] = {
    "default": frozenset({"timestamp", "level", "logger", "message", "exception", "stack"}),
    "ecs": frozenset(
        {"@timestamp", "log.level", "message", "ecs.version", "log", "process", "trace", "span", "user_agent", "http", "url", "event", "parent", "error"}
    ),
    "gcp": frozenset(
        {
            "severity",
            "message",
            "time",
            "logging.googleapis.com/trace",
            "logging.googleapis.com/spanId",
            "logging.googleapis.com/trace_sampled",
            "logging.googleapis.com/sourceLocation",
            "logging.googleapis.com/labels",
            "httpRequest",
            "stack_trace",
            "stack",
        }
    ),
    "datadog": frozenset({"timestamp", "status", "message", "logger", "dd", "http", "network", "duration", "error", "stack"}),
}
"""The top-level keys each schema writes itself; an extra of that name is written as ``extra_<name>``."""

RENAMED: Final[dict[Schema, frozenset[str]]] = {
    "default": frozenset({"timestamp", "level", "logger", "exception", "stack"}),
    "ecs": frozenset(
        {"@timestamp", "message", "ecs", "log", "trace", "span", "parent", "http", "url", "event", "error"}
    ),
    "gcp": SCHEMA_KEYS["gcp"] | {"timestamp", "timestampSeconds", "timestampNanos"},
    "datadog": SCHEMA_KEYS["datadog"],
}
"""Plain (undotted) extra names each schema writes as ``extra_<name>``: its own keys, and the first part of its dotted ones.

(``process`` is a LogRecord attribute and ``user_agent`` a context field: never extras.)"""


def format_line(record: logging.LogRecord, schema: Schema, **options: Any) -> str:
    """Format *record* with both encoders; check they agree byte for byte, and that the line is one ASCII line."""
    lines = {encoder: JsonFormatter(schema, encoder=encoder, **options).format(record) for encoder in ENCODERS}
    assert lines["orjson"] == lines["json"]
    line = lines["json"]
    assert line.splitlines() == [line]
    assert line.isascii()
    return line


def fapilog_view(line: str, schema: Schema) -> dict[str, Any]:
    """Parse *line* and return it keyed as the default schema writes it: message, context fields, extras, exception, stack."""
    parsed: dict[str, Any] = json.loads(line)
    assert isinstance(parsed, dict)
    if schema == "default":
        return parsed
    view = {key: item for key, item in parsed.items() if key not in SCHEMA_KEYS[schema]}  # extras, plain context fields
    view["message"] = parsed["message"]
    if schema == "ecs":
        if isinstance(parsed.get("user_agent"), dict):
            view["user_agent"] = parsed["user_agent"]["original"]
        error = parsed.get("error", {})
        if "stack_trace" in error:
            key = "exception" if "type" in error or "message" in error else "stack"
            view[key] = error["stack_trace"]
    elif schema == "gcp":
        for key in ("stack_trace", "stack"):
            if key in parsed:
                view["exception" if key == "stack_trace" else key] = parsed[key]
    else:
        http = parsed.get("http", {})
        if "useragent" in http:
            view["user_agent"] = http["useragent"]
        if "stack" in parsed.get("error", {}):
            view["exception"] = parsed["error"]["stack"]
        if "stack" in parsed:
            view["stack"] = parsed["stack"]
    return view


assert tuple(SCHEMA_KEYS) == tuple(RENAMED) == SCHEMAS
