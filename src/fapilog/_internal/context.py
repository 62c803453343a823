"""The one request context: a frozen model in a single ``ContextVar``.

A frozen model swapped whole on every bind means a reader can never see a
half-applied update, and a ``contextvars.Context`` snapshot can never change
under a task that holds it.

What only propagation needs (trace flags, ``tracestate``, ``baggage``, the
incoming parent span) rides in the same model as a pydantic private
attribute: not one of the seven fields users read and bind, but swapped,
snapshotted and cleared with them, atomically.
"""

from __future__ import annotations

import contextvars
from typing import Annotated, Final, NamedTuple, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, with_config
from pydantic_core import CoreConfig, SchemaValidator
from typing_extensions import TypedDict as PydanticTypedDict  # pydantic needs it before 3.12

__all__ = [
    "CONTEXT_FIELDS",
    "EMPTY_CONTEXT",
    "EMPTY_TRACE_STATE",
    "SAMPLED",
    "ContextDict",
    "ContextUpdate",
    "RequestContext",
    "TraceState",
    "bind_context",
    "bind_trace",
    "clear_context",
    "context_copy",
    "current_model",
    "get_context",
    "restore_model",
    "trace_state",
]


# strict: "200" is not a status code and 1 is not a trace id; fapilog rejects
# rather than coerces, so what is logged is what was bound.
_STRICT: Final = ConfigDict(extra="forbid", strict=True)
_Milliseconds = Annotated[float | None, Field(ge=0, allow_inf_nan=False)]
_StatusCode = Annotated[int | None, Field(ge=100, le=999)]  # HTTP: three digits
_ByteCount = Annotated[int | None, Field(ge=0)]


SAMPLED: Final = 0x01
"""The W3C trace-flags bit that says the caller records this trace."""


class TraceState(NamedTuple):  # a NamedTuple: immutable, and built per request at a tuple's cost
    """What carries a trace across a process boundary, beside the seven fields.

    It belongs to the trace *trace_id*: once another trace id is bound, it no
    longer applies (``trace_headers`` then sends default flags and nothing else).
    """

    trace_id: str = ""  # the trace it belongs to; empty: none
    parent_span_id: str | None = None  # the incoming traceparent's parent-id
    flags: int = SAMPLED  # sampled (0x01) and random (0x02) only; reserved bits dropped
    tracestate: str | None = None
    baggage: str | None = None


EMPTY_TRACE_STATE: Final = TraceState()


class RequestContext(BaseModel):
    """What fapilog knows about the request being served, ``None`` until known."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    trace_id: str | None = None
    span_id: str | None = None
    latency_ms: _Milliseconds = None
    status_code: _StatusCode = None
    req_bytes: _ByteCount = None
    res_bytes: _ByteCount = None
    user_agent: str | None = None

    _trace: TraceState = PrivateAttr(default=EMPTY_TRACE_STATE)  # propagation only; not a field


class ContextDict(TypedDict):
    """The seven fields as ``get_context()`` returns them."""

    trace_id: str | None
    span_id: str | None
    latency_ms: float | None
    status_code: int | None
    req_bytes: int | None
    res_bytes: int | None
    user_agent: str | None


@with_config(_STRICT)
class ContextUpdate(PydanticTypedDict, total=False):
    """Any subset of the seven fields, as ``bind_context()`` accepts them."""

    trace_id: str | None
    span_id: str | None
    latency_ms: _Milliseconds
    status_code: _StatusCode
    req_bytes: _ByteCount
    res_bytes: _ByteCount
    user_agent: str | None


EMPTY_CONTEXT: Final = RequestContext()
CONTEXT_FIELDS: Final = tuple(RequestContext.model_fields)
# Titled "bind_context": a ValidationError names the call the user made, not this module's class.
_validate_update: Final = SchemaValidator(
    TypeAdapter(ContextUpdate).core_schema, CoreConfig(title="bind_context")
).validate_python
_new: Final = object.__new__
# BaseModel's four slots, set through their descriptors: a third cheaper than object.__setattr__.
_SLOTS: Final = vars(BaseModel)
_set_dict: Final = _SLOTS["__dict__"].__set__
_set_fields_set: Final = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra: Final = _SLOTS["__pydantic_extra__"].__set__
_set_private: Final = _SLOTS["__pydantic_private__"].__set__
_ALL_FIELDS: Final = set(CONTEXT_FIELDS)
_STRING_FIELDS: Final = frozenset({"trace_id", "span_id", "user_agent"})

_request_context: Final[contextvars.ContextVar[RequestContext]] = contextvars.ContextVar(
    "fapilog_request_context", default=EMPTY_CONTEXT
)


current_model: Final = _request_context.get
"""Return the stored model itself: a cheaper read than ``get_context`` for one field (no Python frame)."""


def get_context() -> ContextDict:
    """Return a fresh dict of the seven fields of the current context."""
    # Same result as model_dump() for these flat fields, ten times faster.
    return _request_context.get().__dict__.copy()  # type: ignore[return-value]  # __dict__ is dict[str, Any]


def bind_context(**kwargs: Unpack[ContextUpdate]) -> None:
    """Validate *kwargs*, then store the current context with them merged in.

    Raises ``pydantic.ValidationError`` for an unknown key or a wrongly typed
    value, in which case the context is left exactly as it was.
    """
    # Only the new values need validating: the stored ones were when bound.
    # Strings (ids, user agent) are checked inline, the common case on the hot
    # path; anything else goes through pydantic, which accepts or raises.
    # The ContextVar is only set after that: a bind is atomic.
    for key, value in kwargs.items():
        if key not in _STRING_FIELDS or (value is not None and type(value) is not str):
            kwargs = _validate_update(kwargs)
            break
    current = _request_context.get()
    _request_context.set(_trusted_model({**current.__dict__, **kwargs}, current.__pydantic_private__))


def bind_trace(trace_id: str, span_id: str, user_agent: str | None, state: TraceState) -> None:
    """Bind a trace fapilog itself checked, and its propagation *state*, without validating again."""
    current = _request_context.get()
    if current is EMPTY_CONTEXT:  # the usual case: a literal is cheaper than a merge
        fields: dict[str, object] = {
            "trace_id": trace_id,
            "span_id": span_id,
            "latency_ms": None,
            "status_code": None,
            "req_bytes": None,
            "res_bytes": None,
            "user_agent": user_agent,
        }
    else:
        fields = {**current.__dict__, "trace_id": trace_id, "span_id": span_id, "user_agent": user_agent}
    _request_context.set(_trusted_model(fields, {"_trace": state}))


def _trusted_model(fields: dict[str, object], private: dict[str, object] | None) -> RequestContext:
    """Build a model from all seven validated *fields* and its *private* state, as ``model_construct`` would, faster."""
    model = _new(RequestContext)
    _set_dict(model, fields)
    _set_fields_set(model, _ALL_FIELDS)  # never mutated: the model is frozen
    _set_extra(model, None)
    _set_private(model, private)  # shared between models, never mutated either
    return model


def clear_context() -> None:
    """Reset the current context to the all-``None`` instance."""
    _request_context.set(EMPTY_CONTEXT)


def context_copy() -> contextvars.Context:
    """Return a snapshot of the current context for another task or thread."""
    return contextvars.copy_context()


def trace_state(model: RequestContext) -> TraceState:
    """Return the propagation state *model* carries."""
    private = model.__pydantic_private__
    state: TraceState = EMPTY_TRACE_STATE if private is None else private["_trace"]
    return state


def restore_model(model: RequestContext) -> None:
    """Store again a model ``current_model`` returned: its fields and its trace state."""
    _request_context.set(model)
