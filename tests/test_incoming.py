"""The one incoming parser: traceparent, tracestate, baggage, request id, bind_trace_headers, and how far callers are trusted."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request
from hypothesis import event, given
from hypothesis import strategies as st

from examples.fields import Shop
from fapilog import (
    JsonFormatter,
    TraceIDMiddleware,
    bind_context,
    bind_fields,
    bind_trace_headers,
    get_context,
    instrument_app,
    trace_headers,
)
from fapilog._internal.context import current_model, trace_state
from fapilog._internal.ids import is_w3c_span_id, is_w3c_trace_id
from fapilog._internal.incoming import (
    REPLACED_MESSAGE,
    TraceReader,
    Trust,
    parse_baggage,
    parse_traceparent,
    parse_tracestate,
)
from tests.support.http import http_client
from tests.support.records import FailingFilter, access_records, rendered

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.mark.parametrize(
    ("header", "flags"),
    [
        (f"00-{TRACE_ID}-{PARENT_ID}-01", 0x01),
        (f"00-{TRACE_ID}-{PARENT_ID}-00", 0x00),
        (f"00-{TRACE_ID}-{PARENT_ID}-02", 0x02),
        (f"00-{TRACE_ID}-{PARENT_ID}-03", 0x03),
        (f"00-{TRACE_ID}-{PARENT_ID}-ff", 0x03),  # reserved bits are dropped
        (f"01-{TRACE_ID}-{PARENT_ID}-09", 0x01),
        (f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-will-be-like", 0x01),
        (f" \t00-{TRACE_ID}-{PARENT_ID}-01\t ", 0x01),  # optional whitespace around the value
    ],
)
def test_a_valid_traceparent_gives_trace_id_parent_id_and_known_flags(header: str, flags: int) -> None:
    assert parse_traceparent(header.encode()) == (TRACE_ID, PARENT_ID, flags)


@pytest.mark.parametrize(
    "header",
    [
        f"ff-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID}-01-extra",
        f"00-{TRACE_ID}-{PARENT_ID}-01.",
        f"cc-{TRACE_ID}-{PARENT_ID}-01.what-the-future-will-be-like",
        f"00-{'0' * 32}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID}",
        f"00-{TRACE_ID}-{PARENT_ID}-1",
        f"00-{TRACE_ID}-{PARENT_ID}-0g",
        f"0-{TRACE_ID}-{PARENT_ID}-01",
        f"000-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID}0-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID}0-01",
        f"00_{TRACE_ID}_{PARENT_ID}_01",
        f"00-{TRACE_ID}-{PARENT_ID}-01\r\n",
        f"\v00-{TRACE_ID}-{PARENT_ID}-01",
        "",
        "garbage",
    ],
)
def test_an_invalid_traceparent_gives_nothing(header: str) -> None:
    assert parse_traceparent(header.encode("latin-1")) is None


# Valid traceparents, each maybe broken in one of the ways W3C singles out, around optional
# whitespace; and arbitrary bytes.
_FLAWS = {
    "none": lambda version, trace_id, parent_id, flags: f"{version}-{trace_id}-{parent_id}-{flags}",
    "later version, more fields": lambda version, trace_id, parent_id, flags: f"cc-{trace_id}-{parent_id}-{flags}-more",
    "version 00, more fields": lambda version, trace_id, parent_id, flags: f"00-{trace_id}-{parent_id}-{flags}-more",
    "version ff": lambda version, trace_id, parent_id, flags: f"ff-{trace_id}-{parent_id}-{flags}",
    "zero trace id": lambda version, trace_id, parent_id, flags: f"{version}-{'0' * 32}-{parent_id}-{flags}",
    "zero parent id": lambda version, trace_id, parent_id, flags: f"{version}-{trace_id}-{'0' * 16}-{flags}",
    "uppercase": lambda version, trace_id, parent_id, flags: f"{version}-{trace_id.upper()}-{parent_id}-{flags}",
    "short parent id": lambda version, trace_id, parent_id, flags: f"{version}-{trace_id}-{parent_id[1:]}-{flags}",
}
_TRACEPARENTS = st.builds(
    lambda flaw, version, trace_id, parent_id, flags, space: f"{space}{_FLAWS[flaw](version, trace_id, parent_id, flags)}{space}",
    flaw=st.sampled_from(["none"] * len(_FLAWS) + list(_FLAWS)),  # half of them valid
    version=st.sampled_from(["00", "01", "7f"]),
    trace_id=st.integers(1, 2**128 - 1).map("{:032x}".format),  # never zero: zero ids are a flaw of their own
    parent_id=st.integers(1, 2**64 - 1).map("{:016x}".format),
    flags=st.integers(0, 255).map("{:02x}".format),
    space=st.sampled_from(["", " ", "\t", "\n"]),
).map(lambda text: text.encode("latin-1"))
_ANY_TRACEPARENT = _TRACEPARENTS | _TRACEPARENTS | st.binary(max_size=80)


@given(_ANY_TRACEPARENT)
def test_whatever_a_traceparent_holds_what_is_adopted_is_w3c(header: bytes) -> None:
    parsed = parse_traceparent(header)
    event("adopted" if parsed is not None else "rejected")
    if parsed is not None:
        trace_id, parent_id, flags = parsed
        assert is_w3c_trace_id(trace_id)
        assert is_w3c_span_id(parent_id)
        assert flags & ~0x03 == 0
        assert f"-{trace_id}-{parent_id}-".encode() in header  # what is adopted is what was sent, never repaired


LCALPHA_KEY = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
ALL_VALUE_CHARACTERS = "".join(map(chr, [*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)]))


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["foo=1,bar=2"], "foo=1,bar=2"),
        (["foo=1,bar=2", "rojo=1,congo=2", "baz=3"], "foo=1,bar=2,rojo=1,congo=2,baz=3"),
        (["foo=1 \t , \t bar=2, \t baz=3"], "foo=1,bar=2,baz=3"),
        (["\t foo=1 \t"], "foo=1"),
        (["foo=1,,  ,bar=2", ""], "foo=1,bar=2"),
        (["", "foo=1"], "foo=1"),
        (["foo=1,foo=2"], "foo=1,foo=2"),  # duplicates are kept as they came
        ([f"{LCALPHA_KEY}={ALL_VALUE_CHARACTERS}"], f"{LCALPHA_KEY}={ALL_VALUE_CHARACTERS}"),
        ([f"{LCALPHA_KEY}@a-z0-9_-*/=1"], f"{LCALPHA_KEY}@a-z0-9_-*/=1"),
        (["foo@=1,foo@@bar=2,foo@bar@baz=3"], "foo@=1,foo@@bar=2,foo@bar@baz=3"),
        (["1tenant@vendor=x"], "1tenant@vendor=x"),
        (["1vendor=x,0=1"], "1vendor=x,0=1"),  # Level 2: a key may start with a digit
        ([f"{'z' * 256}=1"], f"{'z' * 256}=1"),
        (  # the latest spec text: only the key's total length is limited
            [f"{'t' * 241}@{'v' * 14}=1", f"{'t' * 242}@v=2", f"t@{'v' * 15}=3"],
            f"{'t' * 241}@{'v' * 14}=1,{'t' * 242}@v=2,t@{'v' * 15}=3",
        ),
        ([",".join(f"k{i}=v" for i in range(32))], ",".join(f"k{i}=v" for i in range(32))),
        ([f"foo={'x' * 256}"], f"foo={'x' * 256}"),
        (["", " \t "], None),
    ],
)
def test_a_valid_tracestate_is_combined_in_order_without_empty_members(lines: list[str], expected: str | None) -> None:
    assert parse_tracestate([line.encode() for line in lines]) == expected


@pytest.mark.parametrize(
    "lines",
    [
        ["foo =1"],
        ["FOO=1"],
        ["foo.bar=1"],
        ["@foo=1,bar=2"],
        [f"{'z' * 257}=1", "foo=1"],
        ["foo=bar=baz"],
        ["foo=,bar=3"],
        ["foo=1\t2"],  # a tab inside a value
        [f"foo={'x' * 257}"],
        ["foo"],
        ["foo=1", ",".join(f"k{i}=v" for i in range(32))],  # 33 members
        ["foo=caf\u00e9"],
        ["foo=1\r\nX-Injected: 1"],
        ["foo=\x00"],
        ["k=v," * 25_000],  # 100 kB
        [",".join(f"k{i}=v" for i in range(10_000))],
    ],
)
def test_a_tracestate_that_breaks_a_rule_is_discarded_whole(lines: list[str]) -> None:
    assert parse_tracestate([line.encode("utf-8") for line in lines]) is None


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["userId=alice,serverNode=DF%2028"], "userId=alice,serverNode=DF%2028"),
        (["userId=alice", "isProduction=false"], "userId=alice,isProduction=false"),
        (
            ["key1 = value1;property1;propertyKey=propertyValue , key2=value2"],
            "key1 = value1;property1;propertyKey=propertyValue,key2=value2",
        ),
        (["a=1,,b=2", " , "], "a=1,b=2"),  # empty members, which the grammar does not allow, dropped
        (["  a=1  "], "a=1"),
        ([",".join(f"k{i}=v" for i in range(180))], ",".join(f"k{i}=v" for i in range(180))),
        ([f"k={'x' * 8190}"], f"k={'x' * 8190}"),
        ([f"k={'x' * 8190}   "], f"k={'x' * 8190}"),  # the limit counts what is forwarded
    ],
)
def test_valid_baggage_is_forwarded_with_its_members_unchanged(lines: list[str], expected: str) -> None:
    assert parse_baggage([line.encode() for line in lines]) == expected


@pytest.mark.parametrize(
    "lines",
    [
        [f"k={'x' * 8191}"],  # 8,193 bytes
        [",".join(f"k{i}=v" for i in range(181))],
        [",".join(f"k{i}=v" for i in range(10_000))],
        ["a=1,b"],
        ["a=caf\u00e9"],
        ["a=1\r\nX-Injected: 1"],
        ["a=\x1b[31mred"],
        ['a="quoted"'],
        ["=1"],
        [""],
    ],
)
def test_baggage_beyond_the_limits_or_the_grammar_is_dropped(lines: list[str]) -> None:
    assert parse_baggage([line.encode("utf-8") for line in lines]) is None


def _read(*headers: tuple[str, str], reader: TraceReader | None = None) -> tuple[str, ...]:
    incoming = (reader or TraceReader()).read([(name.encode(), value.encode("utf-8")) for name, value in headers])
    state = incoming.state
    return (
        state.trace_id,
        str(state.parent_span_id),
        f"{state.flags:02x}",
        str(state.tracestate),
        str(state.baggage),
        str(incoming.request_id),
        str(incoming.rejected),
    )


def test_the_reader_adopts_a_traceparent_with_its_state_and_keeps_the_client_request_id() -> None:
    assert _read(
        ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-00"),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("baggage", "userId=alice"),
        ("x-request-id", "client-7"),
    ) == (TRACE_ID, PARENT_ID, "00", "congo=t61rcWkgMzE", "userId=alice", "client-7", "False")


def test_two_traceparent_field_lines_restart_the_trace_and_drop_the_tracestate() -> None:
    trace_id, *rest = _read(
        ("traceparent", TRACEPARENT), ("traceparent", TRACEPARENT), ("tracestate", "foo=1"), ("baggage", "a=1")
    )
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != TRACE_ID
    assert rest == ["None", "03", "None", "a=1", "None", "True"]


def test_without_a_valid_traceparent_tracestate_is_never_kept() -> None:
    assert _read(("tracestate", "foo=1"), ("x-request-id", "req-1")) == (
        "req-1", "None", "01", "None", "None", "req-1", "False"
    )


def test_a_new_trace_is_random_and_sampled_by_the_option() -> None:
    assert _read()[2] == "03"
    assert _read(reader=TraceReader(sampled=False))[2] == "02"
    assert _read(reader=TraceReader(generator=lambda: "custom-id"))[2] == "01"  # not known to be random


def test_an_empty_request_id_counts_as_absent_and_an_invalid_one_is_rejected() -> None:
    assert _read(("x-request-id", ""))[5:] == ("None", "False")
    assert _read(("x-request-id", "bad id"))[5:] == ("None", "True")


def test_trusting_only_the_request_id_ignores_every_incoming_w3c_header() -> None:
    reader = TraceReader(trust_incoming="request-id")
    assert _read(("traceparent", TRACEPARENT), ("tracestate", "a=1"), ("baggage", "b=2"), reader=reader)[1:5] == (
        "None", "03", "None", "None"
    )


def test_bind_trace_headers_continues_a_trace_in_a_fresh_context() -> None:
    bind_context(trace_id="old", status_code=200, user_agent="stale")
    trace_id = bind_trace_headers({"TraceParent": TRACEPARENT, "TRACESTATE": "a=1", "Baggage": "b=2"})
    context = get_context()
    assert trace_id == context["trace_id"] == TRACE_ID
    assert context["span_id"] is not None and context["span_id"] != PARENT_ID
    assert {key: value for key, value in context.items() if key not in ("trace_id", "span_id")} == dict.fromkeys(
        ("latency_ms", "status_code", "req_bytes", "res_bytes", "user_agent")
    )
    assert trace_headers() == {
        "X-Request-ID": TRACE_ID,
        "traceparent": f"00-{TRACE_ID}-{context['span_id']}-01",
        "tracestate": "a=1",
        "baggage": "b=2",
    }


def test_bind_trace_headers_is_the_inverse_of_trace_headers() -> None:
    bind_trace_headers([])
    publisher = get_context()
    carried = [(name.lower().encode(), value.encode()) for name, value in trace_headers().items()]
    bind_trace_headers(carried)
    consumer = get_context()
    assert consumer["trace_id"] == publisher["trace_id"]
    assert consumer["span_id"] != publisher["span_id"]
    assert trace_state(current_model()).parent_span_id == publisher["span_id"]  # what the consumer's records name
    assert trace_headers()["traceparent"] == f"00-{publisher['trace_id']}-{consumer['span_id']}-03"


def test_bind_trace_headers_takes_a_request_id_under_its_header_name() -> None:
    assert bind_trace_headers({"X-Correlation-ID": "job-9"}, header_name="X-Correlation-ID") == "job-9"
    assert bind_trace_headers({"X-Request-ID": "job-9"}, header_name="X-Correlation-ID") != "job-9"
    with pytest.raises(ValueError, match="header_name"):
        bind_trace_headers({}, header_name="bad name")


HOSTILE_MARKERS = ("script", "Injected", "\u00e9", "\\xe9", "ud800", "zz")  # never in a generated hex id


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Request-ID": '"><script>alert(1)</script>'},
        {"traceparent": "00-zz\r\nX-Injected: 1", "tracestate": "k=v," * 25_000},
        {"X-Request-ID": "caf\u00e9\ud800"},
        [("X-Request-ID", None), (b"traceparent", 7), ("one",), "junk", (None, "x"), (3, b"y")],
        {},
    ],
)
def test_bind_trace_headers_replaces_hostile_input_and_never_logs_it(
    headers: object, records: list[logging.LogRecord]
) -> None:
    trace_id = bind_trace_headers(headers)  # type: ignore[arg-type]  # carriers from the wire hold anything
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert set(trace_headers()) <= {"X-Request-ID", "traceparent"}
    for record in records:
        text = rendered(record)
        assert [marker for marker in HOSTILE_MARKERS if marker in text] == []


def test_a_logging_failure_never_makes_bind_trace_headers_raise_and_the_new_context_is_bound(
    records: list[logging.LogRecord],
) -> None:
    """The consumer loop the README shows survives a logging filter that raises."""
    logging.getLogger("fapilog.incoming").addFilter(FailingFilter())
    bind_context(trace_id="previous-message")
    trace_id = bind_trace_headers({"X-Request-ID": "bad id"})
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert get_context()["trace_id"] == trace_id
    assert bind_trace_headers({"X-Request-ID": "job-1"}) == get_context()["trace_id"] == "job-1"


# The request id and the generator: checked whatever the user's own code does.

UUID4 = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


def _context_app(**options: Any) -> FastAPI:
    """An instrumented app: ``GET /`` answers its context, what ``trace_headers()`` sends on, and its request id header."""
    app = FastAPI()

    @app.get("/")
    async def home(request: Request) -> dict[str, Any]:
        return {
            "context": dict(get_context()),
            "fields": Shop.current().model_dump(),
            "forwarded": trace_headers(),
            "request_id_seen": request.headers.getlist("X-Request-ID"),
        }

    return instrument_app(app, **options)


def _uuid4_only(value: str) -> bool:
    """A validator as users write it: it raises on what is no UUID, naming the value."""
    try:
        return uuid.UUID(value).version == 4
    except ValueError:
        raise ValueError(f"not a UUID: {value}") from None


async def test_a_validator_that_raises_counts_as_a_rejection(records: list[logging.LogRecord]) -> None:
    async with http_client(_context_app(validator=_uuid4_only)) as client:
        rejected = await client.get("/", headers={"X-Request-ID": "zq-not-a-uuid"})
        accepted = await client.get("/", headers={"X-Request-ID": UUID4})
    assert rejected.status_code == 200
    trace_id = rejected.json()["context"]["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert rejected.headers.get_list("X-Request-ID") == [trace_id]
    assert accepted.headers["X-Request-ID"] == accepted.json()["context"]["trace_id"] == UUID4
    assert [(a["status_code"], a["request_id"]) for a in access_records(records)] == [(200, trace_id), (200, UUID4)]
    [warning] = [record for record in records if record.levelno >= logging.WARNING]
    assert (warning.name, warning.getMessage()) == ("fapilog.middleware", REPLACED_MESSAGE % ("X-Request-ID", trace_id))
    assert not [record for record in records if "zq" in rendered(record)]


def _generator_giving(*values: object) -> Callable[[], str]:
    """Return a generator that returns (or raises) *values* in turn."""
    remaining = list(values)

    def generate() -> str:
        value = remaining.pop(0)
        if isinstance(value, Exception):
            raise value
        return value  # type: ignore[return-value]  # a misbehaving generator is the point

    return generate


UNFIT = "returned an id unfit for a header (1-128 printable ASCII characters)"


@pytest.mark.parametrize(
    ("unfit", "failure"),
    [
        pytest.param(None, UNFIT, id="none"),
        pytest.param("", UNFIT, id="empty"),
        pytest.param("zq-caf\u00e9\u2028", UNFIT, id="non-ascii"),
        pytest.param("zq\r\nSet-Cookie: x=1", UNFIT, id="crlf"),
        pytest.param("zq" * 65, UNFIT, id="130-chars"),
        pytest.param("zq ", UNFIT, id="trailing-space"),
        pytest.param(RuntimeError("zq: generator down"), "raised RuntimeError", id="raises"),
    ],
)
async def test_a_generator_that_misbehaves_later_gives_way_to_built_in_ids_with_one_warning(
    unfit: object, failure: str, records: list[logging.LogRecord]
) -> None:
    app = _context_app(generator=_generator_giving("checked-at-startup", unfit, unfit, "gen-ok"), update_request_header=True)
    async with http_client(app) as client:
        responses = [await client.get("/") for _ in range(3)]
    for response in responses[:2]:
        assert response.status_code == 200
        [echoed] = response.headers.get_list("X-Request-ID")
        assert re.fullmatch(r"[0-9a-f]{32}", echoed)
        assert response.json()["request_id_seen"] == [echoed] == [response.json()["context"]["trace_id"]]
        assert "set-cookie" not in response.headers
    assert responses[2].headers["X-Request-ID"] == "gen-ok"  # asked again every time
    [warning] = [record for record in records if record.levelno >= logging.WARNING]
    assert (warning.name, warning.getMessage()) == (
        "fapilog.incoming",
        f"The trace id generator {failure}; built-in ids stand in whenever it does (said once per middleware)",
    )
    assert not [record for record in records if "zq" in rendered(record)]


async def test_a_permissive_validator_never_lets_an_id_past_128_characters(records: list[logging.LogRecord]) -> None:
    async with http_client(_context_app(validator=str.isalnum)) as client:
        huge = await client.get("/", headers={"X-Request-ID": "a" * 60_000})
        longest = await client.get("/", headers={"X-Request-ID": "b" * 128})
        too_long = await client.get("/", headers={"X-Request-ID": "c" * 129})
    trace_id = huge.json()["context"]["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert huge.headers["X-Request-ID"] == huge.json()["forwarded"]["X-Request-ID"] == trace_id
    assert longest.headers["X-Request-ID"] == longest.json()["forwarded"]["X-Request-ID"] == "b" * 128
    assert re.fullmatch(r"[0-9a-f]{32}", too_long.headers["X-Request-ID"])
    for record in records:
        assert len(JsonFormatter().format(record)) < 1_000


@pytest.mark.parametrize(
    ("unfit", "validator"),
    [
        pytest.param(" padded", lambda value: True, id="leading-space"),  # httptools passes it on; h11 cannot send it
        pytest.param("padded ", lambda value: True, id="trailing-space"),
        pytest.param("tab\there", lambda value: True, id="tab"),
        pytest.param("x" * 129, lambda value: True, id="129-chars"),
        pytest.param("\u00e9t\u00e9", lambda value: True, id="non-ascii"),
        pytest.param("1b4e28ba", _uuid4_only, id="validator-raises"),
    ],
)
def test_the_reader_rejects_an_id_unfit_for_a_header_whatever_the_validator(
    unfit: str, validator: Callable[[str], bool]
) -> None:
    reader = TraceReader(validator=validator)
    assert _read(("x-request-id", unfit), reader=reader)[5:] == ("None", "True")


# Trust at the front gate

CLIENT_HEX_ID = "0af7651916cd43dd8448eb211c80319c"  # a request id that could pass as a W3C trace id
CLIENT_HEADERS = {
    "X-Request-ID": CLIENT_HEX_ID,
    "traceparent": TRACEPARENT,
    "tracestate": "congo=t61rcWkgMzE",
    "baggage": "tenant=admin,session=s3cr3t;secret",
}


async def test_trusting_no_caller_starts_every_trace_here_and_keeps_the_client_id_only_as_request_id(
    records: list[logging.LogRecord],
) -> None:
    async with http_client(_context_app(trust_incoming="none")) as client:
        response = await client.get("/", headers=CLIENT_HEADERS)
        alone = await client.get("/", headers={"X-Request-ID": CLIENT_HEX_ID})
    body = response.json()
    trace_id = body["context"]["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id not in (TRACE_ID, CLIENT_HEX_ID)
    assert alone.json()["context"]["trace_id"] not in (trace_id, TRACE_ID, CLIENT_HEX_ID)
    assert response.headers["X-Request-ID"] == CLIENT_HEX_ID == body["request_id_seen"][0]  # echoed as sent
    assert response.headers["traceresponse"].split("-")[1] == trace_id
    assert body["forwarded"] == {
        "X-Request-ID": trace_id,
        "traceparent": f"00-{trace_id}-{body['context']['span_id']}-03",  # a new, random, sampled trace
    }
    [access, _] = access_records(records)
    assert (access["trace_id"], access["request_id"], access["parent_span_id"]) == (trace_id, CLIENT_HEX_ID, None)
    assert not [record for record in records if record.levelno >= logging.WARNING]
    assert not [record for record in records if "s3cr3t" in rendered(record) or TRACE_ID in rendered(record)]


async def test_trusting_the_request_id_only_lets_it_set_the_trace_but_no_w3c_header() -> None:
    async with http_client(_context_app(trust_incoming="request-id")) as client:
        body = (await client.get("/", headers=CLIENT_HEADERS)).json()
    assert body["context"]["trace_id"] == CLIENT_HEX_ID
    assert body["forwarded"] == {
        "X-Request-ID": CLIENT_HEX_ID,
        "traceparent": f"00-{CLIENT_HEX_ID}-{body['context']['span_id']}-01",
    }


@pytest.mark.parametrize("trust", ["all", "request-id", "none"])
async def test_only_allowed_baggage_keys_pass_inward_and_onward(trust: Trust, records: list[logging.LogRecord]) -> None:
    app = _context_app(trust_incoming=trust, baggage_keys=["tenant", "locale"])
    async with http_client(app) as client:
        allowed = await client.get("/", headers={**CLIENT_HEADERS, "baggage": "session=s3cr3t, tenant = blue ;p=1,locale=fr"})
        none_allowed = await client.get("/", headers={**CLIENT_HEADERS, "baggage": "session=s3cr3t"})
    assert allowed.json()["forwarded"]["baggage"] == "tenant = blue ;p=1,locale=fr"
    assert "baggage" not in none_allowed.json()["forwarded"]
    assert ("tracestate" in allowed.json()["forwarded"]) is (trust == "all")
    assert not [record for record in records if "s3cr3t" in rendered(record)]


async def test_without_an_allow_list_baggage_follows_the_trust_level() -> None:
    seen = {}
    for trust in ("all", "request-id", "none"):
        async with http_client(_context_app(trust_incoming=trust)) as client:
            seen[trust] = (await client.get("/", headers=CLIENT_HEADERS)).json()["forwarded"].get("baggage")
    assert seen == {"all": CLIENT_HEADERS["baggage"], "request-id": None, "none": None}


def test_bind_trace_headers_takes_the_trust_options_of_the_middleware() -> None:
    bind_trace_headers(CLIENT_HEADERS, trust_incoming="none", baggage_keys=["tenant"])
    assert get_context()["trace_id"] not in (TRACE_ID, CLIENT_HEX_ID)
    assert trace_headers()["baggage"] == "tenant=admin"
    assert "tracestate" not in trace_headers()


# App fields declared for propagation travel in the trace's baggage


@pytest.mark.parametrize(
    ("options", "bound"),
    [
        ({}, "acme"),
        ({"trust_incoming": "request-id"}, None),
        ({"trust_incoming": "none"}, None),
        ({"trust_incoming": "none", "baggage_keys": ["tenant_id"]}, "acme"),
        ({"baggage_keys": ["locale"]}, None),
    ],
)
async def test_a_propagated_field_is_bound_from_the_incoming_baggage_only_when_the_service_trusts_that_key(
    options: dict[str, Any], bound: str | None, records: list[logging.LogRecord]
) -> None:
    async with http_client(_context_app(**options)) as client:
        body = (await client.get("/", headers={"traceparent": TRACEPARENT, "baggage": "tenant_id=acme,locale=fr"})).json()
    assert body["fields"] == {"user_id": None, "tenant_id": bound}
    assert (body["forwarded"].get("baggage") or "").startswith("tenant_id=acme") is (bound is not None)
    [access] = access_records(records)
    assert json.loads(JsonFormatter().format(logging.makeLogRecord(access)))["tenant_id"] == bound


async def test_an_invalid_value_of_a_propagated_field_is_dropped_never_bound_sent_on_or_logged(
    records: list[logging.LogRecord],
) -> None:
    async with http_client(_context_app()) as client:
        invalid = await client.get("/", headers={"traceparent": TRACEPARENT, "baggage": "tenant_id=zq%FF%FE,locale=fr"})
        encoded = await client.get("/", headers={"traceparent": TRACEPARENT, "baggage": "tenant_id = Acme%2C%20Inc. ;p=1"})
    assert (invalid.json()["fields"], invalid.json()["forwarded"]["baggage"]) == ({"user_id": None, "tenant_id": None}, "locale=fr")
    assert encoded.json()["fields"] == {"user_id": None, "tenant_id": "Acme, Inc."}
    assert not [record for record in records if "zq" in rendered(record)]


async def test_a_field_not_declared_for_propagation_is_never_taken_from_baggage() -> None:
    """user_id is declared, not propagated: the caller's member is any other baggage member, never the field."""
    async with http_client(_context_app()) as client:
        body = (await client.get("/", headers={"traceparent": TRACEPARENT, "baggage": "user_id=u-forged"})).json()
    assert body["fields"] == {"user_id": None, "tenant_id": None}
    assert body["forwarded"]["baggage"] == "user_id=u-forged"


def test_bind_trace_headers_binds_the_propagated_fields_in_a_fresh_context() -> None:
    bind_fields(Shop(user_id="u-before", tenant_id="before"))
    bind_trace_headers({"traceparent": TRACEPARENT, "baggage": "tenant_id=acme"})
    assert Shop.current() == Shop(tenant_id="acme")
    bind_trace_headers({"traceparent": TRACEPARENT})
    assert Shop.current() == Shop()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trust_incoming": "nobody"}, "trust_incoming"),
        ({"trust_incoming": False}, "trust_incoming"),
        ({"baggage_keys": "tenant"}, "baggage_keys"),
        ({"baggage_keys": ["tenant", "bad key"]}, "baggage_keys"),
        ({"baggage_keys": [7]}, "baggage_keys"),
        ({"generator": lambda: "bad id\n"}, "generator"),
        ({"generator": lambda: "x" * 129}, "generator"),
        ({"generator": _generator_giving(RuntimeError("down"))}, "generator failed"),
    ],
)
def test_trust_and_id_options_that_can_never_work_are_refused_at_startup(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        instrument_app(FastAPI(), **options)
    with pytest.raises(ValueError, match=message):
        TraceIDMiddleware(FastAPI(), **options)
