"""Sentry integration: every event captured during a request carries its trace id.

Needs the ``sentry`` extra (``pip install fapilog[sentry]``)::

    import sentry_sdk
    from fapilog.sentry import FapilogIntegration

    sentry_sdk.init(dsn=..., integrations=[FapilogIntegration()])

An event gets the request's ``trace_id`` as a tag, to grep the logs by, and
the seven fields (``None`` when unknown) as its ``fapilog`` context; a
``trace_id`` tag set by the app wins. An unhandled exception is captured by
Sentry's ASGI middleware after fapilog's has cleared the context: its event
gets the context of the request it escaped from.

The fields are read when the event is captured, from the context of the code
that captures it — the same context Sentry forks a request's isolation scope
into — and never stored on any scope: an event is tagged with the request it
was captured in, whichever of the two middlewares runs outside the other,
and nothing can remain for the next request. Without a client using this
integration, nothing happens. An event it cannot tag goes on unchanged, with
one warning per process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.scope import add_global_event_processor

from fapilog._internal.context import current_model
from fapilog._internal.log_filter import record_context
from fapilog._internal.middleware import CONTEXT_ATTRIBUTE, request_hooks
from fapilog._internal.warn_once import warn_once

if TYPE_CHECKING:
    from sentry_sdk._types import Event, Hint

__all__ = ["FapilogIntegration"]


class FapilogIntegration(Integration):
    """Tag every event with the trace id of the request it was captured in."""

    identifier = "fapilog"

    @staticmethod
    def setup_once() -> None:
        """Add the event processor and the request hook; Sentry calls this once per process."""
        add_global_event_processor(_add_context)
        request_hooks.append(_tag_request_scope)


def _tag_request_scope() -> None:
    """Tag the request's own isolation scope, which its transaction is sent from, with the trace id.

    Only inside Sentry's request handling (a transaction is running): there
    Sentry's middleware, outside fapilog's, has forked the isolation scope for
    this request alone. Anywhere else the isolation scope may be shared, and
    the event processor tags each event instead.
    """
    try:
        if sentry_sdk.get_client().get_integration(FapilogIntegration) is None or sentry_sdk.get_current_span() is None:
            return
        trace_id = current_model().trace_id
        if trace_id is not None:
            sentry_sdk.get_isolation_scope().set_tag("trace_id", trace_id)
    except Exception as exc:
        warn_once("sentry", f"fapilog.sentry could not tag the request's scope ({type(exc).__name__}); its events are still tagged")


def _add_context(event: Event, hint: Hint | None) -> Event:
    """Put the request's context on *event*: its ``trace_id`` tag and ``fapilog`` context."""
    try:
        if sentry_sdk.get_client().get_integration(FapilogIntegration) is None:  # a client without it
            return event
        fields: dict[str, Any] = current_model().__dict__
        if fields["trace_id"] is None and hint:  # outside a request; or an event about one that failed
            fields = _escaped_context(hint) or fields
        trace_id = fields["trace_id"]
        if trace_id is not None:
            event.setdefault("tags", {}).setdefault("trace_id", trace_id)
            event.setdefault("contexts", {}).setdefault("fapilog", dict(fields))
    except Exception as exc:
        warn_once(
            "sentry",
            f"fapilog.sentry could not tag an event with the request context ({type(exc).__name__}); events go on untagged",
        )
    return event


def _escaped_context(hint: Hint) -> dict[str, Any] | None:
    """Return the context of the request an event's exception or log record is about, if any."""
    exc_info = hint.get("exc_info")
    attached: dict[str, Any] | None = getattr(exc_info[1], CONTEXT_ATTRIBUTE, None) if exc_info else None
    record = hint.get("log_record")  # an event Sentry's logging integration made of a record
    if attached is None and record is not None:
        context = record_context(record)
        return dict(context) if context["trace_id"] is not None else None
    return attached
