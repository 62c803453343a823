"""Trace and span ids: generate them, and accept incoming ones only when valid."""

from __future__ import annotations

import random
import re
from typing import Final, TypeGuard

__all__ = [
    "DEFAULT_HEADER_NAME",
    "MAX_ID_LENGTH",
    "ZERO_SPAN_ID",
    "ZERO_TRACE_ID",
    "generate_ids",
    "generate_span_id",
    "generate_trace_id",
    "is_header_id",
    "is_header_name",
    "is_header_safe",
    "is_valid_request_id",
    "is_w3c_span_id",
    "is_w3c_trace_id",
]

DEFAULT_HEADER_NAME: Final = "X-Request-ID"
MAX_ID_LENGTH: Final = 128
"""Longest request or trace id taken from a client or a generator, whatever the validator says."""

_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
_W3C_TRACE_ID: Final = re.compile(r"[0-9a-f]{32}")
_W3C_SPAN_ID: Final = re.compile(r"[0-9a-f]{16}")
ZERO_TRACE_ID: Final = "0" * 32  # invalid in a traceparent, as is the zero span id
ZERO_SPAN_ID: Final = "0" * 16
_getrandbits: Final = random.getrandbits


def generate_trace_id() -> str:
    """Return a new W3C-compatible trace id: 32 lowercase hex, never all zero."""
    return (_getrandbits(128) or 1).to_bytes(16, "big").hex()


def generate_span_id() -> str:
    """Return a new W3C-compatible span id: 16 lowercase hex, never all zero."""
    return (_getrandbits(64) or 1).to_bytes(8, "big").hex()


def generate_ids() -> tuple[str, str]:
    """Return a new trace id and span id, as the two functions above would, from one random draw."""
    text = _getrandbits(192).to_bytes(24, "big").hex()
    trace_id, span_id = text[:32], text[32:]
    if trace_id == ZERO_TRACE_ID or span_id == ZERO_SPAN_ID:
        return generate_trace_id(), generate_span_id()
    return trace_id, span_id


def is_valid_request_id(value: str) -> bool:
    """Return whether *value* is 1-128 characters of ``A-Z a-z 0-9 . _ : -``."""
    return _REQUEST_ID.fullmatch(value) is not None


def is_w3c_trace_id(value: str) -> bool:
    """Return whether *value* can be the trace-id of a ``traceparent``."""
    return value != ZERO_TRACE_ID and _W3C_TRACE_ID.fullmatch(value) is not None


def is_w3c_span_id(value: str) -> bool:
    """Return whether *value* can be the parent-id of a ``traceparent``."""
    return value != ZERO_SPAN_ID and _W3C_SPAN_ID.fullmatch(value) is not None


def is_header_name(value: str) -> bool:
    """Return whether *value* is a valid HTTP header name."""
    return _HEADER_NAME.fullmatch(value) is not None


def is_header_safe(value: str) -> bool:
    """Return whether *value* can go into a header as it is: printable ASCII, no CR/LF, no space at either end.

    HTTP strips that space from a field value, and h11 refuses to send it.
    """
    return value.isascii() and value.isprintable() and value[:1] != " " and value[-1:] != " "


def is_header_id(value: object) -> TypeGuard[str]:
    """Return whether *value* can be an id in a header and a log line: 1-128 characters, header-safe.

    Checked before any user validator runs, and on every generated id.
    """
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and is_header_safe(value)
