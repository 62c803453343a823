"""trace_headers: the current trace, ready to send to the next service."""

from __future__ import annotations

import pytest

from fapilog import bind_context, trace_headers

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def test_no_trace_bound_gives_no_headers() -> None:
    assert trace_headers() == {}
    bind_context(span_id=SPAN_ID)
    assert trace_headers() == {}


def test_a_w3c_trace_and_span_give_the_request_id_and_a_traceparent() -> None:
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    assert trace_headers() == {"X-Request-ID": TRACE_ID, "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}


def test_the_header_name_can_be_chosen() -> None:
    bind_context(trace_id="req-1")
    assert trace_headers("X-Correlation-ID") == {"X-Correlation-ID": "req-1"}


def test_without_a_span_there_is_no_traceparent() -> None:
    bind_context(trace_id=TRACE_ID)
    assert trace_headers() == {"X-Request-ID": TRACE_ID}


@pytest.mark.parametrize("trace_id", ["req-1", TRACE_ID.upper(), "0" * 32, TRACE_ID + "00"])
def test_a_trace_id_that_cannot_go_into_a_traceparent_is_sent_only_as_the_request_id(trace_id: str) -> None:
    bind_context(trace_id=trace_id, span_id=SPAN_ID)
    assert trace_headers() == {"X-Request-ID": trace_id}


@pytest.mark.parametrize("span_id", ["0" * 16, SPAN_ID.upper(), "abc", "g" * 16])
def test_a_span_id_that_cannot_go_into_a_traceparent_gives_none(span_id: str) -> None:
    bind_context(trace_id=TRACE_ID, span_id=span_id)
    assert trace_headers() == {"X-Request-ID": TRACE_ID}


@pytest.mark.parametrize("trace_id", ["", "a\r\nX-Injected: 1", "line\nbreak", "caf\u00e9", "nul\x00", "tab\there"])
def test_a_trace_id_unsafe_in_a_header_is_never_sent(trace_id: str) -> None:
    bind_context(trace_id=trace_id, span_id=SPAN_ID)
    assert trace_headers() == {}


def test_a_span_id_with_a_line_break_cannot_inject_through_the_traceparent() -> None:
    bind_context(trace_id=TRACE_ID, span_id="00f067aa\r\nX-I: 1")
    headers = trace_headers()
    assert headers == {"X-Request-ID": TRACE_ID}
