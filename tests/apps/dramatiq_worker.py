"""The broker module of the Dramatiq tests, set up as the README says: ``dramatiq tests.apps.dramatiq_worker --skip-logging``."""

from fapilog import configure_logging

configure_logging()

from tests.apps.dramatiq_actors import broker  # noqa: E402  # logging first, as the README shows

__all__ = ["broker"]
