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
silenced: ``fapilog.access`` is the one access line per request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

__all__ = ["LOG_CONFIG", "PATH"]

PATH: Final = Path(__file__).with_name("logging.json")

_PROPAGATE: Final = {"handlers": [], "propagate": True}
_TO_HANDLER: Final = {"handlers": ["fapilog"], "propagate": False}

LOG_CONFIG: Final[dict[str, Any]] = {
    "version": 1,
    # Loggers created before the config is applied keep working.
    "disable_existing_loggers": False,
    "handlers": {
        "fapilog": {"class": "fapilog._internal.configure.FapilogHandler", "stream": "ext://sys.stderr"},
    },
    "root": {"level": "INFO", "handlers": ["fapilog"]},
    # Every key the servers merge their own defaults under is set here, so none of theirs remains.
    "formatters": {},
    "filters": {},
    "loggers": {
        "uvicorn": {"level": "INFO", **_PROPAGATE},
        "uvicorn.error": {"level": "INFO", **_PROPAGATE},
        "uvicorn.access": {"level": "WARNING", **_PROPAGATE},
        "hypercorn.error": {"level": "INFO", **_PROPAGATE},
        "hypercorn.access": {"level": "WARNING", **_PROPAGATE},
        "_granian": {"level": "INFO", **_PROPAGATE},
        "granian.access": {"level": "WARNING", **_PROPAGATE},
        "gunicorn.error": {"level": "INFO", **_TO_HANDLER},
        "gunicorn.access": {"level": "WARNING", **_TO_HANDLER},
    },
}

if __name__ == "__main__":
    print(PATH)
