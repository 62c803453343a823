"""Instructions per operation under callgrind: where fapilog's time goes, the same on a busy machine as on a quiet one.

``python -m benchmarks.instructions [--annotate] [GROUP ...]`` (valgrind
needed) runs each group of scenarios in one child process under
``valgrind --tool=callgrind``. Each scenario sets up and warms up, then runs
its operation ``calls`` times between two calls of ``os.getppid``, which
callgrind is told to dump before: that part's instruction count divided by
``calls`` is the scenario's figure (the loop's own few instructions
included, setup and warm-up excluded). Counts do not depend on the
machine's load, so a change that saves 5 % shows as 5 % where timings would
drown it; they are not time (a cache miss costs no more than an add).

The summary also prints differences (what one scenario does more than
another: the share of one step) and the ratios of issue #23's targets, in
instructions. ``--annotate`` prints, for each scenario, the C functions with
the largest own and inclusive shares, and keeps the output files in
``.nox/callgrind/``. A system call costs its caller few instructions and
much time (asgi-correlation-id's ``uuid4`` reads ``os.urandom``), so a ratio
in instructions can differ from the same ratio in time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.types import Message, Scope

from benchmarks._timing import NullStream
from benchmarks.bench_logging import EXTRA, SPAN_ID, TRACE_ID, USER_AGENT, _Constant

Operation = Callable[[int], object]
"""Runs the operation the given number of times."""

OUTPUT = Path(__file__).resolve().parents[1] / ".nox" / "callgrind"  # .nox/ is ignored by git
WARM_UP = 50


def _requests(app: Any, scope: Scope | None = None) -> Operation:
    """Serve ``n`` requests to *app* in process, as ``bench_request_tax`` does (or for *scope*, as ``bench_middleware``)."""
    from benchmarks.bench_request_tax import _SCOPE  # noqa: PLC0415 - the request groups only

    loop = asyncio.new_event_loop()
    request_scope = _SCOPE if scope is None else scope

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    async def requests(n: int) -> None:
        for _ in range(n):
            await app(dict(request_scope), receive, send)

    return lambda n: loop.run_until_complete(requests(n))


def _request_group() -> Iterator[tuple[str, Operation]]:
    """The whole request of each stack, and fapilog's request piece by piece (``bench_request_tax``'s apps)."""
    from benchmarks import bench_request_tax as tax  # noqa: PLC0415

    stacks = {
        "request: bare app, logging off": tax._bare(),
        "request: fapilog": tax._fapilog_stack(),
        "request: asgi-correlation-id stack": tax._correlation_id_stack(),
        "request: structlog recipe": tax._structlog_stack(),
        "request: OpenTelemetry stack": tax._opentelemetry_stack(),
    }
    for name, stack in stacks.items():
        with stack.installed():
            yield name, _requests(stack.app)
    fapilog = stacks["request: fapilog"]
    app_logger = logging.getLogger("app")
    access = logging.getLogger("fapilog.access")
    constant = logging.StreamHandler(NullStream())
    constant.setFormatter(_Constant())
    app_logger.setLevel(logging.WARNING)
    with tax._Stack(fapilog.app, None).installed():
        yield "request: fapilog, access line off, app line off", _requests(fapilog.app)
    with tax._Stack(fapilog.app, constant).installed():
        yield "request: fapilog, access line to a constant formatter, app line off", _requests(fapilog.app)
    with fapilog.installed():
        yield "request: fapilog, access line, app line off", _requests(fapilog.app)
    app_logger.setLevel(logging.NOTSET)
    access.setLevel(logging.WARNING)
    with fapilog.installed():
        yield "request: fapilog, access line off, app line", _requests(fapilog.app)
    access.setLevel(logging.NOTSET)


def _middleware_group() -> Iterator[tuple[str, Operation]]:
    """``bench_middleware``'s cases: a bare Starlette app, fapilog's middleware (access log off), asgi-correlation-id's."""
    from asgi_correlation_id import CorrelationIdMiddleware  # noqa: PLC0415

    from benchmarks import bench_middleware  # noqa: PLC0415
    from fapilog import TraceIDMiddleware  # noqa: PLC0415

    logging.getLogger("fapilog.access").setLevel(logging.WARNING)
    scope = bench_middleware._SCOPE
    yield "middleware: bare Starlette app", _requests(bench_middleware._app(), scope)
    yield "middleware: fapilog TraceIDMiddleware, access log off", _requests(bench_middleware._app(TraceIDMiddleware), scope)
    yield "middleware: asgi-correlation-id", _requests(bench_middleware._app(CorrelationIdMiddleware), scope)
    logging.getLogger("fapilog.access").setLevel(logging.NOTSET)


def _pieces_group() -> Iterator[tuple[str, Operation]]:
    """The middleware's own steps, one by one."""
    from fapilog import TraceIDMiddleware, clear_context  # noqa: PLC0415
    from fapilog._internal.context import EMPTY_TRACE_STATE, bind_trace  # noqa: PLC0415
    from fapilog._internal.middleware import _agent, _Exchange  # noqa: PLC0415
    from fapilog._internal.records import log_safely  # noqa: PLC0415

    from benchmarks.bench_request_tax import _SCOPE  # noqa: PLC0415

    async def nothing(*args: object) -> Any:
        pass

    middleware = TraceIDMiddleware(nothing)
    headers = _SCOPE["headers"]
    read = middleware._reader.read

    def reads(n: int) -> None:
        for _ in range(n):
            read(headers)

    def agents(n: int) -> None:
        for _ in range(n):
            _agent(b"bench/1.0")

    def binds(n: int) -> None:
        for _ in range(n):
            bind_trace(TRACE_ID, SPAN_ID, "bench/1.0", EMPTY_TRACE_STATE)
            clear_context()

    def clears(n: int) -> None:
        for _ in range(n):
            clear_context()

    def exchanges(n: int) -> None:
        for _ in range(n):
            _Exchange(middleware, dict(_SCOPE), nothing, nothing, None)  # no app fields declared
            clear_context()

    yield "piece: TraceReader.read (no trace headers)", reads
    yield "piece: _agent (user agent)", agents
    yield "piece: bind_trace + clear_context", binds
    yield "piece: clear_context", clears
    yield "piece: _Exchange() (read, bind, reply headers) + clear_context", exchanges
    bind_trace(TRACE_ID, SPAN_ID, "bench/1.0", EMPTY_TRACE_STATE)  # the access record's request
    access = logging.getLogger("fapilog.access")
    extra: dict[str, object] = {
        "trace_id": TRACE_ID, "span_id": SPAN_ID, "latency_ms": 1.25, "status_code": 200, "req_bytes": 0, "res_bytes": 2,
        "user_agent": "bench/1.0", "method": "GET", "path": "/orders/42", "parent_span_id": None, "request_id": TRACE_ID,
    }  # fmt: skip
    for label, handler in _line_handlers():
        access.handlers[:] = [handler]
        access.propagate = False
        access.setLevel(logging.INFO)

        def access_lines(n: int) -> None:
            for _ in range(n):
                log_safely(access, logging.INFO, "%s %s %s", "GET", "/orders/42", 200, extra=extra)

        yield f"access line: log_safely, {label}", access_lines
    access.handlers[:] = []
    access.propagate = True
    access.setLevel(logging.NOTSET)
    yield from _access_steps(extra)
    clear_context()


def _access_steps(extra: dict[str, object]) -> Iterator[tuple[str, Operation]]:
    """The access record's own steps: its record, ContextFilter's work on it, its formatting."""
    from fapilog import JsonFormatter  # noqa: PLC0415
    from fapilog._internal.log_filter import capture  # noqa: PLC0415

    access = logging.getLogger("fapilog.access")
    args = ("GET", "/orders/42", 200)

    def records(n: int) -> None:
        for _ in range(n):
            access.makeRecord("fapilog.access", logging.INFO, __file__, 1, "%s %s %s", args, None, "log_safely", extra)

    def captures(n: int) -> None:
        for _ in range(n):
            capture(access.makeRecord("fapilog.access", logging.INFO, __file__, 1, "%s %s %s", args, None, "log_safely", extra))

    record = access.makeRecord("fapilog.access", logging.INFO, __file__, 1, "%s %s %s", args, None, "log_safely", extra)
    capture(record)
    format_record = JsonFormatter().format

    def formats(n: int) -> None:
        for _ in range(n):
            format_record(record)

    yield "access step: makeRecord (11 extras)", records
    yield "access step: makeRecord + capture", captures
    yield "access step: JsonFormatter.format", formats


def _line_handlers() -> Iterator[tuple[str, logging.Handler]]:
    """The stdlib floor's handler (constant formatter, no filter), fapilog's filter and formatter on a plain
    ``StreamHandler``, and the ``FapilogHandler`` ``configure_logging`` installs."""
    from fapilog import ContextFilter, FapilogHandler, JsonFormatter  # noqa: PLC0415

    floor = logging.StreamHandler(NullStream())
    floor.setFormatter(_Constant())
    yield "stdlib floor", floor
    ours = logging.StreamHandler(NullStream())
    ours.addFilter(ContextFilter())
    ours.setFormatter(JsonFormatter())
    yield "fapilog", ours
    yield "FapilogHandler", FapilogHandler(NullStream())  # type: ignore[arg-type]  # any object with write() will do


def _line_group() -> Iterator[tuple[str, Operation]]:
    """``bench_logging``'s line (three context fields bound, two extras) and its steps."""
    from fapilog import ContextFilter, JsonFormatter, bind_context, clear_context  # noqa: PLC0415
    from fapilog._internal.log_filter import capture  # noqa: PLC0415

    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT)
    logger = logging.getLogger("bench.line")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for label, handler in _line_handlers():
        logger.handlers[:] = [handler]

        def lines(n: int) -> None:
            for _ in range(n):
                logger.info("order %s placed", 42, extra=EXTRA)

        yield f"line: logger.info, {label}", lines
    for schema in ("ecs", "gcp", "datadog"):
        handler = logging.StreamHandler(NullStream())
        handler.addFilter(ContextFilter())
        handler.setFormatter(JsonFormatter(schema))
        logger.handlers[:] = [handler]
        yield f"line: logger.info, fapilog schema={schema!r}", lines
    logger.handlers[:] = []
    logger.setLevel(logging.WARNING)
    yield "line: logger.info, disabled", lines
    logger.setLevel(logging.INFO)
    yield "line: logger.info, no handler", lines  # record, findCaller, the handler walk: no emit

    def find_callers(n: int) -> None:
        for _ in range(n):
            logger.findCaller(False, 1)

    def records(n: int) -> None:
        for _ in range(n):
            logger.makeRecord("bench.line", logging.INFO, __file__, 1, "order %s placed", (42,), None, "lines", EXTRA)

    def captures(n: int) -> None:
        for _ in range(n):
            capture(logger.makeRecord("bench.line", logging.INFO, __file__, 1, "order %s placed", (42,), None, "lines", EXTRA))

    record = logger.makeRecord("bench.line", logging.INFO, __file__, 1, "order %s placed", (42,), None, "lines", EXTRA)
    capture(record)
    formatter = JsonFormatter()
    format_record = formatter.format

    def formats(n: int) -> None:
        for _ in range(n):
            format_record(record)

    def log_records(n: int) -> None:
        for _ in range(n):
            logging.LogRecord("bench.line", logging.INFO, __file__, 1, "order %s placed", (42,), None, "lines")

    floor_handler = next(handler for label, handler in _line_handlers() if label == "stdlib floor")

    def handles(n: int) -> None:
        for _ in range(n):
            floor_handler.handle(record)

    yield "step: Logger.findCaller", find_callers
    yield "step: LogRecord() alone", log_records
    yield "step: Handler.handle, constant formatter (filters, lock, emit, write, flush)", handles
    yield "step: Logger.makeRecord (two extras)", records
    yield "step: makeRecord + capture (ContextFilter's work)", captures
    yield "step: JsonFormatter.format (default schema)", formats
    clear_context()


def _fields_group() -> Iterator[tuple[str, Operation]]:
    """``bench_fields``: bind two app fields, a line with two app fields or the same two extras, the middleware declaring them."""
    from benchmarks import bench_fields, bench_middleware  # noqa: PLC0415
    from fapilog import TraceIDMiddleware, bind_context, bind_fields, clear_context  # noqa: PLC0415
    from fapilog._internal.context import Declared, declared  # noqa: PLC0415

    before = declared.now
    without = declared.now = Declared()
    shop_class = bench_fields._declare()
    with_fields = declared.now
    try:
        for name, operation in bench_fields._bind_cases(shop_class).items():
            yield f"fields: {name}", operation
        clear_context()
        bind_context(trace_id=TRACE_ID, span_id=SPAN_ID, user_agent=USER_AGENT)
        bind_fields(shop_class(**bench_fields.FIELDS))
        for name, operation in bench_fields._line_cases(with_fields, without).items():
            yield f"fields: {name}", operation
        clear_context()
        logging.getLogger("fapilog.access").setLevel(logging.WARNING)
        scope = bench_middleware._SCOPE
        yield "fields: bare Starlette app", _requests(bench_middleware._app(), scope)
        app = bench_middleware._app(TraceIDMiddleware)
        for label, registry in (("none declared", without), ("2 declared", with_fields)):
            declared.now = registry
            yield f"fields: TraceIDMiddleware, access log off, app fields {label}", _requests(app, scope)
    finally:
        logging.getLogger("fapilog.access").setLevel(logging.NOTSET)
        declared.now = before
        clear_context()


def _context_group() -> Iterator[tuple[str, Operation]]:
    """``bench_context``: bind two keys, read, clear; against structlog.contextvars."""
    import structlog.contextvars as structlog_cv  # noqa: PLC0415

    from fapilog import bind_context, clear_context, get_context  # noqa: PLC0415

    def binds(n: int) -> None:
        for _ in range(n):
            bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)

    def structlog_binds(n: int) -> None:
        for _ in range(n):
            structlog_cv.bind_contextvars(trace_id=TRACE_ID, span_id=SPAN_ID)

    def gets(n: int) -> None:
        for _ in range(n):
            get_context()

    def clears(n: int) -> None:
        for _ in range(n):
            clear_context()

    bind_context(trace_id=TRACE_ID, span_id=SPAN_ID)
    structlog_cv.bind_contextvars(trace_id=TRACE_ID, span_id=SPAN_ID)
    yield "context: bind_context (2 keys)", binds
    yield "context: structlog bind_contextvars (2 keys)", structlog_binds
    yield "context: get_context", gets
    yield "context: clear_context", clears


GROUPS: dict[str, tuple[Callable[[], Iterator[tuple[str, Operation]]], int]] = {
    "request": (_request_group, 200),
    "middleware": (_middleware_group, 400),
    "pieces": (_pieces_group, 2_000),
    "line": (_line_group, 2_000),
    "context": (_context_group, 5_000),
    "fields": (_fields_group, 2_000),
}
"""Each group of scenarios, and how many operations each of its scenarios is counted over."""

DIFFERENCES = (
    ("request: fapilog", "request: bare app, logging off"),
    ("request: asgi-correlation-id stack", "request: bare app, logging off"),
    ("request: structlog recipe", "request: bare app, logging off"),
    ("request: OpenTelemetry stack", "request: bare app, logging off"),
    ("request: fapilog, access line off, app line off", "request: bare app, logging off"),
    ("request: fapilog, access line to a constant formatter, app line off", "request: fapilog, access line off, app line off"),
    ("request: fapilog, access line, app line off", "request: fapilog, access line to a constant formatter, app line off"),
    ("request: fapilog", "request: fapilog, access line, app line off"),
    ("middleware: fapilog TraceIDMiddleware, access log off", "middleware: bare Starlette app"),
    ("middleware: asgi-correlation-id", "middleware: bare Starlette app"),
    ("fields: TraceIDMiddleware, access log off, app fields none declared", "fields: bare Starlette app"),
    ("fields: TraceIDMiddleware, access log off, app fields 2 declared", "fields: bare Starlette app"),
    ("line: logger.info, fapilog", "line: logger.info, stdlib floor"),
    ("line: logger.info, FapilogHandler", "line: logger.info, stdlib floor"),
    ("line: logger.info, stdlib floor", "line: logger.info, no handler"),
    ("step: makeRecord + capture (ContextFilter's work)", "step: Logger.makeRecord (two extras)"),
    ("access step: makeRecord + capture", "access step: makeRecord (11 extras)"),
)
"""Differences printed in the summary: what the first does more than the second."""

Figure = str | tuple[str, str]
"""A scenario's name, or a difference of two."""
RATIOS: tuple[tuple[str, Figure, Figure], ...] = (
    ("whole-request tax / the asgi-correlation-id stack's (target 0.5)", DIFFERENCES[0], DIFFERENCES[1]),
    ("middleware / asgi-correlation-id's (target 0.6)", DIFFERENCES[8], DIFFERENCES[9]),
    ("bind_context / bind_contextvars (target 1.0)", "context: bind_context (2 keys)", "context: structlog bind_contextvars (2 keys)"),
    ("JSON line / stdlib floor (target 1.5)", "line: logger.info, fapilog", "line: logger.info, stdlib floor"),
    ("JSON line through FapilogHandler / stdlib floor (target 1.5)", "line: logger.info, FapilogHandler", "line: logger.info, stdlib floor"),
    *(
        (f"JSON line, schema={schema!r} / default (target 1.1)", f"line: logger.info, fapilog schema={schema!r}", "line: logger.info, fapilog")
        for schema in ("ecs", "gcp", "datadog")
    ),
    (
        "bind_fields (2 fields, outside a request) / bind_contextvars (target 1.0)",
        "fields: fapilog bind_fields (2 fields), outside a request",
        "fields: structlog bind_contextvars (2 keys)",
    ),
    (
        "bind_fields (2 fields, in a request) / bind_contextvars (target 1.0)",
        "fields: fapilog bind_fields (2 fields), in a request's scope",
        "fields: structlog bind_contextvars (2 keys)",
    ),
    ("JSON line, 2 app fields / the same 2 as extra= (target 1.05)", "fields: JSON line, 2 app fields bound", "fields: JSON line, the same 2 values as extra="),
    ("middleware, 2 app fields declared / none (reported)", DIFFERENCES[11], DIFFERENCES[10]),
)


def _marker() -> None:
    """Mark a part boundary: callgrind dumps before ``os.getppid`` (``--dump-before``)."""
    os.getppid()


def child(group: str) -> None:
    """Run *group*'s scenarios, each measured part between two markers; print their names in order."""
    make, calls = GROUPS[group]
    names = []
    for name, operation in make():
        operation(WARM_UP)
        gc.collect()
        gc.disable()
        _marker()
        operation(calls)
        _marker()
        gc.enable()
        names.append(name)
    print("\n".join(names))


def _total(path: Path) -> int:
    match = re.search(r"^totals: (\d+)", path.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no totals in {path}")
    return int(match.group(1))


def measure_group(group: str, *, keep: bool) -> dict[str, float]:
    """Return instructions per operation of each scenario of *group*, counted under callgrind."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    out = OUTPUT / f"{group}.out"
    for old in OUTPUT.glob(f"{group}.out*"):
        old.unlink()
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-before=os_getppid", "--compress-strings=no",
        sys.executable, "-m", "benchmarks.instructions", "--child", group,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{group}: {done.stderr[-3000:]}")
    names = done.stdout.split("\n")[: -1 if done.stdout.endswith("\n") else None]
    calls = GROUPS[group][1]
    # Parts: 1 setup, 2 the first scenario's operations, 3 its end and the next setup, 4 ...
    figures = {name: _total(OUTPUT / f"{group}.out.{2 * index + 2}") / calls for index, name in enumerate(names)}
    if keep:
        for index, name in enumerate(names):
            print(f"\n### {name}: part {2 * index + 2} of {out}")
            _annotate(OUTPUT / f"{group}.out.{2 * index + 2}")
    else:
        shutil.rmtree(OUTPUT)
    return figures


def _costs(path: Path) -> tuple[Counter[str], Counter[str]]:
    """Return each C function's own instructions in a callgrind part, and its own plus its callees'.

    Read from the file itself: ``callgrind_annotate`` (valgrind 3.19) takes
    the cost of the calls in progress at a ``--dump-before`` for the own
    cost of ``main``.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    function = callee = ""
    call_cost_next = False
    for line in path.read_text().splitlines():
        if line.startswith("fn="):
            function = line[3:]
        elif line.startswith("cfn="):
            callee = line[4:]
        elif line.startswith("calls="):
            call_cost_next = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            fields = line.split()
            cost = int(fields[1]) if len(fields) > 1 else 0
            if call_cost_next:
                call_cost_next = False
                if callee != function:  # a direct recursion would count twice
                    inclusive[function] += cost
            else:
                own[function] += cost
                inclusive[function] += cost
    return own, inclusive


def _annotate(path: Path, top: int = 12) -> None:
    """Print the C functions of *path* with the largest own (exclusive) instruction counts, then inclusive ones.

    Inclusive counts leave out the interpreter's frames that hold everything
    (above nine tenths of the part): Python code calls Python code inside
    ``_PyEval_EvalFrameDefault``, so only C functions get their own share.
    """
    total = _total(path)
    own, inclusive = _costs(path)
    print("  own:       " + ", ".join(f"{name} {count / total:.1%}" for name, count in own.most_common(top)))
    shares = [(name, count) for name, count in inclusive.most_common() if count <= 0.9 * total and "'" not in name]
    print("  inclusive: " + ", ".join(f"{name} {count / total:.1%}" for name, count in shares[:top]))


def main() -> int:
    """Count the groups named (all by default) and print the figures, the differences and the ratios."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("groups", nargs="*", metavar="GROUP", help=f"of {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--annotate", action="store_true", help="print each part's top C functions; keep .nox/callgrind/")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {', '.join(sorted(unknown))}: choose from {', '.join(GROUPS)}")
    if shutil.which("valgrind") is None:
        print("valgrind is needed: apt-get install valgrind", file=sys.stderr)
        return 2
    figures: dict[str, float] = {}
    for group in args.groups or GROUPS:
        figures.update(measure_group(group, keep=args.annotate))
    print("\n## instructions per operation (callgrind)")
    for name, count in figures.items():
        print(f"     {name:<72} {count:12,.0f}")
    print("\n## differences")
    for more, less in DIFFERENCES:
        if more in figures and less in figures:
            print(f"     {more}\n       - {less:<66} {figures[more] - figures[less]:12,.0f}")
    print("\n## ratios (instructions)")
    for label, ours, theirs in RATIOS:
        ours_count = _value(figures, ours)
        theirs_count = _value(figures, theirs)
        if ours_count is not None and theirs_count is not None:
            print(f"     {label:<66} {ours_count:10,.0f} / {theirs_count:10,.0f} = {ours_count / theirs_count:5.2f}x")
    return 0


def _value(figures: dict[str, float], item: Figure) -> float | None:
    """Return a scenario's figure, or a difference's; ``None`` when one was not counted."""
    if isinstance(item, str):
        return figures.get(item)
    more, less = item
    return figures[more] - figures[less] if more in figures and less in figures else None


if __name__ == "__main__":
    sys.exit(main())
