"""How a failed call to Gemini maps onto gemini_tasks' errors.

`classify` turns whatever the google-genai SDK or the network raised into one of
`QuotaExceeded`, `KeyInvalid`, `InvalidRequest` or `TransientError`; the worker's
decision then says whether to rotate keys, give up at once, or back off and try again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx2
from google.genai import errors as genai_errors

from gemini_tasks.errors import (
    GeminiCallError,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    TransientError,
)

_TRANSPORT_ERRORS = (ConnectionError, TimeoutError, httpx2.TransportError)
_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "SERVICE_DISABLED"}


@dataclass(frozen=True)
class _ErrorBody:
    message: str
    reasons: frozenset[str]
    retry_delay: float | None
    quota_id: str | None


def _duration_seconds(value: Any) -> float | None:
    """Parse a google.protobuf.Duration in its JSON form, such as "36s" or "0.5s"."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", value.strip())
    return float(match.group(1)) if match else None


def _parse_body(details: Any) -> _ErrorBody:
    error = details.get("error", details) if isinstance(details, dict) else {}
    if not isinstance(error, dict):
        error = {}
    message = str(error.get("message") or "").strip()
    reasons: set[str] = set()
    retry_delay = None
    quota_id = None
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo") and detail.get("reason"):
            reasons.add(str(detail["reason"]))
        elif kind.endswith("google.rpc.RetryInfo"):
            retry_delay = _duration_seconds(detail.get("retryDelay"))
        elif kind.endswith("google.rpc.QuotaFailure"):
            ids = [v.get("quotaId") for v in detail.get("violations") or [] if isinstance(v, dict)]
            # A per-day violation outranks a per-minute one: it decides how long to wait.
            named = sorted((str(i) for i in ids if i), key=lambda i: "PerDay" not in i)
            quota_id = named[0] if named else None
    return _ErrorBody(message, frozenset(reasons), retry_delay, quota_id)


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
            return QuotaExceeded(
                text, retry_delay=body.retry_delay, quota_id=body.quota_id, status=status
            )
        if body.reasons & _KEY_REASONS or code == 401:
            return KeyInvalid(text, code=code, status=status)
        if code >= 500 or code in (408, 409):
            return TransientError(text, code=code, status=status)
        return InvalidRequest(text, code=code, status=status)
    if isinstance(exc, _TRANSPORT_ERRORS):
        name = type(exc).__name__
        detail = str(exc) or "no detail"
        return TransientError(f"network error ({name}): {detail}")
    return TransientError(f"unexpected error ({type(exc).__name__}): {exc}")
