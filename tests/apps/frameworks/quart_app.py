"""Quart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from quart import Quart, websocket

from fapilog import TraceIDMiddleware

logger = logging.getLogger("app")
released = asyncio.Event()
state: dict[str, str] = {}

app = Quart(__name__)


@app.before_serving
async def _startup() -> None:
    state["greeting"] = "ready"
    logger.info("started")


@app.get("/hello")
async def hello() -> str:
    logger.info("hello")
    return f"hello {state['greeting']}"


@app.get("/stream")
async def stream() -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one\n"
        await released.wait()
        yield b"two\n"

    return chunks()


@app.get("/release")
async def release() -> str:
    released.set()
    return "released"


@app.get("/fail")
async def fail() -> str:
    raise RuntimeError("failed on purpose")


@app.websocket("/ws")
async def echo() -> None:
    await websocket.accept()
    text = str(await websocket.receive())
    logger.info("ws got %s", text)
    await websocket.send(f"echo: {text}")
    await websocket.close(1000)


traced = TraceIDMiddleware(app)
