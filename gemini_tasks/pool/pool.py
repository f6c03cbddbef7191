"""`KeyPool`: a process's handle on the cluster-wide key pool.

Each change is one atomic script (`lua/*.lua`), timed by the Redis server's clock, so all
workers on all machines agree at once that a key is cooling down, exhausted or invalid.
Redis never holds a secret: keys are known there by `ApiKey.id`, and a worker offers the
scripts only the keys it holds, so it never leases a key it lacks.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass

import redis

from gemini_tasks.errors import GeminiCallError, KeyInvalid, QuotaExceeded
from gemini_tasks.keys import ApiKey
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.limits import LimitTable, daily_resets
from gemini_tasks.pool import scripts
from gemini_tasks.pool.state import WINDOW, KeyState, key_state
from gemini_tasks.settings import Settings

# How soon to ask again while the only usable keys are unproven ones with a call in flight.
PROBE_WAIT = 0.2


@dataclass(frozen=True)
class PoolConfig:
    cooldown: float
    exhausted_wait: float
    fully_exhausted_wait: float
    max_exhausted_retries: int
    limits: LimitTable
    lease_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolConfig:
        return cls(
            cooldown=settings.key_cooldown_seconds,
            exhausted_wait=settings.exhausted_wait_seconds,
            fully_exhausted_wait=settings.fully_exhausted_wait_seconds,
            max_exhausted_retries=settings.max_exhausted_retries,
            limits=settings.limits,
            # A lease covers one call; past this its holder is taken for dead.
            lease_seconds=settings.request_timeout + 30,
        )


@dataclass(frozen=True)
class Lease:
    id: str
    key: ApiKey
    model: str
    acquired_at: float


@dataclass(frozen=True)
class NoKeyYet:
    """No key is usable now; one will be in `seconds` (infinite: every key has failed)."""

    seconds: float


class KeyPool:
    """A worker's (or an operator's) handle on the shared pool; `keys` may be empty."""

    def __init__(
        self, client: redis.Redis, keys: list[ApiKey], config: PoolConfig, keyspace: Keyspace
    ):
        self.redis = client
        self.keys = {key.id: key for key in keys}
        self.config = config
        self.keyspace = keyspace
        self._scripts = scripts.register(client)

    @property
    def key_list(self) -> list[ApiKey]:
        return list(self.keys.values())

    def register(self) -> None:
        """Announce this worker's keys (ids, labels and projects; never secrets)."""
        if self.keys:
            self.redis.hset(
                self.keyspace.key_registry(),
                mapping={
                    key.id: json.dumps({"label": key.label, "project": key.project})
                    for key in self.keys.values()
                },
            )

    def acquire(self, model: str, tokens: int = 1) -> Lease | NoKeyYet:
        """Lease the least recently used usable key, or learn how long until one is usable."""
        lease_id = uuid.uuid4().hex
        args: list[str | int | float] = [
            self.keyspace.tag,
            model,
            lease_id,
            self.config.lease_seconds,
            self.config.cooldown,
            tokens,
            WINDOW,
            daily_resets(time.time()),
            PROBE_WAIT,
        ]
        for key in self.keys.values():
            limits = self.config.limits.for_(key.project, model)
            args += [key.id, key.project, limits.rpm, limits.tpm, limits.rpd]
        reply = self._scripts["acquire"](keys=[self.keyspace.leases()], args=args)
        verdict = reply[0].decode()
        if verdict == "ok":
            return Lease(lease_id, self.keys[reply[1].decode()], model, float(reply[2]))
        if verdict == "wait":
            return NoKeyYet(float(reply[1]))
        return NoKeyYet(math.inf)

    def release(
        self, lease: Lease, error: GeminiCallError | None = None, tokens_used: int = 0
    ) -> int:
        """End `lease`, recording the call's outcome; returns the project's exhaustion count."""
        retry_delay, scope, reason = 0.0, "", ""
        if isinstance(error, QuotaExceeded):
            retry_delay = error.retry_delay or 0.0
            if error.quota_id:
                scope = "day" if error.is_daily else "minute"
        if isinstance(error, KeyInvalid):
            reason = str(error)
        return int(
            self._scripts["release"](
                keys=[self.keyspace.leases()],
                args=[
                    self.keyspace.tag,
                    lease.id,
                    lease.key.id,
                    lease.key.project,
                    lease.model,
                    lease.acquired_at,
                    "success" if error is None else error.kind.value,
                    tokens_used,
                    retry_delay,
                    scope,
                    self.config.exhausted_wait,
                    self.config.fully_exhausted_wait,
                    self.config.max_exhausted_retries,
                    daily_resets(time.time()),
                    reason,
                ],
            )
        )

    def reset(self, key_id: str) -> bool:
        """Return a key to AVAILABLE; False if no worker ever registered it."""
        registry = self.keyspace.key_registry()
        entry = self.redis.hget(registry, key_id)
        if entry is None:
            return False
        project = json.loads(entry)["project"]
        return bool(
            self._scripts["reset"](keys=[registry], args=[self.keyspace.tag, key_id, project])
        )

    def status(self, model: str) -> list[KeyState]:
        """Every registered key's state for `model`, by key id."""
        raw = json.loads(
            self._scripts["status"](
                keys=[self.keyspace.key_registry()],
                args=[self.keyspace.tag, model, WINDOW, daily_resets(time.time())],
            )
        )
        now = raw["now"]
        return [
            key_state(
                key_id, entry, now, self.config.limits.for_(entry["registry"]["project"], model)
            )
            for key_id, entry in sorted(raw["keys"].items())
        ]
