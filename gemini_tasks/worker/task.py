"""The worker's Celery tasks: `generate` (one prompt in, one `Result` out) and
`delete_files` (uploads of forgotten media).

A prompt's failure is a result with an `error`, not a failed task, so every prompt of a
group ends with exactly one stored result.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, cast

from celery import Task, states
from celery.backends.redis import RedisBackend
from celery.signals import worker_init
from google.genai import errors as genai_errors

from gemini_tasks.app import DELETE_FILES, GENERATE
from gemini_tasks.celery import app
from gemini_tasks.errors import ConfigError, NoApiKeys
from gemini_tasks.worker import context
from gemini_tasks.worker.classify import classify
from gemini_tasks.worker.clients import client_for
from gemini_tasks.worker.run import PromptRun, RequeueForKey

log = logging.getLogger(__name__)


@worker_init.connect
def _start(sender: Any = None, **_: Any) -> None:
    # A worker without keys would fail every task it takes: refuse to start instead.
    # SystemExit, unlike an exception, is not swallowed by Celery's signal dispatch.
    try:
        context.start(getattr(sender, "concurrency", None))
    except (NoApiKeys, ConfigError) as exc:
        log.critical("worker cannot start: %s", exc)
        print(f"error: worker cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


@app.task(bind=True, name=GENERATE)
def generate(
    self: Task[Any, Any], record: Any, index: int = 0, carry: dict[str, Any] | None = None
) -> Any:
    """Celery entry point: one prompt record in, one `Result` (as JSON) out."""
    ctx = context.current()
    backend = cast(RedisBackend, self.backend)
    # One round trip: this task's stored state, and its arguments' recovery copy dropped
    # (the message is unacknowledged now, so the broker keeps it until this run ends).
    pipe = backend.client.pipeline(transaction=False)
    task_id = str(self.request.id)
    pipe.get(backend.get_key_for_task(task_id))
    if self.request.group:
        pipe.hdel(ctx.runtime.keys.job_args(self.request.group), index)
    raw = pipe.execute()[0]
    stored = backend.decode_result(raw) if raw else {}
    if stored.get("status") == states.SUCCESS:
        # A redelivered message whose first run already finished must not call Gemini again.
        log.info("task %s already has a result; not calling Gemini again", task_id)
        return stored["result"]
    try:
        result = PromptRun(ctx, record, index, task_id, carry).run()
    except RequeueForKey as wait:
        # Free this thread; the countdown stays well inside the broker's visibility timeout,
        # so the waiting message is never handed to a second worker.
        countdown = min(wait.seconds, ctx.runtime.settings.visibility_timeout / 2)
        log.info("task %s waits %.1fs for a usable key; re-queued", task_id, countdown)
        wait.carry["key_wait_seconds"] += countdown
        raise self.retry(
            args=(record, index),
            kwargs={"carry": wait.carry},
            countdown=countdown,
            max_retries=None,
        ) from None
    result.worker = self.request.hostname
    return result.to_json()


@app.task(name=DELETE_FILES)
def delete_files(files: list[list[str]]) -> int:
    """Delete uploaded files ([project, file name] pairs) whose media was forgotten.

    A worker can delete only with a key of the file's project; files no worker deletes
    expire on their own after 48 hours.
    """
    ctx = context.current()
    settings = ctx.runtime.settings
    deleted = 0
    for project, name in files:
        key = next((k for k in ctx.pool.key_list if k.project == project), None)
        if key is None:
            log.info("no key of project %s here to delete %s; it will expire", project, name)
            continue
        try:
            client_for(key, settings.gemini_base_url, settings.request_timeout).files.delete(
                name=name
            )
            deleted += 1
        except genai_errors.APIError as exc:
            log.info("could not delete %s: %s", name, classify(exc))
    return deleted
