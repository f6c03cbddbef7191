"""`submit`: queue one task per prompt record, as a stream, and return the `Job`.

Records are checked and their media staged before anything is queued, so a task carries
only a checked record with media references. A record that fails is not queued: its
error is stored at once as that prompt's result, and the rest of the batch goes on.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import redis
from celery import states
from kombu import Producer
from kombu.exceptions import OperationalError

from gemini_tasks import runtime
from gemini_tasks.errors import ErrorKind, InvalidPrompt, RedisUnavailable
from gemini_tasks.media.store import open_store
from gemini_tasks.producer import holds
from gemini_tasks.producer.fetch import CHUNK, task_id
from gemini_tasks.producer.job import Job
from gemini_tasks.producer.publish import publish
from gemini_tasks.producer.staging import Stager
from gemini_tasks.records import PromptRecord, StagedRecord, parse_record
from gemini_tasks.result import Result, metadata_of

log = logging.getLogger(__name__)

Record = dict[str, Any] | PromptRecord | InvalidPrompt


def submit(
    records: Iterable[Record],
    *,
    on_submitted: Callable[[int], None] | None = None,
    queue: str | None = None,
    rt: runtime.Runtime | None = None,
) -> Job:
    """Queue one task per record and return the job; records are consumed as a stream.

    Media named by path or bytes is staged in the media store, so the task carries only a
    reference. A record that is an `InvalidPrompt` (or fails checking or staging) is not
    queued: its error is stored as that prompt's result at once, so the batch keeps its
    input order. `on_submitted(count)` is called every so often, for progress display.
    `queue` routes the job to the workers consuming that queue (default
    `GEMINI_TASKS_QUEUE`).
    """
    rt = rt or runtime.current()
    rt.check_redis()
    job = Job(uuid.uuid4().hex, rt)
    key = rt.keys.job(job.id)
    queue = queue or rt.settings.queue
    rt.results.hset(
        key, mapping={"state": "submitting", "total": 0, "created_at": time.time(), "queue": queue}
    )
    rt.results.expire(key, rt.settings.result_expires)
    submitter = _Submitter(rt, job.id, queue)
    count = 0
    try:
        with rt.app.producer_or_acquire() as producer:
            for index, raw in enumerate(records):
                submitter.add(index, raw)
                count = index + 1
                if count % CHUNK == 0:
                    submitter.flush(producer)
                    rt.results.hset(key, "total", count)
                    if on_submitted:
                        on_submitted(count)
            submitter.flush(producer)
        rt.results.hset(key, mapping={"state": "submitted", "total": count})
    except (redis.RedisError, OperationalError) as exc:
        raise RedisUnavailable(
            f"Redis became unreachable after {count} prompts of job {job.id} were queued "
            f"({exc}); the job stays 'submitting': see it with `gemini-tasks status {job.id}`, "
            f"remove it with `gemini-tasks forget {job.id}`"
        ) from None
    if on_submitted:
        on_submitted(count)
    return job


def _argsrepr(index: int, record: StagedRecord) -> str:
    """What Flower and logs show of a task: never media bytes, never a secret."""
    media = "".join(
        f", {m.kind} {m.mime_type} {(m.sha256 or '')[:12] or m.uri}" for m in record.media
    )
    return f"(prompt #{index}: {record.prompt[:60]!r}{media})"


class _Submitter:
    """Checks, stages and queues the records of one job."""

    def __init__(self, rt: runtime.Runtime, job_id: str, queue: str):
        self.rt, self.job_id, self.queue = rt, job_id, queue
        settings = rt.settings
        store = open_store(settings.media_store, rt.redis, rt.keys, settings.result_expires)
        self.stager = Stager(store)
        self.media_seen: set[str] = set()
        self.ready: list[tuple[int, StagedRecord]] = []

    def add(self, index: int, raw: Record) -> None:
        try:
            self.ready.append((index, self._staged(raw)))
        except InvalidPrompt as exc:
            self._refuse(index, raw, f"invalid prompt: {exc}")
        except (redis.RedisError, OperationalError):
            raise
        except Exception as exc:  # a pathological record fails alone, never the submit
            log.warning("prompt %d of job %s could not be read: %r", index, self.job_id, exc)
            self._refuse(index, raw, f"invalid prompt: cannot be read ({type(exc).__name__})")

    def _staged(self, raw: Record) -> StagedRecord:
        if isinstance(raw, InvalidPrompt):
            raise raw
        record = raw if isinstance(raw, PromptRecord) else parse_record(raw)
        refs = tuple(self.stager.stage(m) for m in record.media)
        for ref in refs:
            if ref.sha256 and ref.sha256 not in self.media_seen:
                self.media_seen.add(ref.sha256)
                holds.hold(self.rt, self.job_id, ref.sha256)
        return record.staged(refs)

    def _refuse(self, index: int, raw: Any, message: str) -> None:
        tid = task_id(self.job_id, index)
        result = Result(
            index=index,
            metadata=metadata_of(raw),
            error=message,
            error_kind=ErrorKind.INVALID_PROMPT,
            task_id=tid,
        )
        self.rt.backend.store_result(tid, result.to_json(), states.SUCCESS)

    def flush(self, producer: Producer) -> None:
        """Store the ready tasks' arguments (for recovery), then publish them."""
        if not self.ready:
            return
        key = self.rt.keys.job_args(self.job_id)
        pipe = self.rt.results.pipeline(transaction=False)
        pipe.hset(key, mapping={str(i): json.dumps(r.to_json()) for i, r in self.ready})
        pipe.expire(key, self.rt.settings.result_expires)
        pipe.execute()
        for index, record in self.ready:
            publish(
                self.rt.app,
                producer,
                self.job_id,
                index,
                record.to_json(),
                self.queue,
                _argsrepr(index, record),
            )
        self.ready.clear()
