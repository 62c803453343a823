"""The requests the demo sends, checked; also run by the test suite so it cannot rot."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass(frozen=True)
class Call:
    """One demo request and what came back."""

    label: str
    status: int
    trace_id: str

    def line(self) -> str:
        """Render as one report line."""
        return f"{self.label:<46} -> {self.status}  X-Request-ID: {self.trace_id}"


async def exercise(client: httpx.AsyncClient) -> list[Call]:
    """Send the demo's requests to service A; raise if one is not as expected."""
    calls: list[Call] = []

    async def call(label: str, method: str, path: str, expected: int, **headers: str) -> str:
        response = await client.request(method, path, headers={key.replace("_", "-"): value for key, value in headers.items()})
        trace_id = response.headers["X-Request-ID"]
        calls.append(Call(label, response.status_code, trace_id))
        if response.status_code != expected:
            raise AssertionError(f"{label}: expected {expected}, got {response.status_code}")
        return trace_id

    await call("plain request", "GET", "/", 200)
    if await call("incoming X-Request-ID: demo-42", "GET", "/", 200, X_Request_ID="demo-42") != "demo-42":
        raise AssertionError("the incoming request id was not adopted")
    if await call("incoming traceparent", "GET", "/", 200, traceparent=TRACEPARENT) != TRACEPARENT[3:35]:
        raise AssertionError("the traceparent was not adopted")
    hostile = await call("hostile X-Request-ID (replaced, never echoed)", "GET", "/", 200, X_Request_ID='"><script>')
    if "script" in hostile:
        raise AssertionError("a hostile request id was echoed")
    await call("streaming response", "GET", "/stream", 200)
    await call("failing endpoint", "GET", "/fail", 500)
    await call("background task", "POST", "/orders", 200)
    await call("Celery: charge, then a receipt (retried once)", "POST", "/checkout", 200, X_Request_ID="demo-task")
    await call("A calls B: one trace id in both services", "GET", "/chain", 200, X_Request_ID="demo-chain")
    return calls
