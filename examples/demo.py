"""The demo: two services under real uvicorns on 127.0.0.1, a few requests, their JSON logs.

    pip install nox && nox -s demo
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from contextlib import ExitStack

import httpx

from examples.exercise import exercise


def _listening_socket() -> socket.socket:
    """Return a socket listening on 127.0.0.1 at a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # requests queue here until the service is up: no start-up race
    return sock


def _start(sock: socket.socket, downstream: str | None) -> subprocess.Popen[str]:
    """Start one service on *sock* in a child process."""
    command = [sys.executable, "-m", "examples.serve", "--fd", str(sock.fileno())]
    if downstream is not None:
        command += ["--downstream", downstream]
    return subprocess.Popen(
        command,
        pass_fds=[sock.fileno()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(process: subprocess.Popen[str]) -> str:
    """Stop a service the way Ctrl-C would; return everything it wrote."""
    process.send_signal(signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def _show(name: str, output: str) -> int:
    """Print a service's log lines; return how many were not JSON."""
    print(f"\n== log lines of service {name} ==")
    broken = 0
    for line in output.splitlines():
        print(f"[{name}] {line}")
        try:
            json.loads(line)
        except ValueError:
            broken += 1
    return broken


def main() -> int:
    """Run the demo; return the exit status."""
    with ExitStack() as stack:
        sock_b = stack.enter_context(_listening_socket())
        sock_a = stack.enter_context(_listening_socket())
        url_a = "http://127.0.0.1:{}".format(sock_a.getsockname()[1])
        url_b = "http://127.0.0.1:{}".format(sock_b.getsockname()[1])
        service_b = _start(sock_b, None)
        service_a = _start(sock_a, url_b)
        try:

            async def run() -> list[str]:
                async with httpx.AsyncClient(base_url=url_a, timeout=30) as client:
                    return [call.line() for call in await exercise(client)]

            report = asyncio.run(run())
            failure = None
        except Exception as exc:  # the demo reports any failure, then still shows the logs
            report, failure = [], exc
        output_a, output_b = _stop(service_a), _stop(service_b)
    print(f"== requests sent to service A ({url_a}), which calls service B ({url_b}) ==")
    print("\n".join(report))
    broken = _show("A", output_a) + _show("B", output_b)
    chained = [output for output in (output_a, output_b) if '"trace_id":"demo-chain"' in output]
    print(f"\ntrace id demo-chain appears in the logs of {len(chained)} of 2 services")
    if failure is not None:
        print(f"\ndemo failed: {failure!r}")
        return 1
    if broken or len(chained) != 2:
        print(f"\ndemo failed: {broken} non-JSON lines, demo-chain in {len(chained)} services")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
