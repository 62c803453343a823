"""Run a real ASGI server command as a subprocess on 127.0.0.1, exercise it, capture every line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from examples.broker import free_port

ROOT = Path(__file__).resolve().parents[2]  # the repository
READY_ATTEMPTS = 300  # polls, READY_INTERVAL apart: a slow CI machine gets 30 s
READY_INTERVAL = 0.1
STOP_TIMEOUT = 20.0

T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """What a server wrote while it served, and what the exercise returned."""

    lines: list[str]  # stdout then stderr
    stdout: list[str]
    result: list[Any]


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(READY_ATTEMPTS):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early with status {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(READY_INTERVAL)
    raise TimeoutError(f"the server did not listen on 127.0.0.1:{port}")


def serve(
    command: Sequence[str],
    exercise: Callable[[str], list[T]],
    *,
    workers: int = 1,
    reload: Path | None = None,
    stop_with: signal.Signals = signal.SIGINT,
    env: dict[str, str] | None = None,
) -> Run:
    """Start *command* (``{port}`` replaced), run *exercise* on its URL, stop it by its process group (*stop_with*).

    With several *workers*, the exercise waits until each has logged its
    startup, so no request races a worker that is still booting. With a
    *reload* file (in the server's watched directory), the file is changed
    after the exercise, and the exercise runs again once a new worker is up.
    *env* is added to the server's environment.
    """
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in command]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            argv, stdout=out, stderr=err, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, start_new_session=True
        )
        try:
            _wait_listening(port, process)
            _wait_for_workers(err, workers)
            result = exercise(f"http://127.0.0.1:{port}")
            if reload is not None:
                reload.write_text("changed = True\n")
                _wait_for_workers(err, workers + 1)
                result += exercise(f"http://127.0.0.1:{port}")
        finally:
            stop(process, stop_with, group=True)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace").splitlines()
        stderr = err.read().decode("utf-8", "replace").splitlines()
    return Run(stdout + stderr, stdout, result)


def stop(process: subprocess.Popen[bytes], how: signal.Signals, *, group: bool) -> None:
    """Send *how* to *process* (or its whole process group), wait, then wait until the group is gone.

    A process that does not stop in time is killed with its group; once the
    group is gone, every line its processes wrote is in their output.
    """
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, how)
        else:
            process.send_signal(how)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    _wait_group_gone(process.pid)


def _wait_for_workers(err: Any, workers: int) -> None:
    """Wait until *workers* processes logged "Application startup complete" (uvicorn's words, also in gunicorn)."""
    if workers > 1:  # listening is enough for one: hypercorn and granian say it otherwise
        wait_for_output(err, "tartup complete", workers)


def wait_for_output(output: Any, text: str, count: int) -> None:
    """Wait (bounded) until the file *output* holds *text* at least *count* times."""
    needle = text.encode()
    for _ in range(READY_ATTEMPTS):
        output.seek(0)
        if output.read().count(needle) >= count:
            return
        time.sleep(READY_INTERVAL)
    raise TimeoutError(f"{text!r} did not appear {count} times")


def _wait_group_gone(pgid: int) -> None:
    """Wait (bounded) until every process of the group has exited, so all lines are written; then kill the rest."""
    for _ in range(READY_ATTEMPTS):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(READY_INTERVAL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def json_lines(lines: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Split *lines* into parsed JSON objects and the lines that are not one."""
    parsed: list[dict[str, Any]] = []
    text: list[str] = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            text.append(line)
            continue
        if isinstance(value, dict):
            parsed.append(value)
        else:
            text.append(line)
    return parsed, text
