"""Trace and span ids: generated ones are W3C-shaped, incoming ones checked strictly."""

from __future__ import annotations

import re

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from fapilog._internal.ids import (
    generate_ids,
    generate_span_id,
    generate_trace_id,
    is_header_name,
    is_valid_request_id,
    is_w3c_trace_id,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_generated_trace_ids_are_32_lowercase_hex_and_distinct() -> None:
    ids = [generate_trace_id() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", trace_id) for trace_id in ids)
    assert all(is_w3c_trace_id(trace_id) for trace_id in ids)
    assert len(set(ids)) == 1000


def test_generated_span_ids_are_16_lowercase_hex_and_distinct() -> None:
    ids = [generate_span_id() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", span_id) for span_id in ids)
    assert len(set(ids)) == 1000


def test_a_zero_draw_still_gives_a_non_zero_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fapilog._internal.ids._getrandbits", lambda bits: 0)
    assert generate_trace_id() == "0" * 31 + "1"
    assert generate_span_id() == "0" * 15 + "1"


def test_both_ids_from_one_draw_are_w3c_shaped_distinct_and_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = [generate_ids() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", trace) and re.fullmatch(r"[0-9a-f]{16}", span) for trace, span in pairs)
    assert len({trace for trace, _ in pairs}) == len({span for _, span in pairs}) == 1000
    monkeypatch.setattr("fapilog._internal.ids._getrandbits", lambda bits: 5)  # a draw whose trace half is zero
    assert generate_ids() == ("0" * 31 + "5", "0" * 15 + "5")


@pytest.mark.parametrize("value", ["a", "req-1", "A.b_c:d-e", "x" * 128, TRACE_ID])
def test_request_ids_of_the_allowed_alphabet_are_valid(value: str) -> None:
    assert is_valid_request_id(value)


@pytest.mark.parametrize("value", ["", "x" * 129, "a b", "a/b", "a\nb", "caf\u00e9", '"q"', "%s", "a\x00"])
def test_other_request_ids_are_invalid(value: str) -> None:
    assert not is_valid_request_id(value)


_ALPHABET = r"[A-Za-z0-9._:\-]"


@given(st.from_regex(rf"{_ALPHABET}{{1,128}}", fullmatch=True) | st.from_regex(rf"{_ALPHABET}{{0,140}}", fullmatch=True) | st.text())
def test_a_request_id_is_valid_exactly_when_it_is_1_to_128_safe_characters_and_then_header_safe(value: str) -> None:
    valid = is_valid_request_id(value)
    event("valid" if valid else "invalid")
    assert valid == (1 <= len(value) <= 128 and re.fullmatch(rf"{_ALPHABET}*", value) is not None)
    if valid:
        assert value.isascii() and value.isprintable() and " " not in value


@pytest.mark.parametrize("value", [TRACE_ID, "0" * 31 + "1"])
def test_w3c_trace_ids(value: str) -> None:
    assert is_w3c_trace_id(value)


@pytest.mark.parametrize("value", ["0" * 32, TRACE_ID.upper(), TRACE_ID[:-1], TRACE_ID + "0", "req-1"])
def test_not_w3c_trace_ids(value: str) -> None:
    assert not is_w3c_trace_id(value)


@pytest.mark.parametrize("value", ["X-Request-ID", "x-correlation-id", "X_Trace.Id", "a!#$%&'*+-.^_`|~z"])
def test_tokens_are_header_names(value: str) -> None:
    assert is_header_name(value)


@pytest.mark.parametrize("value", ["", "X Request", "X:Request", "X-Request\r\n", "caf\u00e9", "a/b", "(x)"])
def test_other_strings_are_not_header_names(value: str) -> None:
    assert not is_header_name(value)
