"""Per-task cost of fapilog.celery against asgi-correlation-id's Celery signal recipe.

One task costs a publish hook (in the web process) and, in the worker, a bind
before the task and a clear (and, for fapilog, the ``fapilog.task`` record)
after it. Both sides run their signal receivers on the same Celery task
request, pushed and popped as Celery's tracer does; that shared Celery part
is measured alone and subtracted, round by round.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from asgi_correlation_id.context import correlation_id
from celery import Celery
from celery.app.task import Task

import fapilog.celery
from benchmarks._timing import Batch, NullStream, Timing, Verdict, measure, only_to, report
from fapilog import JsonFormatter, bind_trace_headers, clear_context
from fapilog.celery import _end, _publish, _start

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PEER_HEADER = "CORRELATION_ID"
_TASK_ID = "d0dd93f9-ace3-4fdc-bdcb-eee863cd0add"


# asgi-correlation-id's recipe (its README, and its celery extension before 5.0).
def _peer_publish(headers: dict[str, Any], **_: Any) -> None:
    headers[PEER_HEADER] = correlation_id.get()


def _peer_start(task: Task, **_: Any) -> None:
    value = task.request.get(PEER_HEADER)
    correlation_id.set(value if value else uuid4().hex)


def _peer_end(**_: Any) -> None:
    correlation_id.set(None)


Hooks = tuple[Callable[..., None], Callable[..., None], Callable[..., None]]


def _publish_batch(publish: Callable[..., None]) -> Batch:
    def run(n: int) -> None:
        for _ in range(n):
            publish(headers={"id": _TASK_ID, "task": "bench.task"})

    return run


def _worker_batch(task: Task, hooks: Hooks | None, headers: dict[str, Any]) -> Batch:
    """Run the worker side in an empty context, as a worker process has."""
    message = {"id": _TASK_ID, "retries": 0, "is_eager": False, **headers}

    def runs(n: int) -> None:
        for _ in range(n):
            task.push_request(**message)
            if hooks is not None:
                hooks[1](task=task)
                hooks[2](task=task, task_id=_TASK_ID, state="SUCCESS")
            task.pop_request()

    return lambda n: contextvars.Context().run(runs, n)


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    app = fapilog.celery.instrument(Celery("bench", broker="memory://"))

    @app.task
    def job() -> None:
        """The task whose runs are measured; its body never runs here."""

    work = app.tasks[job.name]  # the task itself, as the worker's tracer has it, not the lazy proxy

    ours: Hooks = (_publish, _start, _end)
    peer: Hooks = (_peer_publish, _peer_start, _peer_end)
    # What each side's publish hook puts into a message, published from a request.
    bind_trace_headers({"traceparent": TRACEPARENT})
    our_headers: dict[str, Any] = {}
    _publish(headers=our_headers)
    correlation_id.set(uuid4().hex)
    peer_headers = {PEER_HEADER: correlation_id.get()}
    task_log = logging.getLogger("fapilog.task")
    handler = logging.StreamHandler(NullStream())
    handler.setFormatter(JsonFormatter())
    try:
        task_log.setLevel(logging.WARNING)
        timings = measure(
            {
                "publish: fapilog": _publish_batch(_publish),
                "publish: asgi-correlation-id recipe": _publish_batch(_peer_publish),
                "worker: Celery request alone": _worker_batch(work, None, our_headers),
                "worker: fapilog, task record off": _worker_batch(work, ours, our_headers),
                "worker: asgi-correlation-id recipe": _worker_batch(work, peer, peer_headers),
            },
            number=5_000,
            rounds=rounds,
        )
        with only_to("fapilog.task", handler):
            logged = measure(
                {
                    "worker: Celery request alone": _worker_batch(work, None, our_headers),
                    "worker: fapilog, task record on (JSON)": _worker_batch(work, ours, our_headers),
                },
                number=5_000,
                rounds=rounds,
            )
    finally:
        task_log.setLevel(logging.NOTSET)
        clear_context()
        correlation_id.set(None)
    base = timings["worker: Celery request alone"]
    cost: dict[str, Timing] = {
        "fapilog, record off": _plus(timings["publish: fapilog"], timings["worker: fapilog, task record off"].minus(base)),
        "asgi-correlation-id recipe": _plus(
            timings["publish: asgi-correlation-id recipe"], timings["worker: asgi-correlation-id recipe"].minus(base)
        ),
        "fapilog, record on (JSON line)": _plus(
            timings["publish: fapilog"],
            logged["worker: fapilog, task record on (JSON)"].minus(logged["worker: Celery request alone"]),
        ),
    }
    report("celery: time per operation", {**timings, **logged})
    report("celery: cost per task (publish + worker hooks, Celery's own part subtracted)", cost)
    return [
        Verdict("fapilog.celery / asgi-correlation-id recipe, per task", cost["fapilog, record off"].median, cost["asgi-correlation-id recipe"].median, None),
        Verdict(
            "fapilog.celery with its JSON task record / the recipe",
            cost["fapilog, record on (JSON line)"].median,
            cost["asgi-correlation-id recipe"].median,
            None,
        ),
    ]


def _plus(first: Timing, second: Timing) -> Timing:
    """Return the two costs added, round by round."""
    return Timing(tuple(a + b for a, b in zip(first.samples, second.samples, strict=True)))
