"""Sentry integration: Sentry's trace is the request's trace, and every event captured during a request carries it.

Needs the ``sentry`` extra (``pip install "fapilog-context[sentry]"``)::

    import sentry_sdk
    from fapilog.sentry import FapilogIntegration

    sentry_sdk.init(dsn=..., integrations=[FapilogIntegration()])

An event gets the request's ``trace_id`` as a tag, to grep the logs by, and
the seven fields (``None`` when unknown) as its ``fapilog`` context; each
app field bound (``ContextFields``) is a tag too, and ``user_id`` is also
Sentry's user id (who the app authenticated: Sentry counts the users an
issue affects by it); a tag or user the app set wins. An unhandled exception
is captured by Sentry's ASGI middleware after fapilog's has cleared the
context: its event gets the context of the request it escaped from.

With Sentry's middleware outside fapilog's (the ``instrument_app()`` setup),
Sentry's request transaction and scope take the request's W3C trace id —
adopted from a ``traceparent`` or generated — so Sentry's events, its
transaction, the ``sentry-trace`` and ``baggage`` it sends on, the W3C
headers and the log lines name one trace; the transaction, sent after the
request, gets the app fields the request bound, wherever it bound them. A
request served in process inside another one (through
``httpx.ASGITransport``) puts back what it changed when it ends.

The fields are read when the event is captured, from the context of the code
that captures it — the same context Sentry forks a request's isolation scope
into. Without a client using this integration, nothing happens. An event it
cannot tag goes on unchanged, with one warning per process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.scope import add_global_event_processor

from fapilog._internal.context import (
    BoundValues,
    attached_context,
    current_fields,
    current_model,
    current_scope,
    declared,
    fields_of,
)
from fapilog._internal.ids import is_w3c_trace_id
from fapilog._internal.log_filter import record_context
from fapilog._internal.middleware import request_hooks
from fapilog._internal.warn_once import warn_once

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint
    from sentry_sdk.tracing import Span
    from sentry_sdk.tracing_utils import Baggage

__all__ = ["FapilogIntegration"]

_TAG: Final = "trace_id"


class FapilogIntegration(Integration):
    """Tag every event with the trace id of the request it was captured in."""

    identifier = "fapilog"

    @staticmethod
    def setup_once() -> None:
        """Add the event processor and the request hook; Sentry calls this once per process."""
        add_global_event_processor(_add_context)
        request_hooks.append(_join_request)


def _join_request() -> Callable[[], None] | None:
    """Give Sentry's request transaction and scope the request's trace; return how to put them back.

    Only inside Sentry's request handling (its transaction is current): there
    Sentry's middleware, outside fapilog's, has forked the isolation scope for
    this request alone. Anywhere else the isolation scope may be shared, and
    the event processor tags each event instead.
    """
    try:
        if sentry_sdk.get_client().get_integration(FapilogIntegration) is None:
            return None
        span = sentry_sdk.get_current_span()
        trace_id = current_model().trace_id
        if span is None or trace_id is None:
            return None
        return _Retrace(span, trace_id).undo
    except Exception as exc:
        warn_once("sentry", f"fapilog.sentry could not join the request's trace ({type(exc).__name__}); its events are still tagged")
        return None


class _Retrace:
    """The request's trace set on Sentry's scope and transaction, and what was there before."""

    def __init__(self, span: Span, trace_id: str) -> None:
        self.scope = sentry_sdk.get_isolation_scope()
        self.tag = self.scope._tags.get(_TAG)  # Sentry has no public getter for a tag
        self.scope.set_tag(_TAG, trace_id)
        self.fields = current_scope()  # the request's app fields, as the request binds them
        if declared.now.names:
            self.scope.add_event_processor(self.add_fields)
        self.transaction = span.containing_transaction
        self.propagation = sentry_sdk.get_current_scope().get_active_propagation_context()
        self.trace_ids = (None if self.transaction is None else self.transaction.trace_id, self.propagation.trace_id)
        if is_w3c_trace_id(trace_id):  # Sentry's trace ids have the W3C form: any other id is only tagged
            self._set(trace_id, trace_id)

    def _set(self, transaction_trace_id: str | None, propagation_trace_id: str) -> None:
        """Set both trace ids, and the trace id in the baggage each sends on."""
        if self.transaction is not None and transaction_trace_id is not None:
            self.transaction.trace_id = transaction_trace_id
            _set_baggage_trace_id(getattr(self.transaction, "_baggage", None), transaction_trace_id)
        self.propagation.trace_id = propagation_trace_id
        _set_baggage_trace_id(self.propagation.baggage, propagation_trace_id)

    def add_fields(self, event: Event, hint: Hint) -> Event:
        """Put the request's app fields on *event*: also on its transaction, sent once the request is over.

        Every event of the request passes ``_add_context`` first, which warns
        about one it cannot tag: here Sentry's own guard around its
        processors is enough.
        """
        _add_fields(event, fields_of(self.fields))
        return event

    def undo(self) -> None:
        """Put back the tag, event processors and trace ids the outer request had."""
        processors = self.scope._event_processors  # Sentry has no public way to remove one
        if self.add_fields in processors:
            processors.remove(self.add_fields)
        if self.tag is None:
            self.scope.remove_tag(_TAG)
        else:
            self.scope.set_tag(_TAG, self.tag)
        self._set(*self.trace_ids)


def _set_baggage_trace_id(baggage: Baggage | None, trace_id: str) -> None:
    """Keep a frozen baggage's ``sentry-trace_id`` with its transaction's (a mutable one is rebuilt when sent)."""
    if baggage is not None and "trace_id" in baggage.sentry_items:
        baggage.sentry_items["trace_id"] = trace_id


def _add_context(event: Event, hint: Hint | None) -> Event:
    """Put the request's context on *event*: its ``trace_id`` tag and ``fapilog`` context."""
    try:
        if sentry_sdk.get_client().get_integration(FapilogIntegration) is None:  # a client without it
            return event
        fields: Mapping[str, Any] = current_model().__dict__
        app = current_fields()
        if fields["trace_id"] is None and hint:  # outside a request; or an event about one that failed
            escaped = _escaped_context(hint)
            if escaped is not None:
                fields, app = escaped
        trace_id = fields["trace_id"]
        if trace_id is not None:
            event.setdefault("tags", {}).setdefault(_TAG, trace_id)
            event.setdefault("contexts", {}).setdefault("fapilog", dict(fields))
        _add_fields(event, app)
    except Exception as exc:
        warn_once(
            "sentry",
            f"fapilog.sentry could not tag an event with the request context ({type(exc).__name__}); events go on untagged",
        )
    return event


def _add_fields(event: Event, fields: Mapping[str, object]) -> None:
    """Tag *event* with each app field bound in *fields*; ``user_id`` is its user's id too. What the event has wins."""
    bound = {name: item if type(item) is str else str(item) for name, item in fields.items() if item is not None}
    if not bound:
        return
    tags = event.setdefault("tags", {})
    for name, item in bound.items():
        tags.setdefault(name, item)
    if "user_id" in bound:
        user = event.get("user") or {}
        user.setdefault("id", bound["user_id"])
        event["user"] = user


def _escaped_context(hint: Hint) -> BoundValues | None:
    """Return the context of the request an event's exception or log record is about, if any."""
    exc_info = hint.get("exc_info")
    attached = attached_context(exc_info[1]) if exc_info else None
    record = hint.get("log_record")  # an event Sentry's logging integration made of a record
    if attached is None and record is not None:
        bound = record_context(record)
        return bound if bound.context["trace_id"] is not None else None
    return attached
