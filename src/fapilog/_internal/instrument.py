"""``instrument_app``: put TraceIDMiddleware outside a Starlette app's whole middleware stack.

``app.add_middleware`` places a middleware inside Starlette's
``ServerErrorMiddleware``, which sends the 500 response after the exception
has left: that response would carry no trace header and be logged with the
wrong byte count. Like OpenTelemetry's FastAPI instrumentation, ``instrument``
wraps the stack Starlette builds, so fapilog sees every response — 500s,
the debug page, CORS preflights — exactly as it went over the wire.

OpenTelemetry's FastAPI instrumentation wraps that stack too, and refuses a
stack it did not find as Starlette built it: it goes first, and fapilog then
takes its place just inside OpenTelemetry's middleware, where the server span
is current and every response is still seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypedDict, TypeVar, Unpack

from starlette.types import ASGIApp, Receive, Scope, Send

from fapilog._internal.incoming import Trust
from fapilog._internal.middleware import TraceIDMiddleware

__all__ = ["TraceOptions", "instrument_app"]

if TYPE_CHECKING:  # starlette.applications pulls in routing and more: not at import time
    from starlette.applications import Starlette

AppT = TypeVar("AppT", bound="Starlette")

_MARK: Final = "__fapilog_instrumented__"


class TraceOptions(TypedDict, total=False):
    """The keyword options of ``TraceIDMiddleware``."""

    header_name: str
    validator: Callable[[str], bool]
    generator: Callable[[], str]
    trust_incoming: Trust
    baggage_keys: Iterable[str] | None
    sampled: bool
    exclude_paths: Iterable[str]
    access_level: Callable[[int], int]
    update_request_header: bool


async def _not_built(scope: Scope, receive: Receive, send: Send) -> None:
    """Stand in until Starlette builds the stack, on the app's first call."""
    raise RuntimeError("the middleware stack is not built yet")  # pragma: no cover - Starlette builds it first


def instrument_app(app: AppT, **options: Unpack[TraceOptions]) -> AppT:
    """Wrap *app*'s whole middleware stack in ``TraceIDMiddleware``; return the app.

    The app's own exception handlers, debug page and every middleware added
    before or after this call run inside it. Options are checked now. Call it
    before the app serves; instrumenting an app twice is an error.
    """
    if app.middleware_stack is not None:
        raise RuntimeError("instrument_app() the app before it serves its first request")
    build = app.build_middleware_stack
    if getattr(build, _MARK, False):
        raise RuntimeError("this app is already instrumented")
    middleware = TraceIDMiddleware(_not_built, **options)

    def build_with_trace() -> ASGIApp:
        stack = build()
        otel: Any = getattr(stack, "app", None)  # OpenTelemetry's: ServerErrorMiddleware(OpenTelemetryMiddleware(...))
        if type(otel).__name__ == "OpenTelemetryMiddleware" and type(otel).__module__.startswith("opentelemetry."):
            middleware.app = otel.app
            otel.app = middleware
            return stack
        middleware.app = stack
        return middleware

    setattr(build_with_trace, _MARK, True)
    setattr(app, "build_middleware_stack", build_with_trace)  # an instance attribute: this app only
    return app
