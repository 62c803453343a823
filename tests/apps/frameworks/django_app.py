"""Django through ``get_asgi_application()``: HTTP only (no lifespan, no WebSocket), as Django itself serves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from django.conf import settings

settings.configure(DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="not-a-secret")

from django.core.asgi import get_asgi_application  # noqa: E402  # after settings, as Django requires
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from fapilog import TraceIDMiddleware  # noqa: E402

logger = logging.getLogger("app")
released = asyncio.Event()


async def hello(request: HttpRequest) -> HttpResponse:
    logger.info("hello")
    return HttpResponse("hello no lifespan", content_type="text/plain")


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one\n"
        await released.wait()
        yield b"two\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def release(request: HttpRequest) -> HttpResponse:
    released.set()
    return HttpResponse("released", content_type="text/plain")


async def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("failed on purpose")


urlpatterns = [path("hello", hello), path("stream", stream), path("release", release), path("fail", fail)]

app = get_asgi_application()
traced = TraceIDMiddleware(app)
