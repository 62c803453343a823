"""The one request context: a frozen model in a single ``ContextVar``.

A frozen model swapped whole on every bind means a reader can never see a
half-applied update, and a ``contextvars.Context`` snapshot can never change
under a task that holds it.

What only propagation needs (trace flags, ``tracestate``, ``baggage``, the
incoming parent span) rides in the same model as a pydantic private
attribute: not one of the seven fields users read and bind, but swapped,
snapshotted and cleared with them, atomically.

An app's own fields (``ContextFields``) are a second layer beside the seven:
a request's in a scope its model carries, elsewhere in a ``ContextVar`` of
their own: see "App fields" below. So is the context attached to an
exception that escapes a request, for the lines logged after.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final, Literal, NamedTuple, Self, TypedDict, Union, Unpack, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, with_config
from pydantic_core import CoreConfig, SchemaValidator
from typing_extensions import TypedDict as PydanticTypedDict  # pydantic needs it before 3.12

from fapilog._internal.records import OWN_KEYS, RECORD_ATTRIBUTES

__all__ = [
    "BACKENDS",
    "CONTEXT_ATTRIBUTE",
    "CONTEXT_FIELDS",
    "EMPTY_CONTEXT",
    "EMPTY_TRACE_STATE",
    "SAMPLED",
    "BoundValues",
    "ContextDict",
    "ContextFields",
    "ContextUpdate",
    "Declared",
    "FieldScope",
    "Scope",
    "RequestContext",
    "TraceState",
    "attach_context",
    "attached_context",
    "bind_context",
    "bind_fields",
    "bind_trace",
    "bind_values",
    "clear_context",
    "context_copy",
    "current_fields",
    "current_model",
    "current_scope",
    "declared",
    "fields_of",
    "get_context",
    "restore_model",
    "restore_unscoped",
    "trace_state",
    "unscoped_fields",
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


class FieldScope:
    """The app fields bound in one request: shared by every copy of its context."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, object] = {}  # replaced whole on a bind, never changed: readers hold it safely


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
    _fields: FieldScope | None = PrivateAttr(default=None)  # the app fields of the request it was bound for


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


def bind_trace(trace_id: str, span_id: str, user_agent: str | None, state: TraceState, fields: FieldScope | None = None) -> None:
    """Bind a trace fapilog itself checked, and its propagation *state*, without validating again.

    *fields*: the app-field scope of the request this trace is bound for.
    """
    current = _request_context.get()
    if current is EMPTY_CONTEXT:  # the usual case: a literal is cheaper than a merge
        values: dict[str, object] = {
            "trace_id": trace_id,
            "span_id": span_id,
            "latency_ms": None,
            "status_code": None,
            "req_bytes": None,
            "res_bytes": None,
            "user_agent": user_agent,
        }
    else:
        values = {**current.__dict__, "trace_id": trace_id, "span_id": span_id, "user_agent": user_agent}
    _request_context.set(_trusted_model(values, {"_trace": state, "_fields": fields}))


def _trusted_model(fields: dict[str, object], private: dict[str, object] | None) -> RequestContext:
    """Build a model from all seven validated *fields* and its *private* state, as ``model_construct`` would, faster."""
    model = _new(RequestContext)
    _set_dict(model, fields)
    _set_fields_set(model, _ALL_FIELDS)  # never mutated: the model is frozen
    _set_extra(model, None)
    _set_private(model, private)  # shared between models, never mutated either
    return model


def clear_context() -> None:
    """Reset the current context to the all-``None`` instance, and unbind every app field."""
    _request_context.set(EMPTY_CONTEXT)
    _app_fields.set(_UNBOUND)


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


# App fields: ContextFields subclasses declare them, bind_fields binds them.
#
# FastAPI runs a sync dependency in a worker thread, in a *copy* of the
# request's context: a ContextVar set there is lost to the endpoint and the
# middleware. So a request's fields live in a scope object every copy of its
# context shares: the request's model carries it (the middleware binds a
# fresh one with each request's trace, and bind_context keeps it), and its
# one mapping a bind replaces whole. A bind anywhere in the request is seen
# by all that follows in it, a reader never sees half a bind, the next
# request starts from a scope of its own, and serving a request costs no
# ContextVar of its own. Outside a request (no scope on the model) the
# ContextVar holds the mapping itself, and a bind sets a new one, as
# bind_context sets a new model. Either way a mapping, once stored, is never
# changed.


Scope = dict[str, object] | FieldScope
"""Where app fields are bound now: a request's scope, or (elsewhere) the fields themselves."""

_UNBOUND: Final[dict[str, object]] = {}  # never changed: every bind makes a new mapping
_app_fields: Final[contextvars.ContextVar[dict[str, object]]] = contextvars.ContextVar("fapilog_app_fields", default=_UNBOUND)
_binding: Final = threading.Lock()  # two threads of one request binding at once: neither bind is lost

unscoped_fields: Final = _app_fields.get
"""Return the app fields bound outside any request's scope, to put back later with ``restore_unscoped``."""
restore_unscoped: Final = _app_fields.set
"""Make a mapping ``unscoped_fields`` returned current again."""


def current_scope() -> Scope:
    """Return where app fields are bound now: the request's scope, else the fields bound outside one."""
    private = _request_context.get().__pydantic_private__
    scope: FieldScope | None = None if private is None else private["_fields"]
    return _app_fields.get() if scope is None else scope


def fields_of(scope: Scope) -> Mapping[str, object]:
    """Return the app fields bound in *scope*, by name: a mapping that never changes."""
    return scope.values if isinstance(scope, FieldScope) else scope


def current_fields() -> Mapping[str, object]:
    """Return the app fields bound now, by name: a mapping that never changes."""
    private = _request_context.get().__pydantic_private__  # as current_scope, inline: once per line
    scope: FieldScope | None = None if private is None else private["_fields"]
    return _app_fields.get() if scope is None else scope.values


def bind_values(values: Mapping[str, object]) -> None:
    """Bind app-field *values* fapilog checked itself (from an incoming ``baggage``)."""
    scope = current_scope()
    if isinstance(scope, FieldScope):
        with _binding:
            scope.values = {**scope.values, **values}
    else:
        _app_fields.set({**scope, **values})


BACKENDS: Final = ("ecs", "gcp", "datadog")
"""The schemas a field may name a key of its own in (``keys=``)."""
_RESERVED: Final = frozenset({*CONTEXT_FIELDS, *RECORD_ATTRIBUTES, *OWN_KEYS})
_SCALARS: Final[frozenset[object]] = frozenset({str, int, float, bool})


class Declared(NamedTuple):
    """Every field the ``ContextFields`` subclasses declared: one snapshot, swapped whole as a class is created."""

    names: tuple[str, ...] = ()  # in order of declaration
    owners: Mapping[str, type[ContextFields]] = types.MappingProxyType({})
    propagated: Mapping[str, type[ContextFields]] = types.MappingProxyType({})  # carried in W3C baggage
    keys: Mapping[str, Mapping[str, str]] = types.MappingProxyType({})  # by backend schema: each field's key there
    unbound: Mapping[str, None] = types.MappingProxyType({})  # every field, None: what the bridges start from


class _Registry:
    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = Declared()


declared: Final = _Registry()
"""``declared.now``: the fields declared so far (a formatter compares it by identity)."""


class ContextFields(BaseModel):
    """Your app's own typed fields, bound beside the seven and written on every log line.

    Subclass it and declare fields, each ``<type> | None = None`` where the
    type is ``str``, ``int``, ``float`` or ``bool`` (constrained, or a
    ``Literal``, as you like); bind an instance with ``bind_fields``, read
    them with ``current()``. An instance is frozen and strictly validated:
    ``Shop(user_id=1)`` is a ``ValidationError`` (pydantic's
    ``model_construct`` and ``model_copy(update=...)`` validate nothing, as
    ever: bind what the constructor or ``model_validate`` built).

    Options, as class keywords: ``propagate`` names the ``str`` fields that
    travel with the trace in W3C ``baggage`` (to other services and task
    queues, and taken from an incoming one that is trusted); ``keys`` names,
    by field, the key a backend schema (``"ecs"``, ``"gcp"``, ``"datadog"``)
    writes it under, such as ``{"user_id": {"ecs": "user.id"}}``.

    A class whose config, defaults or types break these rules, that
    redeclares one of the seven fields, a key fapilog's records write, or
    another subclass's field, or whose options name something it does not
    declare, is a ``TypeError`` when it is created, and declares nothing.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Accept the class keywords: ``__pydantic_init_subclass__`` checks them, once the fields are known."""
        super().__init_subclass__()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Check the new subclass and its options, then declare its fields (pydantic calls this once they are known)."""
        propagate: object = kwargs.pop("propagate", ())
        keys: object = kwargs.pop("keys", {})
        if kwargs:
            raise TypeError(f"{cls.__qualname__}: unknown ContextFields options {', '.join(map(repr, kwargs))} (propagate, keys)")
        declared.now = _declare(cls, propagate, keys)
        super().__pydantic_init_subclass__()

    @classmethod
    def current(cls) -> Self:
        """Return this class's fields as bound now: ``None`` where nothing is; the bound ones are its ``model_fields_set``."""
        values = current_fields()
        names = cls.__pydantic_fields__
        instance = _new(cls)
        _set_dict(instance, {name: values.get(name) for name in names})
        _set_fields_set(instance, {name for name in names if name in values})
        _set_extra(instance, None)
        _set_private(instance, None)  # no private attributes: checked when the class is created
        return instance


def bind_fields(fields: ContextFields) -> None:
    """Bind the fields *fields* was given (its ``model_fields_set``); the others keep their values.

    In a request, the bind is seen by everything the request does after it,
    wherever it was made (a sync dependency's worker thread included), and
    by its access record; elsewhere it is scoped like ``bind_context``.
    Binding ``None`` unbinds a field. Anything but a ``ContextFields``
    instance is a ``TypeError``, and nothing changes.
    """
    if not isinstance(fields, ContextFields):
        raise TypeError(f"bind_fields takes an instance of a ContextFields subclass, not {type(fields).__qualname__}")
    private = _request_context.get().__pydantic_private__  # as current_scope, inline: once per bind
    scope: FieldScope | None = None if private is None else private["_fields"]
    values = fields.__dict__
    if scope is not None:  # the request's scope: a new mapping in it
        _binding.acquire()  # not "with": half its cost, on every bind
        try:
            merged = {**scope.values}
            for name in fields.__pydantic_fields_set__:
                merged[name] = values[name]
            scope.values = merged
        finally:
            _binding.release()
    else:  # outside a request: a new mapping in the ContextVar
        merged = {**_app_fields.get()}
        for name in fields.__pydantic_fields_set__:
            merged[name] = values[name]
        _app_fields.set(merged)


def _declare(cls: type[ContextFields], propagate: object, keys: object) -> Declared:
    """Check a new subclass and its options; return the fields declared with its own, or raise ``TypeError``."""
    name = cls.__qualname__
    config = cls.model_config
    if config.get("frozen") is not True or config.get("strict") is not True or config.get("extra") != "forbid":
        raise TypeError(f"{name}: a ContextFields subclass stays frozen, strict and extra='forbid'")
    if cls.__private_attributes__:
        raise TypeError(f"{name}: a ContextFields subclass holds fields only, no private attributes")
    now = declared.now
    annotated = vars(cls).get("__annotations__", {})
    own = [field for field in cls.__pydantic_fields__ if field in annotated]
    for field in own:
        info = cls.__pydantic_fields__[field]
        if field in _RESERVED:
            raise TypeError(f"{name}.{field}: fapilog's own lines and records use this name")
        if field in now.owners:
            raise TypeError(f"{name}.{field}: already declared by {now.owners[field].__qualname__}")
        types_ = _value_types(info.annotation)
        if not types_ <= _SCALARS | {type(None)} or type(None) not in types_:
            raise TypeError(f"{name}.{field}: a field is a str, int, float or bool, or None (got {info.annotation!r})")
        if info.default is not None or info.default_factory is not None:
            raise TypeError(f"{name}.{field}: a field's default is None")
    if isinstance(propagate, str) or not isinstance(propagate, Iterable):
        raise TypeError(f"{name}: propagate is a collection of field names, got {propagate!r}")
    propagated = dict(now.propagated)
    for field in propagate:
        if field not in own:
            raise TypeError(f"{name}: propagate names {field!r}, which is not a field it declares")
        if _value_types(cls.__pydantic_fields__[field].annotation) != {str, type(None)}:
            raise TypeError(f"{name}.{field}: only a str field travels in baggage")
        propagated[field] = cls
    names = (*now.names, *own)
    return Declared(
        names=names,
        owners=types.MappingProxyType({**now.owners, **dict.fromkeys(own, cls)}),
        propagated=types.MappingProxyType(propagated),
        keys=types.MappingProxyType(_backend_keys(cls, own, keys, now.keys)),
        unbound=types.MappingProxyType(dict.fromkeys(names)),
    )


def _backend_keys(
    cls: type[ContextFields], own: list[str], keys: object, taken: Mapping[str, Mapping[str, str]]
) -> dict[str, Mapping[str, str]]:
    """Return, by backend schema, the key of every field: *taken* ones, then *own* by *keys* or by name.

    A key that clashes with one the schema writes, or with another field's,
    is a ``TypeError``.
    """
    from fapilog._internal.schemas import key_clash  # here: the schemas import this module

    name = cls.__qualname__
    if not isinstance(keys, Mapping):
        raise TypeError(f"{name}: keys maps field names to {{schema: key}}, got {keys!r}")
    for field, by_schema in keys.items():
        if field not in own:
            raise TypeError(f"{name}: keys names {field!r}, which is not a field it declares")
        if not isinstance(by_schema, Mapping) or not all(
            schema in BACKENDS and isinstance(key, str) for schema, key in by_schema.items()
        ):
            raise TypeError(f"{name}.{field}: keys maps a field to {{schema: key}} for {', '.join(BACKENDS)}, got {by_schema!r}")
    written: dict[str, Mapping[str, str]] = {}
    for schema in BACKENDS:
        fields = dict(taken.get(schema, {}))
        for field in own:
            key = keys.get(field, {}).get(schema, field)
            problem = key_clash(schema, key, fields.values())
            if problem is not None:
                raise TypeError(f"{name}.{field}: under {schema!r} as {key!r}, {problem}")
            fields[field] = key
        written[schema] = types.MappingProxyType(fields)
    return written


def _value_types(annotation: object) -> set[object]:
    """Return the types of the values *annotation* admits: through unions, ``Annotated`` and ``Literal``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _value_types(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return set().union(*map(_value_types, get_args(annotation)))
    if origin is Literal:
        return {type(item) for item in get_args(annotation)}
    return {type(None) if annotation is None else annotation}


# The context attached to an exception that escapes a request: the server logs
# its error line after the request's context is gone.

CONTEXT_ATTRIBUTE: Final = "__fapilog_context__"
"""Set on an exception escaping a request: its context, for the server's error line."""


class BoundValues(NamedTuple):
    """What was bound: the seven fields and the app fields."""

    context: ContextDict
    fields: Mapping[str, object]


def attach_context(exc: BaseException) -> None:
    """Record the current context and app fields on *exc*, for the lines logged about it after teardown."""
    with contextlib.suppress(Exception):  # a type that refuses attributes keeps its own behaviour
        setattr(exc, CONTEXT_ATTRIBUTE, BoundValues(get_context(), current_fields()))


def attached_context(exc: object) -> BoundValues | None:
    """Return the context attached to *exc* as it escaped a request, if any."""
    attached = getattr(exc, CONTEXT_ATTRIBUTE, None)
    return attached if type(attached) is BoundValues else None
