"""The JSON bodies the real Gemini API sends, for the emulator to answer with.

Each body is the shape users have posted from production; the source is cited beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

RATE_LIMIT_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"
Body = dict[str, Any]


def error(code: int, status: str, message: str, details: list[Body] | None = None) -> Body:
    body: Body = {"code": code, "message": message, "status": status}
    if details:
        body["details"] = details
    return {"error": body}


def _error_info(reason: str, **metadata: str) -> Body:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com", **metadata},
    }


def _localized(message: str) -> Body:
    return {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": message,
    }


def api_key_invalid() -> Body:
    message = "API key not valid. Please pass a valid API key."
    return error(
        400, "INVALID_ARGUMENT", message, [_error_info("API_KEY_INVALID"), _localized(message)]
    )


def unregistered_caller() -> Body:
    return error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity)."
        " Please use API Key or other form of API consumer identity to call this API.",
    )


def key_revoked(reason: str, secret: str, project_number: str) -> Body:
    """403s that end a key's (or its project's) use of the API, as users have posted them."""
    consumer = f"projects/{project_number}"
    if reason == "leaked":
        # No details at all (continuedev/continue#10513, googleapis/python-genai#1764).
        message = "Your API key was reported as leaked. Please use another API key."
        return error(403, "PERMISSION_DENIED", message)
    if reason == "suspended":
        # The message names the key itself (continuedev/continue#10902,
        # google/generative-ai-docs#356): whoever logs it must redact it.
        message = f"Permission denied: Consumer 'api_key:{secret}' has been suspended."
        info = _error_info("CONSUMER_SUSPENDED", consumer=consumer)
        return error(403, "PERMISSION_DENIED", message, [info, _localized(message)])
    if reason == "denied":
        # A project Google cut off, billing among the causes (poenl/gemini-api#8).
        return error(
            403, "PERMISSION_DENIED", "Your project has been denied access. Please contact support."
        )
    if reason == "service_disabled":
        # google-gemini/deprecated-generative-ai-python#10.
        message = (
            f"Generative Language API has not been used in project {project_number} before or "
            "it is disabled. Enable it by visiting https://console.developers.google.com/apis/"
            f"api/generativelanguage.googleapis.com/overview?project={project_number} then "
            "retry. If you enabled this API recently, wait a few minutes for the action to "
            "propagate to our systems and retry."
        )
        info = _error_info("SERVICE_DISABLED", consumer=consumer)
        return error(403, "PERMISSION_DENIED", message, [info])
    if reason == "blocked":
        # continuedev/continue#12781.
        message = (
            "Requests to this API generativelanguage.googleapis.com method "
            "google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent are blocked."
        )
        info = _error_info("API_KEY_SERVICE_BLOCKED", consumer=consumer)
        return error(403, "PERMISSION_DENIED", message, [info, _localized(message)])
    raise ValueError(f"no such revocation: {reason}")


REVOCATIONS = ("leaked", "suspended", "denied", "service_disabled", "blocked")


@dataclass(frozen=True)
class Violation:
    """One violated quota, as a QuotaFailure lists it."""

    quota_id: str
    metric: str
    model: str
    limit: int  # 0: the model has no quota of this kind on the project's tier
    retry_seconds: float
    dimension: dict[str, str] | None = None


def _help() -> Body:
    return {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMIT_DOCS}],
    }


def quota_exceeded(violations: list[Violation]) -> Body:
    """429 RESOURCE_EXHAUSTED naming every violated quota at once.

    As Gemini sends it (googleapis/python-genai#2044 lists per-day, per-minute and token
    violations in one body): details in the order Help, QuotaFailure, RetryInfo; the message
    names each metric on its own line and ends with a fractional delay ("Please retry in
    45.218844857s."), while RetryInfo has whole seconds; `quotaValue` is absent where the
    limit is 0.
    """
    retry = max(v.retry_seconds for v in violations)
    lines = "".join(
        f"* Quota exceeded for metric: {v.metric}, limit: {v.limit}, model: {v.model}\n"
        for v in violations
    )
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"For more information on this error, head to: {RATE_LIMIT_DOCS}. "
        f"To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n"
        f"{lines}Please retry in {retry:.9f}s."
    )
    entries = []
    for v in violations:
        entry: Body = {
            "quotaMetric": v.metric,
            "quotaId": v.quota_id,
            "quotaDimensions": v.dimension or {"location": "global", "model": v.model},
        }
        if v.limit:
            entry["quotaValue"] = str(v.limit)
        entries.append(entry)
    details = [
        _help(),
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": entries},
        {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": f"{max(1, math.floor(retry))}s",
        },
    ]
    return error(429, "RESOURCE_EXHAUSTED", message, details)


def capacity_exhausted() -> Body:
    """429 with no details: short capacity, not the caller's quota
    (googleapis/python-genai#2065, googleapis/js-genai#1841)."""
    return error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")


def capacity_help_only() -> Body:
    """429 whose only detail is a Help link (gke-labs/gemini-for-kubernetes-development#1215)."""
    return error(
        429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).", [_help()]
    )


def internal() -> Body:
    return error(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    )


def overloaded() -> Body:
    return error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def deadline_exceeded() -> Body:
    return error(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")


def cancelled() -> Body:
    # gemini-cli retries these like a 429 (google-gemini/gemini-cli#20309).
    return error(499, "CANCELLED", "The operation was cancelled.")


# What a Google front end sends for a 502: an HTML page, not JSON.
BAD_GATEWAY_PAGE = (
    "<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Error 502 (Server Error)!!1"
    "</title><p><b>502.</b> <ins>That's an error.</ins><p>The server encountered a temporary "
    "error and could not complete your request.<p>Please try again in 30 seconds. "
    "<ins>That's all we know.</ins>"
)


def model_not_found(model: str, version: str, method: str) -> Body:
    return error(
        404,
        "NOT_FOUND",
        f"models/{model} is not found for API version {version}, or is not supported for "
        f"{method}. Call ModelService.ListModels to see the list of available models and their "
        "supported methods.",
    )


def invalid_argument(message: str) -> Body:
    return error(400, "INVALID_ARGUMENT", message)


def unknown_fields(names: list[str]) -> Body:
    """400 for request fields Gemini does not know, with BadRequest.fieldViolations
    (glowingjade/obsidian-smart-composer#455)."""
    texts = [
        f'Invalid JSON payload received. Unknown name "{n}": Cannot find field.' for n in names
    ]
    violations = [{"description": text} for text in texts]
    detail = {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}
    return error(400, "INVALID_ARGUMENT", "\n".join(texts), [detail])


def file_not_found(file_id: str) -> Body:
    # googleapis/python-genai#1218.
    return error(
        403,
        "PERMISSION_DENIED",
        f"You do not have permission to access the File {file_id} or it may not exist.",
    )


def file_not_active(file_id: str) -> Body:
    # home-assistant/core#140182.
    return error(
        400,
        "FAILED_PRECONDITION",
        f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
    )


def file_too_large(limit: int) -> Body:
    return invalid_argument(f"File size exceeds the maximum allowed size of {limit} bytes.")


def file_storage_exhausted(limit: int) -> Body:
    """429 for a project's 20 GB of uploads, with the retryDelay one report carries
    (googleapis/python-genai#1172): waiting is no remedy, deleting files is."""
    violation: Body = {
        "quotaMetric": "generativelanguage.googleapis.com/file_storage_bytes",
        "quotaId": "FileStorageBytesPerProject",
        "quotaDimensions": {"location": "global"},
        "quotaValue": str(limit),
    }
    details: list[Body] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{2**63 - 1}s"},
    ]
    message = (
        "Quota exceeded for quota metric 'File storage bytes' and limit 'File storage bytes per "
        "project' of service 'generativelanguage.googleapis.com'."
    )
    return error(429, "RESOURCE_EXHAUSTED", message, details)


def payload_too_large(limit: int) -> Body:
    return invalid_argument(f"Request payload size exceeds the limit: {limit} bytes.")


def batch_limit(limit: int) -> Body:
    """A project's concurrent batches are limited (ai.google.dev/gemini-api/docs/rate-limits,
    Batch Mode); `batches.create` can answer 429 (googleapis/python-genai#2974)."""
    return error(429, "RESOURCE_EXHAUSTED",
                 f"You have reached the limit of {limit} concurrent batch jobs for this project."
                 f" Please wait for a batch to finish. For more information, see "
                 f"{RATE_LIMIT_DOCS}.")  # fmt: skip


def batch_tokens_limit(limit: int, model: str) -> Body:
    """A project's enqueued tokens per model are limited too (ai.google.dev/gemini-api/docs/
    rate-limits, Batch API); past them the create answers 429 RESOURCE_EXHAUSTED
    (googleapis/python-genai#1901)."""
    return error(429, "RESOURCE_EXHAUSTED",
                 f"You have exceeded the limit of {limit} enqueued tokens for {model} in "
                 f"this project. Please wait for a batch to finish. For more information, "
                 f"see {RATE_LIMIT_DOCS}.")  # fmt: skip


def batch_not_found(batch_id: str) -> Body:
    return error(404, "NOT_FOUND", f"Batch batches/{batch_id} not found.")


def cache_not_found() -> Body:
    """A cache that does not exist, has expired (Gemini deletes expired caches) or is another
    project's: 403, never 404, for get, update, delete and generateContent alike. This is the
    text public clients match on to drop a cache name Gemini no longer knows (for instance
    Google ADK users' logs of `Failed to cleanup cache cachedContents/...` after the TTL)."""
    return error(403, "PERMISSION_DENIED", "CachedContent not found (or permission denied)")


def cache_too_small(total: int, minimum: int) -> Body:
    # BerriAI/litellm#17696, zyddnys/manga-image-translator#929.
    return invalid_argument(
        f"Cached content is too small. total_token_count={total}, min_total_token_count={minimum}"
    )


def cache_conflict() -> Body:
    """A request naming a cache may not set what the cache holds (vercel/ai#3333,
    langchain-ai/langchain-google#978, BerriAI/litellm#17304), even when identical."""
    return invalid_argument(
        "CachedContent can not be used with GenerateContent request setting "
        "system_instruction, tools or tool_config.\n\nProposed fix: move those values to "
        "CachedContent from GenerateContent request."
    )


def cache_model_mismatch(request_model: str, cache_model: str) -> Body:
    """A cache serves only the model it was created for (ai.google.dev/api/caching:
    `CachedContent.model` is immutable); the wording is the emulator's, naming both."""
    return invalid_argument(
        f"Model used by GenerateContent request (models/{request_model}) and CachedContent "
        f"(models/{cache_model}) has to be the same."
    )
