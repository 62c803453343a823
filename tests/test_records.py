"""fapilog's own records: ``log_own`` hands every handler the very record ``log_safely`` (``Logger.log``) makes."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import pytest

from fapilog._internal.records import log_own, log_safely
from tests.support.records import ListHandler

TIME = ("created", "msecs", "relativeCreated")
"""What differs between two records made one after the other: when."""
EXTRA: dict[str, object] = {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "status_code": 200, "method": "GET", "path": "/orders"}


def _both(logger: logging.Logger, level: int = logging.INFO, *args: object) -> tuple[logging.LogRecord, logging.LogRecord]:
    """Return what a handler of *logger* receives from ``log_safely``, then from ``log_own``, with the same arguments."""
    received: list[logging.LogRecord] = []
    logger.addHandler(ListHandler(received))
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    arguments = args or ("GET", "/orders", 200)
    message = " ".join(["%s"] * len(arguments))
    log_safely(logger, level, message, *arguments, extra=EXTRA)
    log_own(logger, level, message, *arguments, extra=EXTRA)
    assert len(received) == 2
    return received[0], received[1]


def _assert_same(standard: logging.LogRecord, own: logging.LogRecord) -> None:
    """Assert both records are the same: class, attributes in order, and every value but the time."""
    assert type(own) is type(standard)
    assert list(vars(own)) == list(vars(standard))
    assert {key: item for key, item in vars(own).items() if key not in TIME} == {
        key: item for key, item in vars(standard).items() if key not in TIME
    }
    assert standard.created <= own.created
    assert own.msecs == int((own.created - int(own.created)) * 1000)
    assert own.relativeCreated == (own.created - vars(logging)["_startTime"]) * 1000


@pytest.mark.parametrize(
    "setting",
    [None, "logThreads", "logProcesses", "logMultiprocessing"],
    ids=["defaults", "no threads", "no processes", "no multiprocessing"],
)
def test_fapilogs_own_record_is_the_one_logger_log_makes_attribute_by_attribute_in_order(
    setting: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if setting is not None:
        monkeypatch.setattr(logging, setting, False)
    _assert_same(*_both(logging.getLogger("fapilog.access")))


def test_a_level_has_its_name_a_custom_one_too_and_an_unnamed_one_logging_s_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(logging._levelToName, 25, "NOTICE")
    for level, name in ((logging.WARNING, "WARNING"), (25, "NOTICE"), (27, "Level 27")):
        standard, own = _both(logging.getLogger("fapilog.access"), level)
        _assert_same(standard, own)
        assert own.levelname == name


def test_the_process_name_is_the_one_multiprocessing_gives_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multiprocessing.current_process(), "name", "worker-3")
    standard, own = _both(logging.getLogger("fapilog.access"))
    _assert_same(standard, own)
    assert own.processName == "worker-3"


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="built directly on Python 3.11, whose records it knows")
def test_on_python_3_11_the_record_is_built_without_finding_the_caller_or_make_record() -> None:
    logger = logging.getLogger("fapilog.access")
    logger.addHandler(ListHandler([]))
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    called: list[CodeType] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            called.append(frame.f_code)

    sys.setprofile(profile)
    try:
        log_own(logger, logging.INFO, "%s %s %s", "GET", "/orders", 200, extra=EXTRA)
    finally:
        sys.setprofile(None)
    assert logging.Logger.handle.__code__ in called
    skipped = (logging.Logger.log, logging.Logger._log, logging.Logger.findCaller, logging.Logger.makeRecord, logging.LogRecord.__init__)
    assert not {method.__code__ for method in skipped} & set(called)


class _Tagged(logging.LogRecord):
    """A record factory's record: one attribute more."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tag = "tagged"


class _Subclassed(logging.Logger):
    """A Logger subclass that makes its own records."""

    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = super().makeRecord(*args, **kwargs)
        record.subclassed = True
        return record


def _replaced(name: str) -> Callable[..., Any]:
    """Return a stand-in for ``Logger.<name>`` that calls it and leaves its mark on the record (``via``)."""
    original = getattr(logging.Logger, name)

    def log(self: logging.Logger, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        original(self, level, msg, *args, **{**kwargs, "extra": {**kwargs["extra"], "via": name}})

    def _log(self: logging.Logger, level: int, msg: object, args: Any, exc_info: Any = None, extra: Any = None, **kwargs: Any) -> None:
        original(self, level, msg, args, exc_info, {**extra, "via": name}, **kwargs)

    def find_caller(self: logging.Logger, stack_info: bool = False, stacklevel: int = 1) -> tuple[str, int, str, str | None]:
        return "elsewhere.py", 7, name, None

    def make_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = original(self, *args, **kwargs)
        record.via = name
        return record

    stand_ins: dict[str, Callable[..., Any]] = {"log": log, "_log": _log, "findCaller": find_caller, "makeRecord": make_record}
    return stand_ins[name]


@pytest.mark.parametrize("name", ["log", "_log", "findCaller", "makeRecord"])
def test_with_a_logger_method_replaced_the_record_is_the_one_it_makes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.Logger, name, _replaced(name))
    standard, own = _both(logging.getLogger("fapilog.access"))
    _assert_same(standard, own)
    assert getattr(own, "funcName" if name == "findCaller" else "via") == name


def _record_factory(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())  # put back afterwards
    logging.setLogRecordFactory(_Tagged)
    return logging.getLogger("fapilog.access")


def _logger_subclass(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    return _Subclassed("fapilog.subclassed")


def _caller_lookup_off(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    monkeypatch.setattr(logging, "_srcfile", None)
    return logging.getLogger("fapilog.access")


@pytest.mark.parametrize(
    ("customise", "seen"),
    [
        (_record_factory, ("tag", "tagged")),
        (_logger_subclass, ("subclassed", True)),
        (_caller_lookup_off, ("pathname", "(unknown file)")),
    ],
    ids=["record factory", "Logger subclass", "caller lookup off"],
)
def test_with_logging_customised_the_record_is_the_customised_one(
    customise: Callable[[pytest.MonkeyPatch], logging.Logger], seen: tuple[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    standard, own = _both(customise(monkeypatch))
    _assert_same(standard, own)
    name, value = seen
    assert getattr(own, name) == value


def test_a_single_mapping_argument_becomes_the_records_args_as_logging_makes_it() -> None:
    standard, own = _both(logging.getLogger("fapilog.access"), logging.INFO, {"method": "GET"})
    _assert_same(standard, own)
    assert own.args == {"method": "GET"}
    assert own.getMessage() == "{'method': 'GET'}"
