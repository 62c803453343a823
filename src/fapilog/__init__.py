"""A typed, leak-proof request context for Starlette and FastAPI services."""

from importlib.metadata import version as _version

from fapilog._internal.context import (
    RequestContext,
    bind_context,
    clear_context,
    context_copy,
    get_context,
)
from fapilog._internal.middleware import TraceIDMiddleware

__version__ = _version("fapilog")

__all__ = [
    "RequestContext",
    "TraceIDMiddleware",
    "bind_context",
    "clear_context",
    "context_copy",
    "get_context",
]
