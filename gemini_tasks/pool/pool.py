"""`KeyPool`: a process's handle on the cluster-wide key pool.

Each change is one atomic script (`lua/*.lua`), timed by the Redis server's clock, so all
workers on all machines agree at once that a key is cooling down, exhausted or invalid, or
that a model is overloaded. Redis never holds a secret: keys are known there by
`ApiKey.id`. A worker registers its keys once, as a key set, with the pool's settings and
its configured limits; from then on it names the set, and leases only keys it holds.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from gemini_tasks.errors import (
    CapacityExhausted,
    GeminiCallError,
    KeyInvalid,
    QuotaExceeded,
)
from gemini_tasks.keys import ApiKey
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.limits import Limits, LimitTable, daily_resets
from gemini_tasks.pool import scripts
from gemini_tasks.pool.state import WINDOW, PoolStatus, pool_status
from gemini_tasks.settings import Settings


@dataclass(frozen=True)
class PoolConfig:
    cooldown: float
    exhausted_wait: float
    fully_exhausted_wait: float
    max_exhausted_retries: int
    limits: LimitTable
    # A lease covers one call; past this its holder is taken for dead.
    lease_seconds: float
    # How soon to ask again while the only usable keys are unproven ones with a call in flight.
    probe_wait: float = 0.2
    # A model's circuit opens when `circuit_ratio` of its last `circuit_window` calls across
    # the cluster failed on Gemini's side, and stays open `circuit_base` seconds, doubling on
    # each failed probe up to `circuit_max`.
    circuit_window: int = 20
    circuit_ratio: float = 1.0
    circuit_base: float = 1.0
    circuit_max: float = 30.0
    # A capacity 429 holds the model for `capacity_base` seconds, doubling up to the max.
    capacity_base: float = 1.0
    capacity_max: float = 30.0
    # No Retry-After longer than this is believed (one has been seen at 2**63 seconds).
    max_retry_delay: float = 86400.0
    window: float = field(default=WINDOW)
    # A prompt that waits for a key at most `line_hold` seconds waits in line for it (see
    # lua/acquire.lua); one that has not asked again `line_grace` seconds after it was due
    # loses its place.
    line_hold: float = 5.0
    line_grace: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolConfig:
        return cls(
            cooldown=settings.key_cooldown_seconds,
            exhausted_wait=settings.exhausted_wait_seconds,
            fully_exhausted_wait=settings.fully_exhausted_wait_seconds,
            max_exhausted_retries=settings.max_exhausted_retries,
            limits=settings.limits,
            lease_seconds=settings.request_timeout + 30,
            line_hold=settings.short_key_wait,
        )

    def script_settings(self) -> dict[str, float]:
        return {
            "cooldown": self.cooldown,
            "exhausted_wait": self.exhausted_wait,
            "fully_exhausted_wait": self.fully_exhausted_wait,
            "max_exhausted_retries": self.max_exhausted_retries,
            "lease_seconds": self.lease_seconds,
            "probe_wait": self.probe_wait,
            "circuit_window": self.circuit_window,
            "circuit_ratio": self.circuit_ratio,
            "circuit_base": self.circuit_base,
            "circuit_max": self.circuit_max,
            "capacity_base": self.capacity_base,
            "capacity_max": self.capacity_max,
            "max_retry_delay": self.max_retry_delay,
            "window": self.window,
            "line_hold": self.line_hold,
            "line_grace": self.line_grace,
        }


def _spec(limits: Limits) -> str:
    return f"{limits.rpm} {limits.tpm} {limits.rpd}"


def limit_fields(table: LimitTable) -> dict[str, str]:
    """A limit table as the scripts read it: `pm:<project>:<model>`, `p:<project>`,
    `m:<model>` and `default` (for `default_model`, when set) -> "rpm tpm rpd"."""
    fields = {f"pm:{p}:{m}": _spec(v) for (p, m), v in table.per_project_model.items()}
    fields |= {f"p:{p}": _spec(v) for p, v in table.per_project.items()}
    fields |= {f"m:{m}": _spec(v) for m, v in table.per_model.items()}
    fields["default"] = _spec(table.default)
    if table.default_model is not None:
        fields["default_model"] = table.default_model
    return fields


def keyset_id(keys: list[ApiKey]) -> str:
    """The id of a set of keys: workers that hold the same keys share one ready index."""
    return hashlib.sha256(",".join(sorted(k.id for k in keys)).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Lease:
    id: str
    key: ApiKey
    model: str
    acquired_at: float


@dataclass(frozen=True)
class NoKeyYet:
    """No key is usable now; one will be in `seconds` (infinite: every key has failed).
    `reason` says what holds them: "keys" (cooldowns, quotas, probes), "capacity" (Gemini
    short of capacity) or "outage" (the model's circuit is open)."""

    seconds: float
    reason: str = "keys"


@dataclass(frozen=True)
class Released:
    exhausted_count: int  # the project's exhaustions in a row for the model
    outage: bool  # the model's circuit is open: Gemini is failing for everyone


def _report(error: GeminiCallError | None) -> list[str | float]:
    """outcome, retry delay, quota scope, learned limits and reason, as release.lua takes."""
    if error is None:
        return ["success", 0, "", "", ""]
    retry, quota, learned, reason = 0.0, "", "", ""
    if isinstance(error, QuotaExceeded):
        retry = error.retry_delay or 0.0
        quota = "zero" if error.is_zero else "day" if error.is_daily else "minute"
        found = error.learned
        learned = " ".join(str(found.get(m, 0)) for m in ("rpm", "tpm", "rpd"))
        reason = str(error)
    elif isinstance(error, CapacityExhausted):
        retry = error.retry_delay or 0.0
    elif isinstance(error, KeyInvalid):
        reason = str(error)
    return [error.kind.value, retry, quota, learned, reason]


class KeyPool:
    """A worker's (or an operator's) handle on the shared pool; `keys` may be empty. A
    worker's pool names it its `holder`, so that when it dies its leases are given back at
    once (`forfeit`)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: list[ApiKey],
        config: PoolConfig,
        keyspace: Keyspace,
        holder: str = "",
    ):
        self.redis, self.holder = client, holder
        self.keys = {key.id: key for key in keys}
        self.config = config
        self.keyspace = keyspace
        self.keyset = keyset_id(keys)
        self._scripts = scripts.register(client)

    @property
    def key_list(self) -> list[ApiKey]:
        return list(self.keys.values())

    def _run(self, name: str, *args: Any) -> Any:
        # KEYS[1] names the hash slot every pool key shares, so a Redis Cluster client
        # routes the script to it.
        keys = [self.keyspace.pool_config()]
        return self._scripts[name](keys=keys, args=[self.keyspace.tag, *args])

    def register(self) -> None:
        """Announce this worker's keys (ids, labels and projects; never secrets), the pool's
        settings and the configured limits."""
        flat: list[str] = []
        for key in self.keys.values():
            flat += [key.id, key.project, key.label]
        self._run(
            "register",
            self.keyset,
            json.dumps(self.config.script_settings()),
            json.dumps(limit_fields(self.config.limits)),
            *flat,
        )

    def acquire(self, model: str, tokens: int = 1, ticket: int | None = None) -> Lease | NoKeyYet:
        """Lease the least recently used usable key, or learn how long until one is usable.
        `ticket` is the prompt's place in line for keys (the scheduler's order of choosing
        prompts); without one, a caller goes behind every waiter."""
        lease_id = f"{self.holder}/{uuid.uuid4().hex}" if self.holder else uuid.uuid4().hex
        reply = self._run(
            "acquire", self.keyset, model, lease_id, tokens, daily_resets(time.time()),
            "" if ticket is None else ticket,
        )  # fmt: skip
        verdict = reply[0].decode()
        if verdict == "ok":
            return Lease(lease_id, self.keys[reply[1].decode()], model, float(reply[2]))
        if verdict == "wait":
            return NoKeyYet(float(reply[1]), reply[2].decode())
        return NoKeyYet(math.inf)

    def forfeit(self, holder: str) -> int:
        """Give back every lease `holder` (a worker taken for dead) holds; returns how many.
        Its own later release of one, if it was only frozen, changes nothing."""
        return int(self._run("forfeit", holder))

    def leave_line(self, model: str, ticket: int | None) -> None:
        """A prompt that waited in line for a key goes (parked, ended): the next goes first."""
        if ticket is None:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(self.keyspace.line(self.keyset, model), ticket)
        pipe.zrem(self.keyspace.line_due(self.keyset, model), ticket)
        pipe.execute()

    def release(
        self, lease: Lease, error: GeminiCallError | None = None, tokens_used: int = 0
    ) -> Released:
        """End `lease`, recording the call's outcome."""
        outcome, retry, quota, learned, reason = _report(error)
        count, circuit = self._run(
            "release",
            lease.id,
            outcome,
            tokens_used,
            retry,
            quota,
            learned,
            reason,
            daily_resets(time.time()),
        )
        return Released(int(count), circuit == b"open")

    def give_back(self, lease: Lease) -> None:
        """End a lease whose call was never sent."""
        self._run("release", lease.id, "unused", 0, 0, "", "", "", daily_resets(time.time()))

    def usable_models(self, horizon: float) -> list[str]:
        """The models this worker's keys can serve within `horizon` seconds."""
        return [m.decode() for m in self._run("usable", self.keyset, horizon)]

    def reset(self, key_id: str) -> bool:
        """Return a key to AVAILABLE; False if no worker ever registered it."""
        return bool(self._run("reset", key_id))

    def status(self, model: str) -> PoolStatus:
        """Every registered key's state for `model`, and the model's own."""
        raw = json.loads(self._run("status", model, daily_resets(time.time())))
        return pool_status(raw, model)
