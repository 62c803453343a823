"""User code that misuses the context API: mypy --strict flags each marked line."""

from fapilog import ContextFields, bind_context, bind_fields, get_context

bind_context(trace_id="abc")
bind_context(bogus=1)  # expect-error
bind_context(status_code="x")  # expect-error
bind_context(trace_id=123)  # expect-error
status: str = get_context()["status_code"]  # expect-error
missing = get_context()["method"]  # expect-error
get_context()["trace_id"].upper()  # expect-error


class Shop(ContextFields):
    user_id: str | None = None


Shop(user_id="u-7")
Shop(user_id=1)  # expect-error
Shop(bogus="x")  # expect-error
n: int = Shop.current().user_id  # expect-error
bind_fields({"user_id": "x"})  # expect-error
