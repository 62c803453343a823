"""Continue a trace from incoming headers: the one parser every transport shares.

The middleware, ``bind_trace_headers`` and the integrations all read
``traceparent``, ``tracestate``, ``baggage`` and the request-id header here,
by W3C Trace Context Level 2 and W3C Baggage — as OpenTelemetry has one
propagator for every transport, never a copy per transport. What is invalid
is dropped whole, never repaired, echoed or logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final, NamedTuple

from fapilog._internal.context import SAMPLED, TraceState, bind_trace, clear_context
from fapilog._internal.ids import (
    DEFAULT_HEADER_NAME,
    ZERO_SPAN_ID,
    ZERO_TRACE_ID,
    generate_ids,
    generate_span_id,
    generate_trace_id,
    is_header_name,
    is_header_safe,
    is_valid_request_id,
    is_w3c_trace_id,
)

__all__ = [
    "MAX_BAGGAGE_BYTES",
    "MAX_BAGGAGE_MEMBERS",
    "MAX_TRACESTATE_MEMBERS",
    "RANDOM",
    "REPLACED_MESSAGE",
    "Incoming",
    "TraceReader",
    "bind_trace_headers",
    "parse_baggage",
    "parse_traceparent",
    "parse_tracestate",
]

RANDOM: Final = 0x02
"""The Level 2 trace-flags bit that says the trace id is random."""
MAX_TRACESTATE_MEMBERS: Final = 32
MAX_BAGGAGE_BYTES: Final = 8192
MAX_BAGGAGE_MEMBERS: Final = 180

REPLACED_MESSAGE: Final = "Ignored an invalid incoming %s or traceparent header; the trace id is %s"

_logger: Final = logging.getLogger("fapilog.incoming")
_KNOWN_FLAGS: Final = SAMPLED | RANDOM  # every other bit is reserved: never sent on
_OWS: Final = " \t"
# version-traceid-parentid-flags; a future version may append "-" and more.
_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
# key=value, by Level 2: a key is 1-256 of a-z 0-9 _ - * / @ and does not start
# with "@" (the tenant@system split is gone); a value is 1-256 printable ASCII
# characters but "," and "=", and does not end in a space.
_TRACESTATE_MEMBER: Final = re.compile(
    r"[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
# Longest tracestate input read at all: 32 members of 513 characters, their
# commas, and room for optional whitespace. Anything longer is discarded unread.
_MAX_TRACESTATE_INPUT: Final = 32 * 1024
_TOKEN: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_BAGGAGE_VALUE: Final = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
# key OWS "=" OWS value, then properties: *( OWS ";" OWS key [ OWS "=" OWS value ] )
_BAGGAGE_MEMBER: Final = re.compile(
    rf"{_TOKEN}[ \t]*=[ \t]*{_BAGGAGE_VALUE}(?:[ \t]*;[ \t]*{_TOKEN}(?:[ \t]*=[ \t]*{_BAGGAGE_VALUE})?)*"
)


def parse_traceparent(value: bytes) -> tuple[str, str, int] | None:
    """Return trace-id, parent-id and the known flags of a valid ``traceparent``, else ``None``.

    Optional whitespace around the value is ignored; version ``ff`` is invalid,
    version ``00`` has exactly four fields, and a later version may append
    ``-`` and more, which is ignored. Neither id may be all zero.
    """
    match = _TRACEPARENT.fullmatch(value.decode("latin-1").strip(_OWS))
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == ZERO_TRACE_ID or parent_id == ZERO_SPAN_ID:
        return None
    return trace_id, parent_id, int(flags, 16) & _KNOWN_FLAGS


def parse_tracestate(lines: list[bytes]) -> str | None:
    """Return the ``tracestate`` field lines combined in order, or ``None`` when invalid or empty.

    Empty list-members and optional whitespace are dropped; a member that
    breaks the grammar, or more than 32 members, discard the header whole.
    Duplicate keys are kept as they came.
    """
    if sum(map(len, lines)) > _MAX_TRACESTATE_INPUT:
        return None
    members: list[str] = []
    for line in lines:
        for member in line.decode("latin-1").split(","):
            member = member.strip(_OWS)
            if not member:
                continue
            if len(members) == MAX_TRACESTATE_MEMBERS or _TRACESTATE_MEMBER.fullmatch(member) is None:
                return None
            members.append(member)
    return ",".join(members) or None


def parse_baggage(lines: list[bytes]) -> str | None:
    """Return the ``baggage`` field lines combined, unchanged, or ``None`` when invalid or empty.

    Within W3C Baggage's limits — at most 8,192 bytes and 180 list-members,
    each ``key=value`` with optional properties — or discarded whole. Empty
    members, which the grammar does not allow, are dropped.
    """
    if sum(map(len, lines)) > 2 * MAX_BAGGAGE_BYTES:  # far too long: discarded unread
        return None
    members = [
        member for line in lines for part in line.decode("latin-1").split(",") if (member := part.strip(_OWS))
    ]
    if not members or len(members) > MAX_BAGGAGE_MEMBERS:
        return None
    for member in members:
        if _BAGGAGE_MEMBER.fullmatch(member) is None:
            return None
    text = ",".join(members)
    return text if len(text) <= MAX_BAGGAGE_BYTES else None  # latin-1: one character per byte


class Incoming(NamedTuple):
    """The trace a carrier continues, after every invalid part was dropped."""

    state: TraceState  # trace id, incoming parent-id, flags, tracestate, baggage
    span_id: str  # a new span: this process's part of the trace
    request_id: str | None  # the caller's own valid request id, if it sent one
    request_id_sent: bool  # whether the request-id header was there at all, valid or not
    user_agent: bytes | None
    rejected: bool  # an invalid request id or traceparent was replaced
    w3c: bool  # whether the trace id can go into a traceparent


# NamedTuple's own constructor is Python code; _make is tuple.__new__, four times faster per request.
_trace_state: Final = TraceState._make
_incoming: Final = Incoming._make

# What read() looks for, by lowercase header name; every other header costs one lookup.
_REQUEST_ID, _USER_AGENT, _TRACEPARENT_LINE, _TRACESTATE_LINE, _BAGGAGE_LINE = range(5)
_WANTED: Final = {
    b"user-agent": _USER_AGENT,
    b"traceparent": _TRACEPARENT_LINE,
    b"tracestate": _TRACESTATE_LINE,
    b"baggage": _BAGGAGE_LINE,
}


class TraceReader:
    """Read the incoming trace from header pairs by the middleware's rules.

    Precedence: a valid ``traceparent`` (exactly one field line), then a valid
    request id, then a generated id. ``tracestate`` only comes with an adopted
    ``traceparent``; ``baggage`` with any trace, unless *trust_traceparent* is
    off, which ignores every incoming W3C header. A new trace is sampled when
    *sampled*, and marked random when the default generator made its id.
    A header name that is not an HTTP token, or a generator whose ids cannot
    go into a header, raise ``ValueError``.
    """

    __slots__ = ("_client_flags", "_new_flags", "_wanted", "generator", "header_key", "trust_traceparent", "validator")

    def __init__(
        self,
        *,
        header_name: str = DEFAULT_HEADER_NAME,
        validator: Callable[[str], bool] = is_valid_request_id,
        generator: Callable[[], str] = generate_trace_id,
        trust_traceparent: bool = True,
        sampled: bool = True,
    ) -> None:
        if not is_header_name(header_name):
            raise ValueError(f"header_name must be an HTTP header name, got {header_name!r}")
        sample = generator()
        if not sample or not is_header_safe(sample):
            raise ValueError(f"generator must return printable ASCII for a header, got {sample!r}")
        self.header_key = header_name.lower().encode("latin-1")
        self.validator = validator
        self.generator = generator
        self.trust_traceparent = trust_traceparent
        self._client_flags = SAMPLED if sampled else 0
        self._new_flags = self._client_flags | (RANDOM if generator is generate_trace_id else 0)
        self._wanted = {**_WANTED, self.header_key: _REQUEST_ID}

    def read(self, headers: Iterable[tuple[bytes, bytes]]) -> Incoming:
        """Return the trace *headers* continue; names must be lowercase."""
        user_agent: bytes | None = None
        found: dict[int, list[bytes]] | None = None  # the trace headers, only when there are some
        wanted = self._wanted
        for name, value in headers:
            kind = wanted.get(name)
            if kind is None:
                continue
            if kind == _USER_AGENT:
                user_agent = value if user_agent is None else user_agent
            elif found is None:
                found = {kind: [value]}
            else:
                found.setdefault(kind, []).append(value)
        if found is None:  # the usual request: no id, no trace headers
            request_ids = traceparents = tracestate = baggage = None
        else:
            request_ids = found.get(_REQUEST_ID)
            traceparents = found.get(_TRACEPARENT_LINE)
            tracestate = found.get(_TRACESTATE_LINE)
            baggage = found.get(_BAGGAGE_LINE)
        rejected = False
        adopted: tuple[str, str, int] | None = None
        if traceparents and self.trust_traceparent:
            # Two or more field lines make the traceparent invalid: the trace restarts.
            adopted = parse_traceparent(traceparents[0]) if len(traceparents) == 1 else None
            rejected = adopted is None
        client_id: str | None = None
        if request_ids and request_ids[0]:  # the first one counts; an empty header counts as absent
            candidate = request_ids[0].decode("latin-1")
            if is_header_safe(candidate) and self.validator(candidate):
                client_id = candidate
            else:
                rejected = True
        trusted_baggage = parse_baggage(baggage) if baggage and self.trust_traceparent else None
        if adopted is not None:
            trace_id, parent_span_id, flags = adopted
            trusted_tracestate = parse_tracestate(tracestate) if tracestate else None
            state = _trace_state((trace_id, parent_span_id, flags, trusted_tracestate, trusted_baggage))
            span_id = generate_span_id()
            w3c = True
        elif client_id is not None:
            state = _trace_state((client_id, None, self._client_flags, None, trusted_baggage))
            span_id = generate_span_id()
            w3c = is_w3c_trace_id(client_id)
        elif self._new_flags & RANDOM:  # the default generator: both ids from one draw, W3C-shaped
            trace_id, span_id = generate_ids()
            state = _trace_state((trace_id, None, self._new_flags, None, trusted_baggage))
            w3c = True
        else:
            trace_id = self.generator()
            state = _trace_state((trace_id, None, self._new_flags, None, trusted_baggage))
            span_id = generate_span_id()
            w3c = is_w3c_trace_id(trace_id)
        return _incoming((state, span_id, client_id, request_ids is not None, user_agent, rejected, w3c))


Carrier = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]
"""Headers as any transport has them: a mapping or pairs, of ``str`` or ``bytes``."""

_readers: dict[str, TraceReader] = {}


def bind_trace_headers(headers: Carrier, *, header_name: str = DEFAULT_HEADER_NAME) -> str:
    """Continue the trace *headers* carry in a fresh context; return its trace id.

    By the middleware's rules: a valid ``traceparent`` with its flags and
    ``tracestate``, else a valid request id in *header_name*, else a new id;
    names match case-insensitively. Binds ``trace_id`` and a new ``span_id``
    (every other field is ``None``) and keeps the incoming parent-id, so
    ``bind_trace_headers(trace_headers())`` in another process joins the same
    trace as a child. Invalid input is replaced and never raised or logged.
    """
    reader = _readers.get(header_name)
    if reader is None:
        reader = _readers.setdefault(header_name, TraceReader(header_name=header_name))
    incoming = reader.read(_header_pairs(headers))
    clear_context()
    trace_id = incoming.state.trace_id
    bind_trace(trace_id, incoming.span_id, None, incoming.state)
    if incoming.rejected:
        _logger.warning(REPLACED_MESSAGE, header_name, trace_id)
    return trace_id


def _header_pairs(headers: Carrier) -> list[tuple[bytes, bytes]]:
    """Return the (lowercase name, value) pairs of text or bytes; skip anything else a carrier holds.

    Text becomes bytes as UTF-8, so non-ASCII text stays invalid, never an error.
    """
    pairs: list[tuple[bytes, bytes]] = []
    carried: Iterable[object] = headers.items() if isinstance(headers, Mapping) else headers
    for pair in carried:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            continue
        name, value = pair
        if isinstance(name, str):
            name = name.encode("utf-8", "surrogatepass")
        elif not isinstance(name, bytes):
            continue
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogatepass")
        elif not isinstance(value, bytes):
            continue
        pairs.append((name.lower(), value))
    return pairs
