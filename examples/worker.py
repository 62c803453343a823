"""The example worker: ``celery -A examples.worker worker``, every line a JSON line with its trace."""

from examples.tasks import app
from fapilog import configure_logging

configure_logging()

__all__ = ["app"]
