"""Sending one prompt's task message, by task name.

The message is the one `generate.apply_async` would send, without what comes with it:
Celery's Redis result backend subscribes to a channel per task sent (and keeps an
`AsyncResult`), which for 100,000 prompts nobody reads.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Producer

from gemini_tasks.app import GENERATE
from gemini_tasks.producer.fetch import task_id


def publish(
    app: Celery,
    producer: Producer,
    job_id: str,
    index: int,
    record: dict[str, Any],
    queue: str,
    argsrepr: str,
) -> None:
    """Queue prompt `index` of job `job_id` on `queue`; `argsrepr` is what Flower shows."""
    args = (record, index)
    options = app.amqp.router.route({"queue": queue}, GENERATE, args, {})
    message = app.amqp.create_task_message(
        task_id(job_id, index), GENERATE, args, {}, group_id=job_id, group_index=index,
        argsrepr=argsrepr,
    )  # fmt: skip
    app.amqp.send_task_message(producer, GENERATE, message, **options)
