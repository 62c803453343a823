"""JsonFormatter: every record is exactly one line of valid JSON, whatever it holds."""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fapilog import JsonFormatter, bind_context
from fapilog._internal.schemas import Schema
from tests.support.lines import RENAMED, SCHEMAS, fapilog_view, format_line
from tests.support.records import escaped_error, make_record

HOSTILE_TEXT = [
    'say "hi"',
    "two\nlines\r\nand more",
    "line\u2028separator\u2029paragraph\x85next",
    "nul\x00byte",
    "\x1b[31mred\x1b[0m",
    "tab\tand\x0bvertical\x0cfeed\x1c\x1d\x1e",
    "lone surrogate \udc80",
    "emoji \U0001f600 and \u65e5\u672c",
]


class NoJson:
    """An object json cannot encode, with a readable str."""

    def __str__(self) -> str:
        return "NoJson()"


class Unprintable:
    """An object whose str and repr both fail."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__



def render(record: logging.LogRecord) -> dict[str, Any]:
    """Format *record*, check it is one line, and parse it."""
    line = JsonFormatter().format(record)
    assert line.splitlines() == [line]
    assert line.isascii()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def render_as(record: logging.LogRecord, schema: Schema) -> dict[str, Any]:
    """Format *record* under *schema*, with json and with orjson (the same bytes), and read it back under fapilog's names."""
    return fapilog_view(format_line(record, schema), schema)


every_schema = pytest.mark.parametrize("schema", SCHEMAS)


def test_a_record_has_timestamp_level_logger_message_the_seven_fields_and_the_app_fields() -> None:
    record = make_record("hello %s", ("world",))
    record.created = 1_795_000_000.25
    assert render(record) == {
        "timestamp": "2026-11-18T11:06:40.250Z",
        "level": "INFO",
        "logger": "app.module",
        "message": "hello world",
        "trace_id": None,
        "span_id": None,
        "latency_ms": None,
        "status_code": None,
        "req_bytes": None,
        "res_bytes": None,
        "user_agent": None,
        "user_id": None,
        "tenant_id": None,
    }


def test_the_timestamp_is_iso_8601_utc_with_milliseconds() -> None:
    first = make_record()
    first.created = 0.999
    second = make_record()
    second.created = 86_400.001
    assert render(first)["timestamp"] == "1970-01-01T00:00:00.999Z"
    assert render(second)["timestamp"] == "1970-01-02T00:00:00.001Z"


def test_context_fields_and_extras_on_the_record_are_written() -> None:
    parsed = render(make_record(trace_id="abc", status_code=200, order_id=7, tags=["a", "b"]))
    assert parsed["trace_id"] == "abc"
    assert parsed["status_code"] == 200
    assert parsed["order_id"] == 7
    assert parsed["tags"] == ["a", "b"]
    assert list(parsed)[-2:] == ["order_id", "tags"]


def test_an_extra_named_like_a_core_key_does_not_replace_it() -> None:
    parsed = render(make_record("real", level="fake", timestamp="fake", logger="fake"))
    assert parsed["level"] == "INFO"
    assert parsed["logger"] == "app.module"
    assert parsed["message"] == "real"
    assert (parsed["extra_level"], parsed["extra_timestamp"], parsed["extra_logger"]) == ("fake",) * 3


@every_schema
def test_uvicorns_colour_duplicate_of_the_message_is_left_out(schema: Schema) -> None:
    parsed = render_as(make_record("GET / 200", color_message="\x1b[1mGET / 200\x1b[0m"), schema)
    assert "color_message" not in parsed
    assert parsed["message"] == "GET / 200"


@every_schema
@pytest.mark.parametrize("text", HOSTILE_TEXT)
def test_hostile_text_round_trips_in_message_arguments_extras_and_user_agent(text: str, schema: Schema) -> None:
    parsed = render_as(make_record(text + " %s", (text,), note=text, user_agent=text), schema)
    assert parsed["message"] == f"{text} {text}"
    assert parsed["note"] == text
    assert parsed["user_agent"] == text


@every_schema
def test_bytes_are_written_as_text_with_invalid_utf8_escaped(schema: Schema) -> None:
    parsed = render_as(make_record("%s", (b"raw\n\xff",), payload=b"caf\xc3\xa9\xff", view=bytearray(b"x")), schema)
    assert parsed["message"] == "b'raw\\n\\xff'"
    assert parsed["payload"] == "caf\u00e9\\xff"
    assert parsed["view"] == "x"


@every_schema
def test_objects_without_a_json_form_are_written_as_their_text(schema: Schema) -> None:
    parsed = render_as(
        make_record("%s", (NoJson(),), obj=NoJson(), nested={"k": NoJson(), "s": {1, 2}.__class__}), schema
    )
    assert parsed["message"] == "NoJson()"
    assert parsed["obj"] == "NoJson()"
    assert parsed["nested"] == {"k": "NoJson()", "s": "<class 'set'>"}


@every_schema
def test_values_json_rejects_outright_degrade_to_text_field_by_field(schema: Schema) -> None:
    circular: list[Any] = []
    circular.append(circular)
    parsed = render_as(
        make_record(
            nan=float("nan"),
            inf=math.inf,
            circular=circular,
            tuple_keys={(1, 2): "v"},
            huge=10 ** (sys.get_int_max_str_digits() + 1),
            broken=Unprintable(),
            fine="still here",
        ),
        schema,
    )
    assert parsed["nan"] == "nan"
    assert parsed["inf"] == "inf"
    assert parsed["circular"] == "[[...]]"
    assert parsed["tuple_keys"] == "{(1, 2): 'v'}"
    assert parsed["huge"] == "<unprintable int>"
    assert parsed["broken"] == "<unprintable Unprintable>"
    assert parsed["fine"] == "still here"


@every_schema
def test_arguments_that_do_not_fit_the_message_keep_the_record(schema: Schema) -> None:
    parsed = render_as(make_record("%d items for %s", ("many",)), schema)
    assert parsed["message"] == "%d items for %s (unformattable arguments: ('many',))"


@every_schema
def test_the_exception_is_rendered_inside_the_line(schema: Schema) -> None:
    try:
        raise ValueError('bad "value"\nsecond line')
    except ValueError:
        parsed = render_as(make_record("failed", exc_info=sys.exc_info()), schema)
    assert parsed["message"] == "failed"
    if schema == "ecs":  # as ecs-logging writes it: the frames, with the type and the message beside them
        assert parsed["exception"].startswith('  File "')
        assert parsed["exception"].endswith("raise ValueError('bad \"value\"\\nsecond line')\n")
    else:
        assert parsed["exception"].startswith("Traceback (most recent call last):")
        assert parsed["exception"].endswith('ValueError: bad "value"\nsecond line')


@every_schema
def test_the_stack_is_rendered_when_asked_for(schema: Schema) -> None:
    record = make_record()
    record.stack_info = "Stack (most recent call last):\n  frame"
    assert render_as(record, schema)["stack"] == "Stack (most recent call last):\n  frame"


_ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


_RESERVED = {*vars(make_record()), "message", "asctime", "taskName"}
_EXTRA_KEYS = st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda key: key not in _RESERVED)


@given(message=st.text(), extras=st.dictionaries(_EXTRA_KEYS, _ANY_VALUE, max_size=4))
def test_any_message_and_extras_give_one_parseable_line(message: str, extras: dict[str, Any]) -> None:
    parsed = render(make_record(message, **extras))
    assert parsed["message"] == message
    for key, value in extras.items():
        written = parsed[f"extra_{key}" if key in {"level", "logger", "timestamp"} else key]
        if isinstance(value, str | int | bool) or value is None:
            assert written == value


@every_schema
@given(message=st.text(), extras=st.dictionaries(_EXTRA_KEYS, _ANY_VALUE, max_size=4))
def test_any_message_and_extras_give_one_parseable_line_in_every_schema(
    schema: Schema, message: str, extras: dict[str, Any]
) -> None:
    parsed = render_as(make_record(message, **extras), schema)
    default = render(make_record(message, **extras))
    assert parsed["message"] == message
    for key, value in extras.items():
        name = f"extra_{key}" if key in RENAMED[schema] else key
        if value is None and schema == "ecs":  # left out, as Elastic's ecs-logging does
            assert name not in parsed
        elif isinstance(value, str | int | bool) or value is None:
            assert parsed[name] == value
        else:  # floats, bytes, containers: written as the default schema writes them
            assert parsed[name] == default[f"extra_{key}" if key in {"level", "logger", "timestamp"} else key]


@every_schema
def test_no_line_of_output_ever_contains_a_raw_line_break(schema: Schema) -> None:
    line = format_line(make_record("\n".join(HOSTILE_TEXT), note="\r\n\u2028", user_agent="\u2028\n"), schema)
    assert not re.search(r"[\r\n\u2028\u2029\x85]", line)


def test_used_alone_the_formatter_writes_the_current_context() -> None:
    bind_context(trace_id="alone-1", span_id="00f067aa0ba902b7")
    line = render(make_record(span_id="from-extra"))
    assert (line["trace_id"], line["span_id"], line["status_code"]) == ("alone-1", "from-extra", None)


def test_used_alone_with_the_trace_id_given_the_formatter_takes_no_other_field_from_the_context() -> None:
    bind_context(trace_id="bound", span_id="00f067aa0ba902b7", status_code=200)
    line = render(make_record(trace_id="given"))
    assert (line["trace_id"], line["span_id"], line["status_code"]) == ("given", None, None)


@every_schema
def test_a_message_that_is_not_a_string_is_written_as_its_text(schema: Schema) -> None:
    assert render_as(make_record(NoJson()), schema)["message"] == "NoJson()"
    assert render_as(make_record({"a": 1}, ()), schema)["message"] == "{'a': 1}"


@pytest.mark.parametrize(
    ("schema", "key", "level"),
    [("default", "level", 5), ("ecs", "log.level", "5"), ("gcp", "severity", "INFO"), ("datadog", "status", "info")],
)
def test_a_level_name_that_is_not_a_string_is_still_written(schema: Schema, key: str, level: object) -> None:
    """Written as it is, or, where the backend knows only its own names, by the record's level number."""
    record = make_record()
    record.levelname = 5  # type: ignore[assignment]  # the odd record under test
    parsed = json.loads(format_line(record, schema))
    assert (parsed["message"], parsed[key]) == ("hello", level)


def test_used_alone_the_formatter_writes_the_context_an_escaping_exception_carried() -> None:
    error = escaped_error(trace_id="escaped-1")
    assert render(make_record(exc_info=(RuntimeError, error, None)))["trace_id"] == "escaped-1"
