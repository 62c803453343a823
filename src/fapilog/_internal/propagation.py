"""``trace_headers``: the outgoing headers that carry the current trace."""

from __future__ import annotations

from fapilog._internal.context import get_context
from fapilog._internal.ids import DEFAULT_HEADER_NAME, is_header_safe, is_w3c_span_id, is_w3c_trace_id

__all__ = ["trace_headers"]


def trace_headers(header_name: str = DEFAULT_HEADER_NAME) -> dict[str, str]:
    """Return the headers that carry the current trace to the next service.

    *header_name* gets the ``trace_id``; a W3C ``traceparent``
    (``00-<trace_id>-<span_id>-01``) is added when the ``trace_id`` is 32
    lowercase hex and a valid ``span_id`` is bound, so the next hop joins the
    trace as a child of this span. A ``trace_id`` that is not safe in a header
    is left out, so no bound value can inject a header line. Empty when no
    trace is bound.
    """
    context = get_context()
    trace_id = context["trace_id"]
    if not trace_id or not is_header_safe(trace_id):
        return {}
    headers = {header_name: trace_id}
    span_id = context["span_id"]
    if span_id is not None and is_w3c_span_id(span_id) and is_w3c_trace_id(trace_id):
        headers["traceparent"] = f"00-{trace_id}-{span_id}-01"
    return headers
