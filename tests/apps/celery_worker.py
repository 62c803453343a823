"""The worker module of the Celery tests, set up as the README says: ``celery -A tests.apps.celery_worker worker``."""

from fapilog import configure_logging
from tests.apps.slow_stderr import logging_options

configure_logging(**logging_options())

from tests.apps.celery_tasks import app  # noqa: E402  # logging first, as the README shows

__all__ = ["app"]
