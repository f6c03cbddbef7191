"""Turning a prompt record into the arguments of `client.models.generate_content`."""

from __future__ import annotations

from dataclasses import dataclass

from google.genai import types

from gemini_tasks.prompt import PromptRecord


@dataclass(frozen=True)
class GeminiRequest:
    model: str
    contents: list[types.Content]
    config: types.GenerateContentConfig


def build_request(
    record: PromptRecord, default_model: str, timeout_seconds: float
) -> GeminiRequest:
    """The request for one attempt; `timeout_seconds` bounds that attempt's HTTP call."""
    config = dict(record.generation_config)
    if record.system_instruction:
        config["system_instruction"] = record.system_instruction
    config["http_options"] = types.HttpOptions(timeout=max(1, int(timeout_seconds * 1000)))
    return GeminiRequest(
        model=record.model or default_model,
        contents=[types.Content(role="user", parts=[types.Part(text=record.prompt)])],
        config=types.GenerateContentConfig(**config),
    )


def estimate_tokens(record: PromptRecord) -> int:
    """Input tokens a prompt will count against TPM quotas, before Gemini counts them.

    Gemini averages about four characters per token; the pool corrects the estimate with
    the real count once the call returns.
    """
    return max(1, (len(record.prompt) + len(record.system_instruction or "")) // 4)
