"""The cluster-wide key pool: every API key's state in Redis, changed only by Lua scripts.

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
from enum import Enum
from pathlib import Path
from typing import Any

import redis

from gemini_tasks.connections import connect
from gemini_tasks.errors import GeminiCallError, KeyInvalid, QuotaExceeded
from gemini_tasks.keys import ApiKey
from gemini_tasks.limits import LimitTable, daily_resets
from gemini_tasks.settings import Settings, load, redis_prefix

# A minute, plus a margin for the time between leasing a key and Gemini counting the call.
WINDOW = 61.0
# How soon to ask again while the only usable keys are unproven ones with a call in flight.
PROBE_WAIT = 0.2
_LUA = Path(__file__).parent / "lua"
_PRELUDE = (_LUA / "prelude.lua").read_text()
_SCRIPTS = {
    name: _PRELUDE + (_LUA / f"{name}.lua").read_text()
    for name in ("acquire", "release", "reset", "status")
}


class KeyStatus(str, Enum):
    AVAILABLE = "AVAILABLE"
    COOLDOWN = "COOLDOWN"
    TEMPORARILY_EXHAUSTED = "TEMPORARILY_EXHAUSTED"
    FULLY_EXHAUSTED = "FULLY_EXHAUSTED"
    FAILED_INIT = "FAILED_INIT"


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


def _outcome(error: GeminiCallError | None) -> str:
    if error is None:
        return "success"
    return {
        "quota": "quota",
        "key_invalid": "key_invalid",
        "invalid_request": "invalid_request",
    }.get(error.kind, "server")


class KeyPool:
    """A worker's (or an operator's) handle on the shared pool; `keys` may be empty."""

    def __init__(self, client: redis.Redis, keys: list[ApiKey], config: PoolConfig, prefix: str):
        self.redis = client
        self.keys = {key.id: key for key in keys}
        self.config = config
        # One hash tag for every key, so the scripts also run on Redis Cluster.
        self.prefix = redis_prefix(prefix)
        self._scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}

    @property
    def key_list(self) -> list[ApiKey]:
        return list(self.keys.values())

    @property
    def _registry(self) -> str:
        return f"{self.prefix}:keys"

    @property
    def _leases(self) -> str:
        return f"{self.prefix}:leases"

    def register(self) -> None:
        """Announce this worker's keys (ids, labels and projects; never secrets)."""
        if self.keys:
            self.redis.hset(
                self._registry,
                mapping={
                    key.id: json.dumps({"label": key.label, "project": key.project})
                    for key in self.keys.values()
                },
            )

    def acquire(self, model: str, tokens: int = 1) -> Lease | NoKeyYet:
        """Lease the least recently used usable key, or learn how long until one is usable."""
        lease_id = uuid.uuid4().hex
        args: list[Any] = [
            self.prefix,
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
        reply = self._scripts["acquire"](keys=[self._leases], args=args)
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
                keys=[self._leases],
                args=[
                    self.prefix,
                    lease.id,
                    lease.key.id,
                    lease.key.project,
                    lease.model,
                    lease.acquired_at,
                    _outcome(error),
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
        entry = self.redis.hget(self._registry, key_id)
        if entry is None:
            return False
        project = json.loads(entry)["project"]
        return bool(
            self._scripts["reset"](keys=[self._registry], args=[self.prefix, key_id, project])
        )

    def status(self, model: str) -> dict[str, dict[str, Any]]:
        """Per key id: the seed's `status` and `exhausted_count`, seconds left, counters."""
        raw = json.loads(
            self._scripts["status"](
                keys=[self._registry], args=[self.prefix, model, WINDOW, daily_resets(time.time())]
            )
        )
        now = raw["now"]
        return {
            key_id: _summarise(
                entry, now, self.config.limits.for_(entry["registry"]["project"], model)
            )
            for key_id, entry in sorted(raw["keys"].items())
        }


def _number(mapping: dict[str, Any], name: str) -> float:
    return float(mapping.get(name) or 0)


def _summarise(entry: dict[str, Any], now: float, limits: Any) -> dict[str, Any]:
    key, state, project = entry["key"], entry["state"], entry["project"]
    exhausted_until = _number(project, "exhausted_until")
    paced_until = _number(state, "cooldown_until")
    if limits.rpm and entry["window_requests"] >= limits.rpm and entry["window_oldest"]:
        paced_until = max(paced_until, entry["window_oldest"] + WINDOW)
    if key.get("failed_reason"):
        status, until = KeyStatus.FAILED_INIT, None
    elif exhausted_until > now:
        full = project.get("exhausted_kind") in ("full", "daily")
        status = KeyStatus.FULLY_EXHAUSTED if full else KeyStatus.TEMPORARILY_EXHAUSTED
        until = exhausted_until
    elif paced_until > now:
        status, until = KeyStatus.COOLDOWN, paced_until
    else:
        status, until = KeyStatus.AVAILABLE, None
    return {
        "label": entry["registry"]["label"],
        "project": entry["registry"]["project"],
        "status": status.value,
        "seconds_left": round(until - now, 3) if until else 0.0,
        "exhausted_count": int(_number(project, "exhausted_count")),
        "failed_reason": key.get("failed_reason"),
        "in_flight": max(0, int(_number(state, "in_flight"))),
        "requests": int(_number(state, "requests")),
        "successes": int(_number(state, "successes")),
        "failures": int(_number(state, "failures")),
        "quota_errors": int(_number(state, "quota_errors")),
        "invalid_requests": int(_number(state, "invalid_requests")),
        "tokens": int(_number(state, "tokens")),
        "project_requests_last_minute": entry["window_requests"],
        "project_tokens_last_minute": entry["window_tokens"],
        "project_requests_today": entry["day_requests"],
    }


def operator_pool(settings: Settings | None = None) -> KeyPool:
    """A handle without keys, for status and reset from any machine."""
    settings = settings or load()
    return KeyPool(
        connect(settings.redis_url), [], PoolConfig.from_settings(settings), settings.key_prefix
    )


def get_keys_status_summary(model: str | None = None) -> dict[str, dict[str, Any]]:
    """The seed's status view of every key any worker registered, for `model`
    (default `GEMINI_TASKS_MODEL`): per key id its `status`, `seconds_left`,
    `exhausted_count` and counters."""
    settings = load()
    return operator_pool(settings).status(model or settings.model)
