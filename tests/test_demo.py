"""The demo's requests, run against the example services in process, so the demo cannot rot."""

from __future__ import annotations

import logging

import httpx
import pytest

from examples.exercise import exercise
from examples.service import create_app
from tests.support.http import http_client
from tests.support.records import access_records


@pytest.mark.usefixtures("eager_celery")  # the Celery tasks run in the request, with no broker
async def test_the_demo_requests_get_the_expected_answers_and_one_trace_spans_both_services(
    records: list[logging.LogRecord],
) -> None:
    service_b = create_app()
    service_a = create_app("http://service-b", transport=httpx.ASGITransport(service_b))
    async with http_client(service_a, raise_app_exceptions=False) as client:
        calls = await exercise(client)
    assert [call.status for call in calls] == [200, 200, 200, 200, 200, 500, 200, 200, 200]
    runs = [vars(record) for record in records if record.name == "fapilog.task"]
    assert [(run["task_name"], run["state"], run["trace_id"]) for run in runs] == [
        ("examples.tasks.send_receipt", "RETRY", "demo-task"),
        ("examples.tasks.send_receipt", "SUCCESS", "demo-task"),
        ("examples.tasks.charge", "SUCCESS", "demo-task"),
    ]
    chain = [access for access in access_records(records) if access["trace_id"] == "demo-chain"]
    assert [(access["path"], access["status_code"]) for access in chain] == [("/", 200), ("/chain", 200)]
    assert chain[0]["span_id"] != chain[1]["span_id"]
    [confirmation] = [record for record in records if record.getMessage() == "confirmation email sent"]
    assert confirmation.__dict__["trace_id"] == calls[6].trace_id
    [called] = [record for record in records if record.getMessage() == "called the downstream service"]
    assert called.__dict__["trace_id"] == "demo-chain"
