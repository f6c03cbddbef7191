"""The result of one prompt, as a worker stores it and a producer reads it back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


def metadata_of(raw_record: Any) -> dict[str, Any]:
    """The record's metadata if it can be stored as JSON, else an empty dict."""
    metadata = raw_record.get("metadata") if isinstance(raw_record, dict) else None
    if not isinstance(metadata, dict):
        return {}
    try:
        json.dumps(metadata)
    except (TypeError, ValueError):
        return {}
    return metadata


@dataclass
class Result:
    """What became of one prompt; `error` is None exactly when the prompt succeeded.

    `error_kind` sorts failures: "invalid_prompt", "invalid_request", "key_invalid",
    "quota", "server", "no_content", "time_limit" or "lost".
    """

    index: int
    metadata: dict[str, Any] = field(default_factory=dict)
    response: str | None = None
    error: str | None = None
    error_kind: str | None = None
    model: str | None = None
    model_version: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    key_id: str | None = None
    worker: str | None = None
    attempts: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    task_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_tuple(self) -> tuple[dict[str, Any], str | None, str | None]:
        """The seed library's `(metadata, response, error)` form."""
        return self.metadata, self.response, self.error

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)
