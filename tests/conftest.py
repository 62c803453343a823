"""Shared fixtures: every test starts with an empty context, stock logging and fapilog's globals as found.

``_clean_state`` (autouse) puts back, after each test:
- the request context (empty);
- every logger that existed before the test (level, handlers, filters,
  propagation, disabled), every ``fapilog.*`` logger the test created,
  ``logging.disable`` and ``logging.captureWarnings``; a handler the test
  left installed is closed (an ``enqueue=True`` one stops its writer thread);
- fapilog's process-wide state: the once-per-process warnings, the request
  hooks an integration adds, the app fields declared (a ``ContextFields``
  class the test declared is forgotten: only ``examples.fields.Shop``'s stay),
  and Sentry's record that fapilog's integration is set up (with its event
  processor), so the next ``sentry_sdk.init`` sets it up afresh.

``records`` captures what reaches the root logger; ``redis_url`` is a real
``redis-server`` for the session; ``eager_celery`` runs the Celery tasks of
the test and example apps in the caller's thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.broker import redis_server
from fapilog import ContextFilter, clear_context
from fapilog._internal.context import declared
from fapilog._internal.middleware import request_hooks
from fapilog._internal.warn_once import warned
from tests.support.records import ListHandler

_LoggerState = tuple[logging.Logger, int, list[logging.Handler], list[Any], bool, bool]  # filters: objects or callables


def _loggers() -> list[logging.Logger]:
    """Return the root logger and every logger created so far (placeholders are not loggers yet)."""
    created = list(logging.Logger.manager.loggerDict.values())
    return [logging.root, *(item for item in created if isinstance(item, logging.Logger))]


def _state(logger: logging.Logger) -> _LoggerState:
    return (logger, logger.level, logger.handlers[:], logger.filters[:], logger.propagate, logger.disabled)


def _forget_fapilog_in_sentry() -> None:
    """Undo ``FapilogIntegration.setup_once`` (Sentry runs it once per process): the next ``init`` runs it again."""
    if "fapilog.sentry" not in sys.modules:
        return
    from sentry_sdk import integrations, scope

    from fapilog.sentry import FapilogIntegration, _add_context

    integrations._installed_integrations.discard(FapilogIntegration.identifier)
    integrations._processed_integrations.discard(FapilogIntegration.identifier)
    scope.global_event_processors[:] = [item for item in scope.global_event_processors if item is not _add_context]


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    """Reset the context, logging and fapilog's globals after the test, whatever it changed."""
    clear_context()
    warned.clear()
    saved = [_state(logger) for logger in _loggers()]
    known = {id(state[0]) for state in saved}
    disabled = logging.root.manager.disable
    hooks = request_hooks[:]
    fields = declared.now
    showwarning = warnings.showwarning
    yield
    installed = {id(handler) for state in saved for handler in state[2]}
    added = {handler for logger in _loggers() for handler in logger.handlers if id(handler) not in installed}
    clear_context()
    warned.clear()
    request_hooks[:] = hooks
    declared.now = fields
    _forget_fapilog_in_sentry()
    logging.disable(disabled)
    if warnings.showwarning is not showwarning:  # logging.captureWarnings(True) was left on
        logging.captureWarnings(False)
    for logger, level, handlers, filters, propagate, was_disabled in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.propagate = propagate
        logger.disabled = was_disabled
    for logger in _loggers():
        if id(logger) not in known and (logger.name == "fapilog" or logger.name.startswith("fapilog.")):
            logger.setLevel(logging.NOTSET)
            logger.handlers.clear()
            logger.filters.clear()
            logger.propagate = True
            logger.disabled = False
    for handler in added:  # a writer thread (enqueue=True) writes out its queue and stops
        handler.close()


@pytest.fixture
def records() -> list[logging.LogRecord]:
    """Capture every record that reaches the root logger, at every level, with the context."""
    captured: list[logging.LogRecord] = []
    handler = ListHandler(captured)
    handler.addFilter(ContextFilter())
    logging.root.addHandler(handler)
    logging.root.setLevel(logging.DEBUG)
    return captured


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real ``redis-server`` on a free 127.0.0.1 port for the session; skipped locally without one, a failure under CI."""
    if shutil.which("redis-server") is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the broker tests")
        pytest.skip(reason)
    with tempfile.TemporaryDirectory() as directory, redis_server(Path(directory)) as url:
        yield url


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run the tasks of the test and example Celery apps in the caller's thread, with no broker; then stop."""
    from examples import tasks  # here: only the tests that ask for it import Celery
    from tests.apps import celery_tasks

    apps = (tasks.app, celery_tasks.app)
    for app in apps:
        app.conf.task_always_eager = True
    yield
    for app in apps:
        app.conf.task_always_eager = False
