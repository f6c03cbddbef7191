"""Jobs: a batch of prompts submitted as one Celery group, collected later by its id.

Task ids are derived from the group id and the prompt's position (`<group>-<index>`), so
submitting streams (100,000 prompts never sit in memory at once) and any process that
knows the group id can collect the results in input order.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import redis
from celery import states
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url

from gemini_tasks.celery import app, settings
from gemini_tasks.connections import connect
from gemini_tasks.errors import InvalidPrompt, JobNotFound, JobTimeout, RedisUnavailable
from gemini_tasks.media_store import MediaRef, MediaStore, Stager, open_store
from gemini_tasks.prompt import PromptRecord, parse_record
from gemini_tasks.result import Result, metadata_of
from gemini_tasks.settings import redis_prefix
from gemini_tasks.tasks import delete_files, generate, job_args_key

log = logging.getLogger(__name__)

FETCH_CHUNK = 500
_PENDING = (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY)


# Job records and results live in the result backend; key state and media under REDIS_URL.
_RESULTS_REDIS = connect(settings.result_backend)
_STATE_REDIS = connect(settings.redis_url)
_BROKER_REDIS = connect(settings.broker_url)


def _job_key(job_id: str) -> str:
    return f"{redis_prefix(settings.key_prefix)}:job:{job_id}"


def _check_redis() -> None:
    # Asked once, without the retries of the long-lived clients: fail fast and say why.
    try:
        redis.Redis.from_url(settings.result_backend, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        url = maybe_sanitize_url(settings.result_backend)
        raise RedisUnavailable(f"cannot reach Redis at {url}: {exc}") from None


class Job:
    """A submitted batch of prompts; `id` is its Celery group id."""

    def __init__(self, job_id: str):
        self.id = job_id

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    @classmethod
    def restore(cls, job_id: str) -> Job:
        """The job with this id, from any process; raises `JobNotFound` if there is none."""
        _check_redis()
        if not _RESULTS_REDIS.exists(_job_key(job_id)):
            raise JobNotFound(f"no job with id {job_id!r} (never submitted, or expired)")
        return cls(job_id)

    def task_id(self, index: int) -> str:
        return f"{self.id}-{index}"

    def info(self) -> dict[str, str]:
        raw = _RESULTS_REDIS.hgetall(_job_key(self.id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    @property
    def total(self) -> int:
        return int(self.info().get("total", 0))

    def _wait_for_total(self, deadline: float | None, interval: float) -> int:
        """The number of prompts, once the producer has finished submitting them."""
        while True:
            info = self.info()
            if not info:
                raise JobNotFound(f"no job with id {self.id!r} (never submitted, or expired)")
            if info.get("state") == "submitted":
                return int(info["total"])
            _sleep_or_timeout(deadline, interval, f"job {self.id} is still being submitted")

    def _fetch(self, indexes: list[int]) -> dict[int, Result]:
        """The finished results among `indexes`."""
        backend = app.backend
        raw = _RESULTS_REDIS.mget([backend.get_key_for_task(self.task_id(i)) for i in indexes])
        done: dict[int, Result] = {}
        for index, value in zip(indexes, raw, strict=True):
            if value is None:
                continue
            meta = backend.decode_result(value)
            status = meta.get("status")
            if status == states.SUCCESS:
                done[index] = Result.from_json(meta["result"])
            elif status not in _PENDING:
                done[index] = Result(
                    index=index,
                    error=f"task {self.task_id(index)} ended {status}: {meta.get('result')}",
                    error_kind="lost",
                    task_id=self.task_id(index),
                )
        return done

    def count_done(self) -> tuple[int, int]:
        """How many prompts have a result, out of how many submitted so far."""
        total = self.total
        done = 0
        for start in range(0, total, FETCH_CHUNK):
            done += len(self._fetch(list(range(start, min(total, start + FETCH_CHUNK)))))
        return done, total

    def results(self, timeout: float | None = None, interval: float = 0.2) -> Iterator[Result]:
        """Every result in input order, waiting for each as needed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        total = self._wait_for_total(deadline, interval)
        stall = _Stall()
        for start in range(0, total, FETCH_CHUNK):
            window = list(range(start, min(total, start + FETCH_CHUNK)))
            ready: dict[int, Result] = {}
            while True:
                found = self._fetch([i for i in window if i not in ready])
                ready.update(found)
                # Yield the finished head of the window at once: a caller showing progress moves.
                while window and window[0] in ready:
                    yield ready.pop(window.pop(0))
                if not window:
                    break
                stall.observe(self, bool(found))
                _sleep_or_timeout(deadline, interval, self._timeout_message(start))

    def as_completed(self, timeout: float | None = None, interval: float = 0.2) -> Iterator[Result]:
        """Every result, each as soon as it is found finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        total = self._wait_for_total(deadline, interval)
        pending = list(range(total))
        stall = _Stall()
        while pending:
            found = 0
            still: list[int] = []
            for start in range(0, len(pending), FETCH_CHUNK):
                chunk = pending[start : start + FETCH_CHUNK]
                done = self._fetch(chunk)
                found += len(done)
                yield from done.values()
                still.extend(i for i in chunk if i not in done)
            pending = still
            stall.observe(self, bool(found))
            if pending and not found:
                _sleep_or_timeout(deadline, interval, f"{len(pending)} of {total} not done")

    def _timeout_message(self, start: int) -> str:
        return f"job {self.id}: timed out waiting for results from index {start} on"

    def recover_lost(self) -> int:
        """Re-queue prompts whose task message the broker lost; returns how many.

        Redis has no server-side acknowledgement: a message popped in the instant Redis or
        a worker dies can vanish before it is recorded as unacknowledged. A prompt is
        lost when it has no result and its task is neither queued nor held by a worker,
        in two looks a second apart; it is re-queued from the arguments stored at submit.
        """
        total, missing = self.total, []
        for start in range(0, total, FETCH_CHUNK):
            chunk = list(range(start, min(total, start + FETCH_CHUNK)))
            found = self._fetch_any(chunk)
            missing += [i for i in chunk if i not in found]
        lost = self._not_in_broker(missing)
        if not lost:
            return 0
        time.sleep(1.0)
        lost = self._not_in_broker(lost)
        stored = _RESULTS_REDIS.hmget(job_args_key(self.id), [str(i) for i in lost])
        queue = self.info().get("queue", settings.queue)
        requeued = 0
        with app.producer_or_acquire() as producer:
            for index, record in zip(lost, stored, strict=True):
                if record is not None:
                    argsrepr = f"(prompt #{index}, recovered)"
                    _publish(self, index, json.loads(record), producer, queue, argsrepr)
                    requeued += 1
        log.warning("job %s: re-queued %d prompt(s) the broker lost", self.id, requeued)
        return requeued

    def _fetch_any(self, indexes: list[int]) -> set[int]:
        """Which of `indexes` have any stored state (started, waiting or done)."""
        keys = [app.backend.get_key_for_task(self.task_id(i)) for i in indexes]
        return {i for i, v in zip(indexes, _RESULTS_REDIS.mget(keys), strict=True) if v is not None}

    def _not_in_broker(self, indexes: list[int]) -> list[int]:
        if not indexes:
            return []
        in_broker = _task_ids_in_broker(self.info().get("queue", settings.queue))
        if in_broker is None:
            return []
        started = self._fetch_any(indexes)
        return [i for i in indexes if i not in started and self.task_id(i) not in in_broker]

    def forget(self) -> None:
        """Delete this job's results, its record, and the media no other job uses; workers
        delete that media's uploaded files from Gemini."""
        queue = self.info().get("queue", settings.queue)
        files = _forget_media(self.id)
        if files:
            # The job's own workers hold keys of the projects its files were uploaded in.
            delete_files.apply_async(args=([list(f) for f in files],), queue=queue)
        total = int(self.info().get("total", 0))
        client = _RESULTS_REDIS
        for start in range(0, total, FETCH_CHUNK):
            client.delete(
                *(
                    app.backend.get_key_for_task(self.task_id(i))
                    for i in range(start, min(total, start + FETCH_CHUNK))
                )
            )
        client.delete(_job_key(self.id))


# A queue longer than this is not searched for lost tasks: they are found once it drains.
RECOVERY_SCAN_LIMIT = 20_000
# Collectors look for lost tasks after this long without a new result.
RECOVERY_STALL_SECONDS = 30.0


def _task_ids_in_broker(queue: str) -> set[str] | None:
    """Ids of the tasks queued on `queue` or held, unacknowledged, by a worker.

    Reads kombu's Redis layout: the queue is a list of JSON messages, and messages a
    worker holds are in the `unacked` hash as [message, exchange, routing key].
    """
    length = _BROKER_REDIS.llen(queue)
    if length > RECOVERY_SCAN_LIMIT:
        return None
    ids: set[str] = set()
    for start in range(0, length, 1000):
        for raw in _BROKER_REDIS.lrange(queue, start, start + 999):
            ids.add(json.loads(raw)["headers"]["id"])
    for raw in _BROKER_REDIS.hvals("unacked"):
        ids.add(json.loads(raw)[0]["headers"]["id"])
    return ids


class _Stall:
    """Looks for lost tasks when a collector has waited long without a new result."""

    def __init__(self) -> None:
        self.since = time.monotonic()

    def observe(self, job: Job, progressed: bool) -> None:
        now = time.monotonic()
        if progressed:
            self.since = now
        elif now - self.since > RECOVERY_STALL_SECONDS:
            job.recover_lost()
            self.since = time.monotonic()


def _sleep_or_timeout(deadline: float | None, interval: float, what: str) -> None:
    if deadline is not None and time.monotonic() + interval > deadline:
        raise JobTimeout(what)
    time.sleep(interval)


def submit(
    records: Iterable[dict[str, Any] | PromptRecord | InvalidPrompt],
    *,
    on_submitted: Callable[[int], None] | None = None,
    queue: str | None = None,
) -> Job:
    """Queue one task per record and return the job; records are consumed as a stream.

    Media named by path or bytes is staged in the media store, so the task carries only a
    reference. A record that is an `InvalidPrompt` (or fails checking or staging) is not
    queued: its error is stored as that prompt's result at once, so the batch keeps its
    input order. `on_submitted(count)` is called every so often, for progress display.
    `queue` routes the job to the workers consuming that queue (default
    `GEMINI_TASKS_QUEUE`).
    """
    _check_redis()
    job = Job(uuid.uuid4().hex)
    key = _job_key(job.id)
    client = _RESULTS_REDIS
    queue = queue or settings.queue
    client.hset(
        key, mapping={"state": "submitting", "total": 0, "created_at": time.time(), "queue": queue}
    )
    client.expire(key, settings.result_expires)
    submitter = _Submitter(job, queue)
    count = 0
    try:
        with app.producer_or_acquire() as producer:
            for index, raw in enumerate(records):
                submitter.add(index, raw)
                count = index + 1
                if count % FETCH_CHUNK == 0:
                    submitter.flush(producer)
                    client.hset(key, "total", count)
                    if on_submitted:
                        on_submitted(count)
            submitter.flush(producer)
        client.hset(key, mapping={"state": "submitted", "total": count})
    except (redis.RedisError, OperationalError) as exc:
        raise RedisUnavailable(
            f"Redis became unreachable after {count} prompts of job {job.id} were queued "
            f"({exc}); the job stays 'submitting': see it with `gemini-tasks status {job.id}`, "
            f"remove it with `gemini-tasks forget {job.id}`"
        ) from None
    if on_submitted:
        on_submitted(count)
    return job


class _Submitter:
    """Checks, stages and queues the records of one job."""

    def __init__(self, job: Job, queue: str):
        self.job, self.queue = job, queue
        self.stager = Stager(_media_store())
        self.media_seen: set[str] = set()
        self.ready: list[tuple[int, PromptRecord]] = []

    def flush(self, producer: Any) -> None:
        """Store the ready tasks' arguments (for recovery), then publish them."""
        if not self.ready:
            return
        key = job_args_key(self.job.id)
        pipe = _RESULTS_REDIS.pipeline(transaction=False)
        pipe.hset(key, mapping={str(i): json.dumps(r.to_json()) for i, r in self.ready})
        pipe.expire(key, settings.result_expires)
        pipe.execute()
        for index, record in self.ready:
            _publish(
                self.job, index, record.to_json(), producer, self.queue, _argsrepr(index, record)
            )
        self.ready.clear()

    def add(self, index: int, raw: Any) -> None:
        task_id = self.job.task_id(index)
        try:
            if isinstance(raw, InvalidPrompt):
                raise raw
            record = raw if isinstance(raw, PromptRecord) else parse_record(raw)
            record = self._staged(record)
        except InvalidPrompt as exc:
            result = Result(
                index=index,
                metadata=metadata_of(raw),
                error=f"invalid prompt: {exc}",
                error_kind="invalid_prompt",
                task_id=task_id,
            )
            app.backend.store_result(task_id, result.to_json(), states.SUCCESS)
            return
        self.ready.append((index, record))

    def _staged(self, record: PromptRecord) -> PromptRecord:
        if record.staged:
            return record
        refs = [
            m if isinstance(m, MediaRef) else self.stager.stage(m, m.where) for m in record.media
        ]
        for ref in refs:
            if ref.sha256 and ref.sha256 not in self.media_seen:
                self.media_seen.add(ref.sha256)
                _track_media(self.job.id, ref.sha256)
        return replace(record, media=tuple(refs))


def _publish(job: Job, index: int, record: dict, producer: Any, queue: str, argsrepr: str) -> None:
    """Send the task message `generate.apply_async` would send, without what comes with it:
    Celery's Redis result backend subscribes to a channel per task sent (and keeps an
    AsyncResult), which for 100,000 prompts nobody reads."""
    args = (record, index)
    options = app.amqp.router.route({"queue": queue}, generate.name, args, {})
    message = app.amqp.create_task_message(
        job.task_id(index), generate.name, args, {}, group_id=job.id, group_index=index,
        argsrepr=argsrepr,
    )  # fmt: skip
    app.amqp.send_task_message(producer, generate.name, message, **options)


def _argsrepr(index: int, record: PromptRecord) -> str:
    """What Flower and logs show of a task: never media bytes, never a secret."""
    media = "".join(
        f", {m.kind} {m.mime_type} {(m.sha256 or '')[:12] or m.uri}"  # type: ignore[union-attr]
        for m in record.media
    )
    return f"(prompt #{index}: {record.prompt[:60]!r}{media})"


def _media_store() -> MediaStore:
    return open_store(
        settings.media_store,
        _STATE_REDIS,
        redis_prefix(settings.key_prefix),
        settings.result_expires,
    )


def _track_media(job_id: str, sha256: str) -> None:
    prefix = redis_prefix(settings.key_prefix)
    pipe = _STATE_REDIS.pipeline()
    pipe.sadd(f"{prefix}:job:{job_id}:media", sha256)
    pipe.expire(f"{prefix}:job:{job_id}:media", settings.result_expires)
    pipe.sadd(f"{prefix}:media:{sha256}:jobs", job_id)
    pipe.expire(f"{prefix}:media:{sha256}:jobs", settings.result_expires)
    pipe.execute()


def _forget_media(job_id: str) -> list[tuple[str, str]]:
    """Drop the job's hold on its media; delete what no other job holds. Returns the
    uploaded files (project, name) of the deleted media."""
    prefix = redis_prefix(settings.key_prefix)
    client = _STATE_REDIS
    store = _media_store()
    files: list[tuple[str, str]] = []
    for raw in client.smembers(f"{prefix}:job:{job_id}:media"):
        sha256 = raw.decode()
        holders = f"{prefix}:media:{sha256}:jobs"
        client.srem(holders, job_id)
        if client.scard(holders):
            continue
        store.delete(sha256)
        uploads = f"{prefix}:media:{sha256}:uploads"
        for project, name in client.hgetall(uploads).items():
            files.append((project.decode(), name.decode()))
            client.delete(f"{prefix}:upload:{project.decode()}:{sha256}")
        client.delete(uploads)
    client.delete(f"{prefix}:job:{job_id}:media")
    return files
