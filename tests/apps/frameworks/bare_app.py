"""A bare ASGI callable: no framework at all."""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Message, Receive, Scope, Send

from fapilog import TraceIDMiddleware

logger = logging.getLogger("app")
released = asyncio.Event()
state: dict[str, str] = {}


async def _text(send: Send, body: str, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode()})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            state["greeting"] = "ready"
            logger.info("started")
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    message: Message = await receive()
    logger.info("ws got %s", message["text"])
    await send({"type": "websocket.send", "text": f"echo: {message['text']}"})
    await send({"type": "websocket.close", "code": 1000})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "websocket":
        await _websocket(receive, send)
    elif scope["path"] == "/hello":
        logger.info("hello")
        await _text(send, f"hello {state['greeting']}")
    elif scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"one\n", "more_body": True})
        await released.wait()
        await send({"type": "http.response.body", "body": b"two\n"})
    elif scope["path"] == "/release":
        released.set()
        await _text(send, "released")
    elif scope["path"] == "/fail":
        raise RuntimeError("failed on purpose")
    else:
        await _text(send, "not found", 404)


traced = TraceIDMiddleware(app)
