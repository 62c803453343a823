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
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, TypeAlias

from starlette.types import Message, Receive, Scope, Send

from fapilog._internal.context import (
    EMPTY_CONTEXT,
    FieldScope,
    attach_context,
    bind_trace,
    bind_values,
    current_model,
    declared,
    restore_model,
    restore_unscoped,
    unscoped_fields,
)
from fapilog._internal.ids import DEFAULT_HEADER_NAME, generate_trace_id, is_valid_request_id
from fapilog._internal.incoming import REPLACED_MESSAGE, TraceReader, Trust
from fapilog._internal.otel import current_span
from fapilog._internal.records import MAX_METHOD_LENGTH, MAX_PATH_LENGTH, MAX_USER_AGENT_LENGTH, log_own, log_safely, printable
from fapilog._internal.writer import stop_all

__all__ = ["AnyASGIApp", "TraceIDMiddleware", "level_by_status"]

AnyASGIApp: TypeAlias = Callable[..., Awaitable[None]]
"""Any ASGI 3 application: Starlette's type, or the narrower ones Litestar, Quart and Django declare."""

STATUS_SWITCHING: Final = 101  # a WebSocket the app accepted
STATUS_CLIENT_CLOSED: Final = 499  # nginx's "client closed request"
STATUS_FAILED: Final = 500
STATUS_REFUSED: Final = 403  # what servers answer to a WebSocket closed before it was accepted

_TRACERESPONSE: Final = b"traceresponse"
_BOUND: Final = "fapilog.bound"
"""Scope key set by the outermost TraceIDMiddleware: an inner one (a mounted sub-app's) passes the request through."""
_FLAGS_TEXT: Final = ("-00", "-01", "-02", "-03")  # by the known flags, sampled and random
_LIFESPAN_ENDS: Final = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})

access_logger: Final = logging.getLogger("fapilog.access")
request_hooks: Final[list[Callable[[], Callable[[], object] | None]]] = []
"""Run in each request's task right after its trace is bound: how an integration (Sentry's) joins a request.

A hook may return a callable that puts back what it changed: it runs when a
request served inside another one, in process, ends, so the outer request
finds its own state again."""


def level_by_status(status: int) -> int:
    """Return the default level of an access record: ``ERROR`` for 5xx, ``WARNING`` for 4xx, else ``INFO``."""
    if status >= 500:
        return logging.ERROR
    if status >= 400:
        return logging.WARNING
    return logging.INFO


_logger: Final = logging.getLogger("fapilog.middleware")
_now: Final = time.perf_counter
_modules: Final = sys.modules


class TraceIDMiddleware:
    """Give every HTTP request and WebSocket a trace id, span id and user agent.

    Incoming ids are adopted only when valid — a W3C ``traceparent`` first,
    then the request-id header — and otherwise replaced by a generated one,
    never echoed, bound or logged. The response carries the client's own
    valid request id in *header_name* (else the trace id) and a W3C
    ``traceresponse``. The app sees the request headers the client sent;
    with *update_request_header*, that same id is in them too. A new trace
    is sampled when *sampled*; an adopted one keeps its flags.
    *trust_incoming* and *baggage_keys* say how far callers are trusted
    (``"none"`` at an edge: every request starts a new trace; see ``TraceReader``).

    The access record of a successful (below 400) request to one of
    *exclude_paths* — exact paths, or prefixes ending in ``*`` — is left out;
    the context is bound all the same. *access_level* maps a status to the
    access record's level (default: ``level_by_status``).

    A request an outer ``TraceIDMiddleware`` already serves (a mounted
    sub-app instrumented too) passes through: one trace, one access record.

    Each request gets an app-field scope of its own (once a ``ContextFields``
    subclass exists): a field bound anywhere in the request reaches the rest
    of it and its access record, and no other request. Fields declared for
    propagation are bound from the incoming ``baggage`` the trust options let
    through.
    """

    def __init__(
        self,
        app: AnyASGIApp,
        *,
        header_name: str = DEFAULT_HEADER_NAME,
        validator: Callable[[str], bool] = is_valid_request_id,
        generator: Callable[[], str] = generate_trace_id,
        trust_incoming: Trust = "all",
        baggage_keys: Iterable[str] | None = None,
        sampled: bool = True,
        exclude_paths: Iterable[str] = (),
        access_level: Callable[[int], int] = level_by_status,
        update_request_header: bool = False,
    ) -> None:
        self._reader = TraceReader(  # checks the options: a ValueError for a bad one
            header_name=header_name,
            validator=validator,
            generator=generator,
            trust_incoming=trust_incoming,
            baggage_keys=baggage_keys,
            sampled=sampled,
        )
        self.app = app
        self.header_name = header_name
        self.update_request_header = update_request_header
        self._reply_names = frozenset({self._reader.header_key, _TRACERESPONSE})
        self._quiet_paths, self._quiet_prefixes = _excluded(exclude_paths)
        self._quiet = bool(self._quiet_paths or self._quiet_prefixes)
        self._levels = _Levels(access_level)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the context, run the app, log the access record, put back the context found."""
        scope_type = scope["type"]
        if (scope_type != "http" and scope_type != "websocket") or _BOUND in scope:
            await self.app(scope, receive, _writing_out_logs(send) if scope_type == "lifespan" else send)
            return
        scope[_BOUND] = True
        outer = current_model()
        fields = FieldScope() if declared.now.names else None  # bound with the request's trace: no ContextVar to set
        outer_fields = None if fields is None else unscoped_fields()
        exchange: _Exchange | None = None
        try:
            exchange = _Exchange(self, scope, receive, send, fields)
            try:
                if scope_type == "http":
                    await self.app(scope, exchange.receive, exchange.send)
                else:
                    await self.app(scope, exchange.receive_websocket, exchange.send_websocket)
            except BaseException as exc:
                exchange.failed = True
                exchange.finish()
                if exchange.disconnected and _client_left(exc):
                    return  # the client's doing, logged as 499: no traceback for the server to log at ERROR
                attach_context(exc)
                raise
            exchange.finish()
        finally:
            restore_model(outer)  # empty, unless a request served this one inside it, in process
            if outer_fields is not None and unscoped_fields() is not outer_fields:  # the app cleared its context
                restore_unscoped(outer_fields)
            if outer is not EMPTY_CONTEXT and exchange is not None:
                exchange.undo_hooks()


def _writing_out_logs(send: Send) -> Send:
    """Return *send*, which writes out the log queues (``enqueue=True``) as the app's lifespan ends.

    The server logs its last lines after that, then may end the process by a
    signal's default action, where no ``atexit`` runs (uvicorn re-raises
    SIGTERM): those lines are written at once, by their caller.
    """

    async def forward(message: Message) -> None:
        if message["type"] in _LIFESPAN_ENDS:
            stop_all()
        await send(message)

    return forward


def _excluded(paths: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Split *paths* into exact paths and prefixes; a ``ValueError`` for one that can never match."""
    if isinstance(paths, str):
        raise ValueError(f"exclude_paths must be a collection of paths, got the string {paths!r}")
    exact: set[str] = set()
    prefixes: list[str] = []
    entries: Iterable[object] = paths  # untyped callers may pass anything
    for path in entries:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"exclude_paths entries must be paths starting with '/', got {path!r}")
        if path.endswith("*"):
            prefixes.append(path[:-1])
        else:
            exact.add(path)
    return frozenset(exact), tuple(prefixes)


class _Levels(dict[int, int]):
    """The access record's level by status: the user's mapping runs once per status, not per request.

    Checked at startup on 200, 404 and 500 (a ``ValueError`` if it fails or
    returns no ``int``); a status it fails on later gets the default level,
    so the mapping can never fail a response.
    """

    def __init__(self, access_level: Callable[[int], int]) -> None:
        super().__init__()
        self._access_level = access_level
        for status in (200, 404, 500):
            try:
                level = access_level(status)
            except Exception as exc:
                raise ValueError(f"access_level failed for status {status}: {exc!r}") from exc
            if type(level) is not int:
                raise ValueError(f"access_level must map a status code to a logging level (an int), got {level!r} for {status}")
            self[status] = level

    def __missing__(self, status: int) -> int:
        try:
            mapped: object = self._access_level(status)
        except Exception:
            mapped = None
        level = mapped if type(mapped) is int else level_by_status(status)
        self[status] = level
        return level


def _agent(user_agent: bytes) -> str:
    """Return the user agent as bound and logged: UTF-8, the rest escaped, printable ASCII, bounded."""
    if user_agent.isascii():  # the usual case, at ASCII decoding's speed
        return printable(user_agent.decode("ascii"), MAX_USER_AGENT_LENGTH)
    return printable(user_agent.decode("utf-8", "replace"), MAX_USER_AGENT_LENGTH)  # as servers decode paths


def _client_left(exc: BaseException) -> bool:
    """Return whether *exc* is Starlette's ``ClientDisconnect``, raised because the client left."""
    requests = _modules.get("starlette.requests")  # not imported: the exception cannot be one of its classes
    return requests is not None and isinstance(exc, requests.ClientDisconnect)


class _Frames:
    """A WebSocket's messages each way, with their payload bytes, and the close code either side sent first."""

    __slots__ = ("close_code", "received", "sent")

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.close_code: int | None = None


def _payload_size(message: Message) -> int:
    """Return the bytes a WebSocket message carries: its ``bytes``, or its ``text`` as UTF-8."""
    data = message.get("bytes")
    if data is not None:
        return len(data)
    text = message.get("text")
    return 0 if text is None else len(text.encode("utf-8", "surrogatepass"))


class _Exchange:
    """One request: its trace, bound on creation, and its measurements, taken by wrapping ``receive`` and ``send``.

    Method and path are read when the request starts: a framework may rewrite
    the scope's path while it serves (Litestar strips a mount's prefix).
    """

    __slots__ = (
        "_headers",
        "_names",
        "_receive",
        "_send",
        "disconnected",
        "failed",
        "frames",
        "logged",
        "method",
        "middleware",
        "parent_span_id",
        "path",
        "req_bytes",
        "request_id",
        "res_bytes",
        "start",
        "status",
        "undo",
    )

    def __init__(self, middleware: TraceIDMiddleware, scope: Scope, receive: Receive, send: Send, fields: FieldScope | None) -> None:
        """Bind the incoming trace; with ``update_request_header``, align the request's id header with the response's."""
        self.start = _now()
        headers = scope.get("headers", ())
        state, span_id, request_id, request_id_sent, user_agent, rejected, w3c, incoming_fields = middleware._reader.read(headers)
        otel_context = _modules.get("opentelemetry.context")
        if otel_context is not None:  # else OpenTelemetry is not even imported: one lookup per request
            otel = current_span(otel_context, state)
            if otel is not None:  # its instrumentation runs outside: its server span is this request's
                state, span_id = otel
                w3c = True
        trace_id = state.trace_id
        agent = None if user_agent is None else _agent(user_agent)
        bind_trace(trace_id, span_id, agent, state, fields)
        if incoming_fields:
            bind_values(incoming_fields)
        self.undo = _run_hooks() if request_hooks else None
        key = middleware._reader.header_key
        trace_bytes = trace_id.encode("latin-1")
        if request_id is None:  # absent, empty or invalid: the response carries the trace id
            request_id = trace_id
            if middleware.update_request_header:
                if request_id_sent:
                    headers = [header for header in headers if header[0] != key]
                scope["headers"] = [*headers, (key, trace_bytes)]
            reply = [(key, trace_bytes)]
        else:
            reply = [(key, request_id.encode("latin-1"))]
        if w3c:
            reply.append((_TRACERESPONSE, f"00-{trace_id}-{span_id}{_FLAGS_TEXT[state.flags]}".encode("latin-1")))
        if rejected:
            log_safely(_logger, logging.WARNING, REPLACED_MESSAGE, middleware.header_name, trace_id)
        self.middleware = middleware
        self.method: str = scope.get("method", "GET")  # a WebSocket opens with a GET
        self.path: str = scope.get("path", "")
        self.frames = None if scope["type"] == "http" else _Frames()
        self._receive = receive
        self._send = send
        self._names = middleware._reply_names
        self._headers = reply
        self.parent_span_id = state.parent_span_id
        self.request_id = request_id
        self.status: int | None = None
        self.req_bytes = 0
        self.res_bytes = 0
        self.disconnected = False
        self.failed = False
        self.logged = False

    def undo_hooks(self) -> None:
        """Put back what the request hooks changed, for the request this one was served inside."""
        for undo in reversed(self.undo or ()):
            with contextlib.suppress(Exception):
                undo()

    def _set_header(self, message: Message) -> None:
        """Set the trace headers in *message* exactly once each, replacing the app's."""
        names = self._names
        headers = [header for header in message.get("headers", ()) if header[0].lower() not in names]
        headers += self._headers
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
            if not self.disconnected:  # once the client is gone, a server writes nothing
                self.res_bytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                self._complete(STATUS_CLIENT_CLOSED if self.disconnected else self.status)
        elif message_type == "http.response.pathsend":
            await self._send(message)
            if not self.disconnected:
                with contextlib.suppress(OSError):
                    self.res_bytes += os.path.getsize(message["path"])
            self._complete(STATUS_CLIENT_CLOSED if self.disconnected else self.status)
        else:
            await self._send(message)

    async def receive_websocket(self) -> Message:
        message = await self._receive()
        frames = self.frames
        assert frames is not None  # a WebSocket's exchange has them
        message_type = message["type"]
        if message_type == "websocket.receive":
            frames.received += 1
            self.req_bytes += _payload_size(message)
        elif message_type == "websocket.disconnect":
            self.disconnected = True
            if frames.close_code is None:
                frames.close_code = message.get("code", 1005)  # 1005: no code received
        return message

    async def send_websocket(self, message: Message) -> None:
        frames = self.frames
        assert frames is not None
        message_type = message["type"]
        if message_type == "websocket.accept":
            self.status = STATUS_SWITCHING
            self._set_header(message)
        elif message_type == "websocket.send":
            frames.sent += 1
            self.res_bytes += _payload_size(message)
        elif message_type == "websocket.close":
            if frames.close_code is None:
                frames.close_code = message.get("code", 1000)
            if self.status is None:
                self.status = STATUS_REFUSED
        elif message_type == "websocket.http.response.start":  # the denial response extension
            self.status = message["status"]
            self._set_header(message)
        elif message_type == "websocket.http.response.body":
            self.res_bytes += len(message.get("body", b""))
        await self._send(message)

    def finish(self) -> None:
        """Log the access record now if the response never completed; a WebSocket's when it ends."""
        if self.logged:
            return
        status = self.status
        if self.frames is None:
            self._complete(STATUS_CLIENT_CLOSED if self.disconnected else STATUS_FAILED)
        elif self.disconnected:  # an exception now is the app noticing the client left
            self._complete(STATUS_CLIENT_CLOSED if status is None else status)
        else:
            self._complete(STATUS_FAILED if status is None or self.failed else status)

    def _complete(self, status: int | None) -> None:
        """Write the one access record, with the response's measurements, unless its path is excluded."""
        self.logged = True
        middleware = self.middleware
        code = STATUS_FAILED if status is None else status
        raw_path = self.path
        if middleware._quiet and code < 400:
            if raw_path in middleware._quiet_paths or raw_path.startswith(middleware._quiet_prefixes):
                return
        level = middleware._levels[code]
        if access_logger.isEnabledFor(level):
            latency_ms = (_now() - self.start) * 1000.0
            method = printable(self.method, MAX_METHOD_LENGTH)
            path = printable(raw_path, MAX_PATH_LENGTH)
            context = current_model().__dict__  # the seven, as get_context() has them, without its copy
            extra = {
                "trace_id": context["trace_id"],
                "span_id": context["span_id"],
                "latency_ms": latency_ms,
                "status_code": status,
                "req_bytes": self.req_bytes,
                "res_bytes": 0 if method == "HEAD" else self.res_bytes,  # the server sends no body
                "user_agent": context["user_agent"],
                "method": method,
                "path": path,
                "parent_span_id": self.parent_span_id,
                "request_id": self.request_id,
            }
            frames = self.frames
            if frames is not None:
                extra["messages_in"] = frames.received
                extra["messages_out"] = frames.sent
                extra["close_code"] = frames.close_code
            log_own(access_logger, level, "%s %s %s", method, path, status, extra=extra)


def _run_hooks() -> list[Callable[[], object]]:
    """Run the request hooks; return what each gave to undo its change."""
    undo: list[Callable[[], object]] = []
    for hook in request_hooks:
        with contextlib.suppress(Exception):  # an integration must not fail the request
            restore = hook()
            if restore is not None:
                undo.append(restore)
    return undo
