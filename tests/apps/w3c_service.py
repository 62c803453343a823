"""The service W3C's Trace Context test suite calls, and the runner behind ``nox -s w3c``.

The suite POSTs a JSON list of ``{"url": ..., "arguments": [...]}``; the
service POSTs each ``arguments`` to its ``url`` in order, through an
instrumented httpx client, so the suite sees what fapilog propagates::

    python -m tests.apps.w3c_service ../shared/w3c-trace-context    # h11, then httptools

The suite is W3C's own code; it is run from where it lies, never copied here.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request

from examples.broker import free_port
from fapilog import TraceIDMiddleware
from fapilog.httpx import instrument

PARSERS = ("h11", "httptools")

api = FastAPI()


@api.post("/test")
async def follow(request: Request) -> dict[str, int]:
    """Make each call the suite asks for, in order."""
    actions: list[dict[str, Any]] = await request.json()
    async with instrument(httpx.AsyncClient(timeout=5)) as client:
        for action in actions:
            await client.post(action["url"], json=action["arguments"])
    return {"calls": len(actions)}


app = TraceIDMiddleware(api)


def _wait_until_listening(port: int) -> None:
    for _ in range(200):  # bounded: 20 s at most
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the service did not listen on port {port}")


def run_suite(suite: Path, parser: str) -> tuple[int, int, str]:
    """Serve this app under uvicorn with *parser*, run the suite at it; return (passed, ran, output)."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.apps.w3c_service:app", "--http", parser, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(port)
        env = {**os.environ, "STRICT_LEVEL": "2", "SPEC_LEVEL": "2", "HARNESS_PORT": str(free_port())}
        result = subprocess.run(
            [sys.executable, "test.py", f"http://127.0.0.1:{port}/test"],
            cwd=suite,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
    output = result.stdout + result.stderr
    ran = int(match.group(1)) if (match := re.search(r"^Ran (\d+) tests?", output, re.MULTILINE)) else 0
    failed = sum(int(count) for count in re.findall(r"(?:failures|errors)=(\d+)", output))
    return ran - failed, ran, output


def main() -> int:
    """Run the suite under each uvicorn parser; print the counts; fail unless all pass."""
    suite = Path(sys.argv[1]).resolve()
    status = 0
    for parser in PARSERS:
        passed, ran, output = run_suite(suite, parser)
        if passed != ran or ran == 0:
            print(output)
            status = 1
        print(f"W3C Trace Context suite, uvicorn --http {parser}: {passed} of {ran} passed")
    return status


if __name__ == "__main__":
    sys.exit(main())
