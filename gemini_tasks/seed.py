"""The seed library's API, running on gemini_tasks: a drop-in for `gemini_parallel` users.

`AdvancedApiKeyManager`, `GeminiParallelProcessor` and `GeminiStreamingProcessor` take the
seed's arguments and return the seed's `(metadata, response, error)` tuples, in input order,
one for every prompt. Underneath, each prompt is a Celery task and keys live in the Redis
key pool: with `REDIS_URL` set the work goes to the cluster's workers; without it, an
embedded Redis and local worker processes start on first use and stop when the process exits.

This is the top of the package: it may import the producer and `ops.local`.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterable
from contextlib import ExitStack
from typing import Any

from gemini_tasks import settings as settings_module
from gemini_tasks.errors import GeminiTasksError, JobTimeout
from gemini_tasks.keys import load_keys
from gemini_tasks.ops.local import embedded_cluster
from gemini_tasks.pool import get_keys_status_summary
from gemini_tasks.producer import submit

log = logging.getLogger(__name__)

Outcome = tuple[dict[str, Any], str | None, str | None]

_local_lock = threading.Lock()
_local_cluster: ExitStack | None = None


class AdvancedApiKeyManager:
    """The seed's key manager. Keys are read from the environment and `.env`, as in the seed.

    In local mode its arguments configure the local workers; with `REDIS_URL` set, the
    cluster's workers use their own settings, and this object reads the shared pool.
    """

    def __init__(
        self,
        keylist_names: list[str] | None = None,
        key_cooldown_seconds: float | None = None,
        exhausted_wait_seconds: float | None = None,
        fully_exhausted_wait_seconds: float | None = None,
        max_exhausted_retries: int | None = None,
    ):
        self.keylist_names = list(keylist_names or [])
        self.model_name: str | None = None  # the model of the processors using this manager
        self.options = {
            "GEMINI_TASKS_KEY_COOLDOWN_SECONDS": key_cooldown_seconds,
            "GEMINI_TASKS_EXHAUSTED_WAIT_SECONDS": exhausted_wait_seconds,
            "GEMINI_TASKS_FULLY_EXHAUSTED_WAIT_SECONDS": fully_exhausted_wait_seconds,
            "GEMINI_TASKS_MAX_EXHAUSTED_RETRIES": max_exhausted_retries,
        }
        settings_module.load_env_file()
        self.local = not settings_module.load().redis_url_configured
        if self.local:
            # As the seed does: no usable key is an error at once, not on every prompt.
            load_keys(self.keylist_names or None)

    def worker_env(self) -> dict[str, str]:
        env = {name: str(value) for name, value in self.options.items() if value is not None}
        if self.keylist_names:
            env["GEMINI_TASKS_API_KEY_NAMES"] = ",".join(self.keylist_names)
        return env

    def get_keys_status_summary(self) -> dict[str, dict[str, Any]]:
        """Per key id: `status`, `exhausted_count`, seconds left and counters, for the
        model of the processors using this manager."""
        return get_keys_status_summary(self.model_name)


def _ensure_cluster(key_manager: AdvancedApiKeyManager, max_workers: int) -> None:
    """In local mode, start the embedded cluster once per process."""
    global _local_cluster
    if not key_manager.local:
        return
    with _local_lock:
        if _local_cluster is not None:
            return
        stack = ExitStack()
        stack.enter_context(embedded_cluster(1, max_workers, key_manager.worker_env()))
        _local_cluster = stack
        atexit.register(shutdown_local_cluster)


def shutdown_local_cluster() -> None:
    """Stop the embedded Redis and local workers, if this process started them."""
    global _local_cluster
    with _local_lock:
        if _local_cluster is not None:
            _local_cluster.close()
            _local_cluster = None


def _record(prompt_data: dict[str, Any], model_name: str) -> dict[str, Any]:
    return {"model": model_name, **prompt_data} if isinstance(prompt_data, dict) else prompt_data


class _Processor:
    """The seed processors' arguments.

    `max_workers` is the local workers' concurrency in local mode. `api_call_interval` is
    accepted for compatibility and not used: the key pool paces calls by each project's
    quotas (`GEMINI_TASKS_RPM`, `_TPM`, `_RPD`) and Gemini's own retry hints instead.
    """

    def __init__(
        self,
        key_manager: AdvancedApiKeyManager,
        model_name: str,
        api_call_interval: float = 0.5,
        max_workers: int = 4,
    ):
        self.key_manager = key_manager
        self.model_name = key_manager.model_name = model_name
        self.api_call_interval = api_call_interval
        self.max_workers = max_workers


class GeminiParallelProcessor(_Processor):
    """The seed's batch processor: `process_prompts` returns one tuple per prompt, in order."""

    def process_prompts(self, prompts_data: Iterable[dict[str, Any]]) -> list[Outcome]:
        _ensure_cluster(self.key_manager, self.max_workers)
        job = submit(_record(p, self.model_name) for p in prompts_data)
        return [result.as_tuple() for result in job.results()]


class GeminiStreamingProcessor(_Processor):
    """The seed's streaming processor: `start()`, `process_single(...)` per prompt, `stop()`."""

    running = False

    def start(self) -> None:
        _ensure_cluster(self.key_manager, self.max_workers)
        self.running = True

    def stop(self) -> None:
        self.running = False

    def process_single(self, prompt_data: dict[str, Any], timeout: float | None = None) -> Outcome:
        """One prompt's `(metadata, response, error)`; an error tuple if `timeout` passes."""
        if not self.running:
            raise GeminiTasksError("call start() before process_single()")
        job = submit([_record(prompt_data, self.model_name)])
        try:
            return next(job.results(timeout=timeout)).as_tuple()
        except JobTimeout:
            metadata = prompt_data.get("metadata") if isinstance(prompt_data, dict) else None
            return metadata or {}, None, f"timed out after {timeout:g}s waiting for the result"
