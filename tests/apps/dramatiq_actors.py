"""The actors the Dramatiq tests run on a real worker: a request's actor A sends B, which fails once."""

from __future__ import annotations

import logging
import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware

import fapilog.dramatiq
from fapilog import get_context

BROKER_ENV = "FAPILOG_TEST_DRAMATIQ_BROKER"
RAN = "ran"
"""The Redis list every actor run pushes to as it starts: the test waits for the count it expects."""

logger = logging.getLogger("tests.apps.dramatiq_actors")


class Probe(Middleware):
    """Log what a message's processing finds before fapilog binds it."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        logger.info("before bind: %s", get_context()["trace_id"], extra={"probe": True})


def instrumented(url: str) -> RedisBroker:
    """Return a Redis broker for *url*, set up as the README says, with the probe before fapilog."""
    broker = fapilog.dramatiq.instrument(RedisBroker(url=url))  # type: ignore[no-untyped-call]  # dramatiq's RedisBroker.__init__ has no annotations
    broker.add_middleware(Probe(), before=type(broker.middleware[0]))
    broker.add_middleware(CurrentMessage())
    return broker


# The worker's broker; in the test process, messages go out through the test's own (same Redis).
broker = instrumented(os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)


def _started() -> int:
    """Note the run in Redis; return its retry count (0 on the first run)."""
    message = CurrentMessage.get_current_message()
    assert message is not None
    broker.client.rpush(RAN, message.message_id)
    retries: int = message.options.get("retries", 0)
    return retries


@dramatiq.actor(max_retries=0)
def a(n: int) -> None:
    """Log, then send B: B continues this run's trace."""
    _started()
    sent = b.send(n)
    logger.info("task a %d", n, extra={"n": n, "sent": sent.message_id})  # the test reads which B it sent


@dramatiq.actor(max_retries=1, min_backoff=10, max_backoff=20)
def b(n: int) -> None:
    """Fail on the first attempt; the Retries middleware sends it again, and the second succeeds."""
    attempt = _started()
    logger.info("task b %d attempt %d", n, attempt, extra={"n": n})
    if attempt == 0:
        raise RuntimeError(f"b {n} fails once")


@dramatiq.actor(max_retries=0)
def work(n: int) -> None:
    """One of many: log once."""
    _started()
    logger.info("work %d", n, extra={"n": n})


@dramatiq.actor(max_retries=0)
def fail() -> None:
    """Always raise: Dramatiq logs the traceback, fapilog one FAILURE record."""
    _started()
    raise ValueError("fails always")
