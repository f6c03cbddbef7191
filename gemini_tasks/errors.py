"""The few named errors of gemini_tasks, and how a Gemini API failure maps onto them.

`classify` turns whatever the google-genai SDK or the network raised into one of
`QuotaExceeded`, `KeyInvalid`, `InvalidRequest` or `TransientError`, which decide
whether a task rotates keys, gives up at once, or backs off and tries again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.genai import errors as genai_errors


class GeminiTasksError(Exception):
    """Base of every error gemini_tasks raises on purpose."""


class ConfigError(GeminiTasksError):
    """A setting is missing or has a bad value; the message names the setting."""


class InvalidPrompt(GeminiTasksError):
    """A prompt record cannot be sent: the message names the field and the problem."""


class NoApiKeys(GeminiTasksError):
    """No Gemini API key is configured for this worker."""


class JobNotFound(GeminiTasksError):
    """No job with this id exists (never submitted, or its results expired)."""


class JobTimeout(GeminiTasksError):
    """Collecting a job took longer than the caller allowed."""


class RedisUnavailable(GeminiTasksError):
    """Redis (broker or result backend) cannot be reached."""


class GeminiCallError(GeminiTasksError):
    """A call to Gemini failed; subclasses say whether and how to try again."""

    kind = "api"

    def __init__(self, message: str, *, code: int | None = None, status: str | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class QuotaExceeded(GeminiCallError):
    """429 RESOURCE_EXHAUSTED: this key's project is over one of its quotas."""

    kind = "quota"

    def __init__(
        self,
        message: str,
        *,
        retry_delay: float | None = None,
        quota_id: str | None = None,
        code: int | None = 429,
        status: str | None = "RESOURCE_EXHAUSTED",
    ):
        super().__init__(message, code=code, status=status)
        self.retry_delay = retry_delay
        self.quota_id = quota_id

    @property
    def is_daily(self) -> bool:
        return bool(self.quota_id) and "PerDay" in self.quota_id


class KeyInvalid(GeminiCallError):
    """The API key itself was refused (invalid, expired or revoked)."""

    kind = "key_invalid"


class InvalidRequest(GeminiCallError):
    """Gemini refused the request itself (4xx); sending it again cannot help."""

    kind = "invalid_request"


class TransientError(GeminiCallError):
    """A server error (5xx), overload, timeout or network failure: worth retrying."""

    kind = "server"


def _transport_errors() -> tuple[type[BaseException], ...]:
    classes: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        classes.append(module.TransportError)
    return tuple(classes)


_TRANSPORT_ERRORS = _transport_errors()
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
            ids = sorted((i for i in ids if i), key=lambda i: "PerDay" not in i)
            quota_id = ids[0] if ids else None
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
