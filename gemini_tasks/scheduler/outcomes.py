"""`Outcomes`: each prompt's result, recorded once, with its job's counts and completion
stream, in the result backend's Redis.

A result is stored in Celery's own format under Celery's key (`celery-task-meta-<task id>`),
so `celery result <task id>` reads it too; its value is our `Result`, failures included,
while the task's state in Flower (from Celery's events) says whether the prompt failed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from gemini_tasks import prices, scripts
from gemini_tasks.connections import text
from gemini_tasks.errors import ErrorKind
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.prices import Price
from gemini_tasks.result import Result

META = "celery-task-meta-"
# Upper bounds (seconds) of the latency histograms' buckets, as Prometheus' `le` labels.
LATENCY_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


def bucket(seconds: float) -> str:
    """The `le` label of the histogram bucket `seconds` falls in."""
    return next((repr(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")


@dataclass
class Histogram:
    """A latency histogram: observations per bucket (not cumulative), and their sum."""

    buckets: dict[str, int] = field(default_factory=dict)
    total: float = 0.0

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus' form: for each `le`, the observations at most that."""
        out, running = [], 0
        for le in [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]:
            running += self.buckets.get(le, 0)
            out.append((le, float(running)))
        return out


@dataclass
class JobMetrics:
    """What Prometheus reads of a job: counts that only grow (a retried failure stays
    counted, as a Prometheus counter must)."""

    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, outcome)
    prompt_seconds: Histogram = field(default_factory=Histogram)  # first start to result
    api_seconds: Histogram = field(default_factory=Histogram)  # time in Gemini calls

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> JobMetrics:
        metrics = cls()
        for name, value in raw.items():
            family, _, rest = name.partition(":")
            if family == "p":
                model, _, outcome = rest.rpartition(":")
                metrics.outcomes[(model, outcome)] = int(value)
            elif family in ("prompt", "api"):
                histogram = metrics.prompt_seconds if family == "prompt" else metrics.api_seconds
                histogram.buckets[rest] = int(value)
        metrics.prompt_seconds.total = float(raw.get("prompt_sum", 0))
        metrics.api_seconds.total = float(raw.get("api_sum", 0))
        return metrics


@dataclass(frozen=True)
class Counts:
    """What finished of a job so far."""

    done: int = 0
    failed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0
    cached_tokens: int = 0
    rate_limited: int = 0  # calls answered 429
    reused: int = 0  # prompts answered by an identical request's call (--dedupe)
    cost: float = 0.0
    online_cost: float = 0.0  # what the same calls would have cost online
    budget: float = 0.0  # 0: none
    reserved: float = 0.0

    @property
    def succeeded(self) -> int:
        return self.done - self.failed

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Counts:
        def integer(name: str) -> int:
            return int(float(raw.get(name, 0)))

        return cls(
            done=integer("done"),
            failed=integer("failed"),
            by_kind={k[5:]: int(v) for k, v in raw.items() if k.startswith("kind:") and int(v)},
            prompt_tokens=integer("prompt_tokens"),
            output_tokens=integer("output_tokens"),
            thought_tokens=integer("thought_tokens"),
            cached_tokens=integer("cached_tokens"),
            rate_limited=integer("rate_limited"),
            reused=integer("reused"),
            cost=float(raw.get("cost", 0)),
            online_cost=float(raw.get("online_cost", 0)),
            budget=float(raw.get("budget", 0)),
            reserved=float(raw.get("reserved", 0)),
        )


def meta_key(task_id: str) -> str:
    return META + task_id


def celery_meta(task_id: str, job_id: str, index: int, result: Result) -> str:
    """The result in the form Celery's Redis backend stores (status, result, ...)."""
    return json.dumps(
        {
            "status": "SUCCESS",
            "result": result.to_json(),
            "traceback": None,
            "children": [],
            "date_done": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
            "task_id": task_id,
            "group_id": job_id,
            "group_index": index,
        }
    )


class Outcomes:
    def __init__(
        self, client: redis.Redis, keyspace: Keyspace, ttl: int, price_list: dict[str, Price]
    ):
        self.redis, self.keys, self.ttl, self.prices = client, keyspace, ttl, price_list
        self._scripts = scripts.register(
            client, "gemini_tasks.scheduler", ("finish", "unfinish", "reserve")
        )

    def finish(self, job_id: str, result: Result) -> bool:
        """Record `result` as its prompt's, unless the prompt has one; True if recorded.
        Its cost counts now, but for the part already settled call by call."""
        task_id = f"{job_id}-{result.index}"
        usage = {} if result.reused_from else result.usage or {}  # no call: nothing used
        timings = result.timings
        took = max(0.0, timings.get("finished_at", 0.0) - timings.get("started_at", 0.0))
        in_calls = timings.get("api_seconds", 0.0)
        recorded = self._scripts["finish"](
            keys=[meta_key(task_id)],
            args=[
                self.keys.tag, job_id, result.index,
                celery_meta(task_id, job_id, result.index, result), self.ttl,
                result.error_kind.value if result.error_kind else "",
                int(usage.get("prompt_token_count") or 0),
                int(usage.get("candidates_token_count") or 0),
                int(usage.get("thoughts_token_count") or 0),
                int(usage.get("cached_content_token_count") or 0),
                result.rate_limited,
                repr(result.cost - result.settled),
                result.model or "", bucket(took), repr(took), bucket(in_calls), repr(in_calls),
                int(result.reused_from is not None),
                repr(prices.online_cost(prices.price_of(self.prices, result.model or ""),
                                        result.cost, result.mode, usage)),
            ],
        )  # fmt: skip
        return bool(recorded)

    def store(self, task_id: str, result: Result) -> None:
        """Store the result of a task sent outside any job (nothing counts it)."""
        meta = celery_meta(task_id, "", result.index, result)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(meta_key(task_id), meta, ex=self.ttl)
        # As Celery's Redis backend does, for a client waiting on AsyncResult.get().
        pipe.publish(meta_key(task_id), meta)
        pipe.execute()

    def results(self, job_id: str, indexes: list[int]) -> dict[int, Result]:
        """The stored results among `indexes`."""
        raw = self.redis.mget([meta_key(f"{job_id}-{i}") for i in indexes])
        found: dict[int, Result] = {}
        for index, value in zip(indexes, raw, strict=True):
            if value is not None:
                found[index] = Result.from_json(json.loads(value)["result"])
        return found

    def has(self, job_id: str, index: int) -> bool:
        return bool(self.redis.exists(meta_key(f"{job_id}-{index}")))

    def metrics(self, job_id: str) -> JobMetrics:
        raw = self.redis.hgetall(self.keys.job_metrics(job_id))
        return JobMetrics.from_hash({text(k): text(v) for k, v in raw.items()})

    def counts(self, job_id: str) -> Counts:
        raw = self.redis.hgetall(self.keys.job_counts(job_id))
        return Counts.from_hash({text(k): text(v) for k, v in raw.items()})

    def events(
        self, job_id: str, after: str = "0-0", count: int = 1000, block: float = 0
    ) -> tuple[str, list[int]]:
        """Indexes finished after stream position `after`, and the position after them,
        waiting up to `block` seconds for one when there is none yet."""
        wait = int(block * 1000) if block > 0 else None
        reply: Any = self.redis.xread(
            {self.keys.job_events(job_id): after}, count=count, block=wait
        )
        if not reply:
            return after, []
        entries = reply[0][1]
        indexes = [int(text(fields[b"i"])) for _, fields in entries]
        return text(entries[-1][0]), indexes

    def finished_between(self, job_id: str) -> tuple[float | None, float | None]:
        """When the job's first and latest prompts finished (from their stream ids)."""
        key = self.keys.job_events(job_id)
        first: Any = self.redis.xrange(key, count=1)
        last: Any = self.redis.xrevrange(key, count=1)

        def seconds(entries: Any) -> float | None:
            return int(text(entries[0][0]).split("-")[0]) / 1000 if entries else None

        return seconds(first), seconds(last)

    def forget_failures(self, job_id: str, kind: ErrorKind, most: int = 10_000) -> list[int]:
        """Delete the results of prompts that failed with `kind` (to run them again)."""
        indexes = self._scripts["unfinish"](
            keys=[self.keys.job_counts(job_id)],
            args=[self.keys.tag, job_id, kind.value, f"{META}{job_id}-", most],
        )
        return [int(text(i)) for i in indexes]

    def set_budget(self, job_id: str, budget: float) -> None:
        key = self.keys.job_counts(job_id)
        self.redis.hset(key, "budget", repr(float(budget)))
        self.redis.expire(key, self.ttl)

    def reserve(self, job_id: str, estimate: float) -> bool:
        """Set `estimate` aside from the job's budget before a call; False if it does not fit."""
        return bool(
            self._scripts["reserve"](
                keys=[self.keys.job_counts(job_id)], args=[self.keys.tag, job_id, repr(estimate)]
            )
        )

    def settle(self, job_id: str, estimate: float, cost: float) -> None:
        """Replace a call's reservation with what it cost."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrbyfloat(self.keys.job_counts(job_id), "reserved", -estimate)
        pipe.hincrbyfloat(self.keys.job_counts(job_id), "cost", cost)
        pipe.execute()

    def delete(self, job_id: str, total: int) -> None:
        keys = self.keys
        names = [keys.job_counts(job_id), keys.job_events(job_id), keys.job_metrics(job_id),
                 keys.job_answers(job_id)]  # fmt: skip
        names += [keys.job_failed(job_id, kind.value) for kind in ErrorKind]
        pipe = self.redis.pipeline(transaction=False)
        answered = [keys.answer(text(d)) for d in self.redis.sscan_iter(keys.job_answers(job_id))]
        for start in range(0, len(answered), 1000):
            pipe.delete(*answered[start : start + 1000])
        pipe.delete(*names)
        for start in range(0, total, 1000):
            pipe.delete(
                *(meta_key(f"{job_id}-{i}") for i in range(start, min(total, start + 1000)))
            )
        pipe.execute()
