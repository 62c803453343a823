"""structlog integration: the seven context fields and the app fields on every event dict.

Needs the ``structlog`` extra (``pip install "fapilog-context[structlog]"``). Put
``merge_context`` where ``structlog.contextvars.merge_contextvars`` would go::

    import structlog
    from fapilog.structlog import merge_context

    structlog.configure(
        processors=[
            merge_context,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )

For stdlib records rendered by ``structlog.stdlib.ProcessorFormatter``, put it
in ``foreign_pre_chain`` too: a record then gets the fields it carries as
attributes (``extra=``, or ``ContextFilter`` before a queue), else the current
context, else — for a server's error line about an exception that escaped a
request — that request's context, as ``ContextFilter`` does.

Every event gets all seven keys and every app field declared (``ContextFields``),
``None`` when unknown; a key the event already has wins. A misplaced processor (after the renderer, say) passes the
event on unchanged and warns once per process: logging never fails for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fapilog._internal.context import CONTEXT_FIELDS, current_fields, current_model, declared
from fapilog._internal.log_filter import app_fields_of, record_context
from fapilog._internal.warn_once import warn_once

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["merge_context"]


def merge_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add the seven context fields and the app fields to *event_dict*; a key it already has wins."""
    try:
        record = event_dict.get("_record")  # a stdlib record, in ProcessorFormatter's foreign_pre_chain
        if record is None:
            fields: Mapping[str, object] = current_model().__dict__
            app = current_fields()
        else:
            fields, app = _record_fields(record)
        # The event's keys first, then the fields it lacks; its own values win.
        # One dict display: cheaper than growing the event in place key by key.
        return {**event_dict, **fields, **declared.now.unbound, **app, **event_dict}
    except Exception as exc:
        warn_once(
            "structlog",
            f"fapilog.structlog.merge_context could not add the request context ({type(exc).__name__}); "
            "events pass on without it. Is it placed before the renderer?",
        )
        return event_dict


def _record_fields(record: logging.LogRecord) -> tuple[dict[str, object], dict[str, object]]:
    """Return the context and app fields of a stdlib *record*: its own attributes first, then what it is about."""
    attributes = record.__dict__
    context: Mapping[str, object] = record_context(record).context
    app = app_fields_of(record)
    return (
        {key: attributes[key] if key in attributes else context[key] for key in CONTEXT_FIELDS},
        {key: attributes[key] if key in attributes else app.get(key) for key in declared.now.names},
    )
