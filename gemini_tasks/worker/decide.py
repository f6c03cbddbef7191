"""What a worker does after each call to Gemini: the retry, rotate and give-up rules.

`decide` is a pure function of the call's outcome and the prompt's state, so every rule is
unit-tested without Redis, workers or Gemini; `PromptRun` applies its decisions.

- An answer ends the prompt.
- A 429 or a refused key is the key's fault, not the prompt's: lease another key at once
  (the pool has recorded what the call taught it, so it will not lend that key again
  before it is usable).
- A 403/404 on a request that named uploaded files may mean Gemini forgot them (it keeps
  files 48 hours): forget the project's cached uploads and try once more.
- Other 4xx are the request's fault: sending it again cannot help.
- Server errors, overloads, timeouts and network failures back off exponentially and try
  again, up to `max_retries` more attempts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from gemini_tasks.errors import (
    ErrorKind,
    GeminiCallError,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
)
from gemini_tasks.settings import Settings


class Action(Enum):
    SUCCEED = "succeed"  # the answer stands
    FAIL = "fail"  # end the prompt with `kind` and `message`
    NEXT_KEY = "next_key"  # lease another key and call again at once
    REUPLOAD = "reupload"  # forget the project's cached uploads, then call again
    BACKOFF = "backoff"  # wait up to `backoff_ceiling` seconds, then call again


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int  # further attempts after a retryable failure
    backoff: float  # the first backoff ceiling, seconds; doubles each time
    backoff_max: float  # the largest ceiling

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.max_retries, settings.retry_backoff, settings.retry_backoff_max)


@dataclass(frozen=True)
class PromptState:
    """What the rules remember of one prompt between its calls."""

    server_failures: int = 0
    reuploaded: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Decision:
    action: Action
    state: PromptState  # the prompt's state after this call
    kind: ErrorKind | None = None
    message: str = ""
    # The worker waits a random time up to this (full jitter), so retries spread out.
    backoff_ceiling: float = 0.0


def decide(
    error: GeminiCallError | None,
    state: PromptState,
    policy: RetryPolicy,
    *,
    project: str,
    used_uploads: bool,
) -> Decision:
    """The next step after a call made with a key of `project`, which failed with `error`
    (None: it succeeded); `used_uploads` says whether the request named uploaded files."""
    if error is None:
        return Decision(Action.SUCCEED, state)
    message = str(error)
    if isinstance(error, (QuotaExceeded, KeyInvalid)):
        return Decision(Action.NEXT_KEY, state, error.kind, message)
    if isinstance(error, InvalidRequest):
        stale = error.code in (403, 404) and used_uploads and project not in state.reuploaded
        if stale:
            after = replace(state, reuploaded=state.reuploaded | {project})
            return Decision(Action.REUPLOAD, after, error.kind, message)
        return Decision(Action.FAIL, state, error.kind, message)
    failures = state.server_failures + 1
    after = replace(state, server_failures=failures)
    if failures > policy.max_retries:
        final = f"persistent error after {failures} attempts: {message}"
        return Decision(Action.FAIL, after, error.kind, final)
    ceiling = min(policy.backoff_max, policy.backoff * 2 ** (failures - 1))
    return Decision(Action.BACKOFF, after, error.kind, message, ceiling)
