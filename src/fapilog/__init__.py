"""A typed, leak-proof request context for Starlette and FastAPI services."""

from fapilog._internal.configure import FapilogHandler, configure_logging
from fapilog._internal.context import (
    ContextFields,
    RequestContext,
    bind_context,
    bind_fields,
    clear_context,
    context_copy,
    get_context,
)
from fapilog._internal.incoming import bind_trace_headers
from fapilog._internal.instrument import instrument_app
from fapilog._internal.json_formatter import JsonFormatter
from fapilog._internal.log_filter import ContextFilter
from fapilog._internal.middleware import TraceIDMiddleware
from fapilog._internal.propagation import trace_headers

__version__ = "0.1.0"  # the one place the version is written (pyproject reads it)

__all__ = [
    "ContextFields",
    "ContextFilter",
    "FapilogHandler",
    "JsonFormatter",
    "RequestContext",
    "TraceIDMiddleware",
    "bind_context",
    "bind_fields",
    "bind_trace_headers",
    "clear_context",
    "configure_logging",
    "context_copy",
    "get_context",
    "instrument_app",
    "trace_headers",
]
