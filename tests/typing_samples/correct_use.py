"""User code that uses the context API as documented: mypy --strict accepts it."""

from fapilog import bind_context, get_context

bind_context(trace_id="abc", status_code=200, latency_ms=1.5, user_agent=None)
bind_context(latency_ms=2)
status: int | None = get_context()["status_code"]
trace: str | None = get_context()["trace_id"]
latency: float | None = get_context()["latency_ms"]
