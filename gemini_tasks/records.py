"""Prompt records: what a producer submits (`PromptRecord`) and what a task receives
(`StagedRecord`, its media replaced by references to the media store).

The fields are the seed library's (`prompt`, `metadata`, `generation_config`, the media
fields) plus per-prompt `model` and `system_instruction`. A record is data: it is checked
when submitted and again by the worker, which is the trust boundary, and nothing in it can
choose where a worker connects, what it reads, or which credentials it sends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

import pydantic
from google.genai import types

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.jsonvalue import clean, clean_text
from gemini_tasks.media.fields import MEDIA_FIELDS, MediaSource, media_sources
from gemini_tasks.media.refs import MediaRef

TEXT_FIELDS = ("prompt", "metadata", "generation_config", "model", "system_instruction")
FIELDS = (*TEXT_FIELDS, *MEDIA_FIELDS)

# The `GenerateContentConfig` fields that shape what Gemini generates. Everything else the
# SDK accepts there (`http_options` above all: base URL, headers, API version, timeouts)
# changes how or where the worker connects, is set by gemini_tasks itself, or is refused by
# the SDK for the Gemini API (routing_config, model_selection_config, audio_timestamp).
GENERATION_FIELDS = frozenset(
    {
        "temperature", "top_p", "top_k", "candidate_count", "max_output_tokens",
        "stop_sequences", "response_logprobs", "logprobs", "presence_penalty",
        "frequency_penalty", "seed", "response_mime_type", "response_schema",
        "response_json_schema", "safety_settings", "tools", "tool_config", "labels",
        "response_modalities", "media_resolution", "speech_config", "thinking_config",
        "image_config",
    }
)  # fmt: skip
_BY_NORMAL_NAME = {name.replace("_", ""): name for name in GENERATION_FIELDS}
# `gemini-2.5-flash`, `models/gemini-2.5-flash`, `tunedModels/my-model-123`.
_MODEL = re.compile(r"^(models/|tunedModels/)?[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class _Fields:
    prompt: str
    metadata: dict[str, Any] = field(default_factory=dict)
    generation_config: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    system_instruction: str | None = None


@dataclass(frozen=True)
class PromptRecord(_Fields):
    """A record as submitted, its media named by path, bytes or URL."""

    media: tuple[MediaSource, ...] = ()

    def staged(self, media: tuple[MediaRef, ...]) -> StagedRecord:
        """This record with its media staged as `media`."""
        text = {f.name: getattr(self, f.name) for f in fields(_Fields)}
        return StagedRecord(**text, media=media)


@dataclass(frozen=True)
class StagedRecord(_Fields):
    """A record as a task argument: its media are references into the media store."""

    media: tuple[MediaRef, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The task argument: only the fields that are set."""
        out: dict[str, Any] = {"prompt": self.prompt, "metadata": self.metadata}
        if self.media:
            out["media"] = [m.to_json() for m in self.media]
        if self.generation_config:
            out["generation_config"] = self.generation_config
        if self.model:
            out["model"] = self.model
        if self.system_instruction:
            out["system_instruction"] = self.system_instruction
        return out


def check_model(value: Any) -> str | None:
    """A model name of the shapes Gemini uses, or `InvalidPrompt`."""
    if value is None:
        return None
    if not isinstance(value, str) or not _MODEL.match(value) or ".." in value:
        shown = clean_text(str(value))[:80]
        raise InvalidPrompt(
            f"'model' must be a model name like gemini-2.5-flash or models/..., got {shown!r}"
        )
    return value


def generation_config(value: Any) -> dict[str, Any]:
    """The config with canonical field names, limited to `GENERATION_FIELDS`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidPrompt(f"'generation_config' must be an object, got {type(value).__name__}")
    config: dict[str, Any] = {}
    for name, item in clean(value, "generation_config").items():
        canonical = _BY_NORMAL_NAME.get(name.replace("_", "").lower())
        if canonical is None:
            raise InvalidPrompt(
                f"'generation_config.{name}' is not allowed in a prompt record: only fields "
                "that shape generation are (temperature, max_output_tokens, response_schema, ...)"
            )
        config[canonical] = item
    try:
        types.GenerateContentConfig(**config)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidPrompt(f"'generation_config' is not valid: {problems}") from None
    return config


def _optional_str(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidPrompt(f"'{name}' must be a non-empty string, got {type(value).__name__}")
    return clean_text(value)


def _text_fields(record: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise InvalidPrompt(f"a prompt record must be a JSON object, got {type(record).__name__}")
    unknown = sorted(clean_text(str(k)) for k in set(record) - set(allowed))
    if unknown:
        raise InvalidPrompt(
            f"unknown field(s) {', '.join(repr(u) for u in unknown)}; "
            f"known fields are {', '.join(FIELDS)}"
        )
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidPrompt("'prompt' is required and must be a non-empty string")
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidPrompt(f"'metadata' must be an object, got {type(metadata).__name__}")
    return {
        "prompt": clean_text(prompt),
        "metadata": clean(metadata or {}, "metadata"),
        "generation_config": generation_config(record.get("generation_config")),
        "model": check_model(record.get("model")),
        "system_instruction": _optional_str(record, "system_instruction"),
    }


def parse_record(record: Any) -> PromptRecord:
    """Check a submitted record and return it typed, or raise `InvalidPrompt`."""
    fields = _text_fields(record, FIELDS)
    return PromptRecord(**fields, media=tuple(media_sources(record)))


def parse_staged(record: Any) -> StagedRecord:
    """Check a task argument and return it typed, or raise `InvalidPrompt`."""
    fields = _text_fields(record, (*TEXT_FIELDS, "media"))
    media = record.get("media") or []
    if not isinstance(media, list):
        raise InvalidPrompt("'media' must be a list of staged media references")
    refs = tuple(MediaRef.from_json(m, f"media[{i}]") for i, m in enumerate(media))
    return StagedRecord(**fields, media=refs)
