"""What a worker does after each call to Gemini: the retry, rotate, wait and give-up rules.

`decide` is a pure function of the call's outcome and the prompt's state, so every rule is
unit-tested without Redis, workers or Gemini; `PromptRun` applies its decisions.

- An answer with text ends the prompt (truncated at MAX_TOKENS, it says so). A prompt
  Gemini refuses to answer (a safety block, recitation, ...) fails as `blocked`, unretried.
  An empty answer is asked again a few times: Gemini gives them intermittently.
- A 429 or a refused key is the key's fault, not the prompt's, and a capacity 429 or an
  outage (the model's circuit open) is no one's: lease again; the pool, which has recorded
  what the call taught it, makes the lease wait as long as it must.
- A full Files API storage frees the project's unneeded uploads once, then backs off.
- A refusal naming an uploaded file may mean Gemini forgot it (it keeps files 48 hours):
  forget the project's cached uploads and try once more. One naming the context cache the
  call used means it expired: forget it (the next call makes it again) and try once more.
  Other 4xx are the request's own fault: sending it again cannot help.
- Other server errors, timeouts and network failures back off exponentially and try again,
  up to `max_retries` more attempts.
- A Flex call shed (a capacity 429 or a 5xx) backs off exponentially, as long as the outage
  budget allows: Flex sheds by design, and its job may fall back to the standard tier.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from gemini_tasks.errors import (
    CapacityExhausted,
    ErrorKind,
    GeminiCallError,
    InvalidRequest,
    KeyInvalid,
    QuotaExceeded,
    StorageExhausted,
    TransientError,
)
from gemini_tasks.settings import Settings
from gemini_tasks.worker.response import Answer, AnswerKind


class Action(Enum):
    SUCCEED = "succeed"  # the answer stands
    FAIL = "fail"  # end the prompt with `kind` and `message`
    AGAIN = "again"  # lease a key and call again at once (the lease waits if it must)
    REUPLOAD = "reupload"  # forget the project's cached uploads, then call again
    RECACHE = "recache"  # forget the context cache the call named, then call again
    FREE_STORAGE = "free_storage"  # delete the project's unneeded uploads, then call again
    BACKOFF = "backoff"  # wait up to `backoff_ceiling` seconds, then call again
    # Flex shed the call: wait up to `backoff_ceiling` seconds as through an outage (not
    # the prompt's failure, not its time limit), then call again.
    SHED = "shed"


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int  # further attempts after a retryable failure
    backoff: float  # the first backoff ceiling, seconds; doubles each time
    backoff_max: float  # the largest ceiling
    empty_retries: int = 2  # further attempts after an empty answer

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.max_retries, settings.retry_backoff, settings.retry_backoff_max)


@dataclass(frozen=True)
class PromptState:
    """What the rules remember of one prompt between its calls."""

    server_failures: int = 0
    empty_answers: int = 0
    sheds: int = 0  # Flex calls shed in a row
    reuploaded: frozenset[str] = field(default_factory=frozenset)
    recached: frozenset[str] = field(default_factory=frozenset)
    storage_freed: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Decision:
    action: Action
    state: PromptState  # the prompt's state after this call
    kind: ErrorKind | None = None
    message: str = ""
    # The worker waits a random time up to this (full jitter), so retries spread out.
    backoff_ceiling: float = 0.0


@dataclass(frozen=True)
class Call:
    """What the rules know of the call just made."""

    project: str  # the project of the key it was made with
    used_uploads: bool  # the request named uploaded files
    outage: bool = False  # the model's circuit is open: Gemini is failing for everyone
    flex: bool = False  # the call asked for the Flex tier
    cached: bool = False  # the request named a context cache


def _answered(answer: Answer, state: PromptState, policy: RetryPolicy) -> Decision:
    if answer.kind is AnswerKind.TEXT:
        return Decision(Action.SUCCEED, state)
    if answer.kind is AnswerKind.BLOCKED:
        return Decision(Action.FAIL, state, ErrorKind.BLOCKED, f"blocked: {answer.reason}")
    if answer.kind is AnswerKind.THOUGHT_ONLY:
        message = (
            "Gemini stopped at MAX_TOKENS before writing any text (its thinking used the "
            "output budget); raise max_output_tokens or lower the thinking budget"
        )
        return Decision(Action.FAIL, state, ErrorKind.NO_CONTENT, message)
    empty = state.empty_answers + 1
    after = replace(state, empty_answers=empty)
    message = f"Gemini returned no text (finish reason {answer.reason})"
    if empty > policy.empty_retries:
        return Decision(Action.FAIL, after, ErrorKind.NO_CONTENT, f"{message}, {empty} times")
    return Decision(Action.AGAIN, after, ErrorKind.NO_CONTENT, message)


def _backoff(error: GeminiCallError, state: PromptState, policy: RetryPolicy) -> Decision:
    failures = state.server_failures + 1
    after = replace(state, server_failures=failures)
    if failures > policy.max_retries:
        final = f"persistent error after {failures} attempts: {error}"
        return Decision(Action.FAIL, after, error.kind, final)
    ceiling = min(policy.backoff_max, policy.backoff * 2 ** (failures - 1))
    return Decision(Action.BACKOFF, after, error.kind, str(error), ceiling)


def decide(
    outcome: GeminiCallError | Answer, state: PromptState, policy: RetryPolicy, call: Call
) -> Decision:
    """The next step after `call`, which answered or failed with `outcome`."""
    if isinstance(outcome, Answer):
        return _answered(outcome, state, policy)
    error, message = outcome, str(outcome)
    if call.flex and isinstance(error, (CapacityExhausted, TransientError)):
        # Flex sheds calls under load, with a capacity 429 or a 5xx (docs/flex-inference):
        # waited through with a growing pause, never the prompt's or the key's failure.
        sheds = state.sheds + 1
        ceiling = min(policy.backoff_max, policy.backoff * 2 ** (sheds - 1))
        return Decision(Action.SHED, replace(state, sheds=sheds), ErrorKind.CAPACITY,
                        message, ceiling)  # fmt: skip
    if isinstance(error, (QuotaExceeded, KeyInvalid, CapacityExhausted)):
        return Decision(Action.AGAIN, state, error.kind, message)
    if isinstance(error, StorageExhausted):
        if call.project in state.storage_freed:
            return _backoff(error, state, policy)
        after = replace(state, storage_freed=state.storage_freed | {call.project})
        return Decision(Action.FREE_STORAGE, after, error.kind, message)
    if isinstance(error, InvalidRequest):
        if error.about_cache and call.cached and call.project not in state.recached:
            after = replace(state, recached=state.recached | {call.project})
            return Decision(Action.RECACHE, after, error.kind, message)
        if error.about_file and call.used_uploads and call.project not in state.reuploaded:
            after = replace(state, reuploaded=state.reuploaded | {call.project})
            return Decision(Action.REUPLOAD, after, error.kind, message)
        return Decision(Action.FAIL, state, error.kind, message)
    if call.outage:
        # Gemini is failing for everyone: not this prompt's failure. The lease waits until
        # a probe finds Gemini back, within the outage budget.
        return Decision(Action.AGAIN, state, error.kind, message)
    return _backoff(error, state, policy)
