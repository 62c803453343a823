# The part of Celery's API fapilog and its tests use; Celery ships no type hints.
from celery import signals as signals
from celery.app.base import Celery as Celery
from celery.app.task import Task as Task

__all__ = ["Celery", "Task", "signals"]
