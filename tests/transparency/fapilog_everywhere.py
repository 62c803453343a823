"""pytest plugin: every ``FastAPI()`` of the run is instrumented with fapilog, set up as the README says.

At ``pytest_configure`` — before collection, so also the apps built when test
modules and ``docs_src`` examples are imported — it calls
``fapilog.configure_logging()`` once and wraps ``FastAPI.__init__`` so that
``fapilog.instrument_app(app)`` runs on every app, subclasses included. It
writes to ``$FAPILOG_STATS_JSON`` how many apps it instrumented and how many
access records were written, summed over the xdist workers, so a run that
instrumented nothing cannot pass unnoticed.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
from typing import Any

import pytest
from fastapi import FastAPI

import fapilog

_original_init = FastAPI.__init__
_counts: collections.Counter[str] = collections.Counter()


@functools.wraps(_original_init)
def _instrumented_init(self: FastAPI, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    fapilog.instrument_app(self)
    _counts["apps instrumented"] += 1


class _AccessCounter(logging.Handler):
    """Counts the ``fapilog.access`` records."""

    def emit(self, record: logging.LogRecord) -> None:
        _counts["access records"] += 1


_counter = _AccessCounter(logging.DEBUG)


def pytest_configure(config: pytest.Config) -> None:
    fapilog.configure_logging()
    logging.getLogger("fapilog.access").addHandler(_counter)
    setattr(FastAPI, "__init__", _instrumented_init)  # noqa: B010  # the plugin's whole point


def pytest_unconfigure(config: pytest.Config) -> None:
    setattr(FastAPI, "__init__", _original_init)  # noqa: B010
    logging.getLogger("fapilog.access").removeHandler(_counter)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker hands its counts to the controller; the controller (or a run without xdist) writes the totals."""
    workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fapilog_counts"] = dict(_counts)
        return
    path = os.environ.get("FAPILOG_STATS_JSON")
    if path:
        with open(path, "w", encoding="utf-8") as file:
            json.dump(dict(_counts), file)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Add up a finished xdist worker's counts, on the controller."""
    if not hasattr(node, "workeroutput"):
        return
    for key, value in node.workeroutput.get("fapilog_counts", {}).items():
        _counts[key] += value
