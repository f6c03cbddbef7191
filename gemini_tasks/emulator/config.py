"""What the emulator knows and plays: its keys and their projects, quotas and tiers,
revoked keys, fault rules and latency. Set at start, and changed while it runs through
`POST /_emulator/config` (tests change it between scenarios) or a scenario file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemini_tasks.emulator.files import PROJECT_STORAGE_BYTES
from gemini_tasks.emulator.payloads import REVOCATIONS
from gemini_tasks.emulator.rules import Rule, parse_rule
from gemini_tasks.limits import Limits, LimitTable


@dataclass
class EmulatorConfig:
    keys: dict[str, str] = field(default_factory=dict)  # secret -> project
    # For dry runs: every key is accepted, each in a project of its own.
    any_key: bool = False
    limits: LimitTable = field(default_factory=lambda: LimitTable(None))
    tiers: dict[str, str] = field(default_factory=dict)  # project -> "free" | "paid"
    zero_quota: set[str] = field(default_factory=set)  # "model" or "project/model"
    revoked: dict[str, str] = field(default_factory=dict)  # secret or key id -> reason
    rules: list[Rule] = field(default_factory=list)
    latency: float = 0.0
    latency_jitter: float = 0.0
    seed: int | None = None
    # Thinking tokens each answer reports, as a thinking model's do (0: none).
    thoughts_tokens: int = 0
    # Gemini's documented limit on a request's size, inline media included.
    request_limit_bytes: int = 20 * 1024 * 1024
    file_ttl_seconds: float = 48 * 3600
    video_processing_seconds: float = 1.0
    # The Files API's storage per project (ai.google.dev/gemini-api/docs/files): 20 GB.
    storage_bytes: int = PROJECT_STORAGE_BYTES
    # Hold the answer to every finished upload, the file stored, until released.
    hold_uploads: bool = False
    # Batch Mode (see emulator/batches.py): how long a batch takes (Gemini's target is 24
    # hours), when an unfinished one expires, whether batches end FAILED, how many
    # unfinished batches a project may have, and how many input tokens its unfinished
    # batches of one model may hold (Tier 1's for gemini-2.5-flash,
    # ai.google.dev/gemini-api/docs/rate-limits).
    batch_seconds: float = 1.0
    batch_expire_seconds: float = 48 * 3600
    batch_fails: bool = False
    batch_concurrent: int = 100
    batch_tokens: int = 3_000_000
    # Context caching (see emulator/caches.py): the fewest tokens a cache may hold; None for
    # each model's own minimum (caches.min_tokens), a number for every model (tests lower it).
    cache_min_tokens: int | None = None


def _limits(raw: dict[str, Any]) -> Limits:
    return Limits(**{k: int(v) for k, v in raw.items()})


def limit_table(update: dict[str, Any], current: LimitTable) -> LimitTable:
    """`current` with the limit sections `update` names replaced."""
    per_project_model = current.per_project_model
    if "project_model_limits" in update:
        per_project_model = {}
        for target, raw in update["project_model_limits"].items():
            project, _, model = target.partition("/")
            per_project_model[(project, model)] = _limits(raw)
    return LimitTable(
        None,
        _limits(update["limits"]) if "limits" in update else current.default,
        (
            {m: _limits(v) for m, v in update["model_limits"].items()}
            if "model_limits" in update
            else current.per_model
        ),
        (
            {p: _limits(v) for p, v in update["project_limits"].items()}
            if "project_limits" in update
            else current.per_project
        ),
        per_project_model,
    )


_SCALARS = {
    "latency": float, "latency_jitter": float, "thoughts_tokens": int,
    "request_limit_bytes": int, "video_processing_seconds": float, "storage_bytes": int,
    "batch_seconds": float, "batch_expire_seconds": float, "batch_fails": bool,
    "batch_concurrent": int, "batch_tokens": int, "hold_uploads": bool,
}  # fmt: skip


def apply(config: EmulatorConfig, update: dict[str, Any]) -> None:
    """Change `config` as `update` says (its JSON form); ValueError names what is wrong."""
    if "keys" in update:
        config.keys.update({str(k): str(v) for k, v in update["keys"].items()})
    if "revoked" in update:
        revoked = {str(k): str(v) for k, v in update["revoked"].items()}
        if set(revoked.values()) - set(REVOCATIONS):
            raise ValueError(f"revoked: reasons must be among {', '.join(REVOCATIONS)}")
        config.revoked = revoked
    if "tiers" in update:
        config.tiers = {str(p): str(t) for p, t in update["tiers"].items()}
    if "zero_quota" in update:
        config.zero_quota = {str(m) for m in update["zero_quota"]}
    if "rules" in update:
        config.rules = [parse_rule(raw, i) for i, raw in enumerate(update["rules"])]
    if "cache_min_tokens" in update:
        raw = update["cache_min_tokens"]
        config.cache_min_tokens = None if raw is None else int(raw)
    config.limits = limit_table(update, config.limits)
    for name, kind in _SCALARS.items():
        if name in update:
            setattr(config, name, kind(update[name]))


def load_scenario(path: Path, config: EmulatorConfig) -> None:
    """Apply a scenario file: the same JSON object `POST /_emulator/config` takes."""
    apply(config, json.loads(path.read_text()))
