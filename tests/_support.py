"""Helpers shared by test modules: an in-process HTTP client and record checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp

ALL_NONE = dict.fromkeys(
    ("trace_id", "span_id", "latency_ms", "status_code", "req_bytes", "res_bytes", "user_agent")
)


@asynccontextmanager
async def http_client(app: ASGIApp, *, raise_app_exceptions: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an httpx client that calls *app* in process, over ASGI."""
    transport = httpx.ASGITransport(app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def access_records(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    """Return the attributes of the access records among *records*, message rendered."""
    return [{**vars(record), "message": record.getMessage()} for record in records if record.name == "fapilog.access"]


def rendered(record: logging.LogRecord) -> str:
    """Return everything a handler could write of *record*: message and attributes."""
    return " ".join([record.getMessage(), *(str(value) for value in vars(record).values())])
