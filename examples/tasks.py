"""The example Celery tasks: checkout charges an order, which enqueues its receipt.

The broker is ``$BROKER_URL`` (Redis by default); ``filesystem://`` uses
Kombu's filesystem transport in ``$QUEUE_DIR``, a real broker with no server.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.app.task import Task

import fapilog.celery

logger = logging.getLogger("example.tasks")

app = fapilog.celery.instrument(Celery("examples.tasks", broker=os.environ.get("BROKER_URL", "redis://127.0.0.1:6379/0")))
if app.conf.broker_url == "filesystem://":
    folder = os.environ["QUEUE_DIR"]
    app.conf.broker_transport_options = {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "control_folder": folder,
        "polling_interval": 0.1,
    }


@app.task
def charge(order_id: str) -> None:
    """Charge the order, then send its receipt as a task of its own."""
    logger.info("order charged", extra={"order_id": order_id})
    send_receipt.delay(order_id)


@app.task(bind=True, max_retries=3)
def send_receipt(self: Task, order_id: str) -> None:
    """Send the receipt; the mail server is busy on the first attempt."""
    if self.request.retries == 0:
        raise self.retry(exc=ConnectionError("mail server busy"), countdown=0)
    logger.info("receipt sent", extra={"order_id": order_id})
