"""The demo: two services under real uvicorns and a Celery worker, a few requests, their JSON logs.

    pip install nox && nox -s demo

The worker's broker is a real ``redis-server`` when one is on the PATH, else
Kombu's filesystem transport (a real Celery broker with no server to start).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import httpx

from examples.broker import redis_server
from examples.exercise import exercise

TASK_TRACE = "demo-task"
RECEIPT_SENT = re.compile(rb"send_receipt\[[-0-9a-f]+\] SUCCESS")  # the last task's fapilog.task record
WORKER_DEADLINE = 30.0  # seconds the worker gets to finish the checkout's tasks


def _listening_socket() -> socket.socket:
    """Return a socket listening on 127.0.0.1 at a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # requests queue here until the service is up: no start-up race
    return sock


def _start(command: list[str], env: dict[str, str], output: IO[bytes], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """Start one child process writing to *output*."""
    return subprocess.Popen(
        command, pass_fds=pass_fds, stdout=output, stderr=subprocess.STDOUT, env={**env, "PYTHONUNBUFFERED": "1"}
    )


def _service(sock: socket.socket, downstream: str | None, env: dict[str, str], output: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start one example service on *sock*."""
    command = [sys.executable, "-m", "examples.serve", "--fd", str(sock.fileno())]
    if downstream is not None:
        command += ["--downstream", downstream]
    return _start(command, env, output, (sock.fileno(),))


def _stop(process: subprocess.Popen[bytes], how: signal.Signals, output: IO[bytes]) -> str:
    """Stop a child the way Ctrl-C (or a container stop) would; return everything it wrote."""
    process.send_signal(how)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    output.seek(0)
    return output.read().decode("utf-8", "replace")


def _wait_for(output: IO[bytes], pattern: re.Pattern[bytes]) -> bool:
    """Wait (bounded) until *output* holds *pattern*: the worker's lines are the only sign it is done."""
    deadline = time.monotonic() + WORKER_DEADLINE
    while time.monotonic() < deadline:
        output.seek(0)
        if pattern.search(output.read()):
            return True
        time.sleep(0.1)
    return False


def _show(name: str, output: str) -> int:
    """Print a process's log lines; return how many were not JSON."""
    print(f"\n== log lines of {name} ==")
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
        env = dict(os.environ)
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if shutil.which("redis-server"):
            env["BROKER_URL"] = stack.enter_context(redis_server(scratch))
            print(f"Celery broker: redis-server at {env['BROKER_URL']}")
        else:
            env["BROKER_URL"], env["QUEUE_DIR"] = "filesystem://", str(scratch)
            print("Celery broker: no redis-server on the PATH, so Kombu's filesystem transport")
        outputs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(3)]
        sock_b = stack.enter_context(_listening_socket())
        sock_a = stack.enter_context(_listening_socket())
        url_a = "http://127.0.0.1:{}".format(sock_a.getsockname()[1])
        url_b = "http://127.0.0.1:{}".format(sock_b.getsockname()[1])
        worker_command = [sys.executable, "-m", "celery", "-A", "examples.worker", "worker", "--pool", "solo"]
        worker = _start([*worker_command, "--without-gossip", "--without-mingle", "--without-heartbeat"], env, outputs[2])
        service_b = _service(sock_b, None, env, outputs[1])
        service_a = _service(sock_a, url_b, env, outputs[0])
        try:

            async def run() -> list[str]:
                async with httpx.AsyncClient(base_url=url_a, timeout=30) as client:
                    return [call.line() for call in await exercise(client)]

            report = asyncio.run(run())
            failure: Exception | None = None
            if not _wait_for(outputs[2], RECEIPT_SENT):
                failure = TimeoutError("the worker did not finish the checkout's tasks")
        except Exception as exc:  # the demo reports any failure, then still shows the logs
            report, failure = [], exc
        output_a = _stop(service_a, signal.SIGINT, outputs[0])
        output_b = _stop(service_b, signal.SIGINT, outputs[1])
        output_worker = _stop(worker, signal.SIGTERM, outputs[2])
    print(f"== requests sent to service A ({url_a}), which calls service B ({url_b}) ==")
    print("\n".join(report))
    broken = _show("service A", output_a) + _show("service B", output_b)
    _show("the Celery worker", output_worker)  # Celery prints its shutdown notice as text
    chained = [output for output in (output_a, output_b) if '"trace_id":"demo-chain"' in output]
    print(f"\ntrace id demo-chain appears in the logs of {len(chained)} of 2 services")
    task_lines = [line for line in output_worker.splitlines() if f'"trace_id":"{TASK_TRACE}"' in line]
    print(f"trace id {TASK_TRACE} appears on {len(task_lines)} lines of the worker: the request's tasks")
    if failure is not None:
        print(f"\ndemo failed: {failure!r}")
        return 1
    if broken or len(chained) != 2 or not task_lines:
        print(f"\ndemo failed: {broken} non-JSON lines, demo-chain in {len(chained)} services")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
