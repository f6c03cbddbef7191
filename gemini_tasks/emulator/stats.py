"""What the emulator saw: calls by outcome, key and minute, and every call if asked."""

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
    ) -> None:
        now = time.time()
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
            }
        )

    def to_json(self, with_calls: bool, files: int) -> dict[str, Any]:
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
        }
        if with_calls:
            out["calls"] = self.calls
        return out
