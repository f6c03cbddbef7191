"""The result of one prompt, as a worker stores it and a producer reads it back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gemini_tasks.errors import ErrorKind, InvalidPrompt
from gemini_tasks.jsonvalue import clean


def metadata_of(raw_record: Any) -> dict[str, Any]:
    """The record's metadata if it is plain JSON data, else an empty dict."""
    metadata = raw_record.get("metadata") if isinstance(raw_record, dict) else None
    if not isinstance(metadata, dict):
        return {}
    try:
        cleaned: dict[str, Any] = clean(metadata, "metadata")
    except InvalidPrompt:
        return {}
    return cleaned


# The fields of a result that answer its request, whichever prompt made it; and what the
# call that answered it used, which only the prompt that made the call takes as its own.
ANSWER_FIELDS = ("response", "parsed", "model", "model_version", "finish_reason", "truncated",
                 "mode")  # fmt: skip
CALL_FIELDS = ("usage", "key_id", "cost", "attempts", "rate_limited")


@dataclass
class Result:
    """What became of one prompt; `error` is None exactly when the prompt succeeded."""

    index: int
    metadata: dict[str, Any] = field(default_factory=dict)
    response: str | None = None
    parsed: Any = None  # the answer's JSON, when the prompt's config asks for JSON
    error: str | None = None
    error_kind: ErrorKind | None = None
    model: str | None = None
    model_version: str | None = None
    finish_reason: str | None = None
    # The answer stopped at max_output_tokens: the text is there, but cut short.
    truncated: bool = False
    usage: dict[str, Any] | None = None
    key_id: str | None = None
    worker: str | None = None
    attempts: int = 0
    rate_limited: int = 0  # calls answered 429 (a quota, or Gemini's capacity)
    # What Gemini charged for the prompt's calls, in USD (0 for a model with no price).
    cost: float = 0.0
    # The part of `cost` already counted against the job's budget, call by call.
    settled: float = 0.0
    # How its answer was served: "online" (the standard tier) or "flex", as Gemini said.
    mode: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    task_id: str | None = None
    # The task id of the prompt whose call answered this identical request (`--dedupe`):
    # this prompt made no call of its own.
    reused_from: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, kind: ErrorKind, message: str) -> None:
        self.error, self.error_kind = message, kind

    def answer(self) -> dict[str, Any]:
        """What identical requests may reuse of this result (`reuse`): the answer, not the
        prompt's own metadata or index."""
        answer = {name: getattr(self, name) for name in (*ANSWER_FIELDS, *CALL_FIELDS)}
        answer["reused_from"] = self.reused_from or self.task_id
        return answer

    def reuse(self, answer: dict[str, Any], own: bool = False) -> None:
        """Take `answer` (a result's `answer()`) as this prompt's: another prompt's, made no
        call of this one's; or, `own`, this prompt's, stored before its worker died."""
        for name in (*ANSWER_FIELDS, *(CALL_FIELDS if own else ())):
            if name in answer:
                setattr(self, name, answer[name])
        self.reused_from = None if own else answer.get("reused_from")
        self.error = self.error_kind = None

    def as_tuple(self) -> tuple[dict[str, Any], str | None, str | None]:
        """The seed library's `(metadata, response, error)` form."""
        return self.metadata, self.response, self.error

    def to_json(self) -> dict[str, Any]:
        # A shallow copy: its values are JSON already (`asdict` copies them all again, which
        # every result paid for nothing).
        out = dict(vars(self))
        out["error_kind"] = self.error_kind.value if self.error_kind else None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if known.get("error_kind") is not None:
            known["error_kind"] = ErrorKind(known["error_kind"])
        return cls(**known)
