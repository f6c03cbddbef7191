"""The Celery application that producers and workers share (`celery -A gemini_tasks worker`).

Delivery is at-least-once: tasks are acknowledged after they finish and a lost worker's
tasks go back to the queue, while the task itself refuses to call Gemini twice for a
prompt whose result is already stored.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging

from gemini_tasks import logs
from gemini_tasks import settings as settings_module
from gemini_tasks.broker import ssl_options

settings = settings_module.load()

app = Celery(
    "gemini_tasks",
    broker=settings.broker_url,
    backend=settings.result_backend,
    include=["gemini_tasks.tasks"],
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_default_queue=settings.queue,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_track_started=True,
    # Enforced by the prefork pool only; the threads pool relies on the task's own deadline.
    task_time_limit=settings.task_time_limit,
    result_expires=settings.result_expires,
    result_backend_always_retry=True,
    result_backend_max_retries=20,
    broker_connection_retry_on_startup=True,
    broker_transport="gemini_tasks.broker:Transport",
    broker_use_ssl=ssl_options(settings.broker_url),
    broker_transport_options={
        "visibility_timeout": settings.visibility_timeout,
        "health_check_interval": 10,
        # How soon a dead worker's tasks go back to the queue once past the visibility
        # timeout: kombu sweeps every interval x throttle seconds (100 by default).
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 6)),
        "unacked_restore_throttle": 1,
    },
    result_backend_transport_options={"health_check_interval": 10},
    worker_pool="threads",
    worker_concurrency=settings.concurrency,
    # Each thread reserves one message: hoarding long calls would starve other workers.
    worker_prefetch_multiplier=1,
    worker_send_task_events=True,
)


@setup_logging.connect
def _configure_logging(loglevel: Any = None, **_: Any) -> None:
    # Replaces Celery's own set-up: one format for our lines and Celery's alike.
    logs.configure(loglevel or settings.log_level, settings.log_format)
