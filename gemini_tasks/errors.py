"""The few named errors of gemini_tasks, and the kinds a prompt's failure is sorted into.

`ErrorKind` is the one vocabulary for failures: results carry it, the key pool's Lua
scripts receive it, metrics count by it. `GeminiCallError` and its subclasses describe a
failed call to Gemini (the worker's `classify` builds them from what the SDK raised).
"""

from __future__ import annotations

from enum import Enum


class ErrorKind(str, Enum):
    """Why a prompt has no answer. The value is what results and Redis hold."""

    INVALID_PROMPT = "invalid_prompt"  # the record itself is malformed: refused before any call
    INVALID_REQUEST = "invalid_request"  # Gemini refused the request (4xx): resending cannot help
    KEY_INVALID = "key_invalid"  # Gemini refused the key: the key's fault, not the prompt's
    QUOTA = "quota"  # no key had quota left within the time the prompt may wait
    SERVER = "server"  # 5xx, overloads, timeouts, network failures, past every retry
    NO_CONTENT = "no_content"  # Gemini answered without text
    TIME_LIMIT = "time_limit"  # the task's own deadline passed
    LOST = "lost"  # the task ended without storing a result (a broker or worker failure)

    def __str__(self) -> str:
        return self.value


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

    kind = ErrorKind.SERVER

    def __init__(self, message: str, *, code: int | None = None, status: str | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class QuotaExceeded(GeminiCallError):
    """429 RESOURCE_EXHAUSTED: this key's project is over one of its quotas."""

    kind = ErrorKind.QUOTA

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
        return bool(self.quota_id) and "PerDay" in (self.quota_id or "")


class KeyInvalid(GeminiCallError):
    """The API key itself was refused (invalid, expired or revoked)."""

    kind = ErrorKind.KEY_INVALID


class InvalidRequest(GeminiCallError):
    """Gemini refused the request itself (4xx); sending it again cannot help."""

    kind = ErrorKind.INVALID_REQUEST


class TransientError(GeminiCallError):
    """A server error (5xx), overload, timeout or network failure: worth retrying."""

    kind = ErrorKind.SERVER
