"""The worker's feeder: a thread that moves prompts from the jobs' queues in Redis to the
broker as this worker's threads free up, so the broker and the workers only ever hold what
is about to run and every scheduling decision (priority, fair share, caps) is the
scheduler's, made in Redis at the last moment.

It feeds in batches: the broker may hold a quarter of the worker's threads beyond those
free (`PREFETCH`), and the feeder tops it up once its threads have taken half that many, so
a prompt costs a fraction of a dispatch and a publish round trip, not one each. It looks at
least every `TICK` (a new job, another worker's threads), and at every thread that ends
while the last look found less to feed than there was room for (capped or waiting jobs,
whose every freed slot counts).
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

# The longest the feeder goes without looking at the jobs' queues.
TICK = 0.25
# The models the pool can serve are read at most this often.
MODELS_EVERY = 1.0
# Prompts the broker may hold beyond the threads free, as a share of the threads.
PREFETCH = 1 / 4


def due(since_fed: float, taken: int, batch: int, starved: bool) -> bool:
    """Whether the feeder looks now, woken by a thread that ended `since_fed` seconds after
    its last look: a tick has passed, its threads have taken a batch from the broker, or the
    last look found less to feed than there was room for. (Idle threads say nothing: a busy
    worker's consumer leaves threads idle while the broker holds plenty.)"""
    return since_fed >= TICK or taken >= batch or starved


class Feeder(threading.Thread):
    def __init__(self, ctx: WorkerContext, app: Celery, queues: list[str]):
        super().__init__(name="gemini-tasks-feeder", daemon=True)
        self.ctx, self.app, self.queues = ctx, app, queues
        self.stopping = threading.Event()
        self._models: tuple[float, list[str] | None] = (0.0, None)
        self.ahead = int(ctx.threads * PREFETCH)
        self.batch = max(1, self.ahead // 2)  # the fewest prompts a look feeds
        self.starved = True
        self._first = 0  # the queue looked at first, in turn, so none is always last

    def run(self) -> None:
        fed_at = -TICK
        while not self.stopping.is_set():
            self.ctx.wake.wait(max(0.0, fed_at + TICK - time.monotonic()))
            self.ctx.wake.clear()
            if self.ctx.fence.evicted:
                return
            if not due(time.monotonic() - fed_at, self.ctx.taken, self.batch, self.starved):
                continue
            fed_at = time.monotonic()
            try:
                self.feed()
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

    def feed(self) -> int:
        """Feed every queue this worker consumes from one budget: its free threads and the
        prompts it may hold ahead of them."""
        self.ctx.took()
        free, ahead = max(0, self.ctx.threads - self.ctx.busy), self.ahead
        self._first = (self._first + 1) % len(self.queues)
        starved, fed = False, 0
        for queue in self.queues[self._first :] + self.queues[: self._first]:
            n, hungry = self._feed(queue, free, ahead)
            starved, fed = starved or hungry, fed + n
            for_free = min(n, free)
            free, ahead = free - for_free, ahead - (n - for_free)
        self.starved = starved
        return fed

    def _feed(self, queue: str, free: int, ahead: int) -> tuple[int, bool]:
        worker = self.ctx.worker_id
        dispatched = self.ctx.queue.dispatch(queue, free, ahead, worker, self.usable_models(),
                                             self.batch)  # fmt: skip
        if dispatched.fed:
            with self.app.producer_or_acquire() as producer:
                for each in dispatched.fed:
                    carry = json.loads(each.carry) if each.carry else None
                    publish(self.app, producer, each.job, each.index, json.loads(each.record),
                            queue, carry, each.ticket)  # fmt: skip
            self.ctx.queue.published(worker, dispatched.fed)
        return len(dispatched.fed), dispatched.starved(self.batch)
