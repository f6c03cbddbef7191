"""What a Gemini response puts into a prompt's `Result`."""

from __future__ import annotations

from google.genai import types

from gemini_tasks.errors import ErrorKind
from gemini_tasks.result import Result


def fill(result: Result, response: types.GenerateContentResponse) -> None:
    """Record the answer, its usage and why it stopped; an answer without text is an error."""
    result.model_version = response.model_version
    if response.usage_metadata is not None:
        result.usage = response.usage_metadata.model_dump(mode="json", exclude_none=True)
    candidate = response.candidates[0] if response.candidates else None
    if candidate is not None and candidate.finish_reason is not None:
        result.finish_reason = str(candidate.finish_reason.value)
    text = response.text
    if text is None:
        feedback = response.prompt_feedback
        block = feedback.block_reason.value if feedback and feedback.block_reason else None
        result.fail(
            ErrorKind.NO_CONTENT,
            f"Gemini returned no text (finish reason {result.finish_reason}, block reason {block})",
        )
        return
    result.response, result.error, result.error_kind = text, None, None


def prompt_tokens(response: types.GenerateContentResponse) -> int:
    """The input tokens Gemini counted for the call."""
    usage = response.usage_metadata
    return (usage.prompt_token_count or 0) if usage else 0
