"""Outgoing headers: the current trace, ready for the next service or message."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Final
from urllib.parse import quote

from fapilog._internal.context import EMPTY_TRACE_STATE, RequestContext, current_fields, current_model, declared, trace_state
from fapilog._internal.ids import DEFAULT_HEADER_NAME, is_header_safe, is_w3c_span_id, is_w3c_trace_id
from fapilog._internal.incoming import MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS

__all__ = ["add_header", "field_baggage", "merge_baggage", "outgoing_headers", "trace_headers"]

_OWS = " \t"
_BAGGAGE_SAFE: Final = "!#$&'()*+-./:<=>?@[]^_`{|}~"  # W3C baggage-octet but "%": the rest is percent-encoded


def trace_headers(header_name: str = DEFAULT_HEADER_NAME) -> dict[str, str]:
    """Return the headers that carry the current trace to the next service.

    *header_name* gets the ``trace_id``. When the ``trace_id`` is 32 lowercase
    hex and a valid ``span_id`` is bound, a W3C ``traceparent`` names this span
    as the parent, with the trace's sampled and random flags, followed by the
    ``tracestate`` the trace arrived with; ``baggage`` goes with any trace,
    the bound app fields declared for propagation first. A ``trace_id``
    that is not safe in a header is left out, so no bound value can inject a
    header line. Empty when no trace is bound.
    """
    context = current_model()
    return outgoing_headers(context, header_name, context.span_id)


def outgoing_headers(context: RequestContext, header_name: str, parent_id: str | None) -> dict[str, str]:
    """Return the headers that carry *context*'s trace, with *parent_id* as the ``traceparent``'s parent."""
    trace_id = context.trace_id
    if not trace_id or not is_header_safe(trace_id):
        return {}
    headers = {header_name: trace_id}
    state = trace_state(context)
    if state.trace_id != trace_id:  # a trace bound by hand: default flags, nothing else
        state = EMPTY_TRACE_STATE
    if parent_id is not None and is_w3c_span_id(parent_id) and is_w3c_trace_id(trace_id):
        headers["traceparent"] = f"00-{trace_id}-{parent_id}-{state.flags:02x}"
        if state.tracestate is not None:
            headers["tracestate"] = state.tracestate
    baggage = state.baggage
    if declared.now.propagated:
        fields = field_baggage()
        if fields is not None:
            baggage = fields if baggage is None else merge_baggage(fields, baggage)
    if baggage is not None:
        headers["baggage"] = baggage
    return headers


def field_baggage() -> str | None:
    """Return the bound app fields declared for propagation as ``baggage`` members (percent-encoded), within W3C's limits."""
    values = current_fields()
    members = [
        f"{name}={quote(item, safe=_BAGGAGE_SAFE)}"
        for name in declared.now.propagated
        if type(item := values.get(name)) is str
    ]
    return merge_baggage("", ",".join(members)) or None if members else None


def add_header(headers: MutableMapping[str, str], name: str, value: str) -> None:
    """Set trace header *name* unless *headers* has it; a ``baggage`` already there gets the members it lacks.

    Another library may write its own ``baggage`` first (Sentry's httpx
    integration does): the trace's members are added to it, not dropped.
    """
    present = headers.get(name)
    if present is None:
        headers[name] = value
    elif name == "baggage":
        headers[name] = merge_baggage(present, value)


def merge_baggage(present: str, ours: str) -> str:
    """Return *present* with each member of *ours* whose key it lacks, within W3C Baggage's limits.

    *present* is kept as it is, its keys winning; a member of *ours* that
    would take the header past 8,192 bytes or 180 members is left out whole.
    """
    members = [member for part in present.split(",") if (member := part.strip(_OWS))]
    keys = {_baggage_key(member) for member in members}
    count = len(members)
    size = len(present.encode("utf-8", "surrogatepass"))
    added: list[str] = []
    for member in ours.split(","):
        key = _baggage_key(member)
        if key in keys or count == MAX_BAGGAGE_MEMBERS or size + 1 + len(member) > MAX_BAGGAGE_BYTES:
            continue
        keys.add(key)
        added.append(member)
        count += 1
        size += 1 + len(member)
    if not added:
        return present
    return ",".join([present, *added] if members else added)


def _baggage_key(member: str) -> str:
    return member.split("=", 1)[0].strip(_OWS)
