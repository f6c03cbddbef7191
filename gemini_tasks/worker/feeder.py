"""The worker's feeder: a thread that moves prompts from the jobs' queues in Redis to the
broker as this worker's threads free up, so the broker and the workers only ever hold what
is about to run and every scheduling decision (priority, fair share, caps) is the
scheduler's, made in Redis at the last moment.

It feeds in batches: the broker may hold a few prompts more than the threads free
(`PREFETCH`), and the feeder tops it up once its threads have taken half that many, so a
prompt costs a fraction of a dispatch and a publish round trip, not one each.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from celery import Celery

from gemini_tasks.messages import publish
from gemini_tasks.worker.context import WorkerContext

log = logging.getLogger(__name__)

# How often the feeder looks even when no thread of its own freed up: prompts a new job
# brings, or that another worker's threads could take.
TICK = 0.25
# The models the pool can serve are read at most this often.
MODELS_EVERY = 1.0
# Prompts the broker may hold beyond the threads free, as a share of the threads.
PREFETCH = 1 / 4


class Feeder(threading.Thread):
    def __init__(self, ctx: WorkerContext, app: Celery, queues: list[str]):
        super().__init__(name="gemini-tasks-feeder", daemon=True)
        self.ctx, self.app, self.queues = ctx, app, queues
        self.stopping = threading.Event()
        self._models: tuple[float, list[str] | None] = (0.0, None)
        self.margin = max(1, int(ctx.threads * PREFETCH))
        self.batch = max(1, self.margin // 2)  # the fewest prompts fed at once

    def run(self) -> None:
        while not self.stopping.is_set():
            woken = self.ctx.wake.wait(TICK)
            self.ctx.wake.clear()
            if self.ctx.fence.evicted:
                return
            if woken and not self._due():
                continue
            try:
                for queue in self.queues:
                    self.feed(queue)
            except Exception:  # Redis away, say: the next tick tries again
                log.warning("feeding the broker failed; trying again", exc_info=True)
                time.sleep(1.0)

    def stop(self) -> None:
        self.stopping.set()

    def usable_models(self) -> list[str] | None:
        """The models some key of this worker can serve soon (None when every model is)."""
        read_at, models = self._models
        if time.monotonic() - read_at > MODELS_EVERY:
            horizon = self.ctx.runtime.settings.short_key_wait
            models = self.ctx.pool.usable_models(horizon)
            self._models = (time.monotonic(), models)
        return models

    def _due(self) -> bool:
        """Whether a thread that ended calls for a look now, not at the next tick: its
        threads have taken a batch from the broker since the last. (Idle threads say
        nothing: a busy worker's consumer leaves threads idle while the broker holds
        plenty.)"""
        return self.ctx.taken >= self.batch

    def feed(self, queue: str) -> int:
        self.ctx.taken = 0
        want = self.ctx.threads - self.ctx.busy + self.margin
        worker = self.ctx.worker_id
        fed = self.ctx.queue.dispatch(queue, want, worker, self.usable_models(), self.batch)
        if not fed:
            return 0
        with self.app.producer_or_acquire() as producer:
            for each in fed:
                carry = json.loads(each.carry) if each.carry else None
                record = json.loads(each.record)
                publish(self.app, producer, each.job, each.index, record, queue, carry,
                        each.ticket)  # fmt: skip
        self.ctx.queue.published(worker, fed)
        return len(fed)
