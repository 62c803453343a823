"""HTTP in the test's own process: a client that calls an app over ASGI, and a real uvicorn in the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx
import uvicorn
from starlette.types import ASGIApp

__all__ = ["http_client", "preflight", "running_server"]


def preflight(method: str = "GET") -> dict[str, str]:
    """Return the headers of a browser's CORS preflight from https://shop.example for *method*."""
    return {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "x-request-id, traceparent",
    }


@asynccontextmanager
async def http_client(app: ASGIApp, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an httpx client that calls *app* in process, over ASGI."""
    transport = httpx.ASGITransport(app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@asynccontextmanager
async def running_server(app: ASGIApp, *, http: Literal["auto", "h11", "httptools"] = "auto") -> AsyncIterator[str]:
    """Serve *app* with a real uvicorn (HTTP parser *http*) on 127.0.0.1 and a free port; yield its URL.

    uvicorn runs in the test's own event loop and leaves logging alone
    (``log_config=None``), so records it emits reach the test's handlers.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    # Listening before uvicorn starts: connections wait in the backlog until
    # it accepts them, so no request can race the server's startup.
    sock.listen(1024)
    port = sock.getsockname()[1]
    # An idle keep-alive connection is never closed mid-test: uvicorn's default
    # (5 s) races a client that reuses that connection just then.
    config = uvicorn.Config(
        app, http=http, log_config=None, lifespan="off", timeout_keep_alive=600, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
