"""ContextFilter: every record carries the request context; explicit extras win."""

from __future__ import annotations

import logging
import sys

from fapilog import ContextFilter, bind_context
from fapilog._internal.middleware import CONTEXT_ATTRIBUTE
from tests.support.records import ALL_NONE, make_record

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
    error = RuntimeError("escaped")
    setattr(error, CONTEXT_ATTRIBUTE, {**ALL_NONE, "trace_id": "failed-request", "span_id": "s"})
    record = make_record(exc_info=(RuntimeError, error, None))
    assert filtered(record)["trace_id"] == "failed-request"


def test_a_live_context_wins_over_one_attached_to_the_exception() -> None:
    error = RuntimeError("escaped")
    setattr(error, CONTEXT_ATTRIBUTE, {**ALL_NONE, "trace_id": "old"})
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
    error = RuntimeError("escaped")
    setattr(error, CONTEXT_ATTRIBUTE, {**ALL_NONE, "trace_id": "handled-1"})
    try:
        raise error
    except RuntimeError:
        fields = filtered(make_record())
    assert fields["trace_id"] == "handled-1"
    assert filtered(make_record())["trace_id"] is None  # once handled, nothing lingers
