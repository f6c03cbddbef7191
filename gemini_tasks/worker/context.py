"""A worker process's long-lived parts: its keys in the pool, its media access, its threads.

Built once per process when the worker starts (`start`), which is also where a worker
without keys or with a bad setting refuses to run; tasks reach it through `current()`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from gemini_tasks import runtime
from gemini_tasks.keys import load_keys
from gemini_tasks.media.store import open_store
from gemini_tasks.pool import KeyPool, PoolConfig
from gemini_tasks.worker.decide import RetryPolicy
from gemini_tasks.worker.uploads import Uploads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerContext:
    runtime: runtime.Runtime
    pool: KeyPool
    uploads: Uploads
    policy: RetryPolicy
    threads: int  # calls this process may have in flight: each key's HTTP pool is sized to it


_current: WorkerContext | None = None
_lock = threading.Lock()


def _build(threads: int | None) -> WorkerContext:
    rt = runtime.current()
    settings = rt.settings
    keys = load_keys(settings.api_key_names or None, projects=settings.projects)
    pool = KeyPool(rt.redis, keys, PoolConfig.from_settings(settings), rt.keys)
    pool.register()
    store = open_store(settings.media_store, rt.redis, rt.keys, settings.result_expires)
    uploads = Uploads(rt.redis, store, rt.keys, settings.inline_limit_bytes)
    return WorkerContext(
        rt, pool, uploads, RetryPolicy.from_settings(settings), threads or settings.concurrency
    )


def start(threads: int | None = None) -> WorkerContext:
    """Build this process's context (raises `NoApiKeys` or `ConfigError` if it cannot run)."""
    global _current
    with _lock:
        if _current is None:
            _current = _build(threads)
            keys = ", ".join(map(str, _current.pool.key_list))
            log.info("worker has %d API key(s): %s", len(_current.pool.keys), keys)
        return _current


def current() -> WorkerContext:
    """This process's context, built on first use if the worker did not start it."""
    return _current or start()
