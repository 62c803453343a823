"""``ContextFilter``: puts the request context on every log record it sees.

``capture`` is the one place where a record takes what a formatter reads of
the context: on the thread that logs, so a formatter writes the same line
on any other thread (a queue's writer) without reading the context itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Final

from fapilog._internal.context import (
    EMPTY_TRACE_STATE,
    SAMPLED,
    BoundValues,
    RequestContext,
    attached_context,
    current_fields,
    current_model,
    declared,
    get_context,
    trace_state,
)

__all__ = ["APP_FIELDS", "SAMPLED_FIELD", "ContextFilter", "app_fields_of", "capture", "record_context", "sampled"]

SAMPLED_FIELD: Final = "trace_sampled"
"""The record attribute that holds the sampled flag of the record's trace: ``None`` when unknown."""
APP_FIELDS: Final = "fapilog_fields"
"""The record attribute that holds the app fields bound when it was logged, by name (never written as an extra)."""


def record_context(record: logging.LogRecord) -> BoundValues:
    """Return the context and app fields *record* is about.

    The current ones; or, when no trace is bound and the record is about an
    exception that escaped a request (the server logs it after the request's
    context was cleared), that request's. A record logged while such an
    exception is being handled counts too: granian's error line carries the
    traceback in its message, not as ``exc_info``.
    """
    fields = get_context()
    if fields["trace_id"] is None:
        attached = attached_context(record.exc_info[1] if record.exc_info else sys.exc_info()[1])
        if attached is not None:
            return attached
    return BoundValues(fields, current_fields())


def app_fields_of(record: logging.LogRecord) -> Mapping[str, object]:
    """Return the app fields *record* carries (``ContextFilter`` put them there), else those it is about now."""
    fields: Mapping[str, object] | None = record.__dict__.get(APP_FIELDS)
    return record_context(record).fields if fields is None else fields


def sampled(model: RequestContext, trace_id: object) -> bool | None:
    """Return whether the trace *trace_id* is sampled, if *model* holds that trace; ``None`` if unknown."""
    state = trace_state(model)
    return state.flags & SAMPLED == SAMPLED if state.trace_id == trace_id else None


def capture(record: logging.LogRecord) -> bool:
    """Put on *record* everything fapilog's formatters read of the context.

    The seven fields (a value given with ``extra=`` wins; a record about an
    exception that escaped a request gets that request's context), as
    ``trace_sampled`` the sampled flag of the record's trace and, once a
    ``ContextFields`` subclass exists, the app fields bound as ``fapilog_fields``.
    Returns ``True``: a filter that keeps every record.
    """
    model = current_model()
    fields: Mapping[str, object] = model.__dict__  # read only: cheaper than get_context's copy
    app: Mapping[str, object] | None = None
    if fields["trace_id"] is None:
        fields, app = record_context(record)
    attributes = record.__dict__
    if attributes.keys().isdisjoint(fields):  # the usual case: no extra= named like a field
        attributes.update(fields)
    else:
        for key, value in fields.items():
            if key not in attributes:
                attributes[key] = value
    if SAMPLED_FIELD not in attributes:  # sampled(), inline: once per record
        private = model.__pydantic_private__
        state = EMPTY_TRACE_STATE if private is None else private["_trace"]
        attributes[SAMPLED_FIELD] = state.flags & SAMPLED == SAMPLED if state.trace_id == attributes["trace_id"] else None
    if declared.now.names:
        attributes[APP_FIELDS] = current_fields() if app is None else app
    return True


class ContextFilter(logging.Filter):
    """Add the seven context fields, ``trace_sampled`` and the app fields to each record as attributes.

    A field passed explicitly with ``extra=`` wins over the context. A record
    about an exception that escaped a request gets the context of that request.
    Attach it to a handler (not a logger) so records of every logger pass it.
    """

    filter = staticmethod(capture)  # enrich the record, never drop it: capture itself, one call less per record
