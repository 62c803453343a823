"""A logging config for the servers' own ``--log-config`` options: every line JSON, from the first.

The servers apply it before their first line, in every process (a
``--workers`` or ``--reload`` parent, gunicorn's master, each worker)::

    uvicorn main:app --log-config "$(python3 -m fapilog.log_config)" --no-access-log
    hypercorn main:app --log-config "json:$(python3 -m fapilog.log_config)"
    granian --interface asgi main:app --log-config "$(python3 -m fapilog.log_config)"
    gunicorn -k uvicorn_worker.UvicornWorker main:app --log-config-json "$(python3 -m fapilog.log_config)"

``python3 -m fapilog.log_config`` prints the path of ``logging.json`` beside
this module, which holds ``LOG_CONFIG`` as JSON. The same dict serves
``logging.config.dictConfig``, ``uvicorn.run(log_config=...)`` and gunicorn's
``logconfig_dict``. One handler on the root logger writes JSON lines to
stderr; each server's loggers propagate to it (gunicorn's hold it themselves,
as its uvicorn worker copies them), and the servers' access logs are
silenced: ``fapilog.access`` is the one access line per request.

``--enqueue`` prints the path of ``logging-enqueue.json``
(``ENQUEUE_LOG_CONFIG``): the same config, with ``"enqueue": true`` in its
handler entry, so each process writes from a writer thread of its own (see
``configure_logging``). ``--schema ecs`` (or ``gcp`` with ``--project``, or
``datadog``) writes the same config with the schema in its handler entry to
a new file in the temp directory, readable by its owner alone (``--output``:
to that file instead), and prints its path.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from fapilog._internal.json_formatter import JsonFormatter
from fapilog._internal.schemas import SCHEMAS, Schema

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


def _written(schema: Schema, project: str | None, enqueue: bool, output: Path | None) -> Path:
    """Write ``LOG_CONFIG`` with these options in its handler entry to *output* (else a new temporary file); return its path."""
    config = copy.deepcopy(ENQUEUE_LOG_CONFIG if enqueue else LOG_CONFIG)
    handler = config["handlers"]["fapilog"]
    handler["schema"] = schema
    if project is not None:
        handler["project"] = project
    text = json.dumps(config, indent=2) + "\n"
    if output is not None:
        output.write_text(text, encoding="utf-8")
        return output.resolve()
    descriptor, name = tempfile.mkstemp(prefix="fapilog-logging-", suffix=".json")  # mode 0600, a name no one can guess
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    return Path(name)


def main(argv: list[str] | None = None) -> None:
    """Print the path of the config the options ask for: a packaged one, or one written now."""
    parser = argparse.ArgumentParser(
        prog="python3 -m fapilog.log_config",
        description="Print the path of a logging config for a server's --log-config: every line JSON.",
    )
    parser.add_argument("--schema", choices=SCHEMAS, default="default", help="the log backend's field names (default: fapilog's)")
    parser.add_argument("--project", help="the Google Cloud project id, for --schema gcp")
    parser.add_argument("--enqueue", action="store_true", help="write from a background thread in each process")
    parser.add_argument("--output", type=Path, help="write the config to this file (default: a new file in the temp directory)")
    options = parser.parse_args(argv)
    try:
        JsonFormatter(options.schema, project=options.project)  # what the handler would raise, said now
    except ValueError as error:
        parser.error(str(error))
    if options.schema == "default" and options.output is None:
        print(ENQUEUE_PATH if options.enqueue else PATH)
    else:
        print(_written(options.schema, options.project, options.enqueue, options.output))


if __name__ == "__main__":
    main()
