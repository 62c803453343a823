"""The stalled-sink run of tests/test_writer.py (and of the memory figure in ``nox -s bench``).

One request logs 20,000 INFO lines and one ERROR while the sink writes nothing.

``python -m tests.apps.stalled_sink PATH [--direct] [--stall SECONDS]``
writes the log lines to PATH and prints a JSON summary. The sink holds its
first write until the request has completed (with ``--stall``, for that many
seconds instead: the only way a direct write, which the request waits for,
gets past it). The summary has the request's status, the sink's writes
finished when it completed, the records below ERROR that reached the handler,
the peak memory Python allocated (tracemalloc) and the peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import resource
import threading
import time
import tracemalloc

import httpx
from fastapi import FastAPI

from fapilog import configure_logging, instrument_app

INFO_LINES = 20_000

logger = logging.getLogger("app")


class StalledSink(io.StringIO):
    """Append to a file; the first write waits until ``gate`` is set, or for *stall* seconds."""

    def __init__(self, path: str, stall: float | None) -> None:
        super().__init__()
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115  # open for the whole run
        self.gate = threading.Event()
        self.stall = stall
        self.writes = 0

    def write(self, text: str) -> int:
        if self.writes == 0:
            if self.stall is None:
                self.gate.wait()
            else:
                time.sleep(self.stall)  # the stalled sink itself, not a synchronisation
        self.file.write(text)
        self.file.flush()
        self.writes += 1
        return len(text)


class Counter(logging.Handler):
    """Count the records below ERROR that reach the root logger, fapilog's own report excepted."""

    def __init__(self) -> None:
        super().__init__()
        self.below_error = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR and record.name != "fapilog":
            self.below_error += 1


async def request() -> int:
    app = FastAPI()

    @app.get("/burst")
    async def burst() -> str:
        for n in range(INFO_LINES):
            logger.info("burst %d", n)
        logger.error("the one error")
        return "done"

    transport = httpx.ASGITransport(instrument_app(app))  # no tests.support: nox -s bench runs it too
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return (await client.get("/burst")).status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--stall", type=float)
    options = parser.parse_args()
    sink = StalledSink(options.path, options.stall)
    handler = configure_logging(stream=sink, enqueue=not options.direct)
    counter = Counter()
    logging.getLogger().addHandler(counter)
    logger.info("the first line: the sink stalls on it")
    tracemalloc.start()
    status = asyncio.run(request())
    writes = sink.writes
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sink.gate.set()
    handler.flush()
    summary = {
        "status": status,
        "writes_when_completed": writes,
        "below_error": counter.below_error,
        "peak_traced": peak,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
