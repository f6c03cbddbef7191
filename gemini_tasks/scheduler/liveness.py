"""`Liveness`: workers' heartbeats, and giving back what a dead worker held.

Each worker process beats every few seconds; a worker silent for longer than `dead_after`
is taken for dead, once, by whichever live worker sweeps first: the messages it held go
back to the broker and the prompts it was feeding back to their jobs, within seconds and
whatever the visibility timeout; that worker then gives back the dead one's key leases
(`KeyPool.forfeit`; the pool may be on another Redis). A worker that was only frozen
learns at its next beat that it was evicted, and stops.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from gemini_tasks import scripts
from gemini_tasks.broker import UNACKED, UNACKED_INDEX
from gemini_tasks.keyspace import Keyspace


@dataclass(frozen=True)
class Swept:
    workers: tuple[str, ...]  # taken for dead
    messages: int  # messages they held, back in their queues
    prompts: int  # prompts they were feeding, back in their jobs


class Liveness:
    def __init__(self, client: redis.Redis, keyspace: Keyspace):
        self.redis, self.keys = client, keyspace
        self._scripts = scripts.register(client, "gemini_tasks.scheduler", ("heartbeat", "sweep"))

    def beat(self, worker: str, threads: int) -> bool:
        """Record that `worker` is alive; False if it was taken for dead and must stop."""
        reply = self._scripts["heartbeat"](
            keys=[self.keys.workers()], args=[self.keys.tag, worker, threads, UNACKED_INDEX]
        )
        return bool(reply == b"ok")

    def sweep(self, dead_after: float) -> Swept:
        messages, prompts, *evicted = self._scripts["sweep"](
            keys=[self.keys.workers()], args=[self.keys.tag, dead_after, UNACKED, UNACKED_INDEX]
        )
        return Swept(tuple(w.decode() for w in evicted), int(messages), int(prompts))

    def leave(self, worker: str) -> None:
        """A worker shutting down warmly: kombu gives back its messages itself."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(self.keys.workers(), worker)
        pipe.delete(self.keys.held(worker))
        pipe.execute()
