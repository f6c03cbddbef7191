"""The prompt record: one JSON object per prompt, as producers submit it and tasks receive it.

The fields are the seed library's (`prompt`, `metadata`, `generation_config`) plus
per-prompt `model` and `system_instruction` overrides. `parse_record` checks a record
before it is queued and again on the worker, so a bad record fails alone and clearly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pydantic
from google.genai import types

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.media import MEDIA_FIELDS, MediaSource, media_sources
from gemini_tasks.media_store import MediaRef

TEXT_FIELDS = ("prompt", "metadata", "generation_config", "model", "system_instruction")
# `media` is the staged form of the media fields, as tasks receive it.
FIELDS = (*TEXT_FIELDS, *MEDIA_FIELDS, "media")


@dataclass(frozen=True)
class PromptRecord:
    prompt: str
    metadata: dict[str, Any] = field(default_factory=dict)
    generation_config: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    system_instruction: str | None = None
    # As the record names it (MediaSource) until the producer stages it (MediaRef).
    media: tuple[MediaSource | MediaRef, ...] = ()

    @property
    def staged(self) -> bool:
        return all(isinstance(m, MediaRef) for m in self.media)

    def to_json(self) -> dict[str, Any]:
        """The record as a task argument: only the fields that are set, media as references."""
        if not self.staged:
            raise ValueError("media must be staged before a record becomes a task argument")
        out: dict[str, Any] = {"prompt": self.prompt, "metadata": self.metadata}
        if self.media:
            out["media"] = [m.to_json() for m in self.media]  # type: ignore[union-attr]
        if self.generation_config:
            out["generation_config"] = self.generation_config
        if self.model:
            out["model"] = self.model
        if self.system_instruction:
            out["system_instruction"] = self.system_instruction
        return out


def _optional_str(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidPrompt(f"'{name}' must be a non-empty string, got {type(value).__name__}")
    return value


def _generation_config(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPrompt(f"'generation_config' must be an object, got {type(value).__name__}")
    if "http_options" in value:
        raise InvalidPrompt(
            "'generation_config.http_options' is set by gemini_tasks, not per prompt"
        )
    try:
        types.GenerateContentConfig(**value)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidPrompt(f"'generation_config' is not valid: {problems}") from None
    return value


def parse_record(record: Any) -> PromptRecord:
    """Check a raw prompt record and return it typed, or raise `InvalidPrompt`."""
    if not isinstance(record, dict):
        raise InvalidPrompt(f"a prompt record must be a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise InvalidPrompt(
            f"unknown field(s) {', '.join(repr(u) for u in unknown)}; "
            f"known fields are {', '.join(FIELDS)}"
        )
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidPrompt("'prompt' is required and must be a non-empty string")
    metadata = record.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise InvalidPrompt(f"'metadata' must be an object, got {type(metadata).__name__}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidPrompt(f"'metadata' must be JSON-serializable: {exc}") from None
    if "media" in record and any(name in record for name in MEDIA_FIELDS):
        raise InvalidPrompt("'media' (staged media) cannot be mixed with the media fields")
    if "media" in record:
        if not isinstance(record["media"], list):
            raise InvalidPrompt("'media' must be a list of staged media references")
        media: tuple[MediaSource | MediaRef, ...] = tuple(
            MediaRef.from_json(m) for m in record["media"]
        )
    else:
        media = tuple(media_sources(record))
    return PromptRecord(
        media=media,
        prompt=prompt,
        metadata=metadata,
        generation_config=_generation_config(record.get("generation_config")),
        model=_optional_str(record, "model"),
        system_instruction=_optional_str(record, "system_instruction"),
    )
