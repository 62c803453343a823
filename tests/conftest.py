"""Shared fixtures: every test starts with an empty context and stock logging."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from fapilog import clear_context

_WATCHED_LOGGERS = ("", "fapilog", "fapilog.access", "uvicorn", "uvicorn.access", "uvicorn.error")


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


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio, the loop uvicorn and FastAPI use."""
    return "asyncio"
