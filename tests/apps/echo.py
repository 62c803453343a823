"""Downstream services the propagation tests call: what arrived, echoed back."""

from __future__ import annotations

from typing import Any, Final

import httpx
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from fapilog import TraceIDMiddleware, get_context

__all__ = ["ECHOED", "header_echo", "recording_transport", "whoami"]

ECHOED: Final = ("traceparent", "tracestate", "baggage", "x-request-id")


def header_echo() -> Starlette:
    """An uninstrumented service: ``GET /echo`` answers every field line of the trace headers it received, by name."""

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({name: request.headers.getlist(name) for name in ECHOED})

    return Starlette(routes=[Route("/echo", echo)])


def whoami() -> FastAPI:
    """An instrumented service: ``GET /whoami`` answers the context it bound and the ``traceparent`` it received."""
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {"context": dict(get_context()), "traceparent": request.headers.get("traceparent")}

    app.add_middleware(TraceIDMiddleware)
    return app


def recording_transport(sent: list[httpx.Request]) -> httpx.MockTransport:
    """A transport that keeps each request in *sent* and answers 200."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    return httpx.MockTransport(handler)
