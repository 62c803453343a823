"""The slow-sink run of tests/test_writer.py: 50 requests in process, a sink that takes 20 ms a write, no flush at exit.

``python -m tests.apps.slow_sink PATH`` writes the log lines to PATH and
prints a JSON summary: how many requests completed, and how many writes the
sink had finished by then (it holds its first write until they all have).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
import time

from fastapi import FastAPI

from fapilog import configure_logging, instrument_app
from tests.support.http import http_client

WRITE_TIME = 0.02  # what the sink takes per write: a slow disk, a full pipe
REQUESTS = 50

logger = logging.getLogger("app")


class SlowSink(io.StringIO):
    """Append to a file, taking WRITE_TIME a write; hold every write until ``gate`` is set."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115  # open for the whole run
        self.gate = threading.Event()
        self.writes = 0

    def write(self, text: str) -> int:
        self.gate.wait()
        time.sleep(WRITE_TIME)  # the sink's own slowness, not a synchronisation
        self.file.write(text)
        self.file.flush()
        self.writes += 1
        return len(text)


async def serve_requests() -> int:
    """Call the app REQUESTS times, concurrently; return how many answered 200."""
    app = FastAPI()

    @app.get("/work/{n}")
    async def work(n: int) -> int:
        logger.info("request %d starts", n)
        logger.info("request %d ends", n)
        return n

    async with http_client(instrument_app(app)) as client:
        responses = await asyncio.gather(*(client.get(f"/work/{n}") for n in range(REQUESTS)))
    return sum(response.status_code == 200 for response in responses)


def main() -> None:
    sink = SlowSink(sys.argv[1])
    configure_logging(stream=sink, enqueue=True)
    completed = asyncio.run(serve_requests())
    summary = {"completed": completed, "writes_when_requests_completed": sink.writes}
    sink.gate.set()
    print(json.dumps(summary))  # then a normal exit: no flush, logging.shutdown writes the rest


if __name__ == "__main__":
    main()
