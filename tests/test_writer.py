"""enqueue=True: the logging thread only queues; a writer thread writes every line a direct handler would.

The sinks here block on events, never on time: a request is shown not to wait
for its sink by completing while the sink is still blocked.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import signals
import fapilog.celery
from fapilog import FapilogHandler, bind_context, bind_trace_headers, configure_logging
from fapilog._internal.configure import _QueuedHandler
from fapilog._internal.schemas import SCHEMAS, Schema
from fapilog._internal.writer import ATOMIC_WRITE, QUEUE_SIZE
from tests.apps import celery_tasks
from tests.support.records import make_record
from tests.support.servers import ROOT

logger = logging.getLogger("app.writer")
POLLS = 3000  # a bounded wait for a condition, POLL seconds apart
POLL = 0.01


class Sink(io.StringIO):
    """A stream whose writes can be held: each waits until ``gate`` is set; ``writes`` keeps each write's text."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        _sinks.append(self)
        self.entered = threading.Event()  # a write is in progress (held, if the gate is closed)
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.entered.set()
        self.gate.wait()
        self.writes.append(text)
        return super().write(text)

    def hold(self) -> None:
        """Close the gate, log one line and wait until the writer is stuck writing it."""
        self.gate.clear()
        logger.info("first line, held in the sink")
        assert self.entered.wait(30)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines()]


_sinks: list[Sink] = []


@pytest.fixture(autouse=True)
def _open_sinks() -> Iterator[None]:
    """Open every sink's gate after the test, failed or not, before conftest closes the handlers that write to them."""
    yield
    for sink in _sinks:
        sink.gate.set()
    _sinks.clear()


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll *condition* until it holds (bounded)."""
    for _ in range(POLLS):
        if condition():
            return
        threading.Event().wait(POLL)
    raise AssertionError("the condition never held")


def queued(stream: io.StringIO, **options: Any) -> _QueuedHandler:
    """Install fapilog's handler with enqueue=True, writing to *stream*, at DEBUG."""
    handler = configure_logging(logging.DEBUG, stream=stream, enqueue=True, **options)
    assert isinstance(handler, _QueuedHandler)
    return handler


def test_the_default_writes_at_once_so_a_test_reads_its_stream_right_after_the_call() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    logger.warning("written")
    assert json.loads(stream.getvalue())["message"] == "written"


def test_flush_returns_once_every_line_queued_before_it_is_written() -> None:
    stream = io.StringIO()
    handler = queued(stream)
    for n in range(200):
        logger.info("line %d", n)
    handler.flush()
    assert [line["message"] for line in map(json.loads, stream.getvalue().splitlines())] == [f"line {n}" for n in range(200)]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_queued_line_is_the_line_a_direct_handler_writes(schema: Schema) -> None:
    direct_stream, queued_stream = io.StringIO(), io.StringIO()
    direct = FapilogHandler(direct_stream, schema=schema)
    writer = FapilogHandler(queued_stream, schema=schema, enqueue=True)
    bind_trace_headers({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
    bind_context(user_agent="probe/1", status_code=200, latency_ms=1.5)

    def records() -> list[logging.LogRecord]:
        try:
            raise ValueError("bad order")
        except ValueError as error:
            failed = make_record("failed", levelno=logging.ERROR, exc_info=(ValueError, error, error.__traceback__), created=1.5)
        return [
            make_record("order %s", (42,), created=1.5, order_id=42),
            make_record("%s %s", ("GET", "/"), name="fapilog.access", created=1.5, method="GET", path="/"),
            failed,
        ]

    for record in records():
        direct.handle(record)
    for record in records():
        writer.handle(record)
    writer.close()
    assert queued_stream.getvalue() == direct_stream.getvalue()
    assert len(direct_stream.getvalue().splitlines()) == 3


def test_a_value_changed_after_the_call_is_written_as_it_was_at_the_call() -> None:
    sink = Sink()
    handler = queued(sink)
    sink.hold()  # the writer is stuck: what follows waits in the queue
    cart = ["apple"]
    order = {"items": 1}
    logger.info("cart %s", cart, extra={"order": order})
    cart.append("pear")
    order["items"] = 2
    sink.gate.set()
    handler.flush()
    line = sink.lines()[1]
    assert (line["message"], line["order"]) == ("cart ['apple']", {"items": 1})


class Tagging(logging.Filter):
    """A filter of the app's: drops the records it is told to, and tags the others with a list it keeps changing."""

    def __init__(self) -> None:
        super().__init__()
        self.tags = ["first"]

    def filter(self, record: logging.LogRecord) -> bool:
        record.tags = self.tags
        return record.getMessage() != "dropped by the app"


def test_the_handlers_other_filters_still_decide_and_what_they_add_is_written_as_it_was() -> None:
    sink = Sink()
    handler = queued(sink)
    tagging = Tagging()
    handler.addFilter(tagging)
    sink.hold()
    logger.info("dropped by the app")
    logger.info("kept")
    tagging.tags.append("second")
    sink.gate.set()
    handler.flush()
    assert [(line["message"], line.get("tags")) for line in sink.lines()] == [
        ("first line, held in the sink", ["first"]),
        ("kept", ["first"]),
    ]


def test_an_error_waits_for_room_when_the_whole_queue_is_full_and_is_never_dropped() -> None:
    sink = Sink()
    handler = queued(sink, queue_size=10)
    sink.hold()
    for n in range(10):
        logger.error("error %d", n)
    late = threading.Thread(target=logger.error, args=("the error that waits",))
    late.start()
    wait_for(lambda: handler.writer._waiting == 1)  # the call waits for room, not for the sink
    sink.gate.set()
    late.join()
    handler.flush()
    errors = [line["message"] for line in sink.lines() if line["level"] == "ERROR"]
    assert errors == [f"error {n}" for n in range(10)] + ["the error that waits"]


def test_writes_keep_lines_whole_and_within_one_atomic_pipe_write() -> None:
    sink = Sink()
    handler = queued(sink)
    sink.hold()
    for n in range(300):
        logger.info("line %d", n)
    logger.info("long %s", "x" * (2 * ATOMIC_WRITE))
    sink.gate.set()
    handler.flush()
    assert len(sink.writes) > 2  # several lines a write, not one write for all
    for text in sink.writes:
        assert text.endswith("\n")
        assert len(text) <= ATOMIC_WRITE or text.count("\n") == 1  # only a line longer than that goes alone
    assert len(sink.lines()) == 302


def test_configure_logging_again_writes_out_the_queue_of_the_handler_it_replaces() -> None:
    first, second = Sink(), io.StringIO()
    queued(first)
    first.hold()
    for n in range(100):
        logger.info("before %d", n)
    threading.Thread(target=first.gate.set).start()  # the sink recovers while configure_logging waits for it
    configure_logging(stream=second)
    assert len(first.lines()) == 101
    logger.warning("after")
    assert [line["message"] for line in map(json.loads, second.getvalue().splitlines())] == ["after"]


def test_a_record_logged_after_the_handler_closed_is_written_at_once() -> None:
    stream = io.StringIO()
    handler = queued(stream)
    logger.info("before")
    handler.close()  # as logging.shutdown() does at exit
    logger.info("after")
    assert [line["message"] for line in map(json.loads, stream.getvalue().splitlines())] == ["before", "after"]


def test_where_no_thread_can_start_the_caller_writes_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    stream = io.StringIO()
    queued(stream)
    monkeypatch.setattr(threading.Thread, "start", refuse)
    logger.warning("written here")
    assert json.loads(stream.getvalue())["message"] == "written here"


class FailingOnce(io.StringIO):
    """A sink whose first write fails."""

    failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            self.failed = True
            raise OSError("the disk is full")
        return super().write(text)


def test_a_failing_write_is_reported_on_stderr_and_the_writer_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    stream = FailingOnce()
    handler = queued(stream)
    logger.info("lost with the failed write")
    handler.flush()
    logger.info("written")
    handler.flush()
    assert [line["message"] for line in map(json.loads, stream.getvalue().splitlines())] == ["written"]
    assert "OSError: the disk is full" in capsys.readouterr().err


class Failing(logging.Formatter):
    """A formatter of the app's that fails on the records it is told to."""

    def format(self, record: logging.LogRecord) -> str:
        if "fail" in record.getMessage():
            raise ValueError("this formatter fails")
        return record.getMessage()


def test_a_failing_formatter_is_reported_on_stderr_and_the_other_lines_are_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    handler = queued(stream)
    handler.setFormatter(Failing())
    logger.info("fail, formatted later")
    logger.info("fail %s, formatted at once", ["a list"])
    logger.info("written")
    handler.emit(make_record("handed to emit"))
    handler.flush()
    assert stream.getvalue().splitlines() == ["written", "handed to emit"]
    assert capsys.readouterr().err.count("ValueError: this formatter fails") == 2


def test_a_queue_size_below_ten_or_enqueue_on_a_subclass_is_refused() -> None:
    with pytest.raises(ValueError, match="queue_size must be an int of at least 10, got 5"):
        configure_logging(enqueue=True, queue_size=5)

    class Mine(FapilogHandler):
        pass

    with pytest.raises(TypeError, match="enqueue=True is FapilogHandler's own: Mine writes directly"):
        Mine(enqueue=True)


def test_a_celery_pool_process_writes_out_its_queue_before_it_ends() -> None:
    """Celery sends worker_process_shutdown in a prefork pool process just before its os._exit."""
    fapilog.celery.instrument(celery_tasks.app)
    sink = Sink()
    queued(sink)
    sink.hold()
    for n in range(50):
        logger.info("task line %d", n)
    threading.Thread(target=sink.gate.set).start()
    signals.worker_process_shutdown.send(sender=None, pid=1, exitcode=0)
    assert len(sink.lines()) == 51


def _run_app(name: str, path: Path) -> dict[str, Any]:
    """Run ``python -m tests.apps.<name> <path>``; return the JSON summary it prints."""
    command = [sys.executable, "-m", f"tests.apps.{name}", str(path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    summary: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return summary


def test_with_a_slow_sink_requests_finish_first_and_every_line_is_written_by_a_normal_exit(tmp_path: Path) -> None:
    """50 requests, two lines each, a sink that takes 20 ms a write; no flush: the process just exits."""
    path = tmp_path / "log.jsonl"
    summary = _run_app("slow_sink", path)
    assert summary == {"completed": 50, "writes_when_requests_completed": 0}
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["message"] for line in lines if line["logger"] == "app") == sorted(
        f"request {n} {part}" for n in range(50) for part in ("starts", "ends")
    )
    assert len([line for line in lines if line["logger"] == "fapilog.access"]) == 50


def test_after_fork_parent_and_child_each_write_their_own_lines_once(tmp_path: Path) -> None:
    """The parent's queue holds lines at fork(): the parent writes them, each child only its own, all of them.

    The second child is a ``multiprocessing`` one: it ends with ``os._exit``,
    which runs no ``atexit``, while its lines are still queued.
    """
    path = tmp_path / "log.jsonl"
    assert _run_app("forking", path) == {"child_exit": 0, "multiprocessing_child_exit": 0}
    messages = [json.loads(line)["message"] for line in path.read_text().splitlines()]
    expected = [
        "held",
        *(f"parent {n}" for n in range(5)),
        *(f"child {n}" for n in range(3)),
        "parent after",
        *(f"multiprocessing child {n}" for n in range(3)),
    ]
    assert sorted(messages) == sorted(expected)


def test_a_request_completes_while_the_sink_stalls_and_only_records_below_error_past_their_share_are_dropped(
    tmp_path: Path,
) -> None:
    """A stalled sink, one request that logs 20,000 INFO lines and one ERROR.

    The request completes while the sink still holds its first write; the
    ERROR is written; written + dropped = logged, as the ``dropped``
    WARNING says; the queue, not the 20,000 records, bounds the memory.
    """
    path = tmp_path / "log.jsonl"
    summary = _run_app("stalled_sink", path)
    assert (summary["status"], summary["writes_when_completed"]) == (200, 0)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    reports = [line for line in lines if line["logger"] == "fapilog"]
    assert reports and {(line["level"], type(line["dropped"])) for line in reports} == {("WARNING", int)}
    dropped = sum(line["dropped"] for line in reports)
    written = [line for line in lines if line["level"] != "ERROR" and line["logger"] != "fapilog"]
    assert len(written) + dropped == summary["below_error"] == 20_000 + 3  # the first line, the access line, httpx's
    assert len(written) >= QUEUE_SIZE * 9 // 10  # nine tenths of the queue is theirs
    assert [line["message"] for line in lines if line["level"] == "ERROR"] == ["the one error"]
    print(f"peak memory while the sink stalled: {summary['peak_traced'] / 1e6:.1f} MB traced, {summary['peak_rss_kb']} KB RSS")
    assert summary["peak_traced"] < 3_000 * QUEUE_SIZE  # a queued record takes about 2 KB: 20,000 would take 40 MB
