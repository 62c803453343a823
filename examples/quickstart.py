import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from fapilog import configure_logging, get_context, instrument_app

configure_logging()  # every line on stderr as JSON with the request's context: yours, uvicorn's, the access line
app = instrument_app(FastAPI())  # fapilog outside the whole stack: 500s and preflights included
app.add_middleware(  # added before or after instrument_app(): inside it either way
    CORSMiddleware,
    allow_origins=["https://shop.example"],
    allow_headers=["X-Request-ID", "traceparent", "tracestate", "baggage"],
    expose_headers=["X-Request-ID", "traceresponse"],
)
logger = logging.getLogger("shop")


@app.get("/orders/{order_id}")
async def order(order_id: int) -> dict[str, object]:
    logger.info("order %s looked up", order_id)  # a JSON line with this request's trace_id
    return {"order_id": order_id, "trace_id": get_context()["trace_id"]}
