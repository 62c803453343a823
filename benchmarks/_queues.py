"""What the RQ, Dramatiq and arq benchmarks share: a real Redis, the contexts a request publishes from, the recipe's id.

Each queue is measured two ways against the obvious hand-written recipe (copy
asgi-correlation-id's request id into the job's metadata, and in the worker
set it in its ``ContextVar`` and reset it after):

- end to end, the target: jobs published from a request's context into a
  real ``redis-server``, then run by the queue's own worker in this process.
  That is what a job costs, the queue's own Redis round trips included;
- the integration's hooks alone, the queue's own part subtracted: reported.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

from asgi_correlation_id.context import correlation_id

from benchmarks._timing import Batch, Timing, Verdict, measure, report
from examples.broker import redis_server
from fapilog import bind_trace_headers

__all__ = ["TRACEPARENT", "compare", "request_contexts"]

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
END_TO_END_JOBS = 50  # per round and case: a job through Redis costs milliseconds
END_TO_END_ROUNDS = 9


def compare(
    queue: str, rounds: int, end_to_end: Callable[[str], dict[str, Batch]], hooks: dict[str, Batch], *, hooks_number: int
) -> list[Verdict]:
    """Measure *queue*'s cases with the ``fapilog.task`` record off; report them and return the verdicts.

    *end_to_end* builds the cases ``"fapilog"`` and ``"recipe"`` for a Redis
    URL; *hooks* are those two and the queue's own part, ``"alone"``.
    """
    task_log = logging.getLogger("fapilog.task")
    task_log.setLevel(logging.WARNING)
    try:
        through_redis: dict[str, Timing] | None = None
        with _redis_url() as url:
            if url is not None:
                through_redis = measure(end_to_end(url), number=END_TO_END_JOBS, rounds=min(rounds, END_TO_END_ROUNDS))
        hooks_alone = measure(hooks, number=hooks_number, rounds=rounds)
    finally:
        task_log.setLevel(logging.NOTSET)
    return _verdicts(queue, through_redis, hooks_alone)


@contextlib.contextmanager
def _redis_url() -> Iterator[str | None]:
    """Yield the URL of a fresh ``redis-server``, or ``None`` where none is installed (end to end is then skipped)."""
    if shutil.which("redis-server") is None:
        print("\n(no redis-server: the queues' end-to-end figures are skipped)")
        yield None
        return
    with tempfile.TemporaryDirectory() as directory, redis_server(Path(directory)) as url:
        yield url


def request_contexts() -> tuple[contextvars.Context, contextvars.Context]:
    """Return the contexts a request leaves to publish from: fapilog's trace, and the recipe's request id."""

    def fapilog_request() -> contextvars.Context:
        bind_trace_headers({"traceparent": TRACEPARENT})
        return contextvars.copy_context()

    def recipe_request() -> contextvars.Context:
        correlation_id.set(uuid4().hex)
        return contextvars.copy_context()

    return contextvars.Context().run(fapilog_request), contextvars.Context().run(recipe_request)


def _verdicts(queue: str, end_to_end: dict[str, Timing] | None, hooks: dict[str, Timing]) -> list[Verdict]:
    """Report the timings of *queue*; return the end-to-end target and the hooks' reported ratio.

    *end_to_end* holds ``"fapilog"`` and ``"recipe"``; *hooks* those and the queue's own part, ``"alone"``.
    """
    if end_to_end is not None:
        report(f"{queue}: cost per job end to end (published into Redis, run by its worker in process)", end_to_end)
    report(f"{queue}: time per job, the hooks' path without Redis", hooks)
    alone = hooks["alone"]
    found = [
        Verdict(
            f"fapilog.{queue} / recipe, the hooks alone ({queue}'s own part subtracted)",
            hooks["fapilog"].minus(alone).median,
            hooks["recipe"].minus(alone).median,
            None,
        )
    ]
    if end_to_end is not None:
        found.insert(
            0, Verdict(f"fapilog.{queue} / recipe, per job end to end", end_to_end["fapilog"].median, end_to_end["recipe"].median, 2.0)
        )
    return found
