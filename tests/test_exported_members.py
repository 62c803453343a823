"""The public surface: exactly the names the docs promise, sorted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import fapilog

PUBLIC = [
    "ContextFields",
    "ContextFilter",
    "FapilogHandler",
    "JsonFormatter",
    "RequestContext",
    "TraceIDMiddleware",
    "bind_context",
    "bind_fields",
    "bind_trace_headers",
    "clear_context",
    "configure_logging",
    "context_copy",
    "get_context",
    "instrument_app",
    "trace_headers",
]


def test_all_lists_exactly_the_public_names_in_sorted_order() -> None:
    assert fapilog.__all__ == PUBLIC
    assert fapilog.__all__ == sorted(fapilog.__all__)


def test_every_exported_name_is_importable_from_the_package() -> None:
    for name in fapilog.__all__:
        assert getattr(fapilog, name).__module__.startswith("fapilog._internal.")


def test_version_comes_from_the_package_metadata() -> None:
    assert fapilog.__version__ == version("fapilog-context")


def test_the_httpx_integration_exports_instrument() -> None:
    import fapilog.httpx

    assert fapilog.httpx.__all__ == ["instrument"]


def test_the_logger_and_sentry_bridges_export_one_name_each() -> None:
    import fapilog.loguru
    import fapilog.sentry
    import fapilog.structlog

    assert (fapilog.structlog.__all__, fapilog.loguru.__all__, fapilog.sentry.__all__) == (
        ["merge_context"],
        ["patcher"],
        ["FapilogIntegration"],
    )


def test_the_queue_integrations_export_their_entry_points() -> None:
    import fapilog.dramatiq
    import fapilog.rq

    assert fapilog.rq.__all__ == ["Job", "SimpleWorker", "SpawnWorker", "Worker"]
    assert fapilog.dramatiq.__all__ == ["instrument"]  # fapilog.arq's: in test_arq.py, with arq


def test_fapilog_imports_from_a_source_tree_without_reading_package_metadata(tmp_path: Path) -> None:
    shutil.copytree(Path(fapilog.__file__).parent, tmp_path / "fapilog")
    probe = """
import importlib.metadata
def refuse(*args, **kwargs):
    raise AssertionError("package metadata was read")
importlib.metadata.version = importlib.metadata.distribution = refuse
import fapilog
print(fapilog.__file__, fapilog.__version__)
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, env=env)
    assert result.stdout.split() == [str(tmp_path / "fapilog" / "__init__.py"), version("fapilog-context")], result.stderr


def test_optional_integrations_and_servers_are_not_imported_with_fapilog() -> None:
    modules = (
        "{'httpx', 'celery', 'kombu', 'uvicorn', 'fastapi', 'starlette.applications', 'starlette.routing',"
        " 'fapilog.log_config', 'structlog', 'loguru', 'sentry_sdk', 'opentelemetry', 'orjson',"
        " 'rq', 'dramatiq', 'arq', 'redis', 'fapilog._internal.tasks'}"
    )
    probe = f"import sys, fapilog; print(sorted({modules} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_importing_fapilog_touches_no_global_logging_state_but_its_own_null_handler() -> None:
    """A fresh interpreter's logging setup is identical before and after the import, but for the HOWTO's NullHandler."""
    probe = """
import logging
def configuration():
    return (
        logging.getLogRecordFactory(), logging.getLoggerClass(), logging.root.level,
        list(logging.root.handlers), list(logging.root.filters), logging.lastResort,
        logging.root.manager.disable,
    )
def configured_loggers():
    return sorted(
        name for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
        and (lg.level or lg.handlers or lg.filters or not lg.propagate or lg.disabled)
    )
before = configuration(), configured_loggers()
import fapilog
after = configuration(), configured_loggers()
assert after == (before[0], sorted([*before[1], "fapilog"])), (before, after)
fapilog_logger = logging.getLogger("fapilog")
assert [type(handler) for handler in fapilog_logger.handlers] == [logging.NullHandler], fapilog_logger.handlers
assert (fapilog_logger.level, fapilog_logger.propagate, fapilog_logger.filters) == (logging.NOTSET, True, [])
print("unchanged")
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "unchanged", result.stderr
