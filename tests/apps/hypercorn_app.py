"""The server app as the README runs it under hypercorn: ``configure_logging()`` first.

hypercorn applies ``--log-config`` only once the app is imported and its
lifespan startup has run, so lines logged before that need fapilog's
handler installed by the app module itself.
"""

from __future__ import annotations

from fapilog import configure_logging

configure_logging()

from tests.apps.server_app import app  # noqa: E402  # after configure_logging(), so its import-time line is JSON

__all__ = ["app"]
