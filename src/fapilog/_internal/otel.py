"""OpenTelemetry's current span, when its instrumentation runs outside fapilog.

When OpenTelemetry's ASGI or FastAPI instrumentation wraps fapilog's
middleware, its server span is current by the time fapilog binds. fapilog
then takes that span's trace id, span id, sampling decision and
``tracestate``, so every JSON line joins its span in the tracing backend.

OpenTelemetry is never imported here: it is only read when something else
already imported it, so without it a request costs one dictionary lookup.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Final

from fapilog._internal.context import SAMPLED, TraceState
from fapilog._internal.incoming import RANDOM
from fapilog._internal.warn_once import warn_once

__all__ = ["current_span"]

_KNOWN_FLAGS: Final = SAMPLED | RANDOM
_trace_state: Final = TraceState._make  # tuple.__new__: cheaper than the NamedTuple's own constructor


def current_span(otel_context: ModuleType, incoming: TraceState) -> tuple[TraceState, str] | None:
    """Return OpenTelemetry's current span as the trace to bind, and its span id; else ``None``.

    *otel_context* is the ``opentelemetry.context`` module, already imported
    by someone else. The *incoming* parent-id is kept when the span continues that trace, and
    its ``baggage`` always. No current span, a span context that is invalid,
    or one that cannot be read: ``None``, and fapilog's own ids stand. So
    does a recording span that is no server span: one enclosing the server
    or an in-process call, not this request's own.
    """
    try:
        trace = sys.modules.get("opentelemetry.trace")
        current = otel_context.get_current()
        if trace is None or not current:  # an empty OpenTelemetry context holds no span
            return None
        span = trace.get_current_span(current)
        kind = getattr(span, "kind", None)  # recording spans have one; a sampled-out server span has none
        if kind is not None and kind is not trace.SpanKind.SERVER:  # an enclosing span, not this request's
            return None
        context = span.get_span_context()
        if not context.is_valid:
            return None
        trace_id = context.trace_id.to_bytes(16, "big").hex()  # twice as fast as a format string
        otel_span_id = context.span_id.to_bytes(8, "big").hex()
        flags = context.trace_flags & _KNOWN_FLAGS
        tracestate = context.trace_state.to_header() if context.trace_state else None
    except Exception as exc:  # a broken tracer or span must not fail the request
        warn_once("opentelemetry", f"fapilog could not read OpenTelemetry's current span ({type(exc).__name__}); it uses its own ids")
        return None
    parent = incoming.parent_span_id if incoming.trace_id == trace_id else None
    return _trace_state((trace_id, parent, flags, tracestate, incoming.baggage)), otel_span_id
