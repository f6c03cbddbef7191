"""`submit`: put a job's prompts in its queue in Redis, as a stream, and return the `Job`.

Records are checked and their media staged before they are queued, so a task carries only
a checked record with media references. A record that fails stays in the job, in its
place, as a refusal: its task ends at once as that prompt's `invalid_prompt` result (and a
FAILURE in Flower), and the rest of the batch goes on. Workers start on the first prompts
while later ones are still being read. The job id exists (and `on_created` hears of it)
before the first prompt is queued; a submit that stops early leaves the job `incomplete`,
to be finished with `resume=`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import redis
from kombu.exceptions import OperationalError

from gemini_tasks import runtime
from gemini_tasks.errors import InvalidPrompt, JobNotFound, RedisUnavailable
from gemini_tasks.media.store import open_store
from gemini_tasks.producer import holds
from gemini_tasks.producer.job import Job
from gemini_tasks.producer.staging import Stager
from gemini_tasks.records import PromptRecord, StagedRecord, parse_record
from gemini_tasks.result import metadata_of
from gemini_tasks.scheduler import JobState, Mode, Priority

log = logging.getLogger(__name__)

Record = dict[str, Any] | PromptRecord | InvalidPrompt
CHUNK = 500


@dataclass(frozen=True)
class JobOptions:
    """How a job runs on the fleet. Every field has the default a plain submit gets."""

    queue: str | None = None  # the workers' queue (default GEMINI_TASKS_QUEUE)
    priority: Priority = Priority.NORMAL  # higher levels go ahead of lower ones
    weight: float = 1.0  # its share beside other jobs of its priority
    max_concurrency: int = 0  # at most this many of its prompts running at once (0: no cap)
    max_rpm: int = 0  # at most this many of its prompts started a minute (0: no cap)
    budget: float = 0.0  # stop sending once its cost reaches this many USD (0: none)
    # Identical requests are sent once, and answers of earlier --dedupe jobs are reused.
    dedupe: bool = False
    mode: Mode = Mode.ONLINE  # FLEX: every call on the Flex tier, at half the price
    # With FLEX: a prompt Flex keeps shedding this many seconds runs on the standard tier
    # (0: it waits for Flex, up to GEMINI_TASKS_OUTAGE_BUDGET).
    fallback_after: float = 0.0
    # With BATCH: a batch still pending after this many seconds is cancelled and its prompts
    # batched again (with a fallback_after, the job goes on online).
    batch_deadline: float = 86400.0
    # Prompts sharing a prefix (system instruction, leading media) name one context cache
    # per project instead of sending it: its input tokens cost the cached price.
    cache: bool = False

    def fields(self) -> dict[str, str | int | float]:
        return {
            "priority": self.priority.value,
            "weight": self.weight,
            "max_concurrency": self.max_concurrency,
            "max_rpm": self.max_rpm,
            "dedupe": int(self.dedupe),
            "mode": self.mode.value,
            "fallback_after": self.fallback_after,
            "batch_deadline": self.batch_deadline,
            "cache": int(self.cache),
        }


def submit(
    records: Iterable[Record],
    *,
    options: JobOptions | None = None,
    on_created: Callable[[Job], None] | None = None,
    on_submitted: Callable[[int], None] | None = None,
    resume: str | None = None,
    queue: str | None = None,
    rt: runtime.Runtime | None = None,
) -> Job:
    """Queue every record as a prompt of a new job (or, with `resume`, of the incomplete job
    of that id, skipping the records it already has) and return the job.

    Records are consumed as a stream. `on_created(job)` is called once the job exists,
    before its first prompt is queued; `on_submitted(count)` every so often, for progress.
    """
    rt = rt or runtime.current()
    rt.check_redis()
    options = options or JobOptions(queue=queue)
    job, start = _open(rt, options, resume)
    if on_created:
        on_created(job)
    submitter = _Submitter(rt, job)
    count = start
    try:
        for index, raw in enumerate(islice(records, start, None), start=start):
            submitter.add(index, raw)
            count = index + 1
            if count % CHUNK == 0:
                submitter.flush(count)
                if on_submitted:
                    on_submitted(count)
        submitter.flush(count)
        job.scheduler.finish_submitting(job.id, JobState.SUBMITTED)
    except (redis.RedisError, OperationalError) as exc:
        raise RedisUnavailable(
            f"Redis became unreachable after {count} prompts of job {job.id} were queued "
            f"({exc}); finish it later with `gemini-tasks submit --resume {job.id} FILE`"
        ) from None
    except BaseException:  # Ctrl-C, a crash reading the records: the job is incomplete
        if submitter.ready:  # every prompt read before it stopped (not a batch cut short)
            submitter.flush(count)
        job.scheduler.finish_submitting(job.id, JobState.INCOMPLETE)
        raise
    if on_submitted:
        on_submitted(count)
    return job


def _open(rt: runtime.Runtime, options: JobOptions, resume: str | None) -> tuple[Job, int]:
    """The job to add prompts to, and how many it has already."""
    if resume is not None:
        job = Job.restore(resume, rt)
        info = job.info()
        if info.state not in (JobState.INCOMPLETE, JobState.SUBMITTING):
            raise JobNotFound(f"job {resume} is {info.state.value}: there is nothing to resume")
        job.scheduler.update(job.id, state=JobState.SUBMITTING.value)
        return job, info.total
    job = Job(uuid.uuid4().hex, rt)
    fields: dict[str, str | int | float] = {
        "created_at": time.time(),
        "queue": options.queue or rt.settings.queue,
    }
    job.scheduler.create(job.id, {**fields, **options.fields()})
    if options.budget:
        job.outcomes.set_budget(job.id, options.budget)
        job.scheduler.update(job.id, budget=options.budget)
    return job, 0


class _Submitter:
    """Checks, stages and queues the records of one job."""

    def __init__(self, rt: runtime.Runtime, job: Job):
        self.rt, self.job = rt, job
        settings = rt.settings
        store = open_store(settings.media_store, rt.redis, rt.keys, settings.result_expires)
        self.stager = Stager(store)
        self.media_seen: set[str] = set()
        self.ready: list[tuple[int, str]] = []
        self.model: str | None = None

    def add(self, index: int, raw: Record) -> None:
        try:
            record = self._staged(raw)
        except InvalidPrompt as exc:
            self.ready.append((index, _refusal(raw, str(exc))))
        except (redis.RedisError, OperationalError):
            raise
        except Exception as exc:  # a pathological record fails alone, never the submit
            log.warning("prompt %d of job %s could not be read: %r", index, self.job.id, exc)
            self.ready.append((index, _refusal(raw, f"cannot be read ({type(exc).__name__})")))
        else:
            if self.model is None:
                self.model = record.model or self.rt.settings.model
                self.job.scheduler.update(self.job.id, model=self.model)
            self.ready.append((index, json.dumps(record.to_json())))

    def _staged(self, raw: Record) -> StagedRecord:
        if isinstance(raw, InvalidPrompt):
            raise raw
        record = raw if isinstance(raw, PromptRecord) else parse_record(raw)
        refs = tuple(self.stager.stage(m) for m in record.media)
        for ref in refs:
            if ref.sha256 and ref.sha256 not in self.media_seen:
                self.media_seen.add(ref.sha256)
                holds.hold(self.rt, self.job.id, ref.sha256)
        return record.staged(refs)

    def flush(self, total: int) -> None:
        # Taken first: a batch an interrupt cut short is not queued a second time.
        ready, self.ready = self.ready, []
        self.job.scheduler.add(self.job.id, ready, total)


def _refusal(raw: Any, message: str) -> str:
    """A refused record, kept in its place: its task ends as this error."""
    return json.dumps({"refused": message, "metadata": metadata_of(raw)})
