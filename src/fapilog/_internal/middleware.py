"""``TraceIDMiddleware``: binds the request context and writes the access log.

A pure ASGI middleware, not ``BaseHTTPMiddleware``: the app runs in this
middleware's own task, so what it binds flows into the app, its thread pool
and its background tasks, and wrapping ``receive``/``send`` sees every body
byte, streaming included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fapilog._internal.context import (
    EMPTY_CONTEXT,
    current_model,
    restore_model,
    bind_context,
    clear_context,
    get_context,
)
from fapilog._internal.ids import (
    DEFAULT_HEADER_NAME,
    generate_span_id,
    generate_trace_id,
    is_header_name,
    is_header_safe,
    is_valid_request_id,
    trace_id_from_traceparent,
)

__all__ = ["CONTEXT_ATTRIBUTE", "MAX_LINE_LENGTH", "MAX_PATH_LENGTH", "MAX_USER_AGENT_LENGTH", "TraceIDMiddleware"]

MAX_USER_AGENT_LENGTH: Final = 512
"""Longest ``user_agent`` bound or logged; longer values are cut."""
MAX_PATH_LENGTH: Final = 2048
"""Longest ``path`` in an access record; longer paths are cut."""
MAX_LINE_LENGTH: Final = 16 * 1024
"""Longest JSON line fapilog writes about a request, whatever the request held.

Request ids are at most 128 characters, and user agent and path are cut and
escaped to printable ASCII, so even with every character JSON-escaped an
access record stays below this (Docker's log driver splits longer lines)."""
CONTEXT_ATTRIBUTE: Final = "__fapilog_context__"
"""Set on an exception escaping a request: its context, for the server's error log."""

STATUS_CLIENT_CLOSED: Final = 499  # nginx's "client closed request"
STATUS_FAILED: Final = 500

_TRACEPARENT: Final = b"traceparent"
_USER_AGENT: Final = b"user-agent"

access_logger: Final = logging.getLogger("fapilog.access")
_logger: Final = logging.getLogger("fapilog.middleware")
_now: Final = time.perf_counter


def _printable(value: str, limit: int) -> str:
    """Return *value* cut to *limit* characters of printable ASCII, the rest escaped."""
    value = value[:limit]
    if value.isascii() and value.isprintable():
        return value
    return value.encode("unicode_escape", "backslashreplace").decode("ascii")[:limit]


def _log(logger: logging.Logger, level: int, message: str, *args: object, **kwargs: Any) -> None:
    """Log, but never let a broken logging setup fail the request."""
    try:
        logger.log(level, message, *args, **kwargs)
    except Exception:
        traceback.print_exc(file=sys.stderr)  # as logging's own handleError does


class TraceIDMiddleware:
    """Give every HTTP request and WebSocket a trace id, span id and user agent.

    Incoming ids are adopted only when valid — a W3C ``traceparent`` first,
    then the request-id header — and otherwise replaced by a generated one,
    never echoed, bound or logged. The trace id goes back in *header_name*.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = DEFAULT_HEADER_NAME,
        validator: Callable[[str], bool] = is_valid_request_id,
        generator: Callable[[], str] = generate_trace_id,
        trust_traceparent: bool = True,
    ) -> None:
        if not is_header_name(header_name):
            raise ValueError(f"header_name must be an HTTP header name, got {header_name!r}")
        sample = generator()
        if not sample or not is_header_safe(sample):
            raise ValueError(f"generator must return printable ASCII for a header, got {sample!r}")
        self.app = app
        self.header_name = header_name
        self.validator = validator
        self.generator = generator
        self.trust_traceparent = trust_traceparent
        self._header_key = header_name.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the context, run the app, log the access record, clear the context."""
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        start = _now()
        outer = current_model()
        try:
            trace_id, rejected = self._bind_incoming(scope)
            exchange = _Exchange(start, scope, receive, send, (self._header_key, trace_id.encode("latin-1")))
            if rejected:
                _log(
                    _logger,
                    logging.WARNING,
                    "Ignored an invalid incoming %s or traceparent header; the trace id is %s",
                    self.header_name,
                    trace_id,
                )
            try:
                if scope_type == "http":
                    await self.app(scope, exchange.receive, exchange.send)
                else:
                    await self.app(scope, receive, exchange.send_websocket)
            except BaseException as exc:
                exchange.finish()
                _attach_context(exc)
                raise
            exchange.finish()
        finally:
            clear_context()
            if outer is not EMPTY_CONTEXT:  # a request served inside another one, in process
                restore_model(outer)

    def _bind_incoming(self, scope: Scope) -> tuple[str, bool]:
        """Bind trace id, span id and user agent; return the trace id and whether an incoming id was rejected."""
        request_id: bytes | None = None
        traceparent: bytes | None = None
        user_agent: bytes | None = None
        header_key = self._header_key
        for name, value in scope["headers"]:
            if name == header_key:
                request_id = value if request_id is None else request_id
            elif name == _TRACEPARENT:
                traceparent = value if traceparent is None else traceparent
            elif name == _USER_AGENT:
                user_agent = value if user_agent is None else user_agent
        rejected = False
        trace_id: str | None = None
        if traceparent is not None and self.trust_traceparent:
            trace_id = trace_id_from_traceparent(traceparent.decode("latin-1"))
            rejected = trace_id is None
        if trace_id is None and request_id is not None:
            candidate = request_id.decode("latin-1")
            if is_header_safe(candidate) and self.validator(candidate):
                trace_id = candidate
            else:
                rejected = True
        if trace_id is None:
            trace_id = self.generator()
        bind_context(
            trace_id=trace_id,
            span_id=generate_span_id(),
            user_agent=None if user_agent is None else _printable(user_agent.decode("latin-1"), MAX_USER_AGENT_LENGTH),
        )
        return trace_id, rejected


def _attach_context(exc: BaseException) -> None:
    """Record the request's context on *exc*, for records the server logs after teardown."""
    with contextlib.suppress(Exception):  # a type that refuses attributes keeps its own behaviour
        setattr(exc, CONTEXT_ATTRIBUTE, get_context())


class _Exchange:
    """One request's measurements, taken by wrapping ``receive`` and ``send``."""

    __slots__ = (
        "_header",
        "_receive",
        "_send",
        "disconnected",
        "logged",
        "req_bytes",
        "res_bytes",
        "scope",
        "start",
        "status",
    )

    def __init__(self, start: float, scope: Scope, receive: Receive, send: Send, header: tuple[bytes, bytes]) -> None:
        self.start = start
        self.scope = scope
        self._receive = receive
        self._send = send
        self._header = header
        self.status: int | None = None
        self.req_bytes = 0
        self.res_bytes = 0
        self.disconnected = False
        self.logged = False

    def _set_header(self, message: Message) -> None:
        """Set the trace header in *message* exactly once, replacing the app's."""
        name = self._header[0]
        headers = [header for header in message.get("headers", ()) if header[0].lower() != name]
        headers.append(self._header)
        message["headers"] = headers

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.req_bytes += len(message.get("body", b""))
        else:  # "http.disconnect", the only other message a server sends here
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        message_type = message["type"]
        if message_type == "http.response.start":
            self.status = message["status"]
            self._set_header(message)
            await self._send(message)
        elif message_type == "http.response.body":
            try:
                await self._send(message)
            except OSError:  # servers on ASGI spec 2.4 say "client gone" this way
                self.disconnected = True
                raise
            self.res_bytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                self._complete(self.status)
        elif message_type == "http.response.pathsend":
            await self._send(message)
            with contextlib.suppress(OSError):
                self.res_bytes += os.path.getsize(message["path"])
            self._complete(self.status)
        else:
            await self._send(message)

    async def send_websocket(self, message: Message) -> None:
        if message["type"] == "websocket.accept":
            self._set_header(message)
        await self._send(message)

    def finish(self) -> None:
        """Log the access record now if the response never completed."""
        if not self.logged and self.scope["type"] == "http":
            self._complete(STATUS_CLIENT_CLOSED if self.disconnected else STATUS_FAILED)

    def _complete(self, status: int | None) -> None:
        """Write the one access record, with the response's measurements."""
        self.logged = True
        if access_logger.isEnabledFor(logging.INFO):
            latency_ms = (_now() - self.start) * 1000.0
            scope = self.scope
            method = scope["method"]
            path = _printable(scope["path"], MAX_PATH_LENGTH)
            extra = {
                **get_context(),
                "status_code": status,
                "latency_ms": latency_ms,
                "req_bytes": self.req_bytes,
                "res_bytes": self.res_bytes,
                "method": method,
                "path": path,
            }
            _log(access_logger, logging.INFO, "%s %s %s", method, path, status, extra=extra)
