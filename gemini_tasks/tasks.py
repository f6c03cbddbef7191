"""The one Celery task: send one prompt record to Gemini and return its `Result`.

A prompt's failure is a result with an `error`, not a failed task, so every prompt of a
group ends with exactly one stored result. Each call leases a key from the cluster-wide
pool. A 429 or an invalid key is not the prompt's fault: the key's state is recorded and
the call goes to another key. Server errors, overloads, timeouts and network failures
back off exponentially with jitter; requests Gemini refuses (other 4xx) are not retried.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from celery import states
from celery.signals import worker_init
from google.genai import errors as genai_errors

from gemini_tasks.celery import app, settings
from gemini_tasks.clients import client_for
from gemini_tasks.connections import connect
from gemini_tasks.errors import (
    GeminiTasksError,
    InvalidPrompt,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    classify,
)
from gemini_tasks.keys import load_keys, redact
from gemini_tasks.media_store import MediaRef, open_store
from gemini_tasks.pool import KeyPool, Lease, PoolConfig
from gemini_tasks.prompt import PromptRecord, parse_record
from gemini_tasks.request import build_request, estimate_tokens
from gemini_tasks.result import Result, metadata_of
from gemini_tasks.settings import redis_prefix
from gemini_tasks.uploads import Uploads

log = logging.getLogger(__name__)

_pool: KeyPool | None = None
_uploads: Uploads | None = None
_pool_lock = threading.Lock()
# Threads of this worker process (from --concurrency or -c): the calls one key may carry.
_threads = settings.concurrency


def worker_pool() -> KeyPool:
    """This worker process's handle on the key pool, with its keys registered."""
    global _pool
    with _pool_lock:
        if _pool is None:
            keys = load_keys(settings.api_key_names or None, projects=settings.projects)
            client = connect(settings.redis_url)
            _pool = KeyPool(client, keys, PoolConfig.from_settings(settings), settings.key_prefix)
            _pool.register()
        return _pool


def worker_uploads() -> Uploads:
    """This worker process's access to staged media and to per-project uploads."""
    global _uploads
    pool = worker_pool()
    with _pool_lock:
        if _uploads is None:
            prefix = redis_prefix(settings.key_prefix)
            store = open_store(settings.media_store, pool.redis, prefix, settings.result_expires)
            _uploads = Uploads(pool.redis, store, prefix, settings.inline_limit_bytes)
        return _uploads


@worker_init.connect
def _register_keys_at_start(sender: Any = None, **_: Any) -> None:
    global _threads
    _threads = getattr(sender, "concurrency", None) or settings.concurrency
    # A worker without keys would fail every task it takes: refuse to start instead.
    pool = worker_pool()
    log.info("worker has %d API key(s): %s", len(pool.keys), ", ".join(map(str, pool.key_list)))


def job_args_key(job_id: str) -> str:
    """Where a job's task arguments wait, until each task ends, in case the broker loses one."""
    return f"{redis_prefix(settings.key_prefix)}:job:{job_id}:args"


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter for the given 1-based attempt."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


class RequeueForKey(Exception):
    """No key is usable for longer than a worker thread should sleep."""

    def __init__(self, seconds: float, carry: dict[str, Any]):
        super().__init__(f"next key usable in {seconds:.1f}s")
        self.seconds = seconds
        self.carry = carry


class _KeyUnavailable(GeminiTasksError):
    """The prompt cannot get a key within its limits; the message says why."""


class PromptRun:
    """One execution of one prompt: leases, calls, retries; `carry` survives a re-queue."""

    def __init__(self, raw_record: Any, index: int, task_id: str | None, carry: dict | None):
        carry = carry or {}
        self.raw_record = raw_record
        self.result = Result(index=index, metadata=metadata_of(raw_record), task_id=task_id)
        self.result.attempts = carry.get("attempts", 0)
        self.waiting_since: float | None = carry.get("waiting_since")
        self.key_wait = carry.get("key_wait_seconds", 0.0)
        self.server_failures = carry.get("server_failures", 0)
        self.started = time.time()
        self.deadline = time.monotonic() + settings.task_time_limit
        self.api_seconds = self.backoff_seconds = 0.0

    def carry(self) -> dict[str, Any]:
        return {
            "attempts": self.result.attempts,
            "waiting_since": self.waiting_since,
            "key_wait_seconds": self.key_wait,
            "server_failures": self.server_failures,
        }

    def run(self) -> Result:
        try:
            record = parse_record(self.raw_record)
        except InvalidPrompt as exc:
            self._fail(f"invalid prompt: {exc}", "invalid_prompt")
        else:
            try:
                self._call_until_done(record, worker_pool())
            except _KeyUnavailable as exc:
                self._fail(str(exc), "quota")
        self.result.timings = {
            "started_at": self.started,
            "finished_at": time.time(),
            "api_seconds": round(self.api_seconds, 6),
            "backoff_seconds": round(self.backoff_seconds, 6),
            "key_wait_seconds": round(self.key_wait, 6),
        }
        return self.result

    def _fail(self, message: str, kind: str) -> None:
        self.result.error, self.result.error_kind = message, kind

    def _call_until_done(self, record: PromptRecord, pool: KeyPool) -> None:
        if not record.staged:
            self._fail(
                "invalid prompt: media fields must be staged by the producer; submit with "
                "gemini_tasks.jobs.submit or the gemini-tasks CLI",
                "invalid_prompt",
            )
            return
        uploads = worker_uploads()
        refs: list[MediaRef] = list(record.media)  # type: ignore[arg-type]
        to_upload = uploads.plan_uploads(refs)
        try:
            inline = uploads.inline_data(refs, to_upload)
        except FileNotFoundError as exc:
            self._fail(f"media unavailable: {exc}; submit the prompt again", "invalid_prompt")
            return
        refreshed_projects: set[str] = set()
        attempts_allowed = settings.max_retries + 1
        tokens = estimate_tokens(record)
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self._fail(
                    f"task time limit of {settings.task_time_limit:g}s reached after "
                    f"{self.result.attempts} attempts; last error: {self.result.error}",
                    "time_limit",
                )
                return
            model = record.model or settings.model
            lease = self._lease(pool, model, tokens)
            self.result.attempts += 1
            self.result.key_id, self.result.model = lease.key.id, model
            call_started = time.monotonic()
            parts: list = []
            try:
                client = client_for(
                    lease.key,
                    settings.gemini_base_url,
                    settings.request_timeout,
                    _threads,
                )
                parts = [
                    uploads.part(ref, inline.get(i), client, lease.key.project)
                    for i, ref in enumerate(refs)
                ]
                request = build_request(
                    record,
                    settings.model,
                    # The client's own timeout applies unless less time than that is left.
                    remaining if remaining < settings.request_timeout else None,
                    parts,
                    label=str(self.result.task_id or self.result.index),
                )
                response = client.models.generate_content(
                    model=request.model, contents=request.contents, config=request.config
                )
            except Exception as exc:  # every failure is classified below
                self.api_seconds += time.monotonic() - call_started
                err = classify(exc)
                pool.release(lease, err)
                project = lease.key.project
                stale = isinstance(err, InvalidRequest) and err.code in (403, 404)
                if stale and to_upload and project not in refreshed_projects:
                    # Gemini no longer knows a cached upload (expired, or deleted): once more.
                    used = {p.file_data.file_uri for p in parts if p.file_data}
                    uploads.forget(project, [refs[i] for i in to_upload], used)
                    refreshed_projects.add(project)
                    continue
                message = redact(str(err), pool.key_list)
                self._fail(message, err.kind)
                log.warning(
                    "task %s attempt %d with %s failed: %s",
                    self.result.task_id,
                    self.result.attempts,
                    lease.key.id,
                    message,
                )
                if isinstance(err, (QuotaExceeded, KeyInvalid)):
                    continue  # the key's fault, not the prompt's: lease another
                if isinstance(err, InvalidRequest):
                    return
                self.server_failures += 1
                if self.server_failures >= attempts_allowed:
                    self._fail(
                        f"persistent error after {self.server_failures} attempts: {message}",
                        err.kind,
                    )
                    return
                delay = backoff_delay(
                    self.server_failures, settings.retry_backoff, settings.retry_backoff_max
                )
                delay = min(delay, max(0.0, self.deadline - time.monotonic()))
                time.sleep(delay)
                self.backoff_seconds += delay
                continue
            self.api_seconds += time.monotonic() - call_started
            tokens_used = (
                response.usage_metadata.prompt_token_count if response.usage_metadata else 0
            )
            pool.release(lease, None, tokens_used or 0)
            _fill_from_response(self.result, response)
            return

    def _lease(self, pool: KeyPool, model: str, tokens: int) -> Lease:
        """A key for the next call: sleeps through short waits, re-queues for long ones."""
        while True:
            got = pool.acquire(model, tokens)
            if isinstance(got, Lease):
                return got
            if got.seconds == float("inf"):
                raise _KeyUnavailable(
                    f"no usable API key: all {len(pool.keys)} keys of this worker are "
                    f"FAILED_INIT (invalid); last error: {self.result.error}"
                )
            if self.waiting_since is None:
                self.waiting_since = time.time()
            waited = time.time() - self.waiting_since
            if waited + got.seconds > settings.max_key_wait:
                raise _KeyUnavailable(
                    f"all keys exhausted: next key usable in {got.seconds:.0f}s, after "
                    f"{waited:.0f}s of waiting (GEMINI_TASKS_MAX_KEY_WAIT="
                    f"{settings.max_key_wait:g}); last error: {self.result.error}"
                )
            left = self.deadline - time.monotonic() - 1
            if got.seconds > min(settings.short_key_wait, left):
                raise RequeueForKey(got.seconds, self.carry())
            # Jitter, so the threads woken for one freed key do not all ask at once.
            pause = got.seconds + random.uniform(0, 0.05)
            time.sleep(pause)
            self.key_wait += pause


def _fill_from_response(result: Result, response: Any) -> None:
    result.model_version = response.model_version
    if response.usage_metadata is not None:
        result.usage = response.usage_metadata.model_dump(mode="json", exclude_none=True)
    candidate = response.candidates[0] if response.candidates else None
    if candidate is not None and candidate.finish_reason is not None:
        result.finish_reason = str(candidate.finish_reason.value)
    text = response.text
    if text is None:
        feedback = response.prompt_feedback
        block = feedback.block_reason.value if feedback and feedback.block_reason else None
        result.error = (
            f"Gemini returned no text (finish reason {result.finish_reason}, block reason {block})"
        )
        result.error_kind = "no_content"
        return
    result.response, result.error, result.error_kind = text, None, None


@app.task(bind=True, name="gemini_tasks.generate")
def generate(self: Any, record: Any, index: int = 0, carry: dict | None = None) -> dict[str, Any]:
    """Celery entry point: one prompt record in, one `Result` (as JSON) out."""
    # One round trip: this task's stored state, and its arguments' recovery copy dropped
    # (the message is unacknowledged now, so the broker keeps it until this run ends).
    pipe = self.backend.client.pipeline(transaction=False)
    pipe.get(self.backend.get_key_for_task(self.request.id))
    if self.request.group:
        pipe.hdel(job_args_key(self.request.group), index)
    raw = pipe.execute()[0]
    stored = self.backend.decode_result(raw) if raw else {}
    if stored.get("status") == states.SUCCESS:
        # A redelivered message whose first run already finished must not call Gemini again.
        log.info("task %s already has a result; not calling Gemini again", self.request.id)
        return stored["result"]
    try:
        result = PromptRun(record, index, self.request.id, carry).run()
    except RequeueForKey as wait:
        # Free this thread; the countdown stays well inside the broker's visibility timeout,
        # so the waiting message is never handed to a second worker.
        countdown = min(wait.seconds, settings.visibility_timeout / 2)
        log.info("task %s waits %.1fs for a usable key; re-queued", self.request.id, countdown)
        wait.carry["key_wait_seconds"] += countdown
        raise self.retry(
            args=(record, index),
            kwargs={"carry": wait.carry},
            countdown=countdown,
            max_retries=None,
        ) from None
    result.worker = self.request.hostname
    return result.to_json()


@app.task(name="gemini_tasks.delete_files")
def delete_files(files: list[list[str]]) -> int:
    """Delete uploaded files ([project, file name] pairs) whose media was forgotten.

    A worker can delete only with a key of the file's project; files no worker deletes
    expire on their own after 48 hours.
    """
    pool = worker_pool()
    deleted = 0
    for project, name in files:
        key = next((k for k in pool.key_list if k.project == project), None)
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
