"""The worker's Celery tasks: `generate` (one prompt in, one `Result` out) and
`delete_files` (uploads of forgotten media), and the worker's start and stop.

A prompt fed by the scheduler records its own result, exactly once
(`gemini_tasks.scheduler.Outcomes`), failures included, and then the task ends as the
prompt did: a failed prompt raises `PromptFailed`, so Flower shows it as FAILURE, while
`collect` returns its full result. A prompt that must wait longer than a thread should goes
back to its job's queue (Celery's `Ignore`: no state, no re-queue counted as a new task):
Flower shows it as RETRY with the reason, and its next run as the same task
(`gemini_tasks.worker.strategy`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Ignore
from celery.signals import worker_init, worker_ready, worker_shutting_down
from google.genai import errors as genai_errors

from gemini_tasks.app import DELETE_FILES, GENERATE
from gemini_tasks.broker import REDIS_TROUBLE
from gemini_tasks.celery import app
from gemini_tasks.errors import ConfigError, ErrorKind, GeminiTasksError, NoApiKeys
from gemini_tasks.result import Result, metadata_of
from gemini_tasks.scheduler import JobState
from gemini_tasks.worker import context
from gemini_tasks.worker.batcher import Batcher
from gemini_tasks.worker.caching import Janitor
from gemini_tasks.worker.classify import classify
from gemini_tasks.worker.context import Evicted, WorkerContext
from gemini_tasks.worker.feeder import Feeder
from gemini_tasks.worker.heartbeat import EXIT_AFTER_EVICTION, Heartbeat
from gemini_tasks.worker.run import Park, PromptRun

log = logging.getLogger(__name__)

STORE_PAUSE_MAX = 10.0  # seconds between tries to record a result Redis refused


class PromptFailed(GeminiTasksError):
    """The prompt ended with an error (stored in its result): the task's state in Flower.

    Its one argument is "<error kind>: <message>", so Celery can rebuild it from its args (an
    exception it cannot rebuild becomes another class, which Celery then logs as unexpected,
    with a traceback, for every failed prompt)."""

    @classmethod
    def of(cls, kind: ErrorKind, message: str) -> PromptFailed:
        return cls(f"{kind.value}: {message}")


_threads: list[Feeder | Heartbeat | Batcher | Janitor] = []


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


@worker_ready.connect
def _run_threads(sender: Any = None, **_: Any) -> None:
    ctx = context.current()
    queues = sorted(sender.app.amqp.queues.consume_from) if sender else [ctx.runtime.settings.queue]
    janitor = Janitor(ctx.caches, ctx.client_of, ctx.job_running)
    _threads[:] = [Heartbeat(ctx), Feeder(ctx, app, queues), Batcher(ctx, queues), janitor]
    for thread in _threads:
        thread.start()


@worker_shutting_down.connect
def _stop_threads(**_: Any) -> None:
    for thread in _threads:
        thread.stop()


def _ended(ctx: WorkerContext, job_id: str, result: Result) -> Any:
    """Record the prompt's result, then end the task as the prompt ended. A result Gemini
    was paid for is not dropped because Redis refuses writes for a while: the thread waits
    for Redis (recording twice is harmless: the first result stays)."""
    pause = 0.5
    while True:
        try:
            ctx.outcomes.finish(job_id, result)
            ctx.queue.done(job_id, result.index, result.ok)
            break
        except REDIS_TROUBLE as exc:
            log.warning("Redis refused the result of task %s (%s); trying again in %gs",
                        result.task_id, exc, pause)  # fmt: skip
            time.sleep(pause)
            pause = min(pause * 2, STORE_PAUSE_MAX)
    if result.error_kind is not None:
        raise PromptFailed.of(result.error_kind, result.error or "")
    return None


def _run(
    ctx: WorkerContext, task: Task[Any, Any], record: Any, index: int, carry: Any, ticket: Any
) -> Any:
    job_id = task.request.group
    task_id = str(task.request.id)
    if job_id is None:  # sent outside a job (a test, an operator): stored, nothing counted
        result = PromptRun(ctx, record, index, task_id, carry).run()
        result.worker = task.request.hostname
        ctx.outcomes.store(task_id, result)
        return None
    if ctx.outcomes.has(job_id, index):
        # A redelivered message whose first run already finished: no second call.
        log.info("task %s already has a result; not calling Gemini again", task_id)
        ctx.queue.done(job_id, index, True)
        return None
    if isinstance(record, dict) and "refused" in record:
        refused = Result(index=index, metadata=metadata_of(record), task_id=task_id)
        refused.fail(ErrorKind.INVALID_PROMPT, f"invalid prompt: {record['refused']}")
        return _ended(ctx, job_id, refused)
    if ctx.job_control(job_id).state is JobState.PAUSED:
        _park(task, job_id, index, Park(0.0, "", carry or {}))
    ticket = ticket if isinstance(ticket, int) else None
    result = PromptRun(ctx, record, index, task_id, carry, job_id, ticket).run()
    result.worker = task.request.hostname
    return _ended(ctx, job_id, result)


def _park(task: Task[Any, Any], job_id: str, index: int, wait: Park) -> NoReturn:
    """Put the prompt back in its job's queue in Redis and end this run of it."""
    ctx = context.current()
    blocked_until = time.time() + wait.seconds if wait.seconds else 0
    ctx.queue.park(job_id, [index], blocked_until, wait.model, json.dumps(wait.carry),
                   at_back=wait.behind)  # fmt: skip
    log.info("task %s waits in Redis: %s", task.request.id, wait.why)
    try:
        reason = f"{wait.why}, in Redis (not in a worker)"
        task.send_event("task-retried", retry=False, exception=reason)
    except Exception:  # what Flower shows is not worth holding a thread for
        log.info("could not tell Flower that task %s waits", task.request.id)
    raise Ignore() from None


@app.task(
    bind=True,
    name=GENERATE,
    ignore_result=True,
    throws=(PromptFailed,),
    Strategy="gemini_tasks.worker.strategy:once_per_prompt",
)
def generate(
    self: Task[Any, Any],
    record: Any,
    index: int = 0,
    carry: dict[str, Any] | None = None,
    ticket: int | None = None,
) -> Any:
    """Celery entry point: one prompt record in, its `Result` recorded."""
    ctx = context.current()
    ctx.started()
    try:
        return _run(ctx, self, record, index, carry, ticket)
    except Park as wait:
        _park(self, str(self.request.group), index, wait)
    except Evicted:
        # Another worker has this prompt now; this one exits without acknowledging it.
        log.warning("task %s abandoned: this worker was taken for dead", self.request.id)
        time.sleep(EXIT_AFTER_EVICTION * 4)
        raise Ignore() from None
    finally:
        ctx.ended()


@app.task(name=DELETE_FILES)
def delete_files(files: list[list[str]]) -> int:
    """Delete uploaded files ([project, file name] pairs) whose media was forgotten.

    A worker can delete only with a key of the file's project; files no worker deletes
    expire on their own after 48 hours.
    """
    ctx = context.current()
    deleted = 0
    for project, name in files:
        client = ctx.client_of(project)
        if client is None:
            log.info("no key of project %s here to delete %s; it will expire", project, name)
            continue
        try:
            client.files.delete(name=name)
            deleted += 1
        except genai_errors.APIError as exc:
            log.info("could not delete %s: %s", name, classify(exc))
    return deleted
