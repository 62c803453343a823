"""The worker module of the RQ tests, set up as the README says: ``rq worker --worker-class tests.apps.rq_worker.Worker``."""

from __future__ import annotations

import logging
from typing import Any

from rq.job import Job
from rq.queue import Queue

import fapilog.rq
from fapilog import configure_logging, get_context
from tests.apps.slow_stderr import logging_options

configure_logging(**logging_options())  # at import: rq's CLI imports this module before it sets up its logging

logger = logging.getLogger("tests.apps.rq_worker")


def _probe() -> None:
    """Log what a job run finds before fapilog binds it."""
    logger.info("before bind: %s", get_context()["trace_id"], extra={"probe": True})


class Worker(fapilog.rq.Worker):
    """rq's forking worker, traced, with the probe first."""

    def perform_job(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        _probe()
        return super().perform_job(job, queue, *args, **kwargs)


class SimpleWorker(fapilog.rq.SimpleWorker):
    """rq's worker that runs every job in its own process, traced, with the probe first."""

    def perform_job(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> bool:
        _probe()
        return super().perform_job(job, queue, *args, **kwargs)


class SpawnWorker(fapilog.rq.SpawnWorker):
    """rq's worker that spawns a fresh interpreter per job, traced; defined here, so the horse sets up logging too."""
