"""The JSON bodies the real Gemini API sends, for the emulator to answer with."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable
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


def decode_bytes(text: str) -> bytes:
    """A protobuf JSON `bytes` field: standard or URL-safe base64, padded or not."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def describe_part(part: dict, file_digest: Callable[[str], str | None]) -> tuple[str, int]:
    """A deterministic description of one request part, and its token count.

    Media is described by type, mime type and content hash (or, for a URI Gemini fetches
    itself, the URI), with its video metadata, so tests see exactly what arrived.
    """
    if "text" in part:
        text = str(part["text"])
        return text, estimate_tokens(text)
    meta = part.get("videoMetadata")
    extra = f" {json.dumps(meta, sort_keys=True)}" if meta else ""
    if "inlineData" in part:
        blob = part["inlineData"]
        digest = hashlib.sha256(decode_bytes(blob.get("data", ""))).hexdigest()[:16]
        return f"[inline {blob.get('mimeType')} sha256:{digest}{extra}]", 258
    if "fileData" in part:
        ref = part["fileData"]
        uri = str(ref.get("fileUri"))
        digest = file_digest(uri)
        source = f"sha256:{digest}" if digest else uri
        return f"[file {ref.get('mimeType')} {source}{extra}]", 258
    return f"[{sorted(part)[0] if part else 'empty'} part]", 1


def generate_response(
    model: str,
    contents: list[dict],
    generation_config: dict,
    response_id: str,
    file_digest: Callable[[str], str | None],
) -> dict:
    """A deterministic answer derived from the request: it echoes what it received."""
    described = [describe_part(p, file_digest) for c in contents for p in c.get("parts", [])]
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


def file_not_found(file_id: str) -> dict:
    return error(
        403,
        "PERMISSION_DENIED",
        f"You do not have permission to access the File {file_id} or it may not exist.",
    )


def file_not_active(file_id: str) -> dict:
    return error(
        400,
        "FAILED_PRECONDITION",
        f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
    )


def payload_too_large(limit: int) -> dict:
    return invalid_argument(f"Request payload size exceeds the limit: {limit} bytes.")
