"""The few named errors of gemini_tasks, and the kinds a prompt's failure is sorted into.

`ErrorKind` is the one vocabulary for failures: results carry it, the key pool's Lua
scripts receive it, metrics count by it. `GeminiCallError` and its subclasses describe a
failed call to Gemini (the worker's `classify` builds them from what the SDK raised).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorKind(str, Enum):
    """Why a prompt has no answer. The value is what results and Redis hold."""

    INVALID_PROMPT = "invalid_prompt"  # the record itself is malformed: refused before any call
    INVALID_REQUEST = "invalid_request"  # Gemini refused the request (4xx): resending cannot help
    KEY_INVALID = "key_invalid"  # Gemini refused the key: the key's fault, not the prompt's
    QUOTA = "quota"  # no key had quota left within the time the prompt may wait
    SERVER = "server"  # 5xx, overloads, timeouts, network failures, past every retry
    CAPACITY = "capacity"  # Gemini short of capacity (a 429 naming no quota), past the budget
    STORAGE = "storage"  # the project's Files API storage is full
    BLOCKED = "blocked"  # Gemini refused to answer the prompt (safety, recitation, ...)
    NO_CONTENT = "no_content"  # Gemini answered without text
    INVALID_JSON = "invalid_json"  # the config asks for JSON and the answer does not parse
    TIME_LIMIT = "time_limit"  # the task's own deadline passed
    LOST = "lost"  # the task ended without storing a result (a broker or worker failure)
    CANCELLED = "cancelled"  # its job was cancelled before the prompt was sent
    BUDGET = "budget"  # its job's budget was spent before the prompt was sent

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


@dataclass(frozen=True)
class QuotaViolation:
    """One quota a 429 names: its id and the limit Gemini enforced (None when it named none,
    which it does for a limit of 0: the model has no such quota on the project's tier)."""

    quota_id: str
    limit: int | None

    @property
    def measure(self) -> str | None:
        """ "rpd", "rpm" or "tpm" for the generate quotas the pool paces by."""
        if "PerDay" in self.quota_id:
            return "rpd"
        if "Token" in self.quota_id:
            return "tpm"
        if "PerMinute" in self.quota_id:
            return "rpm"
        return None


class QuotaExceeded(GeminiCallError):
    """429 RESOURCE_EXHAUSTED naming the quotas this key's project is over."""

    kind = ErrorKind.QUOTA

    def __init__(
        self,
        message: str,
        *,
        retry_delay: float | None = None,
        violations: tuple[QuotaViolation, ...] = (),
        code: int | None = 429,
        status: str | None = "RESOURCE_EXHAUSTED",
    ):
        super().__init__(message, code=code, status=status)
        self.retry_delay = retry_delay
        self.violations = violations

    @property
    def is_daily(self) -> bool:
        return any(v.measure == "rpd" for v in self.violations)

    @property
    def is_zero(self) -> bool:
        """The model has no quota at all on the project's tier: waiting cannot help."""
        return any(v.limit in (None, 0) and v.measure for v in self.violations)

    @property
    def learned(self) -> dict[str, int]:
        """The limits the 429 says the project has, by measure."""
        return {v.measure: v.limit for v in self.violations if v.measure and v.limit}


class CapacityExhausted(GeminiCallError):
    """429 RESOURCE_EXHAUSTED naming no quota: Gemini is short of capacity for everyone."""

    kind = ErrorKind.CAPACITY

    def __init__(self, message: str, *, retry_delay: float | None = None, code: int | None = 429):
        super().__init__(message, code=code, status="RESOURCE_EXHAUSTED")
        self.retry_delay = retry_delay


class StorageExhausted(GeminiCallError):
    """429 for the project's Files API storage (20 GB): files must go, waiting will not do."""

    kind = ErrorKind.STORAGE


class KeyInvalid(GeminiCallError):
    """The API key itself was refused (invalid, expired or revoked)."""

    kind = ErrorKind.KEY_INVALID


class InvalidRequest(GeminiCallError):
    """Gemini refused the request itself (4xx); sending it again cannot help.

    `about_file` says the refusal named an uploaded file (which Gemini may have forgotten);
    `about_cache` that it named a context cache (which may have expired).
    """

    kind = ErrorKind.INVALID_REQUEST

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        about_file: bool = False,
        about_cache: bool = False,
    ):
        super().__init__(message, code=code, status=status)
        self.about_file, self.about_cache = about_file, about_cache


class TransientError(GeminiCallError):
    """A server error (5xx), overload, timeout or network failure: worth retrying."""

    kind = ErrorKind.SERVER
