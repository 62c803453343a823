"""An example FastAPI service using fapilog, run twice by the demo as A and B.

A calls B through the httpx integration, so one trace id shows up in both
services' log lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp

from examples.tasks import charge
from fapilog import get_context, instrument_app
from fapilog.httpx import instrument

logger = logging.getLogger("example")


def create_app(downstream: str | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> ASGIApp:
    """Return the service, instrumented so even its 500 responses carry the trace header.

    *downstream* is the base URL of the next service (``/chain`` calls it);
    *transport* lets a test route that call in process.
    """
    api = FastAPI()

    @api.get("/")
    async def home() -> dict[str, str | None]:
        logger.info("home visited")
        return {"trace_id": get_context()["trace_id"]}

    @api.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for number in range(3):
                await asyncio.sleep(0)
                yield f"chunk {number}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @api.get("/fail")
    async def fail() -> None:
        raise RuntimeError("the example endpoint failed on purpose")

    @api.post("/orders")
    async def create_order(background: BackgroundTasks) -> dict[str, str]:
        def send_confirmation() -> None:
            logger.info("confirmation email sent", extra={"order_id": "o-1"})

        background.add_task(send_confirmation)
        return {"order_id": "o-1"}

    @api.post("/checkout")
    def checkout() -> dict[str, str]:
        charge.delay("o-2")  # the worker's lines carry this request's trace id
        return {"order_id": "o-2"}

    @api.get("/chain")
    async def chain() -> dict[str, object]:
        if downstream is None:
            return {"downstream": None}
        async with instrument(httpx.AsyncClient(base_url=downstream, transport=transport)) as client:
            reply = await client.get("/")
        logger.info("called the downstream service")
        return {"trace_id": get_context()["trace_id"], "downstream": reply.json()}

    return instrument_app(api)
