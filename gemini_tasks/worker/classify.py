"""How a failed call to Gemini maps onto gemini_tasks' errors.

`classify` turns whatever the google-genai SDK or the network raised into one of the
`GeminiCallError` kinds; the worker's decision then says whether to rotate keys, back off,
wait out an outage, or give up. What tells them apart, as production Gemini answers
(gemini_tasks/emulator/payloads.py cites a public report for each body):

- 429 with a QuotaFailure naming generate quotas: the project's quota (`QuotaExceeded`);
  naming `FileStorageBytesPerProject`: the project's uploads are full (`StorageExhausted`);
  naming nothing: Gemini's own capacity is short (`CapacityExhausted`).
- 400 API_KEY_INVALID, 401, and the 403s that end a key or its project (leaked,
  suspended, denied, API disabled, blocked): the key is out for good (`KeyInvalid`).
- 5xx (502 pages that are not JSON included), 499, 408, timeouts and network failures:
  transient (`TransientError`).
- Other 4xx: the request's own fault (`InvalidRequest`); `about_file` when it names a file,
  `about_cache` when it names a context cache (403 "CachedContent not found (or permission
  denied)" once a cache expired: ai.google.dev/gemini-api/docs/caching).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx2
from google.genai import errors as genai_errors

from gemini_tasks.errors import (
    CapacityExhausted,
    GeminiCallError,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    QuotaViolation,
    StorageExhausted,
    TransientError,
)

_TRANSPORT_ERRORS = (ConnectionError, TimeoutError, httpx2.TransportError)
_KEY_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "SERVICE_DISABLED",
     "CONSUMER_SUSPENDED", "BILLING_DISABLED"}
)  # fmt: skip
# 403 messages that end a key or its project, where no ErrorInfo says so.
_KEY_MESSAGES = re.compile(
    r"reported as leaked|has been suspended|denied access|has not been used in project|"
    r"billing to be enabled|are blocked",
    re.IGNORECASE,
)
_FILE_MESSAGE = re.compile(r"\bFile\b")
_CACHE_MESSAGE = re.compile(r"\bCachedContent\b")
_DELAY = re.compile(r"retry in (\d+(?:\.\d+)?)s", re.IGNORECASE)


@dataclass(frozen=True)
class _ErrorBody:
    message: str
    reasons: frozenset[str]
    retry_delay: float | None
    violations: tuple[QuotaViolation, ...]
    has_quota_failure: bool


def _duration_seconds(value: Any) -> float | None:
    """Parse a google.protobuf.Duration in its JSON form, such as "36s" or "0.5s"."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", value.strip())
    return float(match.group(1)) if match else None


def _violation(raw: Any) -> QuotaViolation | None:
    if not isinstance(raw, dict) or not raw.get("quotaId"):
        return None
    value = raw.get("quotaValue")
    limit = int(value) if isinstance(value, (str, int)) and str(value).isdigit() else None
    return QuotaViolation(str(raw["quotaId"]), limit)


def _parse_body(details: Any) -> _ErrorBody:
    error = details.get("error", details) if isinstance(details, dict) else {}
    if not isinstance(error, dict):
        error = {}
    message = str(error.get("message") or "").strip()
    reasons: set[str] = set()
    retry_delay = None
    violations: list[QuotaViolation] = []
    has_quota_failure = False
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo") and detail.get("reason"):
            reasons.add(str(detail["reason"]))
        elif kind.endswith("google.rpc.RetryInfo"):
            retry_delay = _duration_seconds(detail.get("retryDelay"))
        elif kind.endswith("google.rpc.QuotaFailure"):
            has_quota_failure = True
            found = (_violation(v) for v in detail.get("violations") or [])
            violations.extend(v for v in found if v is not None)
    if retry_delay is None and (match := _DELAY.search(message)):
        retry_delay = float(match.group(1))  # "Please retry in 45.218844857s."
    return _ErrorBody(
        message, frozenset(reasons), retry_delay, tuple(violations), has_quota_failure
    )


def _classify_429(text: str, body: _ErrorBody, status: str) -> GeminiCallError:
    if any("FileStorageBytes" in v.quota_id for v in body.violations):
        return StorageExhausted(text, code=429, status=status)
    if body.has_quota_failure and any(v.measure for v in body.violations):
        return QuotaExceeded(
            text, retry_delay=body.retry_delay, violations=body.violations, status=status
        )
    return CapacityExhausted(text, retry_delay=body.retry_delay)


def classify(exc: BaseException) -> GeminiCallError:
    """Map an exception raised while calling Gemini onto a `GeminiCallError`."""
    if isinstance(exc, GeminiCallError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        body = _parse_body(exc.details)
        code = int(exc.code or 0)
        status = exc.status or ""
        text = f"{code} {status}: {body.message or 'no message'}".strip()
        if code == 429:
            return _classify_429(text, body, status)
        key_refused = code == 403 and bool(_KEY_MESSAGES.search(body.message))
        if body.reasons & _KEY_REASONS or code == 401 or key_refused:
            return KeyInvalid(text, code=code, status=status)
        if code >= 500 or code in (408, 409, 499):
            return TransientError(text, code=code, status=status)
        about_file = bool(_FILE_MESSAGE.search(body.message))
        about_cache = bool(_CACHE_MESSAGE.search(body.message))
        return InvalidRequest(text, code=code, status=status, about_file=about_file,
                              about_cache=about_cache)  # fmt: skip
    if isinstance(exc, _TRANSPORT_ERRORS):
        name = type(exc).__name__
        detail = str(exc) or "no detail"
        return TransientError(f"network error ({name}): {detail}")
    return TransientError(f"unexpected error ({type(exc).__name__}): {exc}")


# google.rpc.Code -> the HTTP status Gemini answers it with (google/rpc/code.proto): a
# Batch Mode batch reports each request's error as a google.rpc.Status.
_RPC_TO_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
                10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}  # fmt: skip


def classify_status(code: int, message: str) -> GeminiCallError:
    """The error of one request of a batch (its google.rpc.Status), as `classify` maps the
    same error of a call."""
    http = _RPC_TO_HTTP.get(code, 500)
    return classify(genai_errors.APIError(http, {"error": {"code": http, "message": message}}))
