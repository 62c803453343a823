"""``ContextFilter``: puts the request context on every log record it sees."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from fapilog._internal.context import ContextDict, current_model, get_context
from fapilog._internal.middleware import CONTEXT_ATTRIBUTE

__all__ = ["ContextFilter", "record_context"]


def record_context(record: logging.LogRecord) -> ContextDict:
    """Return the context *record* is about.

    The current context; or, when none is bound and the record is about an
    exception that escaped a request (the server logs it after the request's
    context was cleared), that request's context. A record logged while such
    an exception is being handled counts too: granian's error line carries the
    traceback in its message, not as ``exc_info``.
    """
    fields = get_context()
    if fields["trace_id"] is None:
        exception = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        attached: ContextDict | None = getattr(exception, CONTEXT_ATTRIBUTE, None)
        if attached is not None:
            return attached
    return fields


class ContextFilter(logging.Filter):
    """Add the seven context fields to each record as attributes.

    A field passed explicitly with ``extra=`` wins over the context. A record
    about an exception that escaped a request gets the context of that request.
    Attach it to a handler (not a logger) so records of every logger pass it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Enrich *record*; never drop it."""
        fields: Mapping[str, object] = current_model().__dict__  # read only: cheaper than get_context's copy
        if fields["trace_id"] is None:
            fields = record_context(record)
        attributes = record.__dict__
        if attributes.keys().isdisjoint(fields):  # the usual case: no extra= named like a field
            attributes.update(fields)
        else:
            for key, value in fields.items():
                if key not in attributes:
                    attributes[key] = value
        return True
