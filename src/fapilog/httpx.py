"""httpx integration: every outgoing request is a child span of the current trace.

Needs the ``httpx`` extra (``pip install "fapilog-context[httpx]"``)::

    from fapilog.httpx import instrument

    client = instrument(httpx.AsyncClient())   # or httpx.Client()

Each request gets a new span id, sent as the ``traceparent``'s parent-id with
the trace's flags, ``tracestate`` and ``baggage``, and logged once on
``fapilog.client`` — a failed call too — so a trace tree can be rebuilt from
the logs (a trace id that is no W3C one, a client's request id, goes out
alone: no ``traceparent`` carries the span). Headers the caller set, on the request or the client, are never
overwritten: a ``traceparent`` set by someone else (OpenTelemetry's own
instrumentation, say) is kept, and the record names its span — also when
that instrumentation sits inside fapilog's and replaces fapilog's header.
A ``baggage`` already set (Sentry's httpx integration writes one) gets the
trace's members it lacks.

``propagate_to`` keeps ``tracestate`` and ``baggage`` (which may hold internal
state) to the hosts named: a third-party API gets the trace, not the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Final, TypeVar

import httpx

from fapilog._internal.context import current_model
from fapilog._internal.ids import DEFAULT_HEADER_NAME, generate_span_id
from fapilog._internal.incoming import parse_traceparent
from fapilog._internal.records import MAX_METHOD_LENGTH, MAX_PATH_LENGTH, log_own, printable
from fapilog._internal.propagation import add_header, outgoing_headers

__all__ = ["instrument"]

ClientT = TypeVar("ClientT", httpx.Client, httpx.AsyncClient)

client_logger: Final = logging.getLogger("fapilog.client")
_OURS: Final = "fapilog.traceparent"  # request extension: the traceparent fapilog set
_OUR_STATE: Final = "fapilog.state"  # request extension: each state header as it was, and as fapilog left it
_STATE_HEADERS: Final = frozenset({"tracestate", "baggage"})
_now: Final = time.perf_counter


class _Hosts:
    """The hosts a trace's ``tracestate`` and ``baggage`` may go to: exact names, and ``*.`` for subdomains."""

    __slots__ = ("exact", "suffixes")

    def __init__(self, hosts: Iterable[str]) -> None:
        if isinstance(hosts, str):
            raise ValueError(f"propagate_to must be a collection of hosts, got the string {hosts!r}")
        entries: Iterable[object] = hosts  # untyped callers may pass anything
        exact: set[str] = set()
        suffixes: list[str] = []
        for host in entries:
            if not isinstance(host, str) or host.strip("*.") == "" or "*" in host.removeprefix("*."):
                raise ValueError(f"propagate_to entries must be host names, or '*.' and a domain, got {host!r}")
            if host.startswith("*."):
                suffixes.append(host[1:].lower())
            else:
                exact.add(host.lower())
        self.exact = frozenset(exact)
        self.suffixes = tuple(suffixes)

    def allow(self, host: str) -> bool:
        """Return whether *host* (lowercase, as httpx has it) may receive them."""
        return host in self.exact or host.endswith(self.suffixes)


class _Call:
    """One outgoing request: its span, its headers and its record."""

    __slots__ = ("parent_span_id", "request", "sent", "span_id", "start", "trace_id")

    def __init__(self, request: httpx.Request, header_name: str, hosts: _Hosts | None) -> None:
        self.request = request
        self.start = _now()
        context = current_model()
        self.trace_id = context.trace_id
        self.parent_span_id = context.span_id
        self.span_id: str | None = None
        self.sent: str | None = None  # the traceparent as this wrapper passed the request on
        if self.trace_id is None:
            return
        headers = request.headers
        extensions = request.extensions
        private = hosts is not None and not hosts.allow(request.url.host)
        if private:  # a redirect copied the state fapilog added for the previous host: not for this one
            for name, (before, after) in extensions.get(_OUR_STATE, {}).items():
                if headers.get(name) == after:
                    if before is None:
                        del headers[name]
                    else:
                        headers[name] = before
        existing = headers.get("traceparent")
        ours = existing is None or existing == extensions.get(_OURS)
        if ours:  # a new span, also when httpx re-sends our own request (a redirect copies its headers)
            self.span_id = parent_id = generate_span_id()
        else:  # someone else propagates (OpenTelemetry, say): keep theirs, name their span
            self.span_id, parent_id = _span_of(str(existing)), None
        state: dict[str, tuple[str | None, str]] = {}
        for name, value in outgoing_headers(context, header_name, parent_id).items():
            if ours and name == "traceparent":
                headers[name] = value
            elif name not in _STATE_HEADERS:
                add_header(headers, name, value)
            elif not private:
                before = headers.get(name)
                add_header(headers, name, value)
                if headers[name] != before:
                    state[name] = (before, headers[name])
        if state:
            extensions.setdefault(_OUR_STATE, {}).update(state)
        if ours:
            extensions[_OURS] = headers.get("traceparent")
        self.sent = headers.get("traceparent")

    def log(self, status_code: int | None, error: BaseException | None = None) -> None:
        """Write the call's one ``fapilog.client`` record."""
        if not client_logger.isEnabledFor(logging.INFO):
            return
        sent = self.request.headers.get("traceparent")
        if sent is not None and sent != self.sent:  # replaced inside this wrapper (OpenTelemetry's own): its span
            self.span_id = _span_of(sent)
        url = self.request.url
        where = printable(f"{url.scheme}://{url.netloc.decode('ascii', 'backslashreplace')}{url.path}", MAX_PATH_LENGTH)
        method = printable(self.request.method, MAX_METHOD_LENGTH)
        extra: dict[str, object] = {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "method": method,
            "url": where,
            "status_code": status_code,
            "latency_ms": (_now() - self.start) * 1000.0,
        }
        if error is None:
            log_own(client_logger, logging.INFO, "%s %s %s", method, where, status_code, extra=extra)
        else:
            extra["error"] = type(error).__qualname__
            log_own(client_logger, logging.INFO, "%s %s failed: %s", method, where, extra["error"], extra=extra)


def _span_of(traceparent: str) -> str | None:
    """Return the parent-id a ``traceparent`` names: the span of the call that sent it."""
    parsed = parse_traceparent(traceparent.encode("latin-1", "replace"))
    return None if parsed is None else parsed[1]


class _Transport(httpx.BaseTransport):
    """Wrap a transport: each request is a child span, logged once."""

    def __init__(self, inner: httpx.BaseTransport, header_name: str, hosts: _Hosts | None) -> None:
        self.inner = inner
        self.header_name = header_name
        self.hosts = hosts

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = _Call(request, self.header_name, self.hosts)
        try:
            response = self.inner.handle_request(request)
        except BaseException as exc:
            call.log(None, exc)
            raise
        call.log(response.status_code)
        return response

    def close(self) -> None:
        self.inner.close()


class _AsyncTransport(httpx.AsyncBaseTransport):
    """Wrap an async transport: each request is a child span, logged once."""

    def __init__(self, inner: httpx.AsyncBaseTransport, header_name: str, hosts: _Hosts | None) -> None:
        self.inner = inner
        self.header_name = header_name
        self.hosts = hosts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = _Call(request, self.header_name, self.hosts)
        try:
            response = await self.inner.handle_async_request(request)
        except BaseException as exc:
            call.log(None, exc)
            raise
        call.log(response.status_code)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def instrument(
    client: ClientT, *, header_name: str = DEFAULT_HEADER_NAME, propagate_to: Iterable[str] | None = None
) -> ClientT:
    """Make every request of *client* a traced child span; return the client.

    Wraps the client's transports (its default one and every mount), as
    OpenTelemetry's httpx instrumentation does, so the record of a call that
    fails before a response is still written. With *propagate_to* (host
    names; ``"*.example.com"`` for its subdomains), only those hosts get the
    trace's ``tracestate`` and ``baggage``; every host gets the trace itself.
    An entry that is no host is a ``ValueError``. Instrumenting twice changes nothing.
    """
    hosts = None if propagate_to is None else _Hosts(propagate_to)
    if isinstance(client, httpx.AsyncClient):
        if not isinstance(client._transport, _AsyncTransport):
            client._transport = _AsyncTransport(client._transport, header_name, hosts)
            for pattern, transport in client._mounts.items():
                if transport is not None:
                    client._mounts[pattern] = _AsyncTransport(transport, header_name, hosts)
    elif not isinstance(client._transport, _Transport):
        client._transport = _Transport(client._transport, header_name, hosts)
        for pattern, sync_transport in client._mounts.items():
            if sync_transport is not None:
                client._mounts[pattern] = _Transport(sync_transport, header_name, hosts)
    return client
