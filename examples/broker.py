"""A real Redis broker for the Celery demo and tests: ``redis-server`` on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

READY_ATTEMPTS = 200  # polls, READY_INTERVAL apart: 10 s for a slow machine
READY_INTERVAL = 0.05


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            return False
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Run ``redis-server`` in *directory*, nothing persisted; yield its URL; stop it by its pid."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*command, "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        for _ in range(READY_ATTEMPTS):
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited early with status {process.returncode}")
            if _answers_ping(port):
                break
            time.sleep(READY_INTERVAL)
        else:
            raise TimeoutError(f"redis-server did not answer on 127.0.0.1:{port}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
