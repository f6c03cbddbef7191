"""The Celery task message of one prompt, as a worker feeding the broker publishes it.

It is the message `generate.apply_async` would send (Celery builds it), without what comes
with it: Celery's Redis result backend subscribes to a channel per task sent (and keeps an
`AsyncResult`), which nobody reads. Its arguments are shown in Flower and logs as a short
description (`argsrepr`, `kwargsrepr`): never media bytes, never a secret.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Producer

from gemini_tasks.app import GENERATE


def task_id(job_id: str, index: int) -> str:
    """A prompt's task id: its job's id and its position."""
    return f"{job_id}-{index}"


def describe(index: int, record: dict[str, Any]) -> str:
    """The short description of a task argument."""
    if "refused" in record:
        return f"(prompt #{index}, refused at submit)"
    prompt = str(record.get("prompt", ""))
    media = "".join(
        f", {m.get('kind')} {m.get('mime_type')} {str(m.get('sha256') or '')[:12] or m.get('uri')}"
        for m in record.get("media") or []
        if isinstance(m, dict)
    )
    return f"(prompt #{index}: {prompt[:60]!r}{media})"


# How the keyword arguments of a prompt fed again after waiting in Redis start, in Flower
# and logs: the worker does not announce it as received a second time (`worker.strategy`).
RESUMED = "(resumed"


def describe_carry(carry: dict[str, Any] | None) -> str:
    """The short description of what a parked prompt goes on from."""
    if carry is None:
        return "{}"
    return f"{RESUMED} after {carry.get('attempts', 0)} attempts)"


def publish(
    app: Celery,
    producer: Producer,
    job_id: str,
    index: int,
    record: dict[str, Any],
    queue: str,
    carry: dict[str, Any] | None = None,
    ticket: int | None = None,
) -> None:
    """Queue prompt `index` of job `job_id` on `queue`; `carry` is what a parked prompt
    goes on from, `ticket` its place in line for keys. The worker records the result itself
    (`ignore_result`): Celery does not."""
    args = (record, index)
    kwargs: dict[str, Any] = {"carry": carry} if carry is not None else {}
    if ticket is not None:
        kwargs["ticket"] = ticket
    options = app.amqp.router.route({"queue": queue}, GENERATE, args, kwargs)
    message = app.amqp.create_task_message(
        task_id(job_id, index), GENERATE, args, kwargs, group_id=job_id, group_index=index,
        argsrepr=describe(index, record), kwargsrepr=describe_carry(carry), ignore_result=True,
    )  # fmt: skip
    # The queue is declared by the workers consuming it (the feeder's own among them): not
    # declared again for each message, which cost kombu a copy and a bind every time.
    app.amqp.send_task_message(producer, GENERATE, message, declare=[], **options)
