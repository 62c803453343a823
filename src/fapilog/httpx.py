"""httpx integration: every outgoing request carries the current trace.

Needs the ``httpx`` extra (``pip install fapilog[httpx]``)::

    from fapilog.httpx import instrument

    client = instrument(httpx.AsyncClient())   # or httpx.Client()

Headers the caller set, on the request or the client, are never overwritten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from fapilog._internal.ids import DEFAULT_HEADER_NAME
from fapilog._internal.propagation import trace_headers

__all__ = ["async_request_hook", "instrument", "request_hook"]

ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)


def request_hook(header_name: str = DEFAULT_HEADER_NAME) -> Callable[[httpx.Request], None]:
    """Return an ``httpx.Client`` request event hook that adds the trace headers."""

    def add_trace_headers(request: httpx.Request) -> None:
        headers = request.headers
        for name, value in trace_headers(header_name).items():
            if name not in headers:
                headers[name] = value

    return add_trace_headers


def async_request_hook(header_name: str = DEFAULT_HEADER_NAME) -> Callable[[httpx.Request], Awaitable[None]]:
    """Return an ``httpx.AsyncClient`` request event hook that adds the trace headers."""
    add_trace_headers = request_hook(header_name)

    async def add_trace_headers_async(request: httpx.Request) -> None:
        add_trace_headers(request)

    return add_trace_headers_async


def instrument(client: ClientT, *, header_name: str = DEFAULT_HEADER_NAME) -> ClientT:
    """Add the trace-header hook to *client*'s request hooks; return the client."""
    if isinstance(client, httpx.AsyncClient):
        client.event_hooks["request"].append(async_request_hook(header_name))
    else:
        client.event_hooks["request"].append(request_hook(header_name))
    return client
