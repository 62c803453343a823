"""Per-message cost of fapilog.dramatiq against the hand-written recipe: a middleware that carries a request id.

End to end: messages sent from a request's context through a Redis broker,
then processed by an in-process ``dramatiq.Worker`` (one thread). The hooks
alone: the middleware's enqueue, process and after-process hooks called on
one message, as Dramatiq calls them.
"""

from __future__ import annotations

import contextvars
from typing import Any
from uuid import uuid4

import dramatiq
from asgi_correlation_id.context import correlation_id
from dramatiq.broker import Broker, MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
from dramatiq.middleware import Middleware

import fapilog.dramatiq
from benchmarks._queues import compare, request_contexts
from benchmarks._timing import Batch, Verdict

QUEUE = "bench"
JOIN_IDLE_MS = 5  # how often the broker looks whether the queue is done


class RecipeMiddleware(Middleware):
    """The recipe: the request id into the options when sent, into the ``ContextVar`` while processed."""

    def before_enqueue(self, broker: Broker, message: Message[Any], delay: int) -> None:
        message.options.setdefault("request_id", correlation_id.get())

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        correlation_id.set(message.options.get("request_id") or uuid4().hex)

    def after_process_message(
        self, broker: Broker, message: MessageProxy, *, result: Any | None = None, exception: BaseException | None = None
    ) -> None:
        correlation_id.set(None)


def job(n: int) -> None:
    """The actor every case runs."""


def _through_redis(url: str, middleware: type[Middleware] | None, request: contextvars.Context) -> Batch:
    def run(n: int) -> None:
        # A broker and worker per batch: a worker adds its own middleware to its broker for good.
        broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]  # dramatiq's __init__ has no annotations
        if middleware is None:
            fapilog.dramatiq.instrument(broker)
        else:
            broker.add_middleware(middleware(), before=type(broker.middleware[0]))
        actor = dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)(job)
        request.run(lambda: [actor.send(i) for i in range(n)])
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=JOIN_IDLE_MS)
        worker.start()
        broker.join(QUEUE, interval=JOIN_IDLE_MS)
        worker.join()
        worker.stop()
        broker.close()

    return run


def _hooks(middleware: Middleware | None, request: contextvars.Context) -> Batch:
    broker = Broker()
    message: Message[Any] = Message(queue_name=QUEUE, actor_name="job", args=(1,), kwargs={}, options={})

    def process(proxy: MessageProxy) -> None:
        if middleware is not None:
            middleware.before_process_message(broker, proxy)
            middleware.after_process_message(broker, proxy, result=1)

    def run(n: int) -> None:
        for _ in range(n):
            sent = message.copy()
            if middleware is not None:
                request.run(middleware.before_enqueue, broker, sent, 0)
            contextvars.Context().run(process, MessageProxy(sent))  # a worker thread's own context

    return run


def run(rounds: int) -> list[Verdict]:
    """Measure and return the verdicts."""
    ours, recipe = request_contexts()
    fapilog_middleware = fapilog.dramatiq.instrument(Broker()).middleware[0]
    return compare(
        "dramatiq",
        rounds,
        lambda url: {"fapilog": _through_redis(url, None, ours), "recipe": _through_redis(url, RecipeMiddleware, recipe)},
        {"alone": _hooks(None, ours), "fapilog": _hooks(fapilog_middleware, ours), "recipe": _hooks(RecipeMiddleware(), recipe)},
        hooks_number=5_000,
    )
