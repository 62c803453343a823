"""Every real server, in the README's setup: each line JSON with its context, one access line per request.

Each server runs ``tests.apps.server_app:app`` (``instrument(app)`` with CORS
added after it) as a subprocess on a free 127.0.0.1 port, with fapilog's
packaged log config, and is stopped by its process group.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from fapilog._internal.configure import SERVER_ACCESS_LOGGERS
from fapilog._internal.records import MAX_LINE_LENGTH
from fapilog._internal.schemas import ECS_VERSION
from fapilog.log_config import ENQUEUE_LOG_CONFIG, PATH
from tests.support.http import preflight
from tests.support.servers import Run, json_lines, serve

APP = "tests.apps.server_app:app"
CONFIG = str(PATH)
BIN = sys.executable.rsplit("/", 1)[0]
HOSTILE_ID = '"><script>zq</script>'
HOSTILE_HEADERS = {"traceparent": f"00-{HOSTILE_ID}", "tracestate": "zq=1," * 2000, "User-Agent": "u" * 5000}
HOSTILE_STATE = {  # a valid traceparent, so tracestate and baggage are read, and dropped
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "zq=" + "v" * 300,
    "baggage": "zq=" + "v" * 9000,
}

SERVERS: dict[str, tuple[list[str], int]] = {
    "uvicorn": ([f"{BIN}/uvicorn", APP, "--port", "{port}", "--log-config", CONFIG, "--no-access-log"], 1),
    "uvicorn --workers 2": (
        [f"{BIN}/uvicorn", APP, "--port", "{port}", "--workers", "2", "--log-config", CONFIG, "--no-access-log"],
        2,
    ),
    "uvicorn --reload": (
        [f"{BIN}/uvicorn", APP, "--port", "{port}", "--reload", "--reload-dir", "{watched}", "--log-config", CONFIG],
        1,
    ),
    "gunicorn": (
        [f"{BIN}/gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2", "-b", "127.0.0.1:{port}"]
        + ["--log-config-json", CONFIG, "--no-control-socket", APP],
        2,
    ),
    "hypercorn": (
        [f"{BIN}/hypercorn", "tests.apps.hypercorn_app:app", "-b", "127.0.0.1:{port}", "--log-config", f"json:{CONFIG}"],
        1,
    ),
    "granian": (
        [f"{BIN}/granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}"]
        + ["--log-config", CONFIG, APP],
        1,
    ),
}


def _exercise(url: str) -> list[tuple[str, str, httpx.Response]]:
    """Send the requests every server gets; return (label, request id, response) for each."""
    calls: list[tuple[str, str, str, dict[str, str], bytes | None]] = [
        ("plain", "GET", "/", {}, None),
        ("streaming", "GET", "/stream", {}, None),
        ("post", "POST", "/echo", {}, b"x" * 1000),
        ("failing", "GET", "/fail", {}, None),
        ("preflight", "OPTIONS", "/echo", preflight("POST"), None),
        ("hostile", "GET", "/", HOSTILE_HEADERS, None),
        ("hostile-state", "GET", "/", HOSTILE_STATE, None),
    ]
    sent = []
    # A new connection each: a server closes the one a failing request used, racing its reuse.
    for index, (label, method, path, headers, body) in enumerate(calls):
        request_id = f"{label}-{index}" if label != "hostile" else HOSTILE_ID
        with httpx.Client(base_url=url, timeout=30) as client:
            response = client.request(method, path, headers={"X-Request-ID": request_id, **headers}, content=body)
        sent.append((label, request_id, response))
    return sent


@pytest.mark.parametrize("server", list(SERVERS))
def test_every_line_is_json_and_every_request_has_one_access_line(server: str, tmp_path: Path) -> None:
    command, workers = SERVERS[server]
    reload = None
    if "{watched}" in command:  # the reloader restarts the worker once, between two exercises
        reload = tmp_path / "trigger.py"
        reload.write_text("changed = False\n")
        command = [part.replace("{watched}", str(tmp_path)) for part in command]
    run = serve(command, _exercise, workers=workers, reload=reload)
    parsed = _assert_one_json_line_and_one_access_line_per_request(server, run)
    if reload is not None:
        assert sum("Reloading" in line["message"] for line in parsed) == 1


def _assert_one_json_line_and_one_access_line_per_request(server: str, run: Run) -> list[dict[str, Any]]:
    """Check what every server run writes; return its lines, parsed."""
    parsed, text = json_lines(run.lines)
    assert text == [], f"{server} wrote lines that are not JSON"
    messages = {line["message"] for line in parsed if line["logger"] == "server_app"}
    assert {"imported", "lifespan started"} <= messages, "lines logged before the first request are there, as JSON"
    assert run.stdout == [], "everything goes to stderr, as configured"
    assert all(len(line) <= MAX_LINE_LENGTH for line in run.lines)
    assert not [line for line in parsed if line["logger"] in SERVER_ACCESS_LOGGERS]
    access = [line for line in parsed if line["logger"] == "fapilog.access"]
    sent: list[tuple[str, str, httpx.Response]] = run.result
    assert len(access) == len(sent)
    # By the id each response names: worker processes write their lines in their own order.
    by_request = {line["request_id"]: line for line in access}
    for label, request_id, response in sent:
        line = by_request[response.headers["X-Request-ID"]]
        if label == "hostile":
            assert line["request_id"] == line["trace_id"] == response.headers["X-Request-ID"] != HOSTILE_ID
        elif label == "hostile-state":
            assert (line["request_id"], line["trace_id"]) == (request_id, "4bf92f3577b34da6a3ce929d0e0e4736")
        else:
            assert line["request_id"] == line["trace_id"] == response.headers["X-Request-ID"] == request_id
        expected_status = 500 if label == "failing" else 200
        assert (response.status_code, line["status_code"]) == (expected_status, expected_status)
        assert line["res_bytes"] == len(response.content), label
        if label == "post":
            assert line["req_bytes"] == 1000
        if label == "hostile":
            assert line["user_agent"] == "u" * 512
    assert "zq" not in "\n".join(run.lines)
    _assert_the_error_line_names_the_failing_request(parsed)
    return parsed


ONCE_PER_PROCESS = {  # lines each process writes once: a line queued before a fork() and written again would show
    "uvicorn": [("Started server process", 1), ("Finished server process", 1)],
    "uvicorn --workers 2": [("Started parent process", 1), ("Started server process", 2), ("Finished server process", 2)],
    "gunicorn": [("Starting gunicorn", 1), ("Listening at", 1), ("Booting worker", 2), ("Finished server process", 2)],
}


@pytest.mark.parametrize("server", list(ONCE_PER_PROCESS))
def test_with_enqueue_each_process_writes_its_lines_once_and_all_of_them_by_its_graceful_shutdown(
    server: str, tmp_path: Path
) -> None:
    """The packaged enqueue config, with a stderr that takes 50 ms a write, stopped by SIGTERM.

    Lines are still queued when gunicorn forks its workers and when each
    process is told to stop: none is written twice, and none is lost.
    """
    config = json.loads(json.dumps(ENQUEUE_LOG_CONFIG))
    config["handlers"]["fapilog"]["stream"] = "ext://tests.apps.slow_stderr.stream"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    command, workers = SERVERS[server]
    run = serve([str(path) if part == CONFIG else part for part in command], _exercise, workers=workers, stop_with=signal.SIGTERM)
    parsed = _assert_one_json_line_and_one_access_line_per_request(server, run)
    for start, times in ONCE_PER_PROCESS[server]:
        assert sum(line["message"].startswith(start) for line in parsed) == times, start


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn", "hypercorn", "granian"])
def test_a_config_from_log_config_schema_ecs_makes_every_line_ecs_with_an_app_that_configures_logging_too(
    server: str, tmp_path: Path
) -> None:
    """``python3 -m fapilog.log_config --schema ecs``, and an app that calls ``configure_logging()`` at import.

    Its call keeps the config's schema; under hypercorn, which applies the
    config after the import, it names the schema itself, as the README says.
    """
    config = tmp_path / "ecs.json"
    subprocess.run([sys.executable, "-m", "fapilog.log_config", "--schema", "ecs", "--output", str(config)], check=True)
    command, workers = SERVERS[server]
    command = [part.replace(CONFIG, str(config)).replace(APP, "tests.apps.hypercorn_app:app") for part in command]
    run = serve(command, _exercise, workers=workers, env={"FAPILOG_TEST_SCHEMA": "ecs"} if server == "hypercorn" else None)
    parsed, text = json_lines(run.lines)
    assert text == []
    assert {line["ecs.version"] for line in parsed} == {ECS_VERSION}
    assert {"imported", "lifespan started"} <= {line["message"] for line in parsed}
    access = [line for line in parsed if line["log"]["logger"] == "fapilog.access"]
    sent: list[tuple[str, str, httpx.Response]] = run.result
    assert len(access) == len(sent)
    by_request = {line["http"]["request"]["id"]: line for line in access}
    for label, request_id, response in sent:
        line = by_request[response.headers["X-Request-ID"]]
        assert line["http"]["response"]["status_code"] == response.status_code
        if not label.startswith("hostile"):
            assert line["trace"]["id"] == request_id
    errors = [line for line in parsed if line["log.level"] == "error" and line["log"]["logger"] != "fapilog.access"]
    assert errors
    assert {line["trace"]["id"] for line in errors} == {"failing-3"}


def _assert_the_error_line_names_the_failing_request(parsed: list[dict[str, Any]]) -> None:
    errors = [line for line in parsed if line["level"] == "ERROR" and line["logger"] != "fapilog.access"]
    assert errors, "the server logs the failing request"
    failed_access = [line for line in parsed if line["logger"] == "fapilog.access" and line["status_code"] == 500]
    assert failed_access, "the failing request has its access line"
    assert {(line["level"], line["trace_id"], line["user_id"]) for line in failed_access} == {("ERROR", "failing-3", "u-failing")}
    for line in errors:
        assert (line["trace_id"], line["user_id"], line["tenant_id"]) == ("failing-3", "u-failing", None)
        assert "the endpoint failed on purpose" in line.get("exception", line["message"])
    assert {line.get("user_id") for line in parsed if line["trace_id"] != "failing-3"} == {None}  # a process without the app: no key
