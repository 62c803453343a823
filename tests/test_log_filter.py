"""ContextFilter: every record carries the request context; explicit extras win."""

from __future__ import annotations

import functools
import io
import json
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from logging.handlers import QueueHandler, QueueListener

import pytest

from examples.fields import Shop
from fapilog import ContextFilter, FapilogHandler, JsonFormatter, bind_context, bind_fields, bind_trace_headers, clear_context
from fapilog._internal.json_formatter import Encoder
from fapilog._internal.schemas import Schema
from tests.support.lines import ENCODERS, SCHEMAS
from tests.support.records import ALL_NONE, escaped_error, make_record

FIELDS = tuple(ALL_NONE)


def filtered(record: logging.LogRecord) -> dict[str, object]:
    """Run *record* through the filter; return its context fields."""
    assert ContextFilter().filter(record) is True
    return {key: getattr(record, key) for key in FIELDS}


def test_a_record_gets_the_seven_fields_of_the_current_context() -> None:
    bind_context(trace_id="t-1", span_id="s-1", user_agent="ua", status_code=201)
    assert filtered(make_record()) == {**ALL_NONE, "trace_id": "t-1", "span_id": "s-1", "user_agent": "ua", "status_code": 201}


def test_outside_any_context_the_fields_are_none() -> None:
    assert filtered(make_record()) == ALL_NONE


def test_a_value_given_with_extra_wins_over_the_context() -> None:
    bind_context(trace_id="from-context", status_code=200)
    fields = filtered(make_record(trace_id="from-extra", status_code=None))
    assert fields["trace_id"] == "from-extra"
    assert fields["status_code"] is None


class KeepingHandler(logging.Handler):
    """Keep what it handles."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_record_through_a_logger_and_handler_is_enriched() -> None:
    handler = KeepingHandler()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("fapilog.test.filter")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        bind_context(trace_id="via-logger")
        logger.info("one", extra={"span_id": "explicit"})
    finally:
        logger.removeHandler(handler)
    [record] = handler.records
    assert record.__dict__["trace_id"] == "via-logger"
    assert record.__dict__["span_id"] == "explicit"


def test_an_exception_record_logged_after_teardown_gets_the_failed_requests_context() -> None:
    error = escaped_error(trace_id="failed-request", span_id="s")
    record = make_record(exc_info=(RuntimeError, error, None))
    assert filtered(record)["trace_id"] == "failed-request"


def test_a_live_context_wins_over_one_attached_to_the_exception() -> None:
    error = escaped_error(trace_id="old")
    bind_context(trace_id="current")
    try:
        raise error
    except RuntimeError:
        record = make_record(exc_info=sys.exc_info())
    assert filtered(record)["trace_id"] == "current"


def test_an_exception_without_a_context_leaves_the_fields_none() -> None:
    record = make_record(exc_info=(ValueError, ValueError("plain"), None))
    assert filtered(record) == ALL_NONE


def test_a_record_logged_while_an_escaped_request_exception_is_handled_gets_its_context() -> None:
    """As granian logs it: the traceback is in the message, the exception only in sys.exc_info()."""
    error = escaped_error(trace_id="handled-1")
    try:
        raise error
    except RuntimeError:
        fields = filtered(make_record())
    assert fields["trace_id"] == "handled-1"
    assert filtered(make_record())["trace_id"] is None  # once handled, nothing lingers


# Captured here, formatted anywhere: a queue's writer thread writes the line a direct handler writes.

SAMPLED_OFF = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "User-Agent": "probe/1"}


def _formatted_elsewhere(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """Format *record* on a new thread, which starts with an empty context, as a queue's writer does."""
    lines: list[str] = []
    thread = threading.Thread(target=lambda: lines.append(formatter.format(record)))
    thread.start()
    thread.join()
    return lines[0]


def _cases() -> Iterator[tuple[str, Callable[[], logging.LogRecord]]]:
    """Yield what a service logs, each as a label and a record factory called where the record is logged."""
    at = functools.partial(make_record, created=1_795_000_000.25)  # two records of one call: the same time
    yield "no context", functools.partial(at, order_id=1)
    bind_trace_headers(SAMPLED_OFF)
    bind_fields(Shop(user_id="u-7", tenant_id="acme"))
    yield "an app line of an unsampled trace", functools.partial(at, "order %s", (42,), order_id=42, tags=("a", "b"))
    yield "another trace given with extra=", functools.partial(at, trace_id="4bf92f3577b34da6a3ce929d0e0e4737")
    yield "an app field given with extra=", functools.partial(at, tenant_id="globex")
    bind_context(latency_ms=12.5, status_code=200, req_bytes=10, res_bytes=512)
    yield "an access record", functools.partial(
        at, "%s %s %s", ("GET", "/orders/42", 200), name="fapilog.access", method="GET", path="/orders/42", request_id="r-1"
    )
    clear_context()
    error = escaped_error(Shop(user_id="u-failed"), trace_id="failed-request", span_id="00f067aa0ba902b7")
    yield "the server's line about an escaped exception", functools.partial(
        at, "Exception in ASGI application", levelno=logging.ERROR, exc_info=(RuntimeError, error, error.__traceback__)
    )
    try:
        raise error
    except RuntimeError:
        yield "a line logged while the escaped exception is handled", at


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_captured_record_formats_to_the_same_bytes_on_any_thread(schema: Schema, encoder: Encoder) -> None:
    formatter = JsonFormatter(schema, encoder=encoder)
    checked = []
    for label, log in _cases():
        direct, queued = log(), log()
        ContextFilter().filter(direct)
        ContextFilter().filter(queued)
        assert _formatted_elsewhere(formatter, queued) == formatter.format(direct), label
        checked.append(label)
    assert len(checked) == 7


def test_an_unsampled_trace_keeps_trace_sampled_false_through_a_stdlib_queue_handler() -> None:
    """QueueHandler on the logging thread, QueueListener formatting on its own: Google still reads the flag."""
    stream = io.StringIO()
    pending: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queue_handler = QueueHandler(pending)
    queue_handler.addFilter(ContextFilter())
    listener = QueueListener(pending, FapilogHandler(stream, schema="gcp"))
    logger = logging.getLogger("fapilog.test.queue")
    logger.addHandler(queue_handler)
    logger.propagate = False
    listener.start()
    bind_trace_headers(SAMPLED_OFF)
    logger.warning("queued")
    listener.stop()  # writes what is queued, then joins its thread
    line = json.loads(stream.getvalue())
    assert line["logging.googleapis.com/trace"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["logging.googleapis.com/trace_sampled"] is False


def _sampled(record: logging.LogRecord) -> object:
    assert ContextFilter().filter(record) is True
    return record.__dict__["trace_sampled"]


def test_a_record_gets_the_sampled_flag_of_its_trace_as_trace_sampled() -> None:
    assert _sampled(make_record()) is None
    bind_trace_headers(SAMPLED_OFF)
    assert _sampled(make_record()) is False
    bind_trace_headers({**SAMPLED_OFF, "traceparent": SAMPLED_OFF["traceparent"][:-2] + "01"})
    assert _sampled(make_record()) is True
    assert _sampled(make_record(trace_id="another-trace")) is None  # the bound trace's flag says nothing of another
    assert _sampled(make_record(trace_sampled=False)) is False  # given with extra=, as the seven fields
