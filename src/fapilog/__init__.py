"""A typed, leak-proof request context for Starlette and FastAPI services."""

from importlib.metadata import version as _version

from fapilog._internal.configure import configure_logging
from fapilog._internal.context import (
    RequestContext,
    bind_context,
    clear_context,
    context_copy,
    get_context,
)
from fapilog._internal.json_formatter import JsonFormatter
from fapilog._internal.log_filter import ContextFilter
from fapilog._internal.middleware import TraceIDMiddleware
from fapilog._internal.propagation import trace_headers

__version__ = _version("fapilog")

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "RequestContext",
    "TraceIDMiddleware",
    "bind_context",
    "clear_context",
    "configure_logging",
    "context_copy",
    "get_context",
    "trace_headers",
]
