"""Shared fixtures: every test starts with an empty context and stock logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from fapilog import ContextFilter, clear_context
from fapilog._internal.configure import SERVER_LOGGERS

_WATCHED_LOGGERS = ("", "fapilog", "fapilog.access", *SERVER_LOGGERS)


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    """Reset the context and restore every logger a test may reconfigure."""
    clear_context()
    saved = []
    for name in _WATCHED_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.handlers[:], logger.filters[:], logger.propagate, logger.disabled))
    yield
    clear_context()
    for logger, level, handlers, filters, propagate, disabled in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.propagate = propagate
        logger.disabled = disabled


class _ListHandler(logging.Handler):
    """Keep every record it handles."""

    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> list[logging.LogRecord]:
    """Capture every record that reaches the root logger, at every level, with the context."""
    captured: list[logging.LogRecord] = []
    handler = _ListHandler(captured)
    handler.addFilter(ContextFilter())
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.DEBUG)
    return captured

