"""The Celery application workers run (`celery -A gemini_tasks worker`, `gemini-tasks worker`).

Delivery is at-least-once: tasks are acknowledged after they finish and a lost worker's
tasks go back to the queue, while the task itself refuses to call Gemini twice for a
prompt whose result is already stored. The app reads its settings when first used, not
when imported.
"""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging

from gemini_tasks import logs, runtime
from gemini_tasks.app import WORKER_TASKS, celery_config, make_app

app = make_app(lambda: celery_config(runtime.current().settings), include=[WORKER_TASKS])


@setup_logging.connect
def _configure_logging(loglevel: Any = None, **_: Any) -> None:
    # Replaces Celery's own set-up: one format for our lines and Celery's alike.
    settings = runtime.current().settings
    logs.configure(loglevel or settings.log_level, settings.log_format)
