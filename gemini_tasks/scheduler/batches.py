"""`BatchBook`: the Batch Mode batches of every job, in Redis, so that any worker can carry
any batch on and a worker that dies leaves nothing behind.

A batch job's prompts are not fed to the broker: a worker forms a batch from the front of
the job's queue (`form.lua`), and the batch record (`{p}:batch:<id>`) holds its prompts
from then until each has its result or is sent back to the queue. `{p}:batches` orders every
batch by when it is next due for a look; the worker looking at one holds it by pushing that
time out (`claim_batches.lua`), so a batch whose worker died is taken up by another once the
hold lapses. A batch goes `formed` (its prompts chosen), `creating` (a key of `project`
chosen, the Gemini batch being created under the display name that names this record),
`pending` (Gemini's batch `name` known), and its record is deleted once its prompts are
settled. A batch too large for inline requests names the JSONL file it was uploaded as
(`input_file`), so whichever worker ends it deletes the file. A batch counts against its
project's Batch Mode limits (`{p}:batch_quota:<project>`: unfinished batches, enqueued
tokens of each model) from just before it is created until its record goes.

Runs on the broker's Redis, beside the jobs' queues.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis

from gemini_tasks import scripts
from gemini_tasks.connections import text
from gemini_tasks.keyspace import Keyspace


class BatchState(str, Enum):
    FORMED = "formed"
    CREATING = "creating"
    PENDING = "pending"


@dataclass
class BatchRecord:
    id: str
    job: str
    state: BatchState
    indexes: list[int]
    round: int = 0  # how many batches its prompts were in before this one
    project: str = ""
    key_id: str = ""
    name: str = ""  # Gemini's, once created
    submitted_at: float = 0.0
    polls: int = 0
    model: str = ""
    # The JSONL file its requests were uploaded as ("files/..."); "" for inline requests,
    # and in records saved before file batches were.
    input_file: str = ""
    tokens: int = 0  # its requests' input tokens, estimated: what it enqueues (not saved)

    @property
    def display_name(self) -> str:
        """The name the Gemini batch is created under: how a worker finds it again."""
        return f"gemini-tasks {self.id}"


class BatchBook:
    def __init__(self, client: redis.Redis, keyspace: Keyspace):
        self.redis, self.keys = client, keyspace
        self._scripts = scripts.register(
            client, "gemini_tasks.scheduler", ("form", "claim_batches", "enqueue", "save_batch")
        )

    def _run(self, name: str, *args: Any) -> Any:
        return self._scripts[name](keys=[self.keys.workers()], args=[self.keys.tag, *args])

    def form(self, queue: str, worker: str, size: int, hold: float) -> BatchRecord | None:
        """A new batch of up to `size` prompts of a batch job of `queue`, held by `worker`."""
        reply = self._run("form", queue, worker, size, hold, uuid.uuid4().hex[:16])
        if not reply:
            return None
        batch_id, job, round_ = text(reply[0]), text(reply[1]), int(reply[2])
        indexes = [int(i) for i in reply[3:]]
        return BatchRecord(batch_id, job, BatchState.FORMED, indexes, round_)

    def claim(self, worker: str, hold: float, most: int = 16) -> list[str]:
        """The batches due for a look, now held by `worker` for `hold` seconds."""
        return [text(b) for b in self._run("claim_batches", worker, hold, most)]

    def get(self, batch_id: str) -> BatchRecord | None:
        raw = {text(k): text(v) for k, v in self.redis.hgetall(self.keys.batch(batch_id)).items()}
        if "job" not in raw:
            return None
        return BatchRecord(
            id=batch_id,
            job=raw["job"],
            state=BatchState(raw["state"]),
            indexes=[int(i) for i in json.loads(raw["indexes"])],
            round=int(raw.get("round", 0)),
            project=raw.get("project", ""),
            key_id=raw.get("key_id", ""),
            name=raw.get("name", ""),
            submitted_at=float(raw.get("submitted_at", 0)),
            polls=int(raw.get("polls", 0)),
            model=raw.get("model", ""),
            input_file=raw.get("input_file", ""),
        )

    def save(self, batch: BatchRecord) -> bool:
        """Record the batch's state; False if its record is gone (another worker dropped
        it: its job was cancelled or forgotten), which nothing may then act on."""
        fields = {
            "state": batch.state.value,
            "indexes": json.dumps(batch.indexes),
            "project": batch.project,
            "key_id": batch.key_id,
            "name": batch.name,
            "submitted_at": repr(batch.submitted_at),
            "polls": batch.polls,
            "model": batch.model,
            "input_file": batch.input_file,
        }
        pairs = [item for pair in fields.items() for item in pair]
        return bool(self._run("save_batch", batch.id, *pairs))

    def enqueue(self, batch: BatchRecord, project: str, limit: int, concurrent: int) -> bool:
        """Count `batch` (`batch.tokens` of `batch.model`) against `project`'s Batch Mode
        limits; False while the project's other unfinished batches leave it no room."""
        reply = self._run("enqueue", project, batch.model, batch.id, batch.tokens, limit,
                          concurrent)  # fmt: skip
        return bool(reply)

    def dequeue(self, batch: BatchRecord) -> None:
        """The batch no longer counts against its project's limits (it was not created)."""
        if batch.project:
            self.redis.hdel(self.keys.batch_quota(batch.project), batch.id)

    def look_again(self, batch_id: str, seconds: float) -> None:
        """Let the batch go until it is due for another look in `seconds`."""
        now = self._now()
        self.redis.zadd(self.keys.batches(), {batch_id: now + seconds}, xx=True)

    def due_now(self, job_id: str) -> None:
        """Every batch of the job is due for a look now (the job was cancelled, say)."""
        batches = [text(b) for b in self.redis.smembers(self.keys.job_batches(job_id))]
        if batches:
            self.redis.zadd(self.keys.batches(), {b: 0 for b in batches}, xx=True)

    def batched(self, job_id: str) -> int:
        """How many of the job's prompts its batches hold (forming, being created, or
        waiting for Gemini's answer)."""
        batches = [text(b) for b in self.redis.smembers(self.keys.job_batches(job_id))]
        pipe = self.redis.pipeline(transaction=False)
        for batch_id in batches:
            pipe.hget(self.keys.batch(batch_id), "indexes")
        return sum(len(json.loads(text(raw))) for raw in pipe.execute() if raw)

    def drop(self, batch: BatchRecord) -> None:
        """The batch's prompts are all settled: forget it."""
        owner = self.redis.hget(self.keys.batch(batch.id), "owner")
        pipe = self.redis.pipeline(transaction=False)
        if owner is not None:
            pipe.srem(self.keys.holding(text(owner)), batch.id)
        pipe.delete(self.keys.batch(batch.id))
        pipe.zrem(self.keys.batches(), batch.id)
        pipe.srem(self.keys.job_batches(batch.job), batch.id)
        if batch.project:
            pipe.hdel(self.keys.batch_quota(batch.project), batch.id)
        pipe.execute()

    def _now(self) -> float:
        seconds, micros = self.redis.time()
        return float(seconds) + micros / 1e6
