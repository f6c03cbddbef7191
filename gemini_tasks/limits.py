"""Quota limits per project and model, and when Gemini's daily quotas reset.

Gemini's quotas belong to a Google Cloud project and a model: requests per minute (RPM),
input tokens per minute (TPM) and requests per day (RPD), the daily one resetting at
midnight in America/Los_Angeles. The key pool paces itself by these limits and the
emulator enforces them, so both read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


@dataclass(frozen=True)
class Limits:
    """0 means no limit."""

    rpm: int = 0
    tpm: int = 0
    rpd: int = 0


@dataclass(frozen=True)
class LimitTable:
    """The limits of each (project, model), most specific first: the project's own entry
    for the model, the project's entry for every model, the model's entry, then `default`
    (for `default_model` only, or for every model when `default_model` is None)."""

    default_model: str | None
    default: Limits = Limits()
    per_model: dict[str, Limits] = field(default_factory=dict)
    per_project: dict[str, Limits] = field(default_factory=dict)
    per_project_model: dict[tuple[str, str], Limits] = field(default_factory=dict)

    def for_(self, project: str, model: str) -> Limits:
        if (project, model) in self.per_project_model:
            return self.per_project_model[(project, model)]
        if project in self.per_project:
            return self.per_project[project]
        if model in self.per_model:
            return self.per_model[model]
        if self.default_model is None or model == self.default_model:
            return self.default
        return Limits()


def parse_limits(text: str) -> tuple[dict[str, Limits], dict[tuple[str, str], Limits]]:
    """Parse `[project/]model=rpm:N,tpm:N,rpd:N; ...` into per-model and per-project tables.

    Raises ValueError with the offending entry.
    """
    per_model: dict[str, Limits] = {}
    per_project: dict[tuple[str, str], Limits] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        target, sep, spec = entry.partition("=")
        if not sep or not target.strip():
            raise ValueError(f"entry {entry!r} must look like [project/]model=rpm:N,tpm:N,rpd:N")
        values: dict[str, int] = {}
        for item in filter(None, (i.strip() for i in spec.split(","))):
            name, _, number = item.partition(":")
            if name not in ("rpm", "tpm", "rpd") or not number.isdigit():
                raise ValueError(f"entry {entry!r}: {item!r} must be rpm:N, tpm:N or rpd:N")
            values[name] = int(number)
        project, _, model = target.strip().rpartition("/")
        if project:
            per_project[(project, model)] = Limits(**values)
        else:
            per_model[model] = Limits(**values)
    return per_model, per_project


def next_daily_reset(now: float) -> float:
    """Epoch seconds of the first midnight in America/Los_Angeles after `now`."""
    local = datetime.fromtimestamp(now, PACIFIC)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), PACIFIC)
    return midnight.timestamp()


def daily_resets(now: float) -> str:
    """The Pacific midnights around `now`, comma-separated, for the Lua scripts.

    Lua has no time zones, so the caller names the instants and Redis' own clock picks the
    first one still ahead: a worker whose clock is off by up to a day still agrees.
    """
    # Every pool script names them: worked out once an hour, not on every call. Midnight in
    # Los Angeles is always on the hour, so they are the same for a whole hour.
    return _daily_resets_of_hour(int(now // 3600))


@lru_cache(maxsize=4)
def _daily_resets_of_hour(hour: int) -> str:
    first = next_daily_reset(hour * 3600 - 2 * 86400)
    resets = [first]
    while len(resets) < 5:
        resets.append(next_daily_reset(resets[-1] + 1))
    return ",".join(f"{r:.0f}" for r in resets)
