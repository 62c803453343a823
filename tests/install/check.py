"""Check an installed fapilog with its environment's own interpreter: import it, serve the quick start, read the lines.

Usage: ``python tests/install/check.py [--all-modules] -- COMMAND...`` (run by
``nox -s install``). Imports ``fapilog`` and ``fapilog.log_config`` (with
``--all-modules``, every public module) from the interpreter's environment,
never from a checkout; starts COMMAND, a server of ``examples/quickstart.py``
given its port in ``$UVICORN_PORT``; sends one request with a client's id;
stops the server; and checks what it wrote: every line JSON, among them the
app's line and the access line, both with the request's trace id.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import pkgutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

READY_ATTEMPTS = 300  # polls, READY_INTERVAL apart: a slow CI machine gets 30 s
READY_INTERVAL = 0.1
TRACE_ID = "order-42"


def import_modules(every: bool) -> list[str]:
    """Import fapilog and its public modules (all of them, or only those no extra is needed for); return their names."""
    import fapilog

    package = Path(fapilog.__file__).parent
    assert package.is_relative_to(sys.prefix), f"fapilog comes from {package}, not from {sys.prefix}"
    assert importlib.metadata.version("fapilog-context") == fapilog.__version__
    names = [f"fapilog.{module.name}" for module in pkgutil.iter_modules([str(package)]) if not module.name.startswith("_")]
    for name in names if every else ["fapilog.log_config"]:
        importlib.import_module(name)
    return ["fapilog", *names] if every else ["fapilog", "fapilog.log_config"]


def serve_quickstart(command: list[str]) -> list[dict[str, Any]]:
    """Run *command*, ask ``/orders/42`` with a client's id, stop it; return its stderr lines, each a JSON object."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    with tempfile.TemporaryFile() as err:
        env = {**os.environ, "UVICORN_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen(command, stderr=err, env=env, start_new_session=True)
        try:
            _wait_listening(port, server)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/orders/42", headers={"X-Request-ID": TRACE_ID})
            with urllib.request.urlopen(request, timeout=30) as response:
                assert json.load(response) == {"order_id": 42, "trace_id": TRACE_ID}
        finally:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(timeout=30)
        err.seek(0)
        written = err.read().decode("utf-8", "replace")
    print(written, end="")
    lines = [json.loads(line) for line in written.splitlines()]  # every line: one JSON object
    assert all(isinstance(line, dict) for line in lines)
    return lines


def _wait_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    for _ in range(READY_ATTEMPTS):
        if server.poll() is not None:
            raise RuntimeError(f"the server exited early with status {server.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(READY_INTERVAL)
    raise TimeoutError(f"the server did not listen on 127.0.0.1:{port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-modules", action="store_true", help="import every public module (every extra installed)")
    parser.add_argument("command", nargs="+", help="the server of examples/quickstart.py")
    arguments = parser.parse_args()
    imported = import_modules(arguments.all_modules)
    lines = serve_quickstart(arguments.command)
    [looked_up] = [line for line in lines if line["message"] == "order 42 looked up"]
    [access] = [line for line in lines if line["logger"] == "fapilog.access"]
    assert (looked_up["trace_id"], access["trace_id"], access["status_code"]) == (TRACE_ID, TRACE_ID, 200)
    print(f"imported {', '.join(imported)}; {len(lines)} JSON lines, the quick start's with trace_id {TRACE_ID!r}")


if __name__ == "__main__":
    main()
