"""The Celery application's configuration, made from `Settings`, and the names of its tasks.

Producers and workers build their app from the same `celery_config`, so they agree on
serialisation, queues and the broker's options. Producers publish by task name (`GENERATE`)
and never import the worker's task module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from gemini_tasks import broker
from gemini_tasks.settings import Settings

GENERATE = "gemini_tasks.generate"
DELETE_FILES = "gemini_tasks.delete_files"
WORKER_TASKS = "gemini_tasks.worker.task"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's settings for a gemini_tasks producer or worker."""
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": settings.queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": True,
        # Enforced by the prefork pool only; the threads pool relies on the task's own deadline.
        "task_time_limit": settings.task_time_limit,
        "result_expires": settings.result_expires,
        "result_backend_always_retry": True,
        "result_backend_max_retries": 20,
        "broker_connection_retry_on_startup": True,
        "broker_use_ssl": broker.ssl_options(settings.broker_url),
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "health_check_interval": 10,
            # How soon a dead worker's tasks go back to the queue once past the visibility
            # timeout: kombu sweeps every interval x throttle seconds (100 by default).
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 6)),
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": {"health_check_interval": 10},
        "worker_pool": "threads",
        "worker_concurrency": settings.concurrency,
        # Each thread reserves one message: hoarding long calls would starve other workers.
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
    }


def make_app(config: Callable[[], dict[str, Any]], **options: Any) -> Celery:
    """A Celery app for gemini_tasks whose configuration `config()` gives, asked for only
    when the app is first used: importing or creating it reads no setting."""
    broker.install()
    app = Celery("gemini_tasks", **options)
    app.add_defaults(config)
    return app
