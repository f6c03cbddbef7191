"""Answers shared between identical requests of `--dedupe` jobs.

A request is named by its digest (`request_digest`: the model, the prompt's contents with
media by content hash, the system instruction and the generation config; not the record's
metadata). The first prompt to make a request claims it; an identical prompt that comes
meanwhile waits for the claim's answer, and one that comes later, in the same job or in
another `--dedupe` job within the result TTL, takes the stored answer without a call. A
failed call stores nothing: the next identical prompt makes the request itself. Forgetting a
job deletes the answers its calls stored. Claims carry
the claiming prompt's task id, so a prompt run again after its worker died goes on as the
claim's holder; the holder renews its claim as it goes, and a claim whose holder vanished
lapses. A prompt whose worker died after it stored its answer and before
its result was recorded finds its own answer on its next run, and takes it as its own.

Runs on the result backend's Redis, beside the results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from gemini_tasks import scripts
from gemini_tasks.connections import text
from gemini_tasks.keyspace import Keyspace

# A holder renews its claim as it goes, every CLAIM_RENEW seconds at most, between calls.
CLAIM_RENEW = 30.0


def request_digest(model: str, request: dict[str, Any]) -> str:
    """The name of a request: `request` is a staged record's JSON without its metadata."""
    described = json.dumps({"model": model, **request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(described.encode()).hexdigest()


@dataclass(frozen=True)
class Claimed:
    """What `Answers.claim` found: the stored answer, the claim (`lead`), or its holder."""

    answer: dict[str, Any] | None = None
    lead: bool = False
    holder: str | None = None


class Answers:
    def __init__(self, client: redis.Redis, keyspace: Keyspace, ttl: int, claim_ttl: int):
        """`claim_ttl`: how long after its last renewal a claim lapses; longer than a holder
        can go without renewing it (CLAIM_RENEW and the longest call, upload included)."""
        self.keys, self.ttl, self.claim_ttl = keyspace, ttl, claim_ttl
        self._scripts = scripts.register(client, "gemini_tasks.scheduler", ("claim", "share"))

    def claim(self, digest: str, owner: str) -> Claimed:
        """The request's answer if one is stored, else its claim for `owner` if free (or
        renewed, if `owner` holds it)."""
        reply = self._scripts["claim"](args=[self.keys.tag, digest, owner, self.claim_ttl])
        verdict = text(reply[0])
        if verdict == "answer":
            return Claimed(answer=json.loads(reply[1]))
        if verdict == "lead":
            return Claimed(lead=True)
        return Claimed(holder=text(reply[1]))

    def share(self, digest: str, owner: str, job_id: str, answer: dict[str, Any] | None) -> None:
        """End `owner`'s claim, storing `answer` (as one of `job_id`'s) for identical
        requests when there is one."""
        stored = "" if answer is None else json.dumps(answer)
        self._scripts["share"](args=[self.keys.tag, digest, owner, stored, self.ttl, job_id])
