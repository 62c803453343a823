"""The worker module of the Celery enqueue run: ``configure_logging(enqueue=True)`` to a stderr that takes its time."""

from fapilog import configure_logging
from tests.apps.slow_stderr import stream

configure_logging(stream=stream, enqueue=True)

from tests.apps.celery_tasks import app  # noqa: E402  # logging first, as the README shows

__all__ = ["app"]
