"""Schemas: Elastic, Google Cloud Logging and Datadog each read fapilog's line natively.

ECS is checked key for key against Elastic's own ``ecs-logging``; GCP against
Google's own ``StructuredLogHandler`` and Google's protobuf types; Datadog
against the correlation form its documentation gives, on known ids.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import math
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import ecs_logging
import httpx
import pytest
from fastapi import FastAPI
from google.cloud.logging_v2.handlers import StructuredLogHandler
from google.cloud.logging_v2.types import LogEntry
from google.logging.type.http_request_pb2 import HttpRequest
from google.protobuf import json_format
from hypothesis import given
from hypothesis import strategies as st

import fapilog._internal
from examples.fields import Shop
from fapilog import ContextFields, ContextFilter, JsonFormatter, TraceIDMiddleware, bind_context, bind_fields, configure_logging
from fapilog._internal import jsonline, orjson_values
from fapilog._internal.context import SAMPLED, TraceState, bind_trace
from fapilog._internal.records import MAX_LINE_LENGTH
from fapilog._internal.schemas import ECS_VERSION, SCHEMAS, Schema, datadog_id, gcp_duration
from fapilog.httpx import instrument
from tests.apps import celery_tasks
from tests.apps.echo import recording_transport
from tests.support import records
from tests.support.http import http_client
from tests.support.lines import RENAMED, fapilog_view, format_line

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
PARENT_SPAN_ID = "b7ad6b7169203331"
CREATED = 1_795_000_000.25  # 2026-11-18T11:06:40.250Z
TIMESTAMP = "2026-11-18T11:06:40.250Z"


def make_record(msg: object = "order %s placed", args: Any = (42,), *, name: str = "app.orders", **options: Any) -> logging.LogRecord:
    """Build a record of *name* logged from ``/srv/app/orders.py:42`` in ``place()`` at ``CREATED``."""
    return records.make_record(
        msg, args, name=name, pathname="/srv/app/orders.py", lineno=42, func="place", created=CREATED, **options
    )


def filtered(record: logging.LogRecord) -> logging.LogRecord:
    """Run *record* through ContextFilter, as fapilog's handler does."""
    ContextFilter().filter(record)
    return record


def line_of(record: logging.LogRecord, schema: Schema, **options: Any) -> dict[str, Any]:
    """Format *record* (both encoders, same bytes) and parse it."""
    parsed: dict[str, Any] = json.loads(format_line(record, schema, **options))
    return parsed


def flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return *tree* as dotted paths to leaves: ``{"log": {"logger": "x"}}`` -> ``{"log.logger": "x"}``."""
    leaves: dict[str, Any] = {}
    for key, item in tree.items():
        if isinstance(item, dict) and item:
            leaves.update(flat(item, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = item
    return leaves


def access_record(**changes: object) -> logging.LogRecord:
    """Return an access record as TraceIDMiddleware logs it, with *changes* to its extras."""
    extra: dict[str, object] = {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "latency_ms": 12.3456,
        "status_code": 200,
        "req_bytes": 10,
        "res_bytes": 512,
        "user_agent": "curl/8.5.0",
        "method": "GET",
        "path": "/orders/42",
        "parent_span_id": PARENT_SPAN_ID,
        "request_id": "req-7",
        **changes,
    }
    return make_record("%s %s %s", ("GET", "/orders/42", 200), name="fapilog.access", extra=extra)


def failed_record(**extra: object) -> logging.LogRecord:
    """Return an ERROR record about a ValueError raised and caught here."""
    try:
        raise ValueError("bad order")
    except ValueError:
        return make_record("failed", (), levelno=logging.ERROR, exc_info=sys.exc_info(), extra=extra)


@pytest.fixture
def sampled_trace() -> Iterator[None]:
    """Bind TRACE_ID as the middleware does for a sampled incoming trace."""
    bind_trace(TRACE_ID, SPAN_ID, "curl/8.5.0", TraceState(trace_id=TRACE_ID, parent_span_id=PARENT_SPAN_ID, flags=SAMPLED))
    yield


# Bad input


def test_an_unknown_schema_is_a_value_error_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown schema 'elastic': choose one of 'default', 'ecs', 'gcp', 'datadog'"):
        JsonFormatter("elastic")  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ValueError, match="unknown schema 'ECS'"):
        JsonFormatter("ECS")  # type: ignore[arg-type]  # names are exact


def test_a_project_is_for_the_gcp_schema_only() -> None:
    with pytest.raises(ValueError, match="project applies to the 'gcp' schema only, not to 'ecs'"):
        JsonFormatter("ecs", project="my-project")


def test_an_unknown_encoder_is_a_value_error_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown encoder 'ujson': choose one of 'json', 'orjson'"):
        JsonFormatter(encoder="ujson")  # type: ignore[arg-type]  # the mistake under test


# ECS, against Elastic's ecs-logging


def ecs_logging_line(record: logging.LogRecord) -> dict[str, Any]:
    """Format *record* with Elastic's own formatter and parse it."""
    parsed: dict[str, Any] = json.loads(ecs_logging.StdlibFormatter().format(record))
    return parsed


def test_ecs_an_app_record_is_ecs_loggings_key_for_key() -> None:
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent="curl/8.5.0")
    ours = flat(line_of(filtered(make_record(order_id=42, tags=["a", "b"])), "ecs"))
    theirs = flat(
        ecs_logging_line(
            make_record(
                order_id=42,
                tags=["a", "b"],
                extra={"trace.id": TRACE_ID, "span.id": SPAN_ID, "user_agent.original": "curl/8.5.0"},
            )
        )
    )
    assert set(ours) == set(theirs)
    assert {**ours, "ecs.version": "theirs"} == {**theirs, "ecs.version": "theirs"}
    assert ours["@timestamp"] == TIMESTAMP
    assert ours["log.level"] == "info"
    assert ours["message"] == ours["log.original"] == "order 42 placed"
    assert ours["ecs.version"] == ECS_VERSION == "1.9.0"  # http.request.id is ECS 1.9's; ecs-logging says 1.6.0
    assert ours["log.logger"] == "app.orders"
    assert (ours["log.origin.file.name"], ours["log.origin.file.line"], ours["log.origin.function"]) == ("orders.py", 42, "place")
    assert (ours["trace.id"], ours["span.id"], ours["user_agent.original"]) == (TRACE_ID, SPAN_ID, "curl/8.5.0")
    assert (ours["order_id"], ours["tags"]) == (42, ["a", "b"])


def test_ecs_the_first_three_keys_are_timestamp_level_and_message_as_ecs_logging_writes_them() -> None:
    line = format_line(make_record(), "ecs")
    theirs = ecs_logging.StdlibFormatter().format(make_record())
    assert list(json.loads(line))[:3] == list(json.loads(theirs))[:3] == ["@timestamp", "log.level", "message"]


def test_ecs_an_access_record_carries_the_request_under_ecs_names() -> None:
    ours = flat(line_of(access_record(), "ecs"))
    theirs = flat(
        ecs_logging_line(
            make_record(
                "%s %s %s",
                ("GET", "/orders/42", 200),
                name="fapilog.access",
                extra={
                    "trace.id": TRACE_ID,
                    "span.id": SPAN_ID,
                    "parent.id": PARENT_SPAN_ID,
                    "user_agent.original": "curl/8.5.0",
                    "http.request.method": "GET",
                    "http.request.id": "req-7",
                    "http.request.body.bytes": 10,
                    "http.response.status_code": 200,
                    "http.response.body.bytes": 512,
                    "url.path": "/orders/42",
                    "event.duration": 12_345_600,
                },
            )
        )
    )
    assert {**ours, "ecs.version": "theirs"} == {**theirs, "ecs.version": "theirs"}
    assert ours["event.duration"] == 12_345_600  # nanoseconds
    assert ours["http.response.status_code"] == 200
    assert ours["url.path"] == "/orders/42"


def test_ecs_the_exception_is_ecs_loggings_error_type_message_and_frames() -> None:
    ours = line_of(failed_record(), "ecs")["error"]
    assert ours == ecs_logging_line(failed_record())["error"]
    assert (ours["type"], ours["message"]) == ("ValueError", "bad order")
    assert ours["stack_trace"].startswith('  File "')  # no "Traceback (most recent call last):" first
    assert ours["stack_trace"].endswith('raise ValueError("bad order")\n')  # nor "ValueError: bad order" last


def test_ecs_an_exception_with_its_cause_is_ecs_loggings_error_after_the_cause_in_pythons_words() -> None:
    try:
        try:
            raise KeyError("order-42")
        except KeyError as cause:
            raise ValueError("bad order") from cause
    except ValueError:
        record = make_record("failed", (), levelno=logging.ERROR, exc_info=sys.exc_info())
    ours = line_of(record, "ecs")["error"]
    theirs = ecs_logging_line(record)["error"]  # the logged exception's frames only
    assert {**ours, "stack_trace": "-"} == {**theirs, "stack_trace": "-"}
    first, frames = ours["stack_trace"].split("The above exception was the direct cause of the following exception:\n\n")
    assert first.startswith("Traceback (most recent call last):\n") and first.endswith("KeyError: 'order-42'\n\n")
    assert frames == theirs["stack_trace"]


def test_ecs_a_stack_asked_for_with_an_exception_follows_its_frames_where_ecs_logging_drops_it() -> None:
    record = failed_record()
    record.stack_info = "Stack (most recent call last):\n  frame"
    frames = ecs_logging_line(failed_record())["error"]["stack_trace"]
    assert line_of(record, "ecs")["error"]["stack_trace"] == frames + record.stack_info


def test_ecs_an_exception_never_raised_has_no_stack_trace_as_in_ecs_logging() -> None:
    record = make_record("failed", (), levelno=logging.ERROR, exc_info=(ValueError, ValueError("bad order"), None))
    assert line_of(record, "ecs")["error"] == ecs_logging_line(record)["error"] == {"type": "ValueError", "message": "bad order"}


def test_ecs_a_stack_asked_for_is_the_stack_trace_as_in_ecs_logging() -> None:
    record = make_record()
    record.stack_info = "Stack (most recent call last):\n  frame"
    assert line_of(record, "ecs")["error"] == ecs_logging_line(record)["error"] == {"stack_trace": record.stack_info}


def test_ecs_dotted_and_nested_extras_are_nested_and_merged_as_ecs_logging_does() -> None:
    extras: dict[str, Any] = {
        "service.name": "orders",
        "customer.name": "ada",  # "user" is the object of the session's app field user_id (user.id)
        "customer.id": 7,
        "labels": {"team": "checkout"},
        "labels.env": "prod",
        "event.dataset": "orders.app",
        "log.custom": "x",
    }
    ours = line_of(make_record(**extras), "ecs")
    theirs = ecs_logging_line(make_record(**extras))
    assert {key: ours[key] for key in ("service", "customer", "labels", "event", "log")} == {
        key: theirs[key] for key in ("service", "customer", "labels", "event", "log")
    }
    assert (ours["customer"], ours["labels"]) == ({"name": "ada", "id": 7}, {"team": "checkout", "env": "prod"})
    assert not [key for key in ours if "." in key and key not in {"log.level", "ecs.version"}]


def test_ecs_dotted_extras_merge_into_the_objects_fapilog_writes_as_in_ecs_logging() -> None:
    """``event.dataset`` beside an access record's ``event.duration``, ``error.code`` beside the exception."""
    access = line_of(access_record(**{"event.dataset": "orders.access", "http.request.referrer": "https://shop.example/"}), "ecs")
    assert access["event"] == {"duration": 12_345_600, "dataset": "orders.access"}
    assert access["http"]["request"] == {"method": "GET", "id": "req-7", "body": {"bytes": 10}, "referrer": "https://shop.example/"}
    failed = failed_record(**{"error.code": "E42"})
    assert line_of(failed, "ecs")["error"] == ecs_logging_line(failed)["error"] == {
        **ecs_logging_line(failed_record())["error"],
        "code": "E42",
    }


def test_ecs_a_dotted_extra_with_a_value_in_its_way_stays_dotted_where_ecs_logging_fails() -> None:
    record = make_record(extra={"customer": "ada", "customer.name": "lovelace", "order.id": 1, "order.id.check": 2})
    ours = line_of(record, "ecs")
    assert (ours["customer"], ours["customer.name"]) == ("ada", "lovelace")
    assert (ours["order"], ours["order.id.check"]) == ({"id": 1}, 2)
    with pytest.raises(TypeError, match="Type mismatch at key"):
        ecs_logging.StdlibFormatter().format(record)


def test_ecs_unknown_fields_and_none_extras_are_left_out_as_ecs_logging_does() -> None:
    ours = line_of(make_record(coupon=None), "ecs")
    assert "coupon" not in ours
    assert "coupon" not in ecs_logging_line(make_record(coupon=None))
    assert not {"trace", "span", "user_agent", "http", "url", "event"} & set(ours)


def test_ecs_a_value_that_is_not_the_type_of_its_ecs_field_keeps_fapilogs_name() -> None:
    huge = 10 ** (sys.get_int_max_str_digits() + 1)
    record = access_record(
        status_code="teapot", req_bytes=True, res_bytes=huge, trace_id=7, span_id=b"s", user_agent=["ua"], latency_ms=math.inf
    )
    ours = line_of(record, "ecs")
    assert (ours["status_code"], ours["req_bytes"], ours["res_bytes"]) == ("teapot", True, "<unprintable int>")
    assert (ours["trace_id"], ours["span_id"], ours["user_agent"], ours["latency_ms"]) == (7, "s", ["ua"], "inf")
    assert ours["http"] == {"request": {"method": "GET", "id": "req-7"}}
    assert not {"event", "trace", "span", "user_agent.original"} & set(ours)
    assert line_of(access_record(latency_ms=10**400), "ecs")["latency_ms"] == 10**400  # past a float's range


# GCP, against Google's StructuredLogHandler and protobuf types


def google_line(record: logging.LogRecord, **extra: object) -> dict[str, Any]:
    """Format *record* with Google's own handler, given *extra* as its users pass them, and parse it."""
    record.__dict__.update(extra)
    handler = StructuredLogHandler(project_id="my-project")  # type: ignore[no-untyped-call]  # google-cloud-logging leaves it unannotated
    handler.filter(record)
    parsed: dict[str, Any] = json.loads(handler.format(record))  # type: ignore[no-untyped-call]  # unannotated in google-cloud-logging
    return parsed


GCP_SHARED = (
    "severity",
    "message",
    "logging.googleapis.com/trace",
    "logging.googleapis.com/spanId",
    "logging.googleapis.com/trace_sampled",
    "logging.googleapis.com/sourceLocation",
    "logging.googleapis.com/labels",
)


def test_gcp_an_app_record_has_googles_special_fields_as_structured_log_handler_writes_them(sampled_trace: None) -> None:
    ours = line_of(filtered(make_record(order_id=42)), "gcp", project="my-project")
    theirs = google_line(
        make_record(order_id=42),
        trace=f"projects/my-project/traces/{TRACE_ID}",
        span_id=SPAN_ID,
        trace_sampled=True,
    )
    assert {key: ours[key] for key in GCP_SHARED} == {key: theirs[key] for key in GCP_SHARED}
    assert ours["severity"] == "INFO"
    assert ours["logging.googleapis.com/trace"] == f"projects/my-project/traces/{TRACE_ID}"
    assert ours["logging.googleapis.com/spanId"] == SPAN_ID
    assert ours["logging.googleapis.com/trace_sampled"] is True
    assert ours["logging.googleapis.com/sourceLocation"] == {"file": "/srv/app/orders.py", "line": 42, "function": "place"}
    assert ours["logging.googleapis.com/labels"] == {"python_logger": "app.orders"}
    assert (ours["message"], ours["order_id"], ours["user_agent"]) == ("order 42 placed", 42, "curl/8.5.0")


def test_gcp_time_is_rfc_3339_utc_to_the_millisecond() -> None:
    ours = line_of(make_record(), "gcp")
    assert ours["time"] == TIMESTAMP
    assert datetime.fromisoformat(ours["time"]) == datetime.fromtimestamp(CREATED, UTC)


def test_gcp_the_special_fields_parse_as_googles_own_log_entry() -> None:
    bind_trace(TRACE_ID, SPAN_ID, None, TraceState(trace_id=TRACE_ID, flags=0))
    ours = line_of(filtered(access_record()), "gcp", project="my-project")
    entry = json_format.ParseDict(
        {
            "severity": ours["severity"],
            "timestamp": ours["time"],
            "trace": ours["logging.googleapis.com/trace"],
            "spanId": ours["logging.googleapis.com/spanId"],
            "traceSampled": ours["logging.googleapis.com/trace_sampled"],
            "sourceLocation": ours["logging.googleapis.com/sourceLocation"],
            "labels": ours["logging.googleapis.com/labels"],
            "httpRequest": ours["httpRequest"],
        },
        LogEntry.pb(LogEntry()),
    )
    assert (entry.trace, entry.span_id, entry.trace_sampled) == (f"projects/my-project/traces/{TRACE_ID}", SPAN_ID, False)
    assert (entry.source_location.file, entry.source_location.line) == ("/srv/app/orders.py", 42)
    assert entry.timestamp.ToJsonString() == TIMESTAMP


def test_gcp_an_access_record_carries_googles_http_request() -> None:
    ours = line_of(access_record(), "gcp")
    assert ours["httpRequest"] == {
        "requestMethod": "GET",
        "requestUrl": "/orders/42",
        "status": 200,
        "requestSize": "10",
        "responseSize": "512",
        "userAgent": "curl/8.5.0",
        "latency": "0.0123456s",
    }
    request = json_format.ParseDict(ours["httpRequest"], HttpRequest())  # strict: an unknown field or type raises
    assert (request.request_method, request.status, request.request_size, request.response_size) == ("GET", 200, 10, 512)
    assert (request.latency.seconds, request.latency.nanos) == (0, 12_345_600)
    # Google's handler, given the request as its users pass it, writes the same object under the same key.
    assert google_line(access_record(), http_request=ours["httpRequest"])["httpRequest"] == ours["httpRequest"]
    assert (ours["request_id"], ours["parent_span_id"]) == ("req-7", PARENT_SPAN_ID)
    assert not {"method", "path", "status_code", "latency_ms", "user_agent"} & set(ours)


def test_gcp_without_a_project_the_trace_is_the_bare_trace_id() -> None:
    assert line_of(make_record(trace_id=TRACE_ID), "gcp")["logging.googleapis.com/trace"] == TRACE_ID


def test_gcp_a_value_that_is_not_the_type_of_its_google_field_keeps_fapilogs_name() -> None:
    ours = line_of(access_record(trace_id=7, span_id=None, latency_ms="slow", req_bytes=-0.5), "gcp")
    assert (ours["trace_id"], ours["latency_ms"], ours["req_bytes"]) == (7, "slow", -0.5)
    assert "latency" not in ours["httpRequest"]
    assert "requestSize" not in ours["httpRequest"]
    assert not {"logging.googleapis.com/trace", "logging.googleapis.com/spanId"} & set(ours)
    assert line_of(make_record(span_id=["s"]), "gcp")["span_id"] == ["s"]


def test_gcp_context_fields_of_an_app_record_keep_fapilogs_names() -> None:
    bind_context(trace_id=TRACE_ID, status_code=503, latency_ms=2.5, res_bytes=7)
    ours = line_of(filtered(make_record()), "gcp")
    assert (ours["status_code"], ours["latency_ms"], ours["res_bytes"]) == (503, 2.5, 7)
    assert "httpRequest" not in ours


@pytest.mark.parametrize(
    ("milliseconds", "duration"),
    [(12.0, '"0.012s"'), (0, '"0s"'), (1500, '"1.5s"'), (0.000001, '"0.000000001s"'), (12.3456, '"0.0123456s"')],
)
def test_gcp_latency_is_a_protobuf_duration(milliseconds: float, duration: str) -> None:
    assert gcp_duration(milliseconds) == duration


def test_gcp_the_sampled_flag_is_the_current_traces() -> None:
    bind_trace(TRACE_ID, SPAN_ID, None, TraceState(trace_id=TRACE_ID, flags=0))
    assert line_of(filtered(make_record()), "gcp")["logging.googleapis.com/trace_sampled"] is False
    bind_trace(TRACE_ID, SPAN_ID, None, TraceState(trace_id=TRACE_ID, flags=SAMPLED))
    assert line_of(filtered(make_record()), "gcp")["logging.googleapis.com/trace_sampled"] is True


def test_gcp_the_sampled_flag_is_left_out_when_the_record_is_about_another_trace() -> None:
    bind_context(trace_id="bound-by-hand")
    ours = line_of(filtered(make_record()), "gcp")
    assert ours["logging.googleapis.com/trace"] == "bound-by-hand"
    assert "logging.googleapis.com/trace_sampled" not in ours


def test_gcp_the_traceback_goes_where_error_reporting_reads_it_first() -> None:
    ours = line_of(failed_record(), "gcp")
    assert ours["stack_trace"].startswith("Traceback (most recent call last):\n")
    assert ours["stack_trace"].endswith("ValueError: bad order")
    assert ours["message"] == "failed"
    assert ours["severity"] == "ERROR"


@pytest.mark.parametrize(
    ("level", "name", "severity"),
    [
        (5, "TRACE", "DEFAULT"),
        (10, "DEBUG", "DEBUG"),
        (22, "CHATTY", "INFO"),
        (25, "NOTICE", "NOTICE"),
        (35, "Level 35", "WARNING"),
        (60, "FATAL", "CRITICAL"),
    ],
)
def test_gcp_severity_is_a_cloud_logging_severity_whatever_the_level_name(level: int, name: str, severity: str) -> None:
    record = make_record(levelno=level)
    record.levelname = name
    assert line_of(record, "gcp")["severity"] == severity


# Datadog, against its documented correlation form


@pytest.mark.parametrize(
    ("hex_id", "length", "decimal"),
    [
        (TRACE_ID, 32, "11803532876627986230"),  # W3C's example trace id: its lower 64 bits
        ("0af7651916cd43dd8448eb211c80319c", 32, "9532127138774266268"),
        ("ffffffffffffffffffffffffffffffff", 32, "18446744073709551615"),  # unsigned: 2**64 - 1
        ("80000000000000000000000000000001", 32, "1"),  # the upper 64 bits play no part
        (SPAN_ID, 16, "67667974448284343"),
        (PARENT_SPAN_ID, 16, "13235353014750950193"),
    ],
)
def test_datadog_ids_are_the_lower_64_bits_as_unsigned_decimal(hex_id: str, length: int, decimal: str) -> None:
    assert datadog_id(hex_id, length) == decimal
    assert decimal == str(int(hex_id, 16) & 0xFFFFFFFFFFFFFFFF)  # Datadog's documented conversion for W3C ids


@pytest.mark.parametrize(
    "hex_id", ["order-42", "4BF92F3577B34DA6A3CE929D0E0E4736", "0" * 32, TRACE_ID[:31], f"0x{TRACE_ID[2:]}", "_" * 32]
)
def test_datadog_a_trace_id_that_is_not_w3c_has_no_datadog_form(hex_id: str) -> None:
    assert datadog_id(hex_id, 32) is None


def test_datadog_an_app_record_carries_dd_trace_id_and_span_id(sampled_trace: None) -> None:
    ours = line_of(filtered(make_record(order_id=42)), "datadog")
    assert ours == {
        "timestamp": TIMESTAMP,
        "status": "info",
        "message": "order 42 placed",
        "logger": {"name": "app.orders", "thread_name": "MainThread", "method_name": "place"},
        "dd": {"trace_id": "11803532876627986230", "span_id": "67667974448284343"},
        "http": {"useragent": "curl/8.5.0"},
        "order_id": 42,
    }


def test_datadog_a_request_id_trace_is_written_as_the_http_request_id() -> None:
    bind_context(trace_id="order-42", span_id=SPAN_ID)
    ours = line_of(filtered(make_record()), "datadog")
    assert ours["dd"] == {"span_id": "67667974448284343"}
    assert ours["http"] == {"request_id": "order-42"}
    assert "trace_id" not in ours


def test_datadog_ids_that_are_not_w3c_ones_keep_fapilogs_names() -> None:
    ours = line_of(access_record(trace_id="order-42", span_id="s-1", request_id="req-7"), "datadog")
    assert (ours["trace_id"], ours["span_id"], ours["http"]["request_id"]) == ("order-42", "s-1", "req-7")
    assert "dd" not in ours
    listed = line_of(make_record(trace_id=["t"], span_id="s-1"), "datadog")
    assert (listed["trace_id"], listed["span_id"]) == (["t"], "s-1")
    assert "http" not in listed


def test_datadog_a_status_bound_to_the_context_is_the_http_status_code() -> None:
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent="curl/8.5.0", status_code=503, res_bytes=9)
    ours = line_of(filtered(make_record()), "datadog")
    assert ours["http"] == {"status_code": 503, "useragent": "curl/8.5.0"}
    assert ours["network"] == {"bytes_written": 9}
    odd = line_of(make_record(trace_id=TRACE_ID, user_agent=["ua"]), "datadog")
    assert (odd["user_agent"], odd["dd"]) == (["ua"], {"trace_id": "11803532876627986230"})


def test_datadog_measurements_bound_to_the_context_are_network_and_duration() -> None:
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, latency_ms=1.25, req_bytes=3)
    ours = line_of(filtered(make_record()), "datadog")
    assert (ours["network"], ours["duration"]) == ({"bytes_read": 3}, 1_250_000)
    assert "http" not in ours


def test_datadog_an_access_record_carries_datadogs_standard_http_attributes() -> None:
    ours = line_of(access_record(), "datadog")
    assert ours["http"] == {
        "method": "GET",
        "url_details": {"path": "/orders/42"},
        "status_code": 200,
        "useragent": "curl/8.5.0",
        "request_id": "req-7",
    }
    assert ours["network"] == {"bytes_read": 10, "bytes_written": 512}
    assert ours["duration"] == 12_345_600  # nanoseconds
    assert ours["dd"] == {"trace_id": "11803532876627986230", "span_id": "67667974448284343"}
    assert ours["parent_span_id"] == PARENT_SPAN_ID
    assert not {"method", "path", "request_id", "status_code", "latency_ms"} & set(ours)


def test_datadog_the_exception_is_datadogs_error_attributes() -> None:
    error = line_of(failed_record(), "datadog")["error"]
    assert (error["kind"], error["message"]) == ("ValueError", "bad order")
    assert error["stack"].startswith("Traceback (most recent call last):\n")
    assert error["stack"].endswith("ValueError: bad order")


@pytest.mark.parametrize(("level", "name", "status"), [(10, "DEBUG", "debug"), (30, "WARNING", "warning"), (50, "CRITICAL", "critical"), (25, "NOTICE", "notice"), (45, "SEVERE", "error")])
def test_datadog_status_is_a_datadog_status_whatever_the_level_name(level: int, name: str, status: str) -> None:
    record = make_record(levelno=level)
    record.levelname = name
    assert line_of(record, "datadog")["status"] == status


# Every schema


def test_app_fields_go_under_their_backend_key_or_their_own_name_and_unbound_are_left_out_but_by_default() -> None:
    bind_fields(Shop(user_id="u-7", tenant_id="acme"))
    bound = filtered(make_record())
    ecs, gcp, datadog, default = (line_of(bound, schema) for schema in ("ecs", "gcp", "datadog", "default"))
    assert (ecs["user"], ecs["tenant_id"]) == ({"id": "u-7"}, "acme")
    assert (gcp["user_id"], gcp["tenant_id"]) == ("u-7", "acme")
    assert (datadog["usr"], datadog["tenant_id"]) == ({"id": "u-7"}, "acme")
    assert (default["user_id"], default["tenant_id"]) == ("u-7", "acme")
    assert list(default)[11:13] == ["user_id", "tenant_id"]  # right after the seven fields
    bind_fields(Shop(user_id=None))
    unbound = filtered(make_record())
    assert [sorted({"user", "usr", "user_id"} & set(line_of(unbound, schema))) for schema in SCHEMAS] == [["user_id"], [], [], []]
    assert line_of(unbound, "default")["user_id"] is None


def test_ecs_a_user_id_keyed_user_id_is_where_ecs_logging_puts_user_id_and_dotted_extras_merge_into_it() -> None:
    bind_fields(Shop(user_id="u-7"))
    ours = line_of(filtered(make_record()), "ecs")
    theirs = ecs_logging_line(make_record(extra={"user.id": "u-7"}))
    assert ours["user"] == theirs["user"] == {"id": "u-7"}
    merged = line_of(filtered(make_record(**{"user.name": "ada"})), "ecs")
    assert merged["user"] == ecs_logging_line(make_record(extra={"user.id": "u-7", "user.name": "ada"}))["user"] == {"id": "u-7", "name": "ada"}


def test_fields_whose_keys_share_an_object_are_written_in_that_one_object() -> None:
    class Org(ContextFields, keys={"org_id": {"ecs": "organization.id"}, "org_name": {"ecs": "organization.name"}}):
        org_id: str | None = None
        org_name: str | None = None

    bind_fields(Org(org_id="o-1", org_name="Acme"))
    line = format_line(filtered(make_record()), "ecs")
    assert json.loads(line)["organization"] == {"id": "o-1", "name": "Acme"}
    assert line.count('"organization"') == 1
    bind_fields(Org(org_name=None))
    assert line_of(filtered(make_record()), "ecs")["organization"] == {"id": "o-1"}


@pytest.mark.parametrize("schema", SCHEMAS)
def test_an_extra_named_like_an_app_field_is_its_value_and_one_named_like_its_key_is_renamed(schema: Schema) -> None:
    bind_fields(Shop(user_id="u-7", tenant_id="acme"))
    parsed = line_of(filtered(make_record(tenant_id="from-extra", user="on-the-key", usr=3)), schema)
    assert parsed["tenant_id"] == "from-extra"
    key = {"ecs": ("user", "id"), "datadog": ("usr", "id")}.get(schema)
    assert (parsed["user_id"] if key is None else parsed[key[0]][key[1]]) == "u-7"
    renamed = {"ecs": {"user"}, "datadog": {"usr"}}.get(schema, set())
    assert {name for name in ("user", "usr") if f"extra_{name}" in parsed} == renamed
    assert "extra_tenant_id" not in parsed


@pytest.mark.parametrize("schema", SCHEMAS)
def test_an_extra_named_like_a_key_of_the_schema_never_replaces_it(schema: Schema) -> None:
    names = sorted(RENAMED[schema] - {"message"})
    record = failed_record()
    record.__dict__.update(dict.fromkeys(names, "fake"))
    parsed = line_of(record, schema)
    assert parsed["message"] == "failed"
    assert {name: parsed[f"extra_{name}"] for name in names} == dict.fromkeys(names, "fake")
    assert all(parsed[name] != "fake" for name in names if name in parsed)


@pytest.mark.parametrize(
    ("schema", "name"),
    [("ecs", "trace.id"), ("ecs", "http.response"), ("ecs", "log.origin.file.line.x"), ("datadog", "dd.trace_id"), ("datadog", "http")],
)
def test_a_dotted_extra_on_a_path_of_the_schema_is_renamed_too(schema: Schema, name: str) -> None:
    parsed = flat(line_of(access_record(**{name: "fake"}), schema))  # ECS nests it, Datadog keeps it dotted
    assert parsed[f"extra_{name}"] == "fake"
    assert parsed.get(name) != "fake"


def test_an_extra_renamed_onto_another_extras_name_gives_one_key_the_last_value() -> None:
    record = make_record()
    record.__dict__.update({"extra_level": "first", "other": "x", "level": "second"})
    line = format_line(record, "default")
    assert json.loads(line)["extra_level"] == "second"  # as a dict would have it: the first place, the last value
    assert line.count('"extra_level"') == 1
    assert list(json.loads(line))[-2:] == ["extra_level", "other"]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_record_that_cannot_be_written_still_gives_one_line_saying_why(schema: Schema) -> None:
    record = make_record()
    record.created = "not a time"  # type: ignore[assignment]  # the broken record under test
    assert json.loads(format_line(record, schema)) == {
        "timestamp": "",
        "level": "INFO",
        "logger": "app.orders",
        "message": "order %s placed",
        "format_error": "ValueError: invalid literal for int() with base 10: 'not a time'",
    }


class BrokenFormatter(JsonFormatter):
    """A subclass whose exception rendering fails."""

    def formatException(self, ei: Any) -> str:
        raise RuntimeError("broken")


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_formatter_subclass_that_fails_still_gives_one_line_saying_why(schema: Schema) -> None:
    line = BrokenFormatter(schema).format(failed_record())
    assert json.loads(line) == {
        "timestamp": TIMESTAMP,
        "level": "ERROR",
        "logger": "app.orders",
        "message": "failed",
        "format_error": "RuntimeError: broken",
    }


@pytest.mark.parametrize("schema", SCHEMAS)
def test_two_extras_written_under_one_key_give_it_the_last_value_in_every_schema(schema: Schema) -> None:
    name = "timestamp" if schema in {"default", "datadog"} else "time" if schema == "gcp" else "trace.id"
    record = make_record()
    record.__dict__.update({f"extra_{name}": "first", name: "second"})
    line = format_line(record, schema)
    assert flat(json.loads(line))[f"extra_{name}"] == "second"
    assert line.count('"extra_trace":{"id"' if schema == "ecs" else f'"extra_{name}"') == 1


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_formatter_writes_the_same_line_for_the_same_record_again(schema: Schema) -> None:
    formatter = JsonFormatter(schema)
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    record = filtered(make_record(order_id=42))
    first = formatter.format(record)
    assert formatter.format(record) == first  # from what the first line left in its caches
    again = json.loads(formatter.format(filtered(make_record(order_id=43))))
    assert again == {**json.loads(first), "order_id": 43}


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_record_with_an_unhashable_attribute_is_still_written(schema: Schema) -> None:
    record = make_record()
    record.funcName = ["not", "hashable"]  # type: ignore[assignment]  # the odd record under test
    assert fapilog_view(format_line(record, schema), schema)["message"] == "order 42 placed"


@pytest.mark.parametrize(
    ("schema", "path"),
    [("default", "exception"), ("ecs", "error.stack_trace"), ("gcp", "stack_trace"), ("datadog", "error.stack")],
)
def test_an_exception_rendered_elsewhere_is_written_from_its_text(schema: Schema, path: str) -> None:
    record = make_record("failed", ())
    record.exc_text = "Traceback (most recent call last):\nValueError: from another process"
    assert flat(line_of(record, schema))[path] == record.exc_text


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_through_a_real_app_each_schema_writes_the_request_under_its_names(schema: Schema) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, schema=schema, project="p-1" if schema == "gcp" else None)
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        logging.getLogger("app.orders").info("order %s", order_id)
        return {"order_id": order_id}

    async with http_client(TraceIDMiddleware(app)) as client:
        response = await client.get(
            "/orders/42", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-00", "User-Agent": "probe/1"}
        )
    lines = {line["message"]: line for line in map(json.loads, stream.getvalue().splitlines())}
    app_line, access_line = lines["order 42"], lines["GET /orders/42 200"]
    span_id = response.headers["traceresponse"].split("-")[2]
    assert response.headers["X-Request-ID"] == TRACE_ID
    if schema == "default":
        assert (app_line["trace_id"], app_line["span_id"], app_line["user_agent"]) == (TRACE_ID, span_id, "probe/1")
        assert (access_line["method"], access_line["path"], access_line["status_code"]) == ("GET", "/orders/42", 200)
        assert access_line["parent_span_id"] == PARENT_SPAN_ID
    elif schema == "ecs":
        assert (app_line["trace"], app_line["span"], app_line["user_agent"]) == (
            {"id": TRACE_ID},
            {"id": span_id},
            {"original": "probe/1"},
        )
        assert access_line["http"]["request"]["method"] == "GET"
        assert access_line["http"]["response"]["status_code"] == 200
        assert access_line["http"]["response"]["body"]["bytes"] == len(response.content)
        assert (access_line["url"], access_line["parent"]) == ({"path": "/orders/42"}, {"id": PARENT_SPAN_ID})
        assert isinstance(access_line["event"]["duration"], int) and access_line["event"]["duration"] > 0
    elif schema == "gcp":
        for line in (app_line, access_line):
            assert line["logging.googleapis.com/trace"] == f"projects/p-1/traces/{TRACE_ID}"
            assert line["logging.googleapis.com/spanId"] == span_id
            assert line["logging.googleapis.com/trace_sampled"] is False  # the caller's flags: 00
        request = access_line["httpRequest"]
        assert (request["requestMethod"], request["requestUrl"], request["status"]) == ("GET", "/orders/42", 200)
        assert (request["userAgent"], request["responseSize"]) == ("probe/1", str(len(response.content)))
        assert json_format.ParseDict(request, HttpRequest()).latency.ToNanoseconds() > 0
    else:
        dd = {"trace_id": "11803532876627986230", "span_id": str(int(span_id, 16))}
        assert app_line["dd"] == access_line["dd"] == dd
        assert access_line["http"]["method"] == "GET"
        assert access_line["http"]["url_details"] == {"path": "/orders/42"}
        assert (access_line["http"]["status_code"], access_line["http"]["useragent"]) == (200, "probe/1")
        assert access_line["network"]["bytes_written"] == len(response.content)
        assert isinstance(access_line["duration"], int) and access_line["duration"] > 0


# orjson: the same bytes as json, or json's


class Colour(Enum):
    RED = "red"


class Text(str):
    """A str subclass: orjson is not handed it."""


HOSTILE_ITEMS: list[object] = [
    "say \"hi\"\n\r\t\x00\x1b\x7f",
    "line\u2028separator",
    "lone surrogate \udc80",
    "emoji \U0001f600",
    1e16,
    1e-7,
    9.99e-5,
    1e-4,
    -0.0,
    float("nan"),
    math.inf,
    2**64,
    -(2**63) - 1,
    10 ** (sys.get_int_max_str_digits() + 1),
    Text("sub"),
    b"caf\xc3\xa9\xff",
    Colour.RED,
    True,
    None,
    [1, "two"],
    {"k": "v"},
    datetime(2026, 11, 18, tzinfo=UTC),
]


@pytest.mark.parametrize("item", HOSTILE_ITEMS, ids=lambda item: type(item).__name__)
@pytest.mark.parametrize("container", ["list", "tuple", "dict"])
def test_orjson_writes_every_hostile_value_as_json_does(item: object, container: str) -> None:
    plain: list[object] = [index for index in range(orjson_values.MIN_ITEMS)]
    items = [*plain, item]
    value: object = {str(index): entry for index, entry in enumerate(items)} if container == "dict" else items
    if container == "tuple":
        value = tuple(items)
    assert orjson_values.value(value) == jsonline.value(value)
    record = make_record(payload=value)
    for schema in SCHEMAS:
        format_line(record, schema)  # asserts the same bytes from both encoders


def test_orjson_writes_plain_containers_itself_and_they_read_back_equal() -> None:
    value = {f"key_{index}": f"value {index}" if index % 2 else index * 0.5 for index in range(16)}
    assert orjson_values.value(value) == json.dumps(value, separators=(",", ":"))
    assert json.loads(orjson_values.value(list(value.values()))) == list(value.values())


_SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()


@given(items=st.lists(_SCALAR, min_size=orjson_values.MIN_ITEMS, max_size=24) | st.dictionaries(st.text(), _SCALAR, min_size=orjson_values.MIN_ITEMS, max_size=24))
def test_orjson_and_json_write_any_flat_container_byte_for_byte_alike(items: list[Any] | dict[str, Any]) -> None:
    assert orjson_values.value(items) == jsonline.value(items)


def test_importing_fapilog_or_using_json_does_not_import_orjson() -> None:
    code = (
        "import logging, sys, fapilog\n"
        "for schema in ('default', 'ecs', 'gcp', 'datadog'):\n"
        "    fapilog.JsonFormatter(schema).format(logging.LogRecord('a', 20, 'f', 1, 'm', None, None))\n"
        "fapilog.configure_logging()\n"
        "assert 'orjson' not in sys.modules, 'orjson imported'\n"
        "fapilog.JsonFormatter(encoder='orjson')\n"
        "assert 'orjson' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_orjson_encoder_without_orjson_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "orjson", None)  # import orjson now raises ImportError
    monkeypatch.delitem(sys.modules, "fapilog._internal.orjson_values")
    monkeypatch.delattr(fapilog._internal, "orjson_values")
    with pytest.raises(ImportError, match=r'pip install "fapilog-context\[orjson\]"'):
        JsonFormatter(encoder="orjson")


# configure_logging and the logging config


def test_configure_logging_takes_the_schema_the_project_and_the_encoder() -> None:
    stream = io.StringIO()
    handler = configure_logging(stream=stream, schema="gcp", project="my-project", encoder="orjson")
    bind_context(trace_id=TRACE_ID)
    logging.getLogger("app").warning("careful")
    [line] = (json.loads(text) for text in stream.getvalue().splitlines())
    assert (line["severity"], line["message"]) == ("WARNING", "careful")
    assert line["logging.googleapis.com/trace"] == f"projects/my-project/traces/{TRACE_ID}"
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    assert (formatter.schema, formatter.encoder) == ("gcp", "orjson")


def test_configure_logging_with_an_unknown_schema_changes_nothing() -> None:
    stream = io.StringIO()
    first = configure_logging(stream=stream)
    with pytest.raises(ValueError, match="unknown schema 'splunk'"):
        configure_logging(stream=io.StringIO(), schema="splunk")  # type: ignore[arg-type]  # the mistake under test
    assert first in logging.root.handlers
    logging.getLogger("app").warning("still here")
    assert json.loads(stream.getvalue())["message"] == "still here"


def test_a_dict_config_handler_entry_takes_the_schema() -> None:
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"fapilog": {"class": "fapilog.FapilogHandler", "stream": stream, "schema": "ecs"}},
            "root": {"level": "INFO", "handlers": ["fapilog"]},
        }
    )
    logging.getLogger("app").info("configured")
    line = json.loads(stream.getvalue())
    assert (line["log.level"], line["message"], line["ecs.version"]) == ("info", "configured", ECS_VERSION)


@pytest.mark.parametrize("schema", ["ecs", "gcp", "datadog"])
def test_fapilogs_own_access_record_is_written_at_once_exactly_as_the_general_path_writes_it(
    schema: Schema, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [
        access_record(user_agent=agent, request_id=request_id, parent_span_id=parent)
        for agent in ("curl/8.5.0", None)
        for request_id in ("order-42", None)
        for parent in ("00f067aa0ba902b7", None)
    ]
    direct = [JsonFormatter(schema).format(record) for record in records]
    monkeypatch.setattr("fapilog._internal.schemas._measured", lambda *values: None)  # the general path only
    assert direct == [JsonFormatter(schema).format(record) for record in records]


# The line bound: input that grows when escaped (a non-BMP character becomes ten ASCII characters)

NON_BMP = "\U0001f600" * 3_000


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_every_record_kind_stays_within_the_line_bound_whatever_grows_when_escaped(schema: Schema) -> None:
    """The access record of a request, the client record of its call and the task record of its task."""
    captured: list[logging.LogRecord] = []
    handler = records.ListHandler(captured)
    handler.addFilter(ContextFilter())
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.DEBUG)
    app = FastAPI()

    @app.get("/{path:path}")
    async def anything(path: str) -> None:
        async with instrument(httpx.AsyncClient(transport=recording_transport([]))) as client:
            await client.get("http://next.service/" + path)
        celery_tasks.context.apply(task_id=path)

    async with http_client(TraceIDMiddleware(app)) as client:
        await client.get("/" + NON_BMP, headers={b"User-Agent": NON_BMP.encode()})
    kinds = {record.name: record for record in captured if record.name.startswith("fapilog.")}
    assert set(kinds) == {"fapilog.access", "fapilog.client", "fapilog.task"}
    for record in kinds.values():
        assert len(format_line(record, schema)) <= MAX_LINE_LENGTH
