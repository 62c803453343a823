"""The server app as the README runs it under hypercorn: ``configure_logging()`` first.

hypercorn applies ``--log-config`` only once the app is imported and its
lifespan startup has run, so lines logged before that need fapilog's
handler installed by the app module itself (with ``FAPILOG_TEST_SCHEMA=ecs``,
the ECS one). Under the other servers, which apply the config first, this
``configure_logging()`` replaces the config's handler and keeps its schema.
"""

from __future__ import annotations

import os

from fapilog import configure_logging

configure_logging(schema="ecs" if os.environ.get("FAPILOG_TEST_SCHEMA") == "ecs" else None)  # None: the server config's, if any

from tests.apps.server_app import app  # noqa: E402  # after configure_logging(), so its import-time line is JSON

__all__ = ["app"]
