"""Outgoing headers: the current trace, ready for the next service or message."""

from __future__ import annotations

from fapilog._internal.context import EMPTY_TRACE_STATE, RequestContext, current_model, trace_state
from fapilog._internal.ids import DEFAULT_HEADER_NAME, is_header_safe, is_w3c_span_id, is_w3c_trace_id

__all__ = ["outgoing_headers", "trace_headers"]


def trace_headers(header_name: str = DEFAULT_HEADER_NAME) -> dict[str, str]:
    """Return the headers that carry the current trace to the next service.

    *header_name* gets the ``trace_id``. When the ``trace_id`` is 32 lowercase
    hex and a valid ``span_id`` is bound, a W3C ``traceparent`` names this span
    as the parent, with the trace's sampled and random flags, followed by the
    ``tracestate`` the trace arrived with; ``baggage`` goes with any trace. A
    ``trace_id`` that is not safe in a header is left out, so no bound value
    can inject a header line. Empty when no trace is bound.
    """
    context = current_model()
    return outgoing_headers(context, header_name, context.span_id)


def outgoing_headers(context: RequestContext, header_name: str, parent_id: str | None) -> dict[str, str]:
    """Return the headers that carry *context*'s trace, with *parent_id* as the ``traceparent``'s parent."""
    trace_id = context.trace_id
    if not trace_id or not is_header_safe(trace_id):
        return {}
    headers = {header_name: trace_id}
    state = trace_state(context)
    if state.trace_id != trace_id:  # a trace bound by hand: default flags, nothing else
        state = EMPTY_TRACE_STATE
    if parent_id is not None and is_w3c_span_id(parent_id) and is_w3c_trace_id(trace_id):
        headers["traceparent"] = f"00-{trace_id}-{parent_id}-{state.flags:02x}"
        if state.tracestate is not None:
            headers["tracestate"] = state.tracestate
    if state.baggage is not None:
        headers["baggage"] = state.baggage
    return headers
