"""loguru integration: the seven context fields and the app fields in every record's ``extra``.

Needs the ``loguru`` extra (``pip install "fapilog-context[loguru]"``)::

    import sys
    from loguru import logger
    from fapilog.loguru import patcher

    logger.configure(patcher=patcher)      # or: logger = logger.patch(patcher)
    logger.remove()
    logger.add(sys.stderr, serialize=True)  # or format="{time} {level} {extra[trace_id]} {message}"

Every record's ``extra`` gets all seven keys and every app field declared
(``ContextFields``), ``None`` when unknown, so ``{extra[trace_id]}`` and
``{extra[user_id]}`` never fail outside a request; a key the call's own
``extra``/``bind``/``contextualize`` set wins (and so does a default given to
``configure(extra=...)``: give none for these keys). A record about an
exception that escaped a request (a server's error line, routed to loguru)
gets that request's context, as ``ContextFilter`` does. A record the patcher
cannot enrich goes on unchanged, with one warning per process.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fapilog._internal.context import attached_context, current_fields, current_model, declared
from fapilog._internal.warn_once import warn_once

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["patcher"]


def patcher(record: Record) -> None:
    """Put the seven context fields and the app fields into *record*'s ``extra``; keys already there win."""
    try:
        fields: Mapping[str, Any] = current_model().__dict__
        app: Mapping[str, object] | None = None
        if fields["trace_id"] is None:  # outside a request; or a record about one that failed
            exception = record["exception"]
            attached = attached_context(sys.exc_info()[1] if exception is None else exception.value)
            if attached is not None:
                fields, app = attached
        now = declared.now
        if now.names:
            record["extra"] = {**fields, **now.unbound, **(current_fields() if app is None else app), **record["extra"]}
        else:  # no app fields declared: nothing to read or merge for them
            record["extra"] = {**fields, **record["extra"]}
    except Exception as exc:
        warn_once(
            "loguru",
            f"fapilog.loguru.patcher could not add the request context ({type(exc).__name__}); records go on without it",
        )

