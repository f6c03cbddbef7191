"""The one Celery task: send one prompt record to Gemini and return its `Result`.

A prompt's failure is a result with an `error`, not a failed task, so every prompt of a
group ends with exactly one stored result. Quota errors (429) wait and try again; server
errors, overloads, timeouts and network failures back off exponentially with jitter;
requests Gemini refuses (4xx) are not retried.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

from celery import states
from celery.signals import worker_init

from gemini_tasks.celery import app, settings
from gemini_tasks.clients import client_for
from gemini_tasks.errors import (
    GeminiCallError,
    InvalidPrompt,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    classify,
)
from gemini_tasks.keys import ApiKey, load_keys, redact
from gemini_tasks.prompt import parse_record
from gemini_tasks.request import build_request
from gemini_tasks.result import Result, metadata_of

log = logging.getLogger(__name__)

_keys: list[ApiKey] | None = None
_keys_lock = threading.Lock()


def worker_keys() -> list[ApiKey]:
    """This worker's API keys, read from the environment once."""
    global _keys
    with _keys_lock:
        if _keys is None:
            _keys = load_keys()
        return _keys


@worker_init.connect
def _check_keys_at_start(**_: Any) -> None:
    # A worker without keys would fail every task it takes: refuse to start instead.
    keys = worker_keys()
    log.info("worker has %d API key(s): %s", len(keys), ", ".join(str(k) for k in keys))


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter for the given 1-based attempt."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def _final_error(err: GeminiCallError, attempts: int) -> str:
    if isinstance(err, QuotaExceeded):
        return f"all keys exhausted after {attempts} attempts: {err}"
    return f"persistent error after {attempts} attempts: {err}"


def run_prompt(raw_record: Any, index: int, task_id: str | None = None) -> Result:
    """Call Gemini for one prompt record, retrying as the error allows."""
    started = time.time()
    deadline = time.monotonic() + settings.task_time_limit
    result = Result(index=index, metadata=metadata_of(raw_record), task_id=task_id)
    api_seconds = waited_seconds = 0.0
    try:
        record = parse_record(raw_record)
    except InvalidPrompt as exc:
        result.error, result.error_kind = f"invalid prompt: {exc}", "invalid_prompt"
        result.timings = {"started_at": started, "finished_at": time.time()}
        return result

    keys = worker_keys()
    attempts_allowed = settings.max_retries + 1
    for attempt in range(1, attempts_allowed + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            result.error = (
                f"task time limit of {settings.task_time_limit:g}s reached after "
                f"{attempt - 1} attempts; last error: {result.error}"
            )
            result.error_kind = "time_limit"
            break
        key = keys[0]
        request = build_request(record, settings.model, min(settings.request_timeout, remaining))
        result.attempts, result.key_id, result.model = attempt, key.id, request.model
        call_started = time.monotonic()
        try:
            response = client_for(key, settings.gemini_base_url).models.generate_content(
                model=request.model, contents=request.contents, config=request.config
            )
        except Exception as exc:  # every failure is classified below
            api_seconds += time.monotonic() - call_started
            err = classify(exc)
            message = redact(str(err), keys)
            result.error, result.error_kind = message, err.kind
            log.warning(
                "task %s attempt %d/%d with %s failed: %s",
                task_id,
                attempt,
                attempts_allowed,
                key.id,
                message,
            )
            if isinstance(err, (InvalidRequest, KeyInvalid)):
                break
            if attempt == attempts_allowed:
                result.error = redact(_final_error(err, attempt), keys)
                break
            delay = backoff_delay(attempt, settings.retry_backoff, settings.retry_backoff_max)
            if isinstance(err, QuotaExceeded) and err.retry_delay:
                delay = max(delay, err.retry_delay)
            delay = min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(delay)
            waited_seconds += delay
            continue
        api_seconds += time.monotonic() - call_started
        _fill_from_response(result, response)
        break

    result.timings = {
        "started_at": started,
        "finished_at": time.time(),
        "api_seconds": round(api_seconds, 6),
        "waited_seconds": round(waited_seconds, 6),
    }
    return result


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
def generate(self: Any, record: Any, index: int = 0) -> dict[str, Any]:
    """Celery entry point: one prompt record in, one `Result` (as JSON) out."""
    # A redelivered message whose first run already finished must not call Gemini again.
    stored = self.backend.get_task_meta(self.request.id)
    if stored.get("status") == states.SUCCESS:
        log.info("task %s already has a result; not calling Gemini again", self.request.id)
        return stored["result"]
    result = run_prompt(record, index, self.request.id)
    result.worker = self.request.hostname
    return result.to_json()
