"""What the pool knows of one key, as operators see it: the seed's states and counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from gemini_tasks.limits import Limits

# A minute, plus a margin for the time between leasing a key and Gemini counting the call.
WINDOW = 61.0


class KeyStatus(str, Enum):
    AVAILABLE = "AVAILABLE"
    COOLDOWN = "COOLDOWN"
    TEMPORARILY_EXHAUSTED = "TEMPORARILY_EXHAUSTED"
    FULLY_EXHAUSTED = "FULLY_EXHAUSTED"
    FAILED_INIT = "FAILED_INIT"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class KeyState:
    """One key's state for one model, read at one instant of the Redis clock."""

    key_id: str
    label: str
    project: str
    status: KeyStatus
    seconds_left: float
    exhausted_count: int
    failed_reason: str | None
    in_flight: int
    requests: int
    successes: int
    failures: int
    quota_errors: int
    invalid_requests: int
    tokens: int
    project_requests_last_minute: int
    project_tokens_last_minute: int
    project_requests_today: int
    # The limits the pool paces the project by: configured, else learned from Gemini's 429s.
    limits: Limits
    # Why the key is FAILED_INIT, or why its project is exhausted.
    reason: str | None = None

    def seed_view(self) -> dict[str, Any]:
        """The seed's dict form (`status`, `exhausted_count`, ...), for
        `get_keys_status_summary()`."""
        view = asdict(self)
        del view["key_id"]
        view["status"] = self.status.value
        return view


@dataclass(frozen=True)
class ModelState:
    """What holds every key of a model: an open circuit (an outage) or a capacity backoff."""

    model: str
    outage_seconds_left: float
    capacity_seconds_left: float
    recent_failures: int  # of the model's last calls, how many failed on Gemini's side


@dataclass(frozen=True)
class PoolStatus:
    model: ModelState
    keys: list[KeyState]

    @property
    def usable(self) -> int:
        blocked = self.model.outage_seconds_left or self.model.capacity_seconds_left
        return 0 if blocked else sum(k.status is KeyStatus.AVAILABLE for k in self.keys)

    def seconds_until_usable(self) -> float:
        """0 if a key is usable now; infinite if every key has failed."""
        if self.usable:
            return 0.0
        waits = [k.seconds_left for k in self.keys if k.status is not KeyStatus.FAILED_INIT]
        if not waits:
            return float("inf")
        return max(min(waits), self.model.outage_seconds_left, self.model.capacity_seconds_left)


def _number(mapping: dict[str, Any], name: str) -> float:
    return float(mapping.get(name) or 0)


def pool_status(raw: dict[str, Any], model: str) -> PoolStatus:
    """The pool's state from what `lua/status.lua` read."""
    now = raw["now"]
    state = raw["model"] if isinstance(raw["model"], dict) else {}
    open_until = _number(state, "open_until")
    model_state = ModelState(
        model=model,
        outage_seconds_left=round(max(0.0, open_until - now), 3) if open_until else 0.0,
        capacity_seconds_left=round(max(0.0, _number(state, "backoff_until") - now), 3),
        recent_failures=str(state.get("history") or "").count("F"),
    )
    keys = [key_state(k, entry, now) for k, entry in sorted(raw["keys"].items())]
    return PoolStatus(model_state, keys)


def key_state(key_id: str, entry: dict[str, Any], now: float) -> KeyState:
    """The state of `key_id` from what `lua/status.lua` read for it."""
    key, state, project = entry["key"], entry["state"], entry["project"]
    limits = Limits(**{k: int(v) for k, v in entry["limits"].items()})
    exhausted_until = _number(project, "exhausted_until")
    paced_until = _number(state, "cooldown_until")
    if limits.rpm and entry["window_requests"] >= limits.rpm and entry["window_oldest"]:
        paced_until = max(paced_until, entry["window_oldest"] + WINDOW)
    until: float | None
    if key.get("failed_reason"):
        status, until = KeyStatus.FAILED_INIT, None
    elif exhausted_until > now:
        full = project.get("exhausted_kind") in ("full", "daily", "unavailable")
        status = KeyStatus.FULLY_EXHAUSTED if full else KeyStatus.TEMPORARILY_EXHAUSTED
        until = exhausted_until
    elif paced_until > now:
        status, until = KeyStatus.COOLDOWN, paced_until
    else:
        status, until = KeyStatus.AVAILABLE, None
    return KeyState(
        key_id=key_id,
        label=entry["registry"]["label"],
        project=entry["registry"]["project"],
        status=status,
        seconds_left=round(until - now, 3) if until else 0.0,
        exhausted_count=int(_number(project, "exhausted_count")),
        failed_reason=key.get("failed_reason"),
        in_flight=max(0, int(_number(state, "in_flight"))),
        requests=int(_number(state, "requests")),
        successes=int(_number(state, "successes")),
        failures=int(_number(state, "failures")),
        quota_errors=int(_number(state, "quota_errors")),
        invalid_requests=int(_number(state, "invalid_requests")),
        tokens=int(_number(state, "tokens")),
        project_requests_last_minute=entry["window_requests"],
        project_tokens_last_minute=entry["window_tokens"],
        project_requests_today=entry["day_requests"],
        limits=limits,
        reason=key.get("failed_reason")
        or (project.get("reason") if exhausted_until > now else None)
        or None,
    )
