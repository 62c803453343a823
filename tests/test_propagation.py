"""trace_headers: the current trace, ready to send to the next service."""

from __future__ import annotations

import pytest

from examples.fields import Shop
from fapilog import bind_context, bind_fields, bind_trace_headers, clear_context, context_copy, trace_headers
from fapilog._internal.incoming import MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS

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


def _continue_a_trace() -> None:
    bind_trace_headers({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00", "tracestate": "congo=1", "baggage": "a=1"})


def test_a_bind_keeps_the_trace_state_and_a_hand_bound_trace_id_drops_it() -> None:
    _continue_a_trace()
    bind_context(status_code=200)
    assert trace_headers()["tracestate"] == "congo=1"
    assert trace_headers()["traceparent"].endswith("-00")
    bind_context(trace_id="4bf92f3577b34da6a3ce929d0e0e4737")  # another trace: not its state
    headers = trace_headers()
    assert headers["traceparent"].endswith("-01")
    assert "tracestate" not in headers and "baggage" not in headers


def test_the_trace_state_travels_with_a_snapshot_and_is_gone_after_clear_context() -> None:
    _continue_a_trace()
    snapshot = context_copy()
    clear_context()
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    assert trace_headers() == {"X-Request-ID": TRACE_ID, "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}
    carried = snapshot.run(trace_headers)
    assert (carried["tracestate"], carried["baggage"]) == ("congo=1", "a=1")


def test_a_bound_propagated_field_goes_first_in_the_baggage_percent_encoded_and_comes_back_whole() -> None:
    _continue_a_trace()
    bind_fields(Shop(user_id="u-1", tenant_id="Acme, Inc. ü"))  # user_id is not propagated
    sent = trace_headers()
    assert sent["baggage"] == "tenant_id=Acme%2C%20Inc.%20%C3%BC,a=1"
    clear_context()
    bind_trace_headers(sent)
    assert Shop.current() == Shop(tenant_id="Acme, Inc. ü")


def test_the_field_replaces_a_member_of_its_name_in_the_traces_baggage() -> None:
    bind_trace_headers({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "baggage": "tenant_id=upstream,b=2"})
    bind_fields(Shop(tenant_id="here"))
    assert trace_headers()["baggage"] == "tenant_id=here,b=2"
    bind_fields(Shop(tenant_id=None))  # unbound here: it travels no further
    assert trace_headers()["baggage"] == "b=2"


def test_fields_and_the_traces_baggage_stay_within_w3c_limits() -> None:
    full = ",".join(f"k{index}=v" for index in range(MAX_BAGGAGE_MEMBERS))
    bind_trace_headers({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "baggage": full})
    bind_fields(Shop(tenant_id="acme"))
    members = trace_headers()["baggage"].split(",")
    assert (len(members), members[0], members[-1]) == (MAX_BAGGAGE_MEMBERS, "tenant_id=acme", f"k{MAX_BAGGAGE_MEMBERS - 2}=v")
    bind_fields(Shop(tenant_id="t" * MAX_BAGGAGE_BYTES))  # alone past the limit: left out whole
    assert trace_headers()["baggage"] == full


def test_a_field_bound_without_a_trace_sends_nothing() -> None:
    bind_fields(Shop(tenant_id="acme"))
    assert trace_headers() == {}
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)  # a trace bound by hand: the field goes with it
    assert trace_headers()["baggage"] == "tenant_id=acme"
