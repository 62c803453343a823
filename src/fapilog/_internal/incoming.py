"""Continue a trace from incoming headers: the one parser every transport shares.

The middleware, ``bind_trace_headers`` and the integrations all read
``traceparent``, ``tracestate``, ``baggage`` and the request-id header here,
by W3C Trace Context Level 2 and W3C Baggage — as OpenTelemetry has one
propagator for every transport, never a copy per transport. What is invalid
is dropped whole, never repaired, echoed or logged; so is what a service does
not trust (an edge service's callers, baggage keys outside an allow-list).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal, NamedTuple
from urllib.parse import unquote

from pydantic import ValidationError

from fapilog._internal.context import SAMPLED, TraceState, bind_trace, bind_values, clear_context, declared
from fapilog._internal.ids import (
    DEFAULT_HEADER_NAME,
    ZERO_SPAN_ID,
    ZERO_TRACE_ID,
    generate_ids,
    generate_span_id,
    generate_trace_id,
    is_header_id,
    is_header_name,
    is_valid_request_id,
    is_w3c_trace_id,
)
from fapilog._internal.records import log_safely

__all__ = [
    "MAX_BAGGAGE_BYTES",
    "MAX_BAGGAGE_MEMBERS",
    "MAX_TRACESTATE_MEMBERS",
    "RANDOM",
    "REPLACED_MESSAGE",
    "TRUST_LEVELS",
    "Incoming",
    "TraceReader",
    "Trust",
    "bind_trace_headers",
    "parse_baggage",
    "parse_traceparent",
    "parse_tracestate",
    "split_fields",
]

RANDOM: Final = 0x02
"""The Level 2 trace-flags bit that says the trace id is random."""
MAX_TRACESTATE_MEMBERS: Final = 32
MAX_BAGGAGE_BYTES: Final = 8192
MAX_BAGGAGE_MEMBERS: Final = 180

REPLACED_MESSAGE: Final = "Ignored an invalid incoming %s or traceparent header; the trace id is %s"
GENERATOR_MESSAGE: Final = "The trace id generator %s; built-in ids stand in whenever it does (said once per middleware)"

Trust = Literal["all", "request-id", "none"]
"""How far a service trusts its callers' trace headers: see ``TraceReader``."""
TRUST_LEVELS: Final[tuple[Trust, ...]] = ("all", "request-id", "none")

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
_BAGGAGE_KEY: Final = re.compile(_TOKEN)
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


def parse_baggage(lines: list[bytes], keys: frozenset[str] | None = None) -> str | None:
    """Return the ``baggage`` field lines combined, unchanged, or ``None`` when invalid or empty.

    Within W3C Baggage's limits — at most 8,192 bytes and 180 list-members,
    each ``key=value`` with optional properties — or discarded whole. Empty
    members, which the grammar does not allow, are dropped; so is every
    member whose key is not one of *keys*, when given (an allow-list).
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
    if len(text) > MAX_BAGGAGE_BYTES:  # latin-1: one character per byte
        return None
    if keys is None:
        return text
    return ",".join(member for member in members if member.split("=", 1)[0].rstrip(_OWS) in keys) or None


def split_fields(baggage: str) -> tuple[dict[str, object], str | None]:
    """Return the app fields a parsed *baggage* carries, and the baggage without them.

    A member is a field's when its key names a field declared for
    propagation; its value (properties dropped, percent-decoded as UTF-8)
    is taken when the field's type accepts it. Either way the member leaves
    the baggage: a field travels on as this service binds it, or not at all.
    """
    propagated = declared.now.propagated
    fields: dict[str, object] = {}
    rest: list[str] = []
    for member in baggage.split(","):
        key, _, text = member.partition("=")
        key = key.rstrip(_OWS)
        owner = propagated.get(key)
        if owner is None:
            rest.append(member)
            continue
        try:
            fields[key] = owner.model_validate({key: unquote(text.split(";", 1)[0].strip(_OWS), errors="strict")}).__dict__[key]
        except (ValidationError, UnicodeDecodeError):  # dropped whole, and never logged
            continue
    return fields, ",".join(rest) or None


class Incoming(NamedTuple):
    """The trace a carrier continues, after every invalid part was dropped."""

    state: TraceState  # trace id, incoming parent-id, flags, tracestate, baggage
    span_id: str  # a new span: this process's part of the trace
    request_id: str | None  # the caller's own valid request id, if it sent one
    request_id_sent: bool  # whether the request-id header was there at all, valid or not
    user_agent: bytes | None
    rejected: bool  # an invalid request id or traceparent was replaced
    w3c: bool  # whether the trace id can go into a traceparent
    fields: dict[str, object] | None  # the app fields the trusted baggage carried, if any


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
    request id, then a generated id. A request id is valid when it is 1-128
    printable ASCII characters and *validator* then accepts it (one that
    raises rejects it). ``tracestate`` only comes with an adopted
    ``traceparent``; ``baggage`` with any trace.

    *trust_incoming* says how far callers are trusted: ``"all"`` as above;
    ``"request-id"`` ignores every incoming W3C header; ``"none"`` also
    starts a new trace for every carrier, keeping a valid request id only as
    the caller's ``request_id``. *baggage_keys*, when given, lets through the
    baggage members with these keys, and only those, at every level.

    A new trace is sampled when *sampled*, and marked random when the default
    generator made its id. Every id a custom *generator* makes is checked
    like an incoming one: when it fails or gives an id unfit for a header, a
    built-in id stands in, with one warning. Options that can never work
    raise ``ValueError``.
    """

    __slots__ = (
        "_accepts",
        "_baggage_keys",
        "_client_flags",
        "_generator_warned",
        "_new_flags",
        "_read_baggage",
        "_trust_request_id",
        "_trust_traceparent",
        "_wanted",
        "generator",
        "header_key",
        "validator",
    )

    def __init__(
        self,
        *,
        header_name: str = DEFAULT_HEADER_NAME,
        validator: Callable[[str], bool] = is_valid_request_id,
        generator: Callable[[], str] = generate_trace_id,
        trust_incoming: Trust = "all",
        baggage_keys: Iterable[str] | None = None,
        sampled: bool = True,
    ) -> None:
        if not is_header_name(header_name):
            raise ValueError(f"header_name must be an HTTP header name, got {header_name!r}")
        if trust_incoming not in TRUST_LEVELS:
            raise ValueError(f"trust_incoming must be one of {', '.join(map(repr, TRUST_LEVELS))}, got {trust_incoming!r}")
        try:
            sample = generator()
        except Exception as exc:
            raise ValueError(f"generator failed: {exc!r}") from exc
        if not is_header_id(sample):
            raise ValueError(f"generator must return 1-128 printable ASCII characters for a header, got {sample!r}")
        self.header_key = header_name.lower().encode("latin-1")
        self.validator = validator
        # The default's own grammar lies within the bound: one call. Any other is bounded first, and guarded.
        self._accepts = is_valid_request_id if validator is is_valid_request_id else self._bounded_and_accepted
        self.generator = generator
        self._trust_traceparent = trust_incoming == "all"
        self._trust_request_id = trust_incoming != "none"
        self._baggage_keys = None if baggage_keys is None else _allowed_keys(baggage_keys)
        self._read_baggage = self._trust_traceparent or self._baggage_keys is not None
        self._generator_warned = False
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
        if traceparents and self._trust_traceparent:
            # Two or more field lines make the traceparent invalid: the trace restarts.
            adopted = parse_traceparent(traceparents[0]) if len(traceparents) == 1 else None
            rejected = adopted is None
        client_id: str | None = None
        if request_ids and request_ids[0]:  # the first one counts; an empty header counts as absent
            candidate = request_ids[0].decode("latin-1")
            if self._accepts(candidate):
                client_id = candidate
            else:
                rejected = True
        trusted_baggage = parse_baggage(baggage, self._baggage_keys) if baggage and self._read_baggage else None
        fields = None
        if trusted_baggage is not None and declared.now.propagated:
            fields, trusted_baggage = split_fields(trusted_baggage)
        if adopted is not None:
            trace_id, parent_span_id, flags = adopted
            trusted_tracestate = parse_tracestate(tracestate) if tracestate else None
            state = _trace_state((trace_id, parent_span_id, flags, trusted_tracestate, trusted_baggage))
            span_id = generate_span_id()
            w3c = True
        elif client_id is not None and self._trust_request_id:
            state = _trace_state((client_id, None, self._client_flags, None, trusted_baggage))
            span_id = generate_span_id()
            w3c = is_w3c_trace_id(client_id)
        elif self._new_flags & RANDOM:  # the default generator: both ids from one draw, W3C-shaped
            trace_id, span_id = generate_ids()
            state = _trace_state((trace_id, None, self._new_flags, None, trusted_baggage))
            w3c = True
        else:
            trace_id = self._generated_id()
            state = _trace_state((trace_id, None, self._new_flags, None, trusted_baggage))
            span_id = generate_span_id()
            w3c = is_w3c_trace_id(trace_id)
        return _incoming((state, span_id, client_id, request_ids is not None, user_agent, rejected, w3c, fields))

    def _bounded_and_accepted(self, candidate: str) -> bool:
        """Return whether *candidate* is fit for a header and the validator accepts it (one that raises rejects it)."""
        if not is_header_id(candidate):
            return False
        try:
            return bool(self.validator(candidate))
        except Exception:
            return False

    def _generated_id(self) -> str:
        """Return the generator's next id, or a built-in one when it fails or gives an id unfit for a header."""
        try:
            trace_id: object = self.generator()
        except Exception as exc:
            failure = f"raised {type(exc).__qualname__}"
        else:
            if is_header_id(trace_id):
                return trace_id
            failure = "returned an id unfit for a header (1-128 printable ASCII characters)"
        if not self._generator_warned:  # what it returned is never logged
            self._generator_warned = True
            log_safely(_logger, logging.WARNING, GENERATOR_MESSAGE, failure)
        return generate_trace_id()


def _allowed_keys(keys: Iterable[str]) -> frozenset[str]:
    """Return a baggage allow-list as a set; a ``ValueError`` for an entry that can never be a key."""
    if isinstance(keys, str):
        raise ValueError(f"baggage_keys must be a collection of keys, got the string {keys!r}")
    entries: Iterable[object] = keys  # untyped callers may pass anything
    checked: set[str] = set()
    for key in entries:
        if not isinstance(key, str) or _BAGGAGE_KEY.fullmatch(key) is None:
            raise ValueError(f"baggage_keys entries must be baggage keys (HTTP tokens), got {key!r}")
        checked.add(key)
    return frozenset(checked)


Carrier = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]
"""Headers as any transport has them: a mapping or pairs, of ``str`` or ``bytes``."""

_readers: dict[tuple[str, Trust, frozenset[str] | None], TraceReader] = {}


def bind_trace_headers(
    headers: Carrier,
    *,
    header_name: str = DEFAULT_HEADER_NAME,
    trust_incoming: Trust = "all",
    baggage_keys: Iterable[str] | None = None,
) -> str:
    """Continue the trace *headers* carry in a fresh context; return its trace id.

    By the middleware's rules, its trust options included: a valid
    ``traceparent`` with its flags and ``tracestate``, else a valid request
    id in *header_name*, else a new id; names match case-insensitively.
    Binds ``trace_id`` and a new ``span_id`` (every other field is ``None``)
    and keeps the incoming parent-id, so ``bind_trace_headers(trace_headers())``
    in another process joins the same trace as a child; app fields declared
    for propagation are bound from the trusted ``baggage``, every other one
    unbound. Invalid input is
    replaced and never raised or logged, and a logging setup that fails never
    makes this raise: the new context is bound either way.
    """
    key = (header_name, trust_incoming, None if baggage_keys is None else _allowed_keys(baggage_keys))
    reader = _readers.get(key)
    if reader is None:
        reader = _readers.setdefault(
            key, TraceReader(header_name=header_name, trust_incoming=trust_incoming, baggage_keys=key[2])
        )
    incoming = reader.read(_header_pairs(headers))
    clear_context()
    trace_id = incoming.state.trace_id
    bind_trace(trace_id, incoming.span_id, None, incoming.state)
    if incoming.fields:
        bind_values(incoming.fields)
    if incoming.rejected:
        log_safely(_logger, logging.WARNING, REPLACED_MESSAGE, header_name, trace_id)
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
