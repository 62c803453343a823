"""A logging config for the servers' own ``--log-config`` options: every line JSON, from the first.

The servers apply it before their first line, in every process (a
``--workers`` or ``--reload`` parent, gunicorn's master, each worker)::

    uvicorn main:app --log-config "$(python -m fapilog.log_config)" --no-access-log
    hypercorn main:app --log-config "json:$(python -m fapilog.log_config)"
    granian --interface asgi main:app --log-config "$(python -m fapilog.log_config)"
    gunicorn -k uvicorn_worker.UvicornWorker main:app --log-config-json "$(python -m fapilog.log_config)"

``python -m fapilog.log_config`` prints the path of ``logging.json`` beside
this module, which holds ``LOG_CONFIG`` as JSON. The same dict serves
``logging.config.dictConfig``, ``uvicorn.run(log_config=...)`` and gunicorn's
``logconfig_dict``. One handler on the root logger writes JSON lines to
stderr; each server's loggers propagate to it (gunicorn's hold it themselves,
as its uvicorn worker copies them), and the servers' access logs are
silenced: ``fapilog.access`` is the one access line per request. To write
a backend's schema, copy the file and add ``"schema": "ecs"`` (or ``"gcp"``
with ``"project"``, or ``"datadog"``) to its handler entry.

``python -m fapilog.log_config --enqueue`` prints the path of
``logging-enqueue.json`` (``ENQUEUE_LOG_CONFIG``): the same config, with
``"enqueue": true`` in its handler entry, so each process writes from a
writer thread of its own (see ``configure_logging``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final

__all__ = ["ENQUEUE_LOG_CONFIG", "ENQUEUE_PATH", "LOG_CONFIG", "PATH"]

PATH: Final = Path(__file__).with_name("logging.json")
ENQUEUE_PATH: Final = Path(__file__).with_name("logging-enqueue.json")

LOG_CONFIG: Final[dict[str, Any]] = json.loads(PATH.read_text(encoding="utf-8"))
"""``logging.json`` as a dict: the file is the one source.

It keeps loggers created before it is applied (``disable_existing_loggers``
false), and sets every top-level key the servers merge their own defaults
under, so none of their handlers or formatters remains."""

ENQUEUE_LOG_CONFIG: Final[dict[str, Any]] = json.loads(ENQUEUE_PATH.read_text(encoding="utf-8"))
"""``logging-enqueue.json`` as a dict: ``LOG_CONFIG`` with ``"enqueue": true`` for its handler."""

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m fapilog.log_config", description="Print the path of fapilog's logging config file.")
    parser.add_argument("--enqueue", action="store_true", help="the config whose handler writes from a background thread")
    print(ENQUEUE_PATH if parser.parse_args().enqueue else PATH)
