"""A stderr that takes its time, for the enqueue runs of the real servers and workers.

Each write waits WRITE_TIME before it goes to stderr, so lines are
still queued when a process forks or is asked to stop: the runs show they
are written once, and all of them. A logging config names it as
``"stream": "ext://tests.apps.slow_stderr.stream"``; a worker module passes
``logging_options()`` to ``configure_logging``.
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Any, Final

ENQUEUE_ENV = "FAPILOG_TEST_ENQUEUE"
WRITE_TIME_ENV = "FAPILOG_TEST_WRITE_TIME"
WRITE_TIME = float(os.environ.get(WRITE_TIME_ENV, "0.05"))  # seconds a write takes: a slow log driver


class SlowStderr(io.StringIO):
    """Write to the process's stderr as it was at import (Celery replaces ``sys.stderr`` later), taking WRITE_TIME a write."""

    def __init__(self) -> None:
        super().__init__()
        self.target = sys.stderr

    def write(self, text: str) -> int:
        time.sleep(WRITE_TIME)  # the sink's own slowness, not a synchronisation
        written = self.target.write(text)
        self.target.flush()
        return written

    def flush(self) -> None:
        self.target.flush()


stream: Final = SlowStderr()


def logging_options() -> dict[str, Any]:
    """Return ``configure_logging``'s options for a worker: ``enqueue=True`` to this stream when ENQUEUE_ENV is set."""
    return {"stream": stream, "enqueue": True} if os.environ.get(ENQUEUE_ENV) else {}
