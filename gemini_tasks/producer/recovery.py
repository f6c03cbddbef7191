"""Finding and re-queueing prompts whose task message the broker lost.

Redis has no server-side acknowledgement: a message popped in the instant Redis or a
worker dies can vanish before kombu records it as unacknowledged. Each task's arguments
are kept at submit until the task starts, so a prompt with no stored state whose task is
neither queued nor held by a worker can be sent again.
"""

from __future__ import annotations

import json
import logging
import time

from gemini_tasks.producer.fetch import ResultReader, chunks, task_id
from gemini_tasks.producer.publish import publish
from gemini_tasks.runtime import Runtime

log = logging.getLogger(__name__)

# A queue longer than this is not searched for lost tasks: they are found once it drains.
SCAN_LIMIT = 20_000
# Collectors look for lost tasks after this long without a new result.
STALL_SECONDS = 30.0


def task_ids_in_broker(rt: Runtime, queue: str) -> set[str] | None:
    """Ids of the tasks queued on `queue` or held, unacknowledged, by a worker; None when
    the queue is too long to search.

    Reads kombu's Redis layout: the queue is a list of JSON messages, and messages a
    worker holds are in the `unacked` hash as [message, exchange, routing key].
    """
    broker = rt.broker
    length = broker.llen(queue)
    if length > SCAN_LIMIT:
        return None
    ids: set[str] = set()
    for start in range(0, length, 1000):
        for raw in broker.lrange(queue, start, start + 999):
            ids.add(json.loads(raw)["headers"]["id"])
    for raw in broker.hvals("unacked"):
        ids.add(json.loads(raw)[0]["headers"]["id"])
    return ids


def _missing(rt: Runtime, job_id: str, indexes: list[int], queue: str) -> list[int]:
    """Those of `indexes` with no stored state whose task the broker does not have."""
    if not indexes:
        return []
    in_broker = task_ids_in_broker(rt, queue)
    if in_broker is None:
        return []
    stored = ResultReader(rt, job_id).stored(indexes)
    return [i for i in indexes if i not in stored and task_id(job_id, i) not in in_broker]


def recover_lost(rt: Runtime, job_id: str, total: int, queue: str) -> int:
    """Re-queue the job's prompts the broker lost, seen so in two looks a second apart;
    returns how many."""
    reader = ResultReader(rt, job_id)
    unstarted = [
        i for chunk in chunks(range(total)) for i in chunk if i not in reader.stored(chunk)
    ]
    lost = _missing(rt, job_id, unstarted, queue)
    if not lost:
        return 0
    time.sleep(1.0)
    lost = _missing(rt, job_id, lost, queue)
    stored = rt.results.hmget(rt.keys.job_args(job_id), [str(i) for i in lost])
    requeued = 0
    with rt.app.producer_or_acquire() as producer:
        for index, record in zip(lost, stored, strict=True):
            if record is not None:
                argsrepr = f"(prompt #{index}, recovered)"
                publish(rt.app, producer, job_id, index, json.loads(record), queue, argsrepr)
                requeued += 1
    log.warning("job %s: re-queued %d prompt(s) the broker lost", job_id, requeued)
    return requeued


class Stall:
    """Looks for lost tasks when a collector has waited long without a new result."""

    def __init__(self, rt: Runtime, job_id: str, total: int, queue: str):
        self.rt, self.job_id, self.total, self.queue = rt, job_id, total, queue
        self.since = time.monotonic()

    def observe(self, progressed: bool) -> None:
        now = time.monotonic()
        if progressed:
            self.since = now
        elif now - self.since > STALL_SECONDS:
            recover_lost(self.rt, self.job_id, self.total, self.queue)
            self.since = time.monotonic()
