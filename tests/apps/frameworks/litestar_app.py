"""Litestar, with the logging config docs/frameworks.md gives: its own lines go to fapilog's handler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, WebSocket, get, websocket
from litestar.datastructures import State
from litestar.logging.config import LoggingConfig
from litestar.response import Stream

from fapilog import TraceIDMiddleware

logger = logging.getLogger("app")
released = asyncio.Event()
state: dict[str, str] = {}


def _startup() -> None:
    state["greeting"] = "ready"
    logger.info("started")


@get("/hello")
async def hello() -> str:
    logger.info("hello")
    return f"hello {state['greeting']}"


@get("/stream")
async def stream() -> Stream:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one\n"
        await released.wait()
        yield b"two\n"

    return Stream(chunks())


@get("/release")
async def release() -> str:
    released.set()
    return "released"


@get("/fail")
async def fail() -> None:
    raise RuntimeError("failed on purpose")


@websocket("/ws")
async def echo(socket: WebSocket[Any, Any, State]) -> None:
    await socket.accept()
    text = await socket.receive_text()
    logger.info("ws got %s", text)
    await socket.send_text(f"echo: {text}")
    await socket.close(code=1000)


app = Litestar(
    route_handlers=[hello, stream, release, fail, echo],
    on_startup=[_startup],
    # Litestar's default config replaces the root logger's handlers (fapilog's) with its own
    # text handler; this keeps them, and sends Litestar's own lines, its exceptions included, there.
    logging_config=LoggingConfig(
        configure_root_logger=False,
        loggers={"litestar": {"level": "INFO", "handlers": [], "propagate": True}},
        log_exceptions="always",
    ),
)
traced = TraceIDMiddleware(app)
