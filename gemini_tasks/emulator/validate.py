"""Checking a request as Gemini's front end does, and refusing it with Gemini's own body."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gemini_tasks.emulator import payloads
from gemini_tasks.emulator.answers import decode_bytes

Body = dict[str, Any]
MAX_CANDIDATES = 8
# GenerateContentRequest's fields (serviceTier and labels are set at the top by the SDK).
REQUEST_FIELDS = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "safetySettings", "generationConfig",
     "cachedContent", "labels", "serviceTier", "store", "model"}
)  # fmt: skip
GENERATION_FIELDS = frozenset(
    {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
     "responseLogprobs", "logprobs", "presencePenalty", "frequencyPenalty", "seed",
     "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
     "mediaResolution", "speechConfig", "thinkingConfig", "imageConfig",
     "enableEnhancedCivicAnswers", "audioTimestamp"}
)  # fmt: skip


class Rejected(Exception):
    """A request Gemini refuses: its HTTP status, body, and the outcome the stats count."""

    def __init__(self, status: int, body: Body, outcome: str, key: str | None = None):
        super().__init__(outcome)
        self.status, self.body, self.outcome, self.key = status, body, outcome, key

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


def camel_case(value: Any) -> Any:
    """Request JSON with every key in lowerCamelCase.

    Gemini parses requests as protobuf JSON, which accepts `file_uri` and `fileUri` alike;
    google-genai sends some nested fields in snake_case.
    """
    if isinstance(value, list):
        return [camel_case(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            head, *rest = str(key).split("_")
            out[head + "".join(w[:1].upper() + w[1:] for w in rest)] = camel_case(item)
        return out
    return value


def _bad(message: str) -> Rejected:
    return Rejected(400, payloads.invalid_argument(message), "400")


def validate_request_fields(body: Body) -> None:
    unknown = sorted(set(body) - REQUEST_FIELDS)
    config = body.get("generationConfig") or {}
    unknown += sorted(f"generation_config.{n}" for n in set(config) - GENERATION_FIELDS)
    if unknown:
        raise Rejected(400, payloads.unknown_fields(unknown), "400")


def _validate_part(part: Any, i: int, j: int) -> None:
    data = part.get("inlineData", {}).get("data") if isinstance(part, dict) else None
    if data is not None:
        try:
            decode_bytes(str(data))
        except ValueError:
            raise _bad(
                f"Invalid value at 'contents[{i}].parts[{j}].inline_data.data' (TYPE_BYTES), "
                "Base64 decoding failed"
            ) from None
    if not isinstance(part, dict) or not ({"text", "inlineData", "fileData"} & set(part)):
        raise _bad(
            f"* GenerateContentRequest.contents[{i}].parts[{j}].data: required oneof field "
            "'data' must have one initialized field\n"
        )


def validate_contents(body: Body) -> list[Body]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _bad("* GenerateContentRequest.contents: contents is not specified\n")
    for i, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise _bad(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )
        for j, part in enumerate(parts):
            _validate_part(part, i, j)
    return contents


def validate_generation_config(config: Body) -> Body:
    temperature = config.get("temperature")
    if temperature is not None and not 0 <= float(temperature) <= 2:
        raise _bad(
            "* GenerateContentRequest.generation_config.temperature: temperature must be in "
            "the range [0.0, 2.0]\n"
        )
    count = config.get("candidateCount")
    if count is not None and not 1 <= int(count) <= MAX_CANDIDATES:
        raise _bad(
            "* GenerateContentRequest.generation_config.candidate_count: candidate_count must "
            f"be in the range [1, {MAX_CANDIDATES}]\n"
        )
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None and int(max_tokens) < 1:
        raise _bad(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be positive\n"
        )
    return config


# google-genai's ServiceTier values, as the SDK sends them (ai.google.dev/gemini-api/docs/
# flex-inference: the standard tier when the field is left out).
SERVICE_TIERS = {"unspecified": "standard", "standard": "standard", "flex": "flex",
                 "priority": "priority"}  # fmt: skip


def validate_service_tier(value: Any) -> str:
    """The tier a request asks for; an unknown one is refused as Gemini refuses a bad enum."""
    if value is None:
        return "standard"
    tier = SERVICE_TIERS.get(str(value).lower().removeprefix("service_tier_"))
    if tier is None:
        raise Rejected(400, payloads.invalid_argument(
            f'Invalid value at \'service_tier\' (type.googleapis.com/google.ai.generativelanguage.'
            f'v1beta.ServiceTier), "{value}"'), "400")  # fmt: skip
    return tier
