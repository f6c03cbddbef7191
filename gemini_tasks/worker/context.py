"""A worker process's long-lived parts: its keys in the pool, its media access, its place in
the scheduler, its threads.

Built once per process when the worker starts (`start`), which is also where a worker
without keys or with a bad setting refuses to run; tasks reach it through `current()`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from google import genai

from gemini_tasks import broker, runtime
from gemini_tasks.errors import GeminiTasksError
from gemini_tasks.keys import ApiKey, load_keys
from gemini_tasks.media.store import open_store
from gemini_tasks.pool import KeyPool, PoolConfig
from gemini_tasks.scheduler import (
    Answers,
    BatchBook,
    Control,
    JobQueue,
    JobState,
    Liveness,
    Outcomes,
)
from gemini_tasks.scheduler.answers import CLAIM_RENEW
from gemini_tasks.worker.caching import Caches
from gemini_tasks.worker.clients import client_for
from gemini_tasks.worker.counting import TokenCounter
from gemini_tasks.worker.decide import RetryPolicy
from gemini_tasks.worker.uploads import Uploads

log = logging.getLogger(__name__)

STATE_EVERY = 1.0


class Evicted(GeminiTasksError):
    """The cluster took this worker for dead and gave its prompts to others: it must not
    send them too."""


@dataclass
class Fence:
    """Whether this worker may still send calls: it may while its heartbeats are confirmed,
    and stops for good once the cluster evicted it (after it was frozen, say)."""

    dead_after: float
    last_beat: float = field(default_factory=time.monotonic)
    evicted: bool = False
    _beat: threading.Event = field(default_factory=threading.Event)

    def confirmed(self) -> None:
        self.last_beat = time.monotonic()
        self._beat.set()

    def check(self) -> None:
        """Raise `Evicted` unless a heartbeat confirmed recently that this worker is alive."""
        if not self.evicted and time.monotonic() - self.last_beat > self.dead_after / 2:
            # Stale: this process may have been frozen. Wait for the next beat to say.
            self._beat.clear()
            self._beat.wait(self.dead_after)
        if self.evicted or time.monotonic() - self.last_beat > self.dead_after / 2:
            raise Evicted("this worker was taken for dead; its prompts went to other workers")


@dataclass
class WorkerContext:
    runtime: runtime.Runtime
    pool: KeyPool
    uploads: Uploads
    caches: Caches
    counter: TokenCounter
    policy: RetryPolicy
    threads: int  # calls this process may have in flight: each key's HTTP pool is sized to it
    worker_id: str
    queue: JobQueue
    outcomes: Outcomes
    answers: Answers
    batches: BatchBook
    liveness: Liveness
    fence: Fence
    busy: int = 0  # threads running a prompt now
    taken: int = 0  # prompts started since the feeder last fed the broker
    wake: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controls: dict[str, tuple[float, Control]] = field(default_factory=dict)

    def job_control(self, job_id: str) -> Control:
        """The job's state and options, read at most once a second per job: a cancel or a
        pause reaches every thread of this worker within about a second."""
        now = time.monotonic()
        read_at, control = self._controls.get(job_id, (0.0, Control(None)))
        if now - read_at > STATE_EVERY:
            control = self.queue.control(job_id)
            self._controls[job_id] = (now, control)
        return control

    def job_running(self, job_id: str) -> bool:
        """Whether the job still has prompts to run (so its media may yet be needed)."""
        info = self.queue.info(job_id)
        if info is None or info.state is JobState.CANCELLED:
            return False
        return info.state is JobState.SUBMITTING or self.outcomes.counts(job_id).done < info.total

    def client(self, key: ApiKey) -> genai.Client:
        """This process's long-lived client for `key`, sized to its threads."""
        settings = self.runtime.settings
        return client_for(key, settings.gemini_base_url, settings.request_timeout, self.threads)

    def client_of(self, project: str) -> genai.Client | None:
        """A client with one of this worker's keys of `project`, if it holds any (what a
        project owns, only its keys may delete)."""
        key = next((k for k in self.pool.key_list if k.project == project), None)
        return None if key is None else self.client(key)

    def started(self) -> None:
        with self._lock:
            self.busy += 1
            self.taken += 1

    def took(self) -> None:
        """The feeder is about to top the broker up: count what the threads take anew."""
        with self._lock:
            self.taken = 0

    def ended(self) -> None:
        with self._lock:
            self.busy -= 1
        self.wake.set()  # a thread is free: the feeder may feed another prompt


_current: WorkerContext | None = None
_lock = threading.Lock()


def _build(threads: int | None) -> WorkerContext:
    rt = runtime.current()
    settings = rt.settings
    keys = load_keys(settings.api_key_names or None, projects=settings.projects)
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    pool = KeyPool(rt.redis, keys, PoolConfig.from_settings(settings), rt.keys, worker_id)
    pool.register()
    store = open_store(settings.media_store, rt.redis, rt.keys, settings.result_expires)
    uploads = Uploads(rt.redis, store, rt.keys, settings.inline_limit_bytes)
    broker.hold_as(rt.keys.held(worker_id))
    return WorkerContext(
        runtime=rt,
        pool=pool,
        uploads=uploads,
        caches=Caches(
            rt.redis, rt.keys, settings.cache_ttl, settings.result_expires, settings.prices
        ),
        counter=TokenCounter(rt.redis, rt.keys, settings.result_expires),
        policy=RetryPolicy.from_settings(settings),
        threads=threads or settings.concurrency,
        worker_id=worker_id,
        queue=JobQueue(rt.broker, rt.keys, settings.result_expires),
        outcomes=Outcomes(rt.results, rt.keys, settings.result_expires, settings.prices),
        # A claim outlives the longest gap between two renewals: an upload and a call.
        answers=Answers(
            rt.results,
            rt.keys,
            settings.result_expires,
            int(CLAIM_RENEW + 2 * settings.request_timeout + 60),
        ),
        batches=BatchBook(rt.broker, rt.keys),
        liveness=Liveness(rt.broker, rt.keys),
        fence=Fence(settings.worker_dead_after),
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
