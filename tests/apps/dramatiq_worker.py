"""The broker module of the Dramatiq tests, set up as the README says: ``dramatiq tests.apps.dramatiq_worker --skip-logging``."""

from fapilog import configure_logging
from tests.apps.slow_stderr import logging_options

configure_logging(**logging_options())

from tests.apps.dramatiq_actors import broker  # noqa: E402  # logging first, as the README shows

__all__ = ["broker"]
