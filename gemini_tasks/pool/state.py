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

    def seed_view(self) -> dict[str, Any]:
        """The seed's dict form (`status`, `exhausted_count`, ...), for
        `get_keys_status_summary()`."""
        view = asdict(self)
        del view["key_id"]
        view["status"] = self.status.value
        return view


def _number(mapping: dict[str, Any], name: str) -> float:
    return float(mapping.get(name) or 0)


def key_state(key_id: str, entry: dict[str, Any], now: float, limits: Limits) -> KeyState:
    """The state of `key_id` from what `lua/status.lua` read for it."""
    key, state, project = entry["key"], entry["state"], entry["project"]
    exhausted_until = _number(project, "exhausted_until")
    paced_until = _number(state, "cooldown_until")
    if limits.rpm and entry["window_requests"] >= limits.rpm and entry["window_oldest"]:
        paced_until = max(paced_until, entry["window_oldest"] + WINDOW)
    until: float | None
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
    )
