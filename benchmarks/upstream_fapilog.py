"""Upstream fapilog 0.18 (PyPI's ``fapilog``, which shares our import name), measured as ``bench_enqueue`` measures ours.

It runs only in its own virtualenv, which ``nox -s bench_upstream`` builds
(``pip install fapilog==0.18.1``): ``python benchmarks/upstream_fapilog.py
ROUNDS`` prints one JSON object, the median nanoseconds per call of a burst
for each sink: ``{"null": ..., "2ms": ...}``. The call logs the same message
with two fields, from a sync logger whose background worker writes to a
sink that drops the entry, or that takes 2 ms a write (a blocking write, as
a slow pipe or disk is). The queue is drained between bursts, untimed.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import statistics
import sys
import time
from typing import Any

BURST = 100  # calls a request makes in one go: well within any queue
WRITE_TIME = 0.002


class Sink:
    """An upstream sink (its async protocol) that takes *delay* seconds a write."""

    name = "bench"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def write(self, entry: dict[str, Any]) -> None:
        if self.delay:
            time.sleep(self.delay)  # the sink's own slowness: a blocking write


def per_call(delay: float, rounds: int) -> float:
    """Return the median nanoseconds per call of a burst, over *rounds* fresh loggers."""
    upstream: Any = importlib.import_module("fapilog")  # upstream's, in its own virtualenv: no types to check here
    samples = []
    for round_index in range(rounds + 1):
        logger = upstream.get_logger(f"bench-{delay}-{round_index}", sinks=[Sink(delay)], reuse=False)
        logger.info("warm up")
        start = time.perf_counter_ns()
        for _ in range(BURST):
            logger.info("order 42 placed", order_id=42, customer="c-1187")
        elapsed = time.perf_counter_ns() - start
        asyncio.run(logger.stop_and_drain())
        if round_index:  # the first round warms up
            samples.append(elapsed / BURST)
    return statistics.median(samples)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    print(json.dumps({"null": per_call(0.0, count), "2ms": per_call(WRITE_TIME, count)}))
