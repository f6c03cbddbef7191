"""`JobQueue`: jobs and their waiting prompts in the broker's Redis, and the dispatch that
feeds them to workers (priorities, fair share, per-job caps)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis

from gemini_tasks import scripts
from gemini_tasks.connections import text
from gemini_tasks.keyspace import Keyspace

NAMES = ("dispatch", "park", "schedule", "stop")
# How long a producer's mark that it is still submitting lasts without being renewed.
SUBMITTER_TTL = 30


class JobState(str, Enum):
    SUBMITTING = "submitting"  # a producer is still adding prompts
    SUBMITTED = "submitted"  # every prompt is in; they run as workers take them
    PAUSED = "paused"  # no prompt of the job is fed until it is resumed
    CANCELLED = "cancelled"  # no prompt of the job is sent any more
    OVER_BUDGET = "over_budget"  # its budget is spent: no prompt is sent until it is raised
    INCOMPLETE = "incomplete"  # its producer stopped before adding every prompt

    def __str__(self) -> str:
        return self.value


class Priority(str, Enum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    def __str__(self) -> str:
        return self.value


class Mode(str, Enum):
    """How a job's prompts are sent: each an interactive call, each a call of the Flex
    tier (half the price, answers in minutes, shed under load: docs/flex-inference), or in
    Batch Mode batches (half the price, answers within 24 hours: docs/batch-mode)."""

    ONLINE = "online"
    FLEX = "flex"
    BATCH = "batch"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class JobInfo:
    """A job as its record in the broker's Redis says."""

    id: str
    state: JobState
    total: int
    created_at: float
    queue: str
    priority: Priority
    weight: float
    model: str
    max_concurrency: int
    max_rpm: int
    options: dict[str, str]  # everything else the job was submitted with (mode, budget, ...)

    @classmethod
    def from_hash(cls, job_id: str, raw: dict[str, str]) -> JobInfo:
        known = {"state", "total", "created_at", "queue", "priority", "weight", "model",
                 "max_concurrency", "max_rpm"}  # fmt: skip
        return cls(
            id=job_id,
            state=JobState(raw.get("state", "submitting")),
            total=int(raw.get("total", 0)),
            created_at=float(raw.get("created_at", 0)),
            queue=raw.get("queue", ""),
            priority=Priority(raw.get("priority", "normal")),
            weight=float(raw.get("weight", 1)),
            model=raw.get("model", ""),
            max_concurrency=int(raw.get("max_concurrency", 0)),
            max_rpm=int(raw.get("max_rpm", 0)),
            options={k: v for k, v in raw.items() if k not in known},
        )


@dataclass(frozen=True)
class Control:
    """A job as a worker running its prompts needs to know it."""

    state: JobState | None  # None: the job is gone (forgotten)
    budgeted: bool = False  # each call reserves its cost from the job's budget
    dedupe: bool = False  # identical requests are sent once
    mode: Mode = Mode.ONLINE
    # A flex prompt shed this long runs on the standard tier (0: it never does); a batch
    # job's prompts whose batch failed, expired or passed its deadline run online (0: they
    # are batched again).
    fallback_after: float = 0.0
    batch_deadline: float = 86400.0  # a batch still pending this long is cancelled
    cache: bool = False  # prompts sharing a prefix name one context cache per project


@dataclass(frozen=True)
class Fed:
    """One prompt a worker took from a job's queue, to publish to the broker."""

    job: str
    index: int
    record: str  # the task argument, as JSON
    carry: str = ""  # what a parked prompt's run goes on from, as JSON ("" for a fresh one)
    ticket: int | None = None  # its place in line for keys (see lua/dispatch.lua)


@dataclass(frozen=True)
class Suspect:
    """A prompt whose message a look found neither queued nor held: lost, or just popped."""

    job: str
    index: int
    fed_at: float

    @property
    def entry(self) -> str:
        return f"{self.job}:{self.index}:{self.fed_at!r}"


@dataclass(frozen=True)
class Dispatched:
    """What one dispatch fed, and the room it found for it."""

    fed: list[Fed]
    room: int

    def starved(self, least: int) -> bool:
        """Whether the scheduler had less to feed than there was room for: its jobs are
        capped, waiting or done, so a thread that frees up may find nothing in the broker."""
        return self.room >= least and len(self.fed) < self.room


class JobQueue:
    """The scheduler's queue side, on the broker's Redis."""

    def __init__(self, client: redis.Redis, keyspace: Keyspace, ttl: int):
        self.redis, self.keys, self.ttl = client, keyspace, ttl
        self._scripts = scripts.register(client, "gemini_tasks.scheduler", NAMES)

    def _run(self, name: str, key: str, *args: Any) -> Any:
        return self._scripts[name](keys=[key], args=[self.keys.tag, *args])

    # -- a job's record -------------------------------------------------------------------
    def create(self, job_id: str, fields: dict[str, str | int | float]) -> None:
        key = self.keys.job(job_id)
        pipe = self.redis.pipeline(transaction=False)
        mapping: dict[Any, Any] = {"state": JobState.SUBMITTING.value, "total": 0, **fields}
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, self.ttl)
        pipe.zadd(self.keys.jobs(), {job_id: float(fields.get("created_at", time.time()))})
        pipe.set(self.keys.submitter(job_id), "1", ex=SUBMITTER_TTL)
        pipe.execute()

    def control(self, job_id: str) -> Control:
        """What a worker needs to know of a job while it runs its prompts."""
        fields = ["state", "budget", "dedupe", "mode", "fallback_after", "batch_deadline", "cache"]
        state, budget, dedupe, mode, fallback, deadline, cache = self.redis.hmget(
            self.keys.job(job_id), fields
        )
        return Control(
            state=None if state is None else JobState(text(state)),
            budgeted=budget is not None and float(text(budget)) > 0,
            dedupe=dedupe is not None and text(dedupe) == "1",
            mode=Mode.ONLINE if mode is None else Mode(text(mode)),
            fallback_after=0.0 if fallback is None else float(text(fallback)),
            batch_deadline=86400.0 if deadline is None else float(text(deadline)),
            cache=cache is not None and text(cache) == "1",
        )

    def info(self, job_id: str) -> JobInfo | None:
        raw = self.redis.hgetall(self.keys.job(job_id))
        if not raw:
            return None
        return JobInfo.from_hash(job_id, {text(k): text(v) for k, v in raw.items()})

    def update(self, job_id: str, **fields: str | int | float) -> None:
        mapping: dict[Any, Any] = dict(fields)
        self.redis.hset(self.keys.job(job_id), mapping=mapping)

    def records(self, job_id: str, indexes: Sequence[int]) -> dict[int, Any]:
        """The task arguments of `indexes` (None for one whose prompt succeeded)."""
        if not indexes:
            return {}
        raw = self.redis.hmget(self.keys.job_args(job_id), list(indexes))
        return {i: None if r is None else json.loads(r) for i, r in zip(indexes, raw, strict=True)}

    def ticket(self) -> int:
        """A place in line for keys, after every prompt chosen so far."""
        return int(self.redis.incr(self.keys.tickets()))

    def submitting(self, job_id: str) -> bool:
        """Whether a producer is still adding prompts (it renews its mark as it goes)."""
        return bool(self.redis.exists(self.keys.submitter(job_id)))

    def recent(self, count: int) -> list[str]:
        found: list[Any] = self.redis.zrevrange(self.keys.jobs(), 0, count - 1)
        return [text(j) for j in found]

    # -- prompts in, out and back ---------------------------------------------------------
    def add(self, job_id: str, prompts: Sequence[tuple[int, str]], total: int) -> None:
        """Queue `prompts` ((index, task argument)) after those already queued, and make
        `total` the job's count of prompts, in one step."""
        pairs = [part for index, arg in prompts for part in (index, arg)]
        self._run("schedule", self.keys.job(job_id), job_id, total, self.ttl, SUBMITTER_TTL,
                  *pairs)  # fmt: skip

    def _schedule(self, job_id: str) -> None:
        self._run("schedule", self.keys.job(job_id), job_id, "", 0, 0)

    def finish_submitting(self, job_id: str, state: JobState) -> None:
        self.redis.hset(self.keys.job(job_id), "state", state.value)
        self.redis.delete(self.keys.submitter(job_id))

    def dispatch(
        self,
        queue: str,
        free: int,
        ahead: int,
        worker: str,
        usable: Iterable[str] | None,
        least: int = 1,
    ) -> Dispatched:
        """Prompts for `worker` to publish: up to its `free` threads plus `ahead`, less the
        messages already queued (see lua/dispatch.lua), or none when that leaves room for
        fewer than `least`; `usable` names the models the worker can serve now (None: any)."""
        models = "*" if usable is None else " ".join(usable)
        flat = self._run("dispatch", self.keys.workers(), queue, free, ahead, worker, models,
                         least)  # fmt: skip
        fed = [
            Fed(text(flat[i]), int(flat[i + 1]), text(flat[i + 2]), text(flat[i + 3]),
                int(flat[i + 4]))
            for i in range(1, len(flat), 5)
        ]  # fmt: skip
        return Dispatched(fed, int(flat[0]))

    def published(self, worker: str, fed: Sequence[Fed]) -> None:
        if fed:
            self.redis.hdel(self.keys.transit(worker), *(f"{f.job}:{f.index}" for f in fed))

    def park(
        self,
        job_id: str,
        indexes: Sequence[int],
        blocked_until: float = 0,
        model: str = "",
        carry: str = "",
        at_back: bool = False,
    ) -> None:
        """Put `indexes` back in the job's queue, at its front unless `at_back` (see
        lua/park.lua)."""
        args = (job_id, blocked_until, model, carry, "back" if at_back else "front", *indexes)
        self._run("park", self.keys.job(job_id), *args)

    def requeue(self, job_id: str, indexes: Sequence[int]) -> None:
        """Queue `indexes` again, at the front (to run failed prompts again)."""
        self.park(job_id, indexes)

    def done(self, job_id: str, index: int, succeeded: bool) -> None:
        """The prompt has its result: it is no longer in flight, and once it succeeded its
        task argument is no longer needed (a failed one's is kept, to retry it)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(self.keys.job_inflight(job_id), index)
        pipe.hdel(self.keys.job_carry(job_id), index)
        if succeeded:
            pipe.hdel(self.keys.job_args(job_id), index)
        pipe.execute()

    def record(self, job_id: str, index: int) -> str | None:
        raw = self.redis.hget(self.keys.job_args(job_id), str(index))
        return None if raw is None else text(raw)

    def in_flight(self, job_id: str) -> int:
        """How many of the job's prompts are fed and not yet finished."""
        return int(self.redis.zcard(self.keys.job_inflight(job_id)))

    def stale(self, older_than: float) -> dict[str, dict[int, float]]:
        """Per job, the prompts fed more than `older_than` seconds ago and not yet finished,
        with when each was fed; jobs with nothing in flight leave the active set."""
        found: dict[str, dict[int, float]] = {}
        before = time.time() - older_than
        for raw in self.redis.smembers(self.keys.active()):
            job_id = text(raw)
            if not self.redis.zcard(self.keys.job_inflight(job_id)):
                self.redis.srem(self.keys.active(), job_id)
                continue
            old: list[Any] = self.redis.zrangebyscore(
                self.keys.job_inflight(job_id), "-inf", before, withscores=True
            )
            if old:
                found[job_id] = {int(text(i)): float(fed_at) for i, fed_at in old}
        return found

    def suspected_lost(self, found: set[Suspect], apart: float) -> set[Suspect]:
        """Record `found` as what this look for lost messages found lost, and return those
        the previous look, at least `apart` seconds before, found lost too, fed at the same
        moment (not fed again since)."""
        key = self.keys.lost()
        now = time.time()
        raw: dict[Any, Any] = self.redis.hgetall(key)
        before = {text(k): text(v) for k, v in raw.items()}
        looked = float(before.pop("at", 0.0))
        confirmed = {f for f in found if f.entry in before} if now - looked >= apart else set()
        mapping: dict[Any, Any] = {"at": repr(now)}
        mapping.update({f.entry: "1" for f in found - confirmed})
        pipe = self.redis.pipeline()
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, self.ttl)
        pipe.execute()
        return confirmed

    def task_ids_in_broker(self, queue: str) -> set[str]:
        """Ids of the tasks queued on `queue` or held, unacknowledged, by a worker (the
        queue stays short: workers feed it only as their threads free up).

        Reads kombu's Redis layout: the queue is a list of JSON messages, and messages a
        worker holds are in the `unacked` hash as [message, exchange, routing key].
        """
        ids: set[str] = set()
        for raw in self.redis.lrange(queue, 0, -1):
            ids.add(json.loads(raw)["headers"]["id"])
        for raw in self.redis.hvals("unacked"):
            ids.add(json.loads(raw)[0]["headers"]["id"])
        return ids

    def waiting(self, job_id: str) -> int:
        return int(self.redis.llen(self.keys.job_todo(job_id)))

    # -- control --------------------------------------------------------------------------
    def stop(self, job_id: str, state: JobState, most: int = 10_000) -> list[int]:
        """Mark the job `state` (cancelled or over budget) and take up to `most` unfed prompts
        out of its queue."""
        taken = self._run("stop", self.keys.job(job_id), job_id, state.value, most)
        return [int(text(i)) for i in taken]

    def pause(self, job_id: str) -> None:
        self.update(job_id, state=JobState.PAUSED.value)

    def resume(self, job_id: str, state: JobState = JobState.SUBMITTED) -> None:
        self.update(job_id, state=state.value)
        self._schedule(job_id)

    def reprioritise(self, job_id: str, priority: Priority) -> None:
        info = self.info(job_id)
        if info is None:
            return
        self.redis.zrem(self.keys.sched(info.queue, info.priority.value), job_id)
        self.update(job_id, priority=priority.value)
        self._schedule(job_id)

    def delete(self, job_id: str) -> None:
        info = self.info(job_id)
        keys = self.keys
        names = [
            keys.job(job_id), keys.job_args(job_id), keys.job_todo(job_id),
            keys.job_inflight(job_id), keys.job_rpm(job_id), keys.job_carry(job_id),
            keys.submitter(job_id),
        ]  # fmt: skip
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(*names)
        pipe.zrem(keys.jobs(), job_id)
        if info is not None:
            for level in Priority:
                pipe.zrem(keys.sched(info.queue, level.value), job_id)
        pipe.execute()
