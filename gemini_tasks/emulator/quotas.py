"""The emulator's quota accounting: requests and tokens per minute, requests per day.

Quotas belong to a project and a model, as Gemini's do, and read the same `LimitTable` the
key pool paces by. Minute quotas use a sliding 60-second window, so no window of 60 seconds
ever admits more than the limit; the daily quota resets at midnight in America/Los_Angeles
(ai.google.dev/gemini-api/docs/rate-limits). A request over several quotas at once is told
of all of them, with the quota ids of the project's tier (free or paid); a model with no
quota on that tier answers with a violation of limit 0.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gemini_tasks.emulator.payloads import Violation
from gemini_tasks.limits import Limits, LimitTable, next_daily_reset

WINDOW = 60.0
_METRIC = "generativelanguage.googleapis.com/"
# Quota ids and metrics by tier, as Gemini's 429s name them.
_IDS = {
    "free": {
        "rpd": ("GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                "generate_content_free_tier_requests"),
        "rpm": ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                "generate_content_free_tier_requests"),
        "tpm": ("GenerateContentInputTokensPerModelPerMinute-FreeTier",
                "generate_content_free_tier_input_token_count"),
    },
    "paid": {
        "rpd": ("GenerateRequestsPerDayPerProjectPerModel", "generate_requests_per_model_per_day"),
        "rpm": ("GenerateRequestsPerMinutePerProjectPerModel", "generate_requests_per_model"),
        "tpm": ("GenerateContentPaidTierInputTokensPerModelPerMinute",
                "generate_content_paid_tier_input_token_count"),
    },
}  # fmt: skip


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

    def token_wait(self, tokens: int, limit: int, now: float) -> float | None:
        """Seconds until `tokens` more fit under `limit`; None if they fit now."""
        used = sum(n for _, n in self.tokens)
        if used + tokens <= limit:
            return None
        wait, freed = 0.0, 0
        for stamp, n in self.tokens:
            freed += n
            wait = stamp + WINDOW - now
            if used - freed + tokens <= limit:
                break
        return wait


class QuotaBook:
    """Admits or refuses each request against its project's limits for its model."""

    def __init__(self, limits: LimitTable):
        self.limits = limits
        self.tiers: dict[str, str] = {}
        # Models (or "project/model") with no quota at all on the project's tier.
        self.zero_quota: set[str] = set()
        self._usage: dict[tuple[str, str], _Usage] = {}

    def _violation(self, kind: str, project: str, model: str, limit: int, wait: float) -> Violation:
        quota_id, metric = _IDS[self.tiers.get(project, "free")][kind]
        return Violation(quota_id, _METRIC + metric, model, limit, wait)

    def admit(self, project: str, model: str, tokens: int, now: float) -> list[Violation]:
        """Count the request and return [], or return every quota it would break."""
        if model in self.zero_quota or f"{project}/{model}" in self.zero_quota:
            # Waiting does not help, yet Gemini still names a delay.
            return [self._violation("rpd", project, model, 0, 45.0)]
        limits: Limits = self.limits.for_(project, model)
        usage = self._usage.setdefault((project, model), _Usage())
        usage.expire(now)
        violations = []
        if limits.rpd and usage.day_requests >= limits.rpd:
            wait = usage.day_reset - now
            violations.append(self._violation("rpd", project, model, limits.rpd, wait))
        if limits.rpm and len(usage.requests) >= limits.rpm:
            wait = usage.requests[0] + WINDOW - now
            violations.append(self._violation("rpm", project, model, limits.rpm, wait))
        token_wait = usage.token_wait(tokens, limits.tpm, now) if limits.tpm else None
        if token_wait is not None:
            violations.append(self._violation("tpm", project, model, limits.tpm, token_wait))
        if not violations:
            usage.requests.append(now)
            usage.tokens.append((now, tokens))
            usage.day_requests += 1
        return violations

    def reset(self) -> None:
        self._usage.clear()
