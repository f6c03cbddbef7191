"""The emulator's Batch Mode: batches of GenerateContent requests that finish later.

Speaks what google-genai's `client.batches` sends to the Gemini Developer API
(google/genai/batches.py): `POST models/{model}:batchGenerateContent` with
`batch.inputConfig` holding `requests.requests[]` (`{"request", "metadata"}`) or a
`fileName` of an uploaded JSONL file (`{"key", "request"}` lines); `GET batches/{id}`,
`GET batches`, `POST batches/{id}:cancel`, `DELETE batches/{id}`. A batch is an operation
whose `metadata.state` goes `BATCH_STATE_PENDING`, `RUNNING`, then `SUCCEEDED` with
`metadata.output` holding `inlinedResponses.inlinedResponses[]` (each `response` or `error`,
with the request's `metadata`) or a `responsesFile` to download; or it ends `FAILED`,
`CANCELLED` or `EXPIRED` (ai.google.dev/api/batch-mode, ai.google.dev/gemini-api/docs/
batch-mode). Batches belong to the project whose key created them.

How long a batch takes is configured (`batch_seconds`; Gemini's target is 24 hours), and
batches left unfinished past `batch_expire_seconds` expire, as production's do when they
sit in PENDING (googleapis/python-genai#1482, #2221, #2974). A project may have at most
`batch_concurrent` unfinished batches, and its unfinished batches of one model at most
`batch_tokens` input tokens (the Batch Mode rate limits,
ai.google.dev/gemini-api/docs/rate-limits); a batch past either is a 429.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gemini_tasks.emulator.files import _rfc3339

Body = dict[str, Any]
GOOGLE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta."


class BatchState(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def ended(self) -> bool:
        return self not in (BatchState.PENDING, BatchState.RUNNING)


@dataclass
class Batch:
    id: str
    project: str
    model: str
    key_id: str  # the key that created it
    display_name: str
    # [{"request": {...}, "metadata": {...}}], or from a file [{"key": ..., "request": {...}}]
    requests: list[Body]
    input_file: str | None
    created: float
    done_at: float
    expires_at: float
    fails: bool  # ends FAILED instead of SUCCEEDED
    tokens: int  # its requests' input tokens: what it enqueues until it ends
    state: BatchState = BatchState.PENDING
    ended_at: float | None = None
    # Each request's answer: {"response": ...} or {"error": ...}, with its metadata or key.
    outputs: list[Body] = field(default_factory=list)
    output_file: str | None = None

    @property
    def name(self) -> str:
        return f"batches/{self.id}"

    def advance(self, now: float, answer_all: Callable[[Batch], None]) -> None:
        """Move the batch along its life to `now`; `answer_all` fills its outputs once it
        is due."""
        if self.state.ended:
            return
        if self.expires_at <= min(now, self.done_at):
            self._end(BatchState.EXPIRED, self.expires_at)
        elif now >= self.done_at:
            if self.fails:
                self._end(BatchState.FAILED, self.done_at)
            else:
                answer_all(self)
                self._end(BatchState.SUCCEEDED, self.done_at)
        elif now >= (self.created + self.done_at) / 2:
            self.state = BatchState.RUNNING

    def cancel(self, now: float) -> None:
        if not self.state.ended:
            self._end(BatchState.CANCELLED, now)

    def _end(self, state: BatchState, at: float) -> None:
        self.state, self.ended_at = state, at

    def to_json(self) -> Body:
        failed = sum(1 for o in self.outputs if "error" in o)
        answered = len(self.outputs)
        meta: Body = {
            "@type": GOOGLE_TYPE + "GenerateContentBatch",
            "name": self.name,
            "model": f"models/{self.model}",
            "displayName": self.display_name,
            "createTime": _rfc3339(self.created),
            "updateTime": _rfc3339(self.ended_at or self.created),
            "state": f"BATCH_STATE_{self.state.value}",
            "batchStats": {
                "requestCount": str(len(self.requests)),
                "pendingRequestCount": str(len(self.requests) - answered),
                "successfulRequestCount": str(answered - failed),
                "failedRequestCount": str(failed),
            },
        }
        if self.input_file:
            meta["inputConfig"] = {"fileName": self.input_file}
        out: Body = {"name": self.name, "metadata": meta, "done": self.state.ended}
        if self.ended_at is not None:
            meta["endTime"] = _rfc3339(self.ended_at)
        if self.state is BatchState.SUCCEEDED:
            output: Body
            if self.output_file:
                output = {"responsesFile": self.output_file}
            else:
                output = {"inlinedResponses": {"inlinedResponses": self.outputs}}
            meta["output"] = output
            out["response"] = {"@type": GOOGLE_TYPE + "GenerateContentBatchOutput", **output}
        elif self.state is BatchState.FAILED:
            out["error"] = {"code": 13, "message": "Batch failed: an internal error occurred."}
        return out


class BatchStore:
    """Batches by id."""

    def __init__(self) -> None:
        self.batches: dict[str, Batch] = {}

    def add(self, batch_fields: Body) -> Batch:
        batch = Batch(id=uuid.uuid4().hex[:16], **batch_fields)
        self.batches[batch.id] = batch
        return batch

    def get(self, batch_id: str, project: str) -> Batch | None:
        batch = self.batches.get(batch_id)
        return batch if batch is not None and batch.project == project else None

    def unfinished(self, project: str) -> int:
        return sum(1 for b in self.batches.values() if b.project == project and not b.state.ended)

    def due_now(self, now: float) -> int:
        """Every unfinished batch is answered at its next look from now; how many."""
        due = [b for b in self.batches.values() if not b.state.ended]
        for batch in due:
            batch.done_at = min(batch.done_at, now)
        return len(due)

    def enqueued(self, project: str, model: str) -> int:
        """Input tokens the project's unfinished batches of `model` hold."""
        return sum(b.tokens for b in self.batches.values()
                   if b.project == project and b.model == model and not b.state.ended)  # fmt: skip

    def of(self, project: str) -> list[Batch]:
        return [b for b in self.batches.values() if b.project == project]

    def delete(self, batch_id: str, project: str) -> bool:
        if self.get(batch_id, project) is None:
            return False
        del self.batches[batch_id]
        return True
