"""The public surface: exactly the names the docs promise, sorted."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import fapilog

PUBLIC = [
    "RequestContext",
    "bind_context",
    "clear_context",
    "context_copy",
    "get_context",
]


def test_all_lists_exactly_the_public_names_in_sorted_order() -> None:
    assert fapilog.__all__ == PUBLIC
    assert fapilog.__all__ == sorted(fapilog.__all__)


def test_every_exported_name_is_importable_from_the_package() -> None:
    for name in fapilog.__all__:
        assert getattr(fapilog, name).__module__.startswith("fapilog._internal.")


def test_version_comes_from_the_package_metadata() -> None:
    assert fapilog.__version__ == version("fapilog")


def test_importing_fapilog_touches_no_global_logging_state() -> None:
    """A fresh interpreter's logging setup is identical before and after the import."""
    probe = """
import logging
def state():
    loggers = logging.Logger.manager.loggerDict.values()
    return (
        logging.getLogRecordFactory(), logging.getLoggerClass(), logging.root.level,
        list(logging.root.handlers), list(logging.root.filters), logging.lastResort,
        sorted(
            (lg.name, lg.level, len(lg.handlers), len(lg.filters), lg.propagate)
            for lg in loggers if isinstance(lg, logging.Logger)
        ),
    )
before = state()
import fapilog
assert state() == before, (before, state())
print("unchanged")
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "unchanged", result.stderr
