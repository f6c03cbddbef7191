"""What a Gemini response says, and what it puts into a prompt's `Result`.

Gemini answers HTTP 200 without text more often than an ideal API would (the emulator's
`answers.py` cites the reports): a prompt blocked before any candidate, a candidate
stopped for safety or recitation, a thinking model that spent its whole output budget
thinking, and, intermittently, an empty STOP that a retry usually fixes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from google.genai import types

from gemini_tasks.errors import ErrorKind
from gemini_tasks.result import Result

# Finish reasons that mean Gemini would not answer this prompt (google-genai's FinishReason).
REFUSALS = frozenset(
    {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
     "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "LANGUAGE"}
)  # fmt: skip


class AnswerKind(Enum):
    TEXT = "text"  # an answer (truncated at MAX_TOKENS or not)
    EMPTY = "empty"  # no text, for no reason Gemini gave: worth asking again
    BLOCKED = "blocked"  # Gemini refused to answer the prompt
    THOUGHT_ONLY = "thought_only"  # MAX_TOKENS reached while thinking: no text at all


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    reason: str | None = None  # the block or finish reason


def _value(enum: object) -> str | None:
    return str(getattr(enum, "value", enum)) if enum is not None else None


def read(response: types.GenerateContentResponse) -> Answer:
    """What kind of answer `response` is."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return Answer(AnswerKind.BLOCKED, _value(feedback.block_reason))
    candidate = response.candidates[0] if response.candidates else None
    finish = _value(candidate.finish_reason) if candidate else None
    parts = candidate.content.parts if candidate and candidate.content else None
    if any(part.text and not part.thought for part in parts or []):
        return Answer(AnswerKind.TEXT, finish)
    if finish in REFUSALS:
        return Answer(AnswerKind.BLOCKED, finish)
    if finish == "MAX_TOKENS":
        return Answer(AnswerKind.THOUGHT_ONLY, finish)
    return Answer(AnswerKind.EMPTY, finish)


def fill(result: Result, response: types.GenerateContentResponse, answer: Answer) -> None:
    """Record the call's usage and why it stopped, and the text of an answer that has it."""
    result.model_version = response.model_version
    if response.usage_metadata is not None:
        result.usage = response.usage_metadata.model_dump(mode="json", exclude_none=True)
    result.finish_reason = answer.reason
    if answer.kind is AnswerKind.TEXT:
        candidate = (response.candidates or [])[0]
        parts = candidate.content.parts if candidate.content else None
        texts = [part.text for part in parts or [] if part.text and not part.thought]
        result.response = "".join(texts)
        result.truncated = answer.reason == "MAX_TOKENS"
        result.error, result.error_kind = None, None


def served_mode(response: types.GenerateContentResponse, asked: str) -> str:
    """The mode the call was served in: Gemini names its tier in the `x-gemini-service-tier`
    header (ai.google.dev/gemini-api/docs/priority-inference); `asked` when it does not."""
    headers = {
        k.lower(): v
        for k, v in (
            (response.sdk_http_response and response.sdk_http_response.headers) or {}
        ).items()
    }
    tier = headers.get("x-gemini-service-tier")
    if tier is None:
        return asked
    return "flex" if tier.lower() == "flex" else "online"


def wants_json(config: Mapping[str, Any]) -> bool:
    """Whether a generation config (canonical names) asks Gemini for a JSON answer: a JSON
    mime type, or a schema without a mime type that says otherwise (`text/x.enum`)."""
    mime = str(config.get("response_mime_type") or "").lower()
    if mime:
        return mime == "application/json"
    return bool(config.get("response_schema") or config.get("response_json_schema"))


def parse_json(result: Result, config: Mapping[str, Any]) -> None:
    """Put the answer's JSON in `result.parsed` when `config` asks for JSON; an answer that
    does not parse (cut at max_output_tokens, or with a stray fragment after it: see the
    emulator's `answers.echo`) fails as `invalid_json`, its text kept for a look."""
    if not result.ok or result.response is None or not wants_json(config):
        return
    try:
        result.parsed = json.loads(result.response)
    except json.JSONDecodeError as exc:
        cut = ", cut at max_output_tokens" if result.truncated else ""
        result.fail(
            ErrorKind.INVALID_JSON,
            f"invalid_json: the config asks for JSON and the answer is not JSON{cut} ({exc})",
        )


def prompt_tokens(response: types.GenerateContentResponse) -> int:
    """The input tokens Gemini counted for the call."""
    usage = response.usage_metadata
    return (usage.prompt_token_count or 0) if usage else 0
