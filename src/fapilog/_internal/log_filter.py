"""``ContextFilter``: puts the request context on every log record it sees."""

from __future__ import annotations

import logging

from fapilog._internal.context import get_context
from fapilog._internal.middleware import CONTEXT_ATTRIBUTE

__all__ = ["ContextFilter"]


class ContextFilter(logging.Filter):
    """Add the seven context fields to each record as attributes.

    A field passed explicitly with ``extra=`` wins over the context. A record
    about an exception that escaped a request, logged by the server after the
    request's context was cleared, gets the context of that request.
    Attach it to a handler (not a logger) so records of every logger pass it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Enrich *record*; never drop it."""
        fields = get_context()
        if fields["trace_id"] is None and record.exc_info:
            attached = getattr(record.exc_info[1], CONTEXT_ATTRIBUTE, None)
            if attached is not None:
                fields = attached
        attributes = record.__dict__
        for key, value in fields.items():
            if key not in attributes:
                attributes[key] = value
        return True
