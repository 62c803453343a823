"""configure_logging and the servers' log config: JSON lines with the context from every logger."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fapilog import ContextFilter, FapilogHandler, JsonFormatter, bind_context, configure_logging, instrument_app
from fapilog._internal.configure import SERVER_ACCESS_LOGGERS, SERVER_LOGGERS, HandlerOptions
from fapilog._internal.schemas import ECS_VERSION, Schema
from fapilog.log_config import ENQUEUE_LOG_CONFIG, ENQUEUE_PATH, LOG_CONFIG, PATH
from tests.support.http import running_server
from tests.support.lines import SCHEMAS
from tests.support.records import make_record


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Parse every line written to *stream*; each must be one JSON object."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_of_any_logger_come_out_as_json_lines_with_the_context() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    bind_context(trace_id="cfg-1", span_id="00f067aa0ba902b7")
    logging.getLogger("app.orders").info("order %s placed", 42, extra={"order_id": 42})
    logging.getLogger("app.orders").debug("below the level")
    [line] = lines(stream)
    assert line["message"] == "order 42 placed"
    assert line["logger"] == "app.orders"
    assert line["level"] == "INFO"
    assert line["trace_id"] == "cfg-1"
    assert line["span_id"] == "00f067aa0ba902b7"
    assert line["order_id"] == 42


def test_the_level_can_be_given_by_name() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    logging.getLogger("app").debug("shown")
    assert [line["message"] for line in lines(stream)] == ["shown"]


def test_calling_it_twice_leaves_one_handler_and_keeps_others() -> None:
    other = logging.NullHandler()
    logging.root.addHandler(other)
    first = io.StringIO()
    second = io.StringIO()
    configure_logging(stream=first)
    handler = configure_logging(stream=second)
    ours = [h for h in logging.root.handlers if h is not other and type(h).__module__.startswith("fapilog")]
    assert ours == [handler]
    assert other in logging.root.handlers
    logging.getLogger("app").warning("once")
    assert first.getvalue() == ""
    assert [line["message"] for line in lines(second)] == ["once"]


def test_every_servers_loggers_are_handed_to_the_root_handler_and_their_access_logs_silenced() -> None:
    for name in SERVER_LOGGERS:
        logging.getLogger(name).addHandler(logging.StreamHandler(io.StringIO()))
        logging.getLogger(name).propagate = False
    stream = io.StringIO()
    configure_logging(stream=stream)
    for name in SERVER_LOGGERS:
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate is True
        logging.getLogger(name).info("from %s", name)
    assert [line["message"] for line in lines(stream)] == [
        f"from {name}" for name in SERVER_LOGGERS if name not in SERVER_ACCESS_LOGGERS
    ]


def test_server_access_logs_can_be_kept() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, server_access_log=True)
    logging.getLogger("uvicorn.access").info('127.0.0.1:1 - "GET / HTTP/1.1" 200', extra={"color_message": "x"})
    [line] = lines(stream)
    assert line["logger"] == "uvicorn.access"
    assert "color_message" not in line


def test_the_packaged_log_config_writes_json_and_configure_logging_replaces_its_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.config.dictConfig(LOG_CONFIG)
    bind_context(trace_id="file-1")
    logging.getLogger("hypercorn.error").info("from the config file")
    logging.getLogger("gunicorn.error").info("gunicorn's own handler")
    logging.getLogger("granian.access").info("silenced")
    written = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["message"], line["trace_id"]) for line in written] == [
        ("from the config file", "file-1"),
        ("gunicorn's own handler", "file-1"),
    ]
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("app").info("once")
    assert capsys.readouterr().err == ""
    assert [line["message"] for line in lines(stream)] == ["once"]


async def test_a_real_uvicorn_writes_its_own_records_as_json_with_the_request_trace_id() -> None:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> str:
        logging.getLogger("app").info("handling")
        return "ok"

    @app.get("/fail")
    async def fail() -> str:
        raise RuntimeError("handler failed")

    stream = io.StringIO()
    configure_logging(stream=stream)
    async with running_server(instrument_app(app)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            ok_response = await client.get("/ok", headers={"X-Request-ID": "uv-ok"})
            fail_response = await client.get("/fail", headers={"X-Request-ID": "uv-fail"})
    assert ok_response.headers["X-Request-ID"] == "uv-ok"
    assert fail_response.status_code == 500
    assert fail_response.headers["X-Request-ID"] == "uv-fail"
    parsed = lines(stream)
    by_logger: dict[str, list[dict[str, Any]]] = {}
    for line in parsed:
        by_logger.setdefault(line["logger"], []).append(line)
    assert "uvicorn.access" not in by_logger  # one access line per request: fapilog's
    assert [line["status_code"] for line in by_logger["fapilog.access"]] == [200, 500]
    assert by_logger["fapilog.access"][1]["res_bytes"] == len(fail_response.content) > 0
    assert [line["trace_id"] for line in by_logger["app"]] == ["uv-ok"]
    [error] = [line for line in by_logger["uvicorn.error"] if line["level"] == "ERROR"]
    assert error["message"].startswith("Exception in ASGI application")
    assert error["trace_id"] == "uv-fail"
    assert "RuntimeError: handler failed" in error["exception"]


def test_python_m_fapilog_log_config_prints_the_config_files_path() -> None:
    result = subprocess.run([sys.executable, "-m", "fapilog.log_config"], capture_output=True, text=True, check=True)
    assert result.stdout == f"{PATH}\n"


def test_the_packaged_enqueue_config_is_the_same_config_with_a_queued_handler(capsys: pytest.CaptureFixture[str]) -> None:
    expected = json.loads(json.dumps(LOG_CONFIG))
    expected["handlers"]["fapilog"]["enqueue"] = True
    assert ENQUEUE_LOG_CONFIG == expected
    logging.config.dictConfig(ENQUEUE_LOG_CONFIG)
    bind_context(trace_id="queued-1")
    logging.getLogger("hypercorn.error").info("from the enqueue config")
    [handler] = logging.getLogger().handlers
    handler.flush()
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert (line["message"], line["trace_id"]) == ("from the enqueue config", "queued-1")


def test_python_m_fapilog_log_config_enqueue_prints_the_enqueue_config_files_path() -> None:
    command = [sys.executable, "-m", "fapilog.log_config", "--enqueue"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stdout == f"{ENQUEUE_PATH}\n"


def test_python_m_fapilog_log_config_schema_writes_a_config_only_its_owner_reads_and_prints_its_path() -> None:
    command = [sys.executable, "-m", "fapilog.log_config", "--schema", "gcp", "--project", "my-project", "--enqueue"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    path = Path(result.stdout.removesuffix("\n"))
    try:
        assert path.stat().st_mode & 0o777 == 0o600
        config = json.loads(path.read_text())
    finally:
        path.unlink()
    expected = json.loads(json.dumps(ENQUEUE_LOG_CONFIG))
    expected["handlers"]["fapilog"].update(schema="gcp", project="my-project")
    assert config == expected


def test_python_m_fapilog_log_config_output_writes_the_config_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "logging.json"
    result = subprocess.run(
        [sys.executable, "-m", "fapilog.log_config", "--schema", "ecs", "--output", str(output)], capture_output=True, text=True, check=True
    )
    assert result.stdout == f"{output}\n"
    logging.config.dictConfig(json.loads(output.read_text()))
    bind_context(trace_id="ecs-file-1")
    logging.getLogger("hypercorn.error").info("from the written config")
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert (line["message"], line["trace"], line["ecs.version"]) == ("from the written config", {"id": "ecs-file-1"}, ECS_VERSION)


def test_python_m_fapilog_log_config_refuses_options_that_cannot_work_and_writes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "logging.json"
    command = [sys.executable, "-m", "fapilog.log_config", "--schema", "ecs", "--project", "my-project", "--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.endswith("error: project applies to the 'gcp' schema only, not to 'ecs'\n")
    assert not output.exists()


def test_configure_logging_keeps_the_schema_and_queue_of_the_config_it_replaces_unless_told_otherwise() -> None:
    """A server's --log-config chose ECS and a queue; the app's own configure_logging() keeps both."""
    config = json.loads(json.dumps(ENQUEUE_LOG_CONFIG))
    config["handlers"]["fapilog"]["schema"] = "ecs"
    logging.config.dictConfig(config)
    kept = io.StringIO()
    handler = configure_logging(stream=kept)
    logging.getLogger("app").info("kept")
    handler.flush()
    assert handler.options == HandlerOptions(schema="ecs", enqueue=True)
    assert json.loads(kept.getvalue())["log.level"] == "info"
    told = io.StringIO()
    handler = configure_logging(stream=told, schema="default", enqueue=False)
    logging.getLogger("app").info("told")
    assert json.loads(told.getvalue())["level"] == "INFO"


def test_configure_logging_keeps_a_gcp_project_with_its_schema_and_takes_a_new_one() -> None:
    configure_logging(stream=io.StringIO(), schema="gcp", project="first", encoder="orjson")
    assert configure_logging(stream=io.StringIO()).options == HandlerOptions(schema="gcp", project="first", encoder="orjson")
    assert configure_logging(stream=io.StringIO(), project="second").options.project == "second"
    assert configure_logging(stream=io.StringIO(), schema="gcp").options.project is None


# FapilogHandler writes in one step what StreamHandler + ContextFilter + JsonFormatter write step by step.


def _kinds() -> list[logging.LogRecord]:
    """One record of each kind a handler meets, at a fixed time: built afresh for each handler."""
    try:
        raise ValueError("broken order")
    except ValueError:
        failure = sys.exc_info()
    return [
        make_record("order %s placed", (42,), created=1_700_000_000.123, extra={"order_id": 42, "customer": "c-1"}),
        make_record("plain", created=1_700_000_000.5, name="uvicorn.error", levelno=logging.WARNING),
        make_record("failed", None, failure, created=1_700_000_001.0, levelno=logging.ERROR),
        make_record("with stack", created=1_700_000_001.25, stack_info="Stack (most recent call last):\n  here"),
        make_record("%d items", ("many",), created=1_700_000_002.0),  # arguments that do not fit
        make_record({"not": "a string"}, created=1_700_000_003.0, trace_id="from-extra"),
    ]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_fapilog_handler_writes_the_lines_a_stream_handler_with_its_filter_and_formatter_writes(schema: Schema) -> None:
    bind_context(trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7", user_agent="curl/8.5.0")
    ours, theirs = io.StringIO(), io.StringIO()
    handler = FapilogHandler(ours, schema=schema)
    stream_handler = logging.StreamHandler(theirs)
    stream_handler.addFilter(ContextFilter())
    stream_handler.setFormatter(JsonFormatter(schema))
    for record in _kinds():
        assert handler.handle(record) is True
    for record in _kinds():
        stream_handler.handle(record)
    assert ours.getvalue() == theirs.getvalue()
    assert len(ours.getvalue().splitlines()) == len(_kinds())


def test_a_handler_after_fapilog_handler_finds_the_context_on_the_record() -> None:
    bind_context(trace_id="t-9")
    plain = io.StringIO()
    second = logging.StreamHandler(plain)
    second.setFormatter(logging.Formatter("%(trace_id)s %(trace_sampled)s %(message)s"))
    logger = logging.getLogger("app.handlers")
    logger.handlers[:] = [FapilogHandler(io.StringIO()), second]
    logger.warning("seen")
    assert plain.getvalue() == "t-9 None seen\n"


class _Marking(FapilogHandler):
    """A subclass that changes how a line is formatted: one key more, first."""

    def format(self, record: logging.LogRecord) -> str:
        return '{"marked":true,' + super().format(record)[1:]


def test_a_filter_added_to_fapilog_handler_and_a_subclass_s_method_still_apply() -> None:
    bind_context(trace_id="t-1")
    filtered, marked = io.StringIO(), io.StringIO()
    handler = FapilogHandler(filtered)
    handler.addFilter(lambda record: record.levelno >= logging.WARNING)
    logger = logging.getLogger("app.handlers")
    logger.handlers[:] = [handler, _Marking(marked)]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.info("dropped by the filter")
    logger.warning("kept")
    assert [(line["message"], line["trace_id"]) for line in lines(filtered)] == [("kept", "t-1")]
    assert [(line["marked"], line["message"], line["trace_id"]) for line in lines(marked)] == [
        (True, "dropped by the filter", "t-1"),
        (True, "kept", "t-1"),
    ]


def test_fapilog_handler_with_its_formatter_taken_away_writes_what_any_stream_handler_does() -> None:
    stream = io.StringIO()
    handler = FapilogHandler(stream)
    handler.setFormatter(None)
    logger = logging.getLogger("app.handlers")
    logger.handlers[:] = [handler]
    logger.warning("order %s placed", 42)
    assert stream.getvalue() == "order 42 placed\n"
