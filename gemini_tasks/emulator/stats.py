"""What the emulator saw: calls by outcome, key and minute, and every call if asked.

Context caching adds outcomes `cache_create`, `cache_update` and `cache_delete` (a cache
made, its expiry changed, deleted), `cache_too_small` (a create refused under the minimum)
and `cache_missing` (any request naming a cache that is gone or another project's: 403);
other refusals of the cache endpoints count under their usual outcome ("400", "404", ...).
`cache_uses` counts, by project, the calls that named a live cache they were allowed to
use (whatever became of them after), `caches` the live caches by project, and
`cached_contents` describes each live cache.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    by_outcome: Counter[str] = field(default_factory=Counter)
    by_key: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_minute: defaultdict[int, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    calls: list[dict[str, Any]] = field(default_factory=list)
    uploads: Counter[str] = field(default_factory=Counter)
    cache_uses: Counter[str] = field(default_factory=Counter)  # project -> calls
    in_flight: int = 0
    max_in_flight: int = 0
    held: int = 0  # calls waiting for `POST /_emulator/release`

    def started(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def record(
        self,
        outcome: str,
        key: str | None,
        project: str | None,
        model: str,
        digest: str | None,
        started: float,
        attempt: int = 0,
        tier: str | None = None,
        cache: str | None = None,
    ) -> None:
        now = time.time()
        if cache is not None:
            self.cache_uses[project or "none"] += 1
        self.by_outcome[outcome] += 1
        self.by_key[key or "none"][outcome] += 1
        self.by_minute[int(now // 60)][outcome] += 1
        self.calls.append(
            {
                "t": now,
                "started": started,
                "key_id": key,
                "project": project,
                "model": model,
                "outcome": outcome,
                "request_sha256": digest,
                "attempt": attempt,
                "tier": tier,
                "cached_content": cache,
            }
        )

    def to_json(self, with_calls: bool, files: int, caches: list[dict[str, Any]]) -> dict[str, Any]:
        """The statistics; `caches` are the live caches' summaries."""
        by_project = Counter(str(c["project"]) for c in caches)
        out: dict[str, Any] = {
            "total": sum(self.by_outcome.values()),
            "by_outcome": dict(self.by_outcome),
            "by_key": {k: dict(v) for k, v in self.by_key.items()},
            "by_minute": {str(m): dict(c) for m, c in sorted(self.by_minute.items())},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "held": self.held,
            "uploads": dict(self.uploads),
            "files": files,
            "caches": dict(by_project),
            "cached_contents": caches,
            "cache_uses": dict(self.cache_uses),
        }
        if with_calls:
            out["calls"] = self.calls
        return out
