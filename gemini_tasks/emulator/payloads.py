"""The JSON bodies the real Gemini API sends, for the emulator to answer with."""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

RATE_LIMIT_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"


def error(code: int, status: str, message: str, details: list[dict] | None = None) -> dict:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        body["details"] = details
    return {"error": body}


def api_key_invalid() -> dict:
    message = "API key not valid. Please pass a valid API key."
    return error(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ],
    )


def unregistered_caller() -> dict:
    return error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity)."
        " Please use API Key or other form of API consumer identity to call this API.",
    )


def quota_exceeded(
    quota_id: str, metric: str, model: str, limit: int, retry_seconds: float
) -> dict:
    retry = max(1, math.ceil(retry_seconds))
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"For more information on this error, head to: {RATE_LIMIT_DOCS}.\n"
        f"* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}\n"
        f"Please retry in {retry}s."
    )
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": metric,
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": str(limit),
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {"description": "Learn more about Gemini API quotas", "url": RATE_LIMIT_DOCS}
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry}s"},
        ],
    )


def internal() -> dict:
    return error(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    )


def overloaded() -> dict:
    return error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def model_not_found(model: str, version: str, method: str) -> dict:
    return error(
        404,
        "NOT_FOUND",
        f"models/{model} is not found for API version {version}, or is not supported for "
        f"{method}. Call ListModels to see the list of available models and their supported "
        "methods.",
    )


def invalid_argument(message: str) -> dict:
    return error(400, "INVALID_ARGUMENT", message)


def estimate_tokens(text: str) -> int:
    # Gemini averages about four characters per token for English text.
    return max(1, math.ceil(len(text) / 4))


def describe_part(part: dict) -> tuple[str, int]:
    """A deterministic description of one request part, and its token count."""
    if "text" in part:
        text = str(part["text"])
        return text, estimate_tokens(text)
    if "inlineData" in part:
        blob = part["inlineData"]
        data = base64.b64decode(blob.get("data", ""))
        digest = hashlib.sha256(data).hexdigest()[:16]
        return f"[inline {blob.get('mimeType')} sha256:{digest} {len(data)} bytes]", 258
    if "fileData" in part:
        ref = part["fileData"]
        meta = part.get("videoMetadata")
        extra = f" {meta}" if meta else ""
        return f"[file {ref.get('mimeType')} {ref.get('fileUri')}{extra}]", 258
    return f"[{sorted(part)[0] if part else 'empty'} part]", 1


def generate_response(
    model: str, contents: list[dict], generation_config: dict, response_id: str
) -> dict:
    """A deterministic answer derived from the request: it echoes what it received."""
    described = [describe_part(p) for c in contents for p in c.get("parts", [])]
    prompt_tokens = sum(tokens for _, tokens in described)
    text = "echo: " + " | ".join(desc for desc, _ in described)
    finish = "STOP"
    max_tokens = generation_config.get("maxOutputTokens")
    if isinstance(max_tokens, int) and estimate_tokens(text) > max_tokens:
        text, finish = text[: max_tokens * 4], "MAX_TOKENS"
    count = int(generation_config.get("candidateCount") or 1)
    candidates = [
        {
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": finish,
            "index": i,
        }
        for i in range(count)
    ]
    output_tokens = estimate_tokens(text) * count
    return {
        "candidates": candidates,
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        },
        "modelVersion": model,
        "responseId": response_id,
    }
