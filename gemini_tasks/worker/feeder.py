"""The worker's feeder: a thread that moves prompts from the jobs' queues in Redis to the
broker as this worker's threads free up, so the broker and the workers only ever hold what
is about to run and every scheduling decision (priority, fair share, caps) is the
scheduler's, made in Redis at the last moment.
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


class Feeder(threading.Thread):
    def __init__(self, ctx: WorkerContext, app: Celery, queues: list[str]):
        super().__init__(name="gemini-tasks-feeder", daemon=True)
        self.ctx, self.app, self.queues = ctx, app, queues
        self.stopping = threading.Event()
        self._models: tuple[float, list[str] | None] = (0.0, None)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.ctx.wake.wait(TICK)
            self.ctx.wake.clear()
            if self.ctx.fence.evicted:
                return
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

    def feed(self, queue: str) -> int:
        want = self.ctx.threads - self.ctx.busy
        if want <= 0:
            return 0
        worker = self.ctx.worker_id
        fed = self.ctx.queue.dispatch(queue, want, worker, self.usable_models())
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
