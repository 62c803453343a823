"""``enqueue=True``: what a log call costs the request, against today's direct line, loguru's and upstream fapilog's enqueue.

The call is ``bench_logging``'s line (``logger.info`` with one argument and
two extras, three context fields bound). Each case times only its burst of
calls; the queue is written out after it, untimed. Cases run interleaved,
round by round:

- the direct line (fapilog's default) to a stream that drops it, and to a
  pipe another thread reads, as stderr feeding a log shipper is;
- the enqueue call while the writer is held in a write: what the call
  itself costs the request (record, context, queue);
- the enqueue call with the writer running, its share of the interpreter
  (the GIL) included;
- loguru's ``enqueue=True`` with ``fapilog.loguru.patcher`` and
  ``serialize=True``, its writer running;
- each again with a sink that takes 2 ms a write, over a burst of 100 calls
  (a busy request).

Upstream fapilog 0.18.1 shares our import name: ``nox -s bench_upstream``
builds its virtualenv, and when it exists this run measures it there too
(``upstream_fapilog.py``). Also reported: peak RSS of the stalled-sink run
(``tests/apps/stalled_sink.py``: 20,000 INFO lines while the sink stalls 2 s),
enqueue against direct.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from loguru import logger as loguru_logger

from benchmarks._timing import NullStream, Timing, Verdict, report
from fapilog import FapilogHandler, bind_context
from fapilog.loguru import patcher

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
EXTRA: dict[str, object] = {"order_id": 42, "customer": "c-1187"}
WRITE_TIME = 0.002
BURST = 1_000
SLOW_BURST = 100
ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_PYTHON = Path(os.environ.get("FAPILOG_UPSTREAM_PYTHON", ROOT / ".nox" / "bench_upstream" / "bin" / "python"))

Case = Callable[[int], float]
"""Makes the given number of calls; returns the nanoseconds per call of its timed part."""


class HeldSink(io.StringIO):
    """A sink whose writes wait while it is held."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.open.set()
        self.entered = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.open.wait()
        return len(text)


class SlowStream(io.StringIO):
    """A sink that takes WRITE_TIME a write."""

    def write(self, text: str) -> int:
        time.sleep(WRITE_TIME)  # the sink's own slowness
        return len(text)


def _pipe() -> TextIO:
    """Return a line-buffered text stream into a pipe that a thread keeps reading (stderr, a log shipper on the other end)."""
    read_end, write_end = os.pipe()

    def drain() -> None:
        while os.read(read_end, 1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()
    return open(write_end, "w", buffering=1, encoding="ascii")  # noqa: SIM115  # open for the whole run


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.enqueue.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _timed(logger: logging.Logger, n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        logger.info("order %s placed", 42, extra=EXTRA)
    return (time.perf_counter_ns() - start) / n


def _direct(stream: TextIO) -> Case:
    logger = _logger(f"direct{id(stream)}", FapilogHandler(stream))
    return lambda n: _timed(logger, n)


def _queued(stream: TextIO) -> Case:
    handler = FapilogHandler(stream, enqueue=True, queue_size=100_000)
    logger = _logger(f"queued{id(stream)}", handler)

    def run(n: int) -> float:
        per_call = _timed(logger, n)
        handler.flush()  # untimed: the queue is written out before the next case
        return per_call

    return run


def _queued_held() -> Case:
    sink = HeldSink()
    handler = FapilogHandler(sink, enqueue=True, queue_size=100_000)
    logger = _logger("held", handler)

    def run(n: int) -> float:
        sink.open.clear()
        sink.entered.clear()
        logger.info("held")
        sink.entered.wait()  # the writer is in a write: the calls below have the interpreter to themselves
        per_call = _timed(logger, n)
        sink.open.set()
        handler.flush()
        return per_call

    return run


def _loguru(sink: Callable[[str], None]) -> Case:
    loguru_logger.add(sink, serialize=True, enqueue=True)  # removed with the others once the run is over
    bound = loguru_logger.bind(**EXTRA)

    def run(n: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            bound.info("order {} placed", 42)
        per_call = (time.perf_counter_ns() - start) / n
        loguru_logger.complete()  # untimed: its queue is written out
        return per_call

    return run


def _drop(message: str) -> None:
    pass


def _slow(message: str) -> None:
    time.sleep(WRITE_TIME)  # the sink's own slowness


def _measure(cases: Mapping[str, Case], *, number: int, rounds: int) -> dict[str, Timing]:
    """Time each case ``rounds`` times for ``number`` calls, interleaved in rotating order."""
    names = list(cases)
    for name in names:
        cases[name](max(1, number // 10))  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.disable()
    try:
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(cases[name](number))
            gc.collect()
    finally:
        gc.enable()
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def _upstream(rounds: int) -> dict[str, float] | None:
    """Return upstream fapilog's medians per call, measured in its own virtualenv; ``None`` when it is not built."""
    if not UPSTREAM_PYTHON.exists():
        print(f"\n(upstream fapilog 0.18.1 not measured: run `nox -s bench_upstream` once to build {UPSTREAM_PYTHON.parent.parent})")
        return None
    command = [str(UPSTREAM_PYTHON), str(ROOT / "benchmarks" / "upstream_fapilog.py"), str(rounds)]
    result = subprocess.run(command, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(result.stdout.splitlines()[-1])
    return figures


def _peak_rss(*options: str) -> int:
    """Return the peak RSS (KiB) of the stalled-sink run, with a sink that stalls 2 s."""
    with tempfile.TemporaryDirectory() as directory:
        command = [sys.executable, "-m", "tests.apps.stalled_sink", f"{directory}/log.jsonl", "--stall", "2", *options]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    rss: int = json.loads(result.stdout.splitlines()[-1])["peak_rss_kb"]
    return rss


@contextlib.contextmanager
def _loguru_patched() -> Iterator[None]:
    """Configure loguru as fapilog's README does (its patcher), with no sink of its own; then put it back."""
    loguru_logger.remove()
    loguru_logger.configure(patcher=patcher)
    try:
        yield
    finally:
        loguru_logger.remove()
        loguru_logger.configure(patcher=None)


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT)
    with _loguru_patched():
        fast = {
            "direct line, a stream that drops it": _direct(NullStream()),  # type: ignore[arg-type]  # a write() is all it needs
            "direct line, a pipe read by another thread": _direct(_pipe()),
            "enqueue call, writer held in a write": _queued_held(),
            "enqueue call, writer running": _queued(NullStream()),  # type: ignore[arg-type]  # as above
            "loguru enqueue=True + patcher, writer running": _loguru(_drop),
        }
        t = {name: timing.median for name, timing in _report("one log call, on the caller's thread", fast, BURST, rounds).items()}
        slow = {
            "direct line, 2 ms sink": _direct(SlowStream()),
            "enqueue call, 2 ms sink": _queued(SlowStream()),
            "loguru enqueue=True + patcher, 2 ms sink": _loguru(_slow),
        }
        s = {name: timing.median for name, timing in _report("a burst of 100 calls, sink 2 ms a write", slow, SLOW_BURST, max(5, rounds // 3)).items()}
    upstream = _upstream(max(5, rounds // 3))
    if upstream is not None:
        print(f"     upstream fapilog 0.18.1, a sink that drops it: median {upstream['null']:10.0f} ns; 2 ms sink: {upstream['2ms']:10.0f} ns")
    queued_rss, direct_rss = _peak_rss(), _peak_rss("--direct")
    print(f"\n## peak RSS, 20,000 INFO lines while the sink stalls 2 s: enqueue {queued_rss} KiB, direct {direct_rss} KiB "
          f"({queued_rss / direct_rss:.2f}x)")
    held = t["enqueue call, writer held in a write"]
    running = t["enqueue call, writer running"]
    return [
        Verdict("enqueue call / direct line to a pipe", held, t["direct line, a pipe read by another thread"], 0.5),
        Verdict("enqueue call / direct line to a stream that drops it", held, t["direct line, a stream that drops it"], None),
        Verdict("enqueue call, writer running / direct line to a pipe", running, t["direct line, a pipe read by another thread"], None),
        Verdict("enqueue call, writer running / loguru enqueue=True", running, t["loguru enqueue=True + patcher, writer running"], None),
        Verdict("2 ms sink: enqueue call / direct line", s["enqueue call, 2 ms sink"], s["direct line, 2 ms sink"], 0.1),
        Verdict("2 ms sink: enqueue call / loguru enqueue=True", s["enqueue call, 2 ms sink"], s["loguru enqueue=True + patcher, 2 ms sink"], None),
        *(
            []
            if upstream is None
            else [
                Verdict("enqueue call, writer running / upstream fapilog 0.18.1", running, upstream["null"], None),
                Verdict("2 ms sink: enqueue call / upstream fapilog 0.18.1", s["enqueue call, 2 ms sink"], upstream["2ms"], None),
            ]
        ),
    ]


def _report(title: str, cases: Mapping[str, Case], number: int, rounds: int) -> dict[str, Timing]:
    timings = _measure(cases, number=number, rounds=rounds)
    report(title, timings)
    return timings


if __name__ == "__main__":
    for verdict in run(15):
        print(verdict.line())
