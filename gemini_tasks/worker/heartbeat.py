"""The worker's heartbeat: a thread that tells the cluster this worker is alive, keeps the
messages it holds from being handed to another worker, and gives back what dead workers
held, within seconds and whatever the broker's visibility timeout.

It also finds messages the broker lost. Redis has no server-side acknowledgement: a
message popped in the instant Redis or a worker dies can vanish before kombu records it as
unacknowledged. A prompt fed long ago, with no result, that is neither queued nor held by
any worker, is fed again (one worker looks at a time, every `GEMINI_TASKS_LOST_AFTER` seconds)
if the look before found it so too: a message a worker has just popped is, for the moment
until kombu records it, neither queued nor held, and feeding it again would send it twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from gemini_tasks.broker import settle_acks
from gemini_tasks.scheduler import Suspect
from gemini_tasks.worker.context import WorkerContext

log = logging.getLogger(__name__)

# Beats per dead_after: a worker is taken for dead only after missing several.
BEATS = 4

# An evicted worker lets its threads see the fence, then exits: its supervisor (systemd,
# docker, Kubernetes) starts a fresh one with a new identity.
EXIT_AFTER_EVICTION = 5.0


class Heartbeat(threading.Thread):
    def __init__(self, ctx: WorkerContext):
        super().__init__(name="gemini-tasks-heartbeat", daemon=True)
        self.ctx = ctx
        self.stopping = threading.Event()
        self.lost_looked = time.monotonic()
        # When a beat last went through, and since when beats have gone through in a row.
        # After Redis trouble every worker's beats failed (or waited) alike: none takes
        # another for dead until the others have had as long to beat again.
        self.beat_at = self.beating_since = time.monotonic()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.beat()
            self.stopping.wait(self.ctx.fence.dead_after / BEATS)

    def beat(self) -> None:
        ctx = self.ctx
        try:
            alive = ctx.liveness.beat(ctx.worker_id, ctx.threads)
        except Exception as exc:  # Redis away: the fence stops calls if it stays away too long
            log.warning("heartbeat failed (%s); trying again", exc)
            return
        now = time.monotonic()
        if now - self.beat_at > 2 * ctx.fence.dead_after / BEATS:
            self.beating_since = now
            log.warning("heartbeat back after %.0fs: Redis answers again", now - self.beat_at)
        self.beat_at = now
        if not alive:
            ctx.fence.evicted = True
            ctx.fence.confirmed()
            log.error(
                "this worker was taken for dead (no heartbeat for %gs) and its prompts went "
                "to other workers; it stops sending and exits",
                ctx.fence.dead_after,
            )
            threading.Timer(EXIT_AFTER_EVICTION, os._exit, args=(75,)).start()
            self.stopping.set()
            return
        ctx.fence.confirmed()
        if settle_acks(ctx.runtime.broker):
            return  # Redis still refuses writes
        if time.monotonic() - self.beating_since < ctx.fence.dead_after:
            return
        try:
            swept = ctx.liveness.sweep(ctx.fence.dead_after)
        except Exception:
            log.warning("sweeping for dead workers failed", exc_info=True)
            return
        if swept.workers:
            log.warning(
                "took %d worker(s) for dead: %d message(s) and %d prompt(s) they held run again",
                len(swept.workers), swept.messages, swept.prompts,
            )  # fmt: skip
            self.forfeit(swept.workers)
        if time.monotonic() - self.lost_looked > ctx.runtime.settings.lost_after:
            self.lost_looked = time.monotonic()
            try:
                self.recover_lost()
            except Exception:  # Redis away, say: the next look tries again
                log.warning("looking for lost messages failed", exc_info=True)

    def forfeit(self, dead: tuple[str, ...]) -> None:
        """Give back the dead workers' key leases now rather than when they expire: an
        unproven key or a half-open circuit lends one call at a time, and a dead worker's
        call would hold it for GEMINI_TASKS_REQUEST_TIMEOUT + 30 s."""
        for worker in dead:
            try:
                given = self.ctx.pool.forfeit(worker)
            except Exception:  # the pool's Redis away, say: the leases expire instead
                log.warning("giving back %s's key leases failed", worker, exc_info=True)
                continue
            log.warning("gave back %d key lease(s) %s held", given, worker)

    def recover_lost(self) -> int:
        """Feed again the prompts whose message the broker lost; returns how many."""
        ctx = self.ctx
        after = ctx.runtime.settings.lost_after
        lock = ctx.runtime.keys.lost_sweep()
        if not ctx.runtime.broker.set(lock, ctx.worker_id, nx=True, ex=max(1, int(after))):
            return 0
        stale = ctx.queue.stale(after)
        in_broker: dict[str, set[str]] = {}
        found: set[Suspect] = set()
        for job_id, fed in stale.items():
            info = ctx.queue.info(job_id)
            if info is None:
                continue
            if info.queue not in in_broker:
                in_broker[info.queue] = ctx.queue.task_ids_in_broker(info.queue)
            for index, fed_at in fed.items():
                if ctx.outcomes.has(job_id, index):
                    ctx.queue.done(job_id, index, False)
                elif f"{job_id}-{index}" not in in_broker[info.queue]:
                    found.add(Suspect(job_id, index, fed_at))
        lost: dict[str, list[int]] = {}
        for suspect in ctx.queue.suspected_lost(found, after / 2):
            lost.setdefault(suspect.job, []).append(suspect.index)
        for job_id, indexes in lost.items():
            ctx.queue.requeue(job_id, sorted(indexes))
            log.warning("job %s: fed again %d prompt(s) the broker lost", job_id, len(indexes))
        return sum(map(len, lost.values()))

    def stop(self) -> None:
        self.stopping.set()
        self.ctx.liveness.leave(self.ctx.worker_id)
