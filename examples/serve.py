"""Run one example service under uvicorn, logging JSON lines to stdout.

    python -m examples.serve --port 8000 [--downstream http://127.0.0.1:8001]
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from examples.service import create_app
from fapilog import configure_logging


def main() -> None:
    """Parse the options and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m examples.serve")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="listen on 127.0.0.1:PORT")
    where.add_argument("--fd", type=int, help="serve on this inherited, listening socket")
    parser.add_argument("--downstream", help="base URL of the service /chain calls")
    args = parser.parse_args()
    configure_logging(stream=sys.stdout)
    # log_config=None: uvicorn keeps the logging configured above.
    uvicorn.run(
        create_app(args.downstream),
        host="127.0.0.1",
        port=args.port or 0,
        fd=args.fd,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
