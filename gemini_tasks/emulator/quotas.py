"""The emulator's quota accounting: requests and tokens per minute, requests per day.

Quotas belong to a project and a model, as Gemini's do. Minute quotas use a sliding
60-second window, so no window of 60 seconds ever admits more than the limit; the daily
quota resets at midnight in America/Los_Angeles, as Gemini's does.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gemini_tasks.limits import Limits, next_daily_reset

WINDOW = 60.0


@dataclass(frozen=True)
class Violation:
    quota_id: str
    metric: str
    limit: int
    retry_seconds: float


@dataclass
class _Usage:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    day_reset: float = 0.0
    day_requests: int = 0

    def expire(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW:
            self.tokens.popleft()
        if now >= self.day_reset:
            self.day_reset, self.day_requests = next_daily_reset(now), 0


class QuotaBook:
    """Admits or refuses each request against its project's limits for its model."""

    def __init__(
        self,
        default: Limits,
        per_model: dict[str, Limits] | None = None,
        per_project: dict[str, Limits] | None = None,
    ):
        self.default = default
        self.per_model = per_model or {}
        self.per_project = per_project or {}
        self._usage: dict[tuple[str, str], _Usage] = {}

    def limits_for(self, project: str, model: str) -> Limits:
        if project in self.per_project:
            return self.per_project[project]
        return self.per_model.get(model, self.default)

    def admit(self, project: str, model: str, tokens: int, now: float) -> Violation | None:
        """Count the request and return None, or return the quota it would break."""
        limits = self.limits_for(project, model)
        usage = self._usage.setdefault((project, model), _Usage())
        usage.expire(now)
        if limits.rpd and usage.day_requests >= limits.rpd:
            return Violation(
                "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                limits.rpd,
                usage.day_reset - now,
            )
        if limits.rpm and len(usage.requests) >= limits.rpm:
            return Violation(
                "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                limits.rpm,
                usage.requests[0] + WINDOW - now,
            )
        if limits.tpm:
            used = sum(n for _, n in usage.tokens)
            if used + tokens > limits.tpm:
                # Wait until enough old tokens leave the window for this request to fit.
                wait, freed = 0.0, 0
                for stamp, n in usage.tokens:
                    freed += n
                    wait = stamp + WINDOW - now
                    if used - freed + tokens <= limits.tpm:
                        break
                return Violation(
                    "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                    "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                    limits.tpm,
                    wait,
                )
        usage.requests.append(now)
        usage.tokens.append((now, tokens))
        usage.day_requests += 1
        return None

    def reset(self) -> None:
        self._usage.clear()
