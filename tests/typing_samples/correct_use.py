"""User code that uses the context API as documented: mypy --strict accepts it."""

from fapilog import ContextFields, bind_context, bind_fields, get_context

bind_context(trace_id="abc", status_code=200, latency_ms=1.5, user_agent=None)
bind_context(latency_ms=2)
status: int | None = get_context()["status_code"]
trace: str | None = get_context()["trace_id"]
latency: float | None = get_context()["latency_ms"]


class Shop(ContextFields, propagate=["tenant_id"], keys={"user_id": {"ecs": "user.id"}}):
    user_id: str | None = None
    tenant_id: str | None = None
    items: int | None = None


bind_fields(Shop(user_id="u-7", items=3))
user: str | None = Shop.current().user_id
items: int | None = Shop.current().items
shop: Shop = Shop.current()
