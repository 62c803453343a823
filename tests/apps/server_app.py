"""The app every real server runs in tests/test_servers.py, set up as the README's primary setup."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import StreamingResponse

from examples.fields import Shop
from fapilog import bind_fields, get_context, instrument_app

logger = logging.getLogger("server_app")
logger.info("imported")  # before any request: only a log config already applied makes it JSON


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    logger.info("lifespan started")
    yield


app = instrument_app(FastAPI(lifespan=lifespan))
app.add_middleware(
    CORSMiddleware,
    allow_origins=["https://shop.example"],
    allow_methods=["GET", "POST"],
    allow_headers=["X-Request-ID", "traceparent", "tracestate", "baggage"],
    expose_headers=["X-Request-ID", "traceresponse"],
)


@app.get("/")
async def home() -> dict[str, str | None]:
    logger.info("home visited")
    return {"trace_id": get_context()["trace_id"]}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(3):
            yield f"chunk {index}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@app.post("/echo")
async def echo(request: Request) -> dict[str, int]:
    return {"received": len(await request.body())}


@app.get("/fail")
async def fail() -> None:
    bind_fields(Shop(user_id="u-failing"))  # the server's error line carries it too
    raise RuntimeError("the endpoint failed on purpose")
