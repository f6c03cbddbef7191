"""`Job`: a submitted batch of prompts, collected, inspected and steered by its id from any
process.

Task ids are derived from the job id and the prompt's position (`<job>-<index>`). Results
are collected from the job's completion stream, so a collector's cost follows what finished
since it last looked, not what is still pending; `status` reads the job's counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from gemini_tasks import runtime
from gemini_tasks.app import DELETE_FILES
from gemini_tasks.errors import ErrorKind, GeminiTasksError, JobNotFound, JobTimeout
from gemini_tasks.media.store import open_store
from gemini_tasks.messages import task_id
from gemini_tasks.producer import holds
from gemini_tasks.result import Result
from gemini_tasks.scheduler import (
    BatchBook,
    Counts,
    JobInfo,
    JobQueue,
    JobState,
    Outcomes,
    Priority,
)
from gemini_tasks.scheduler.ending import end_unsent

FETCH = 500
# Results are read from the completion stream this many at most at a time; a read that
# found fewer is followed by a pause of GATHER seconds, so that a collector keeping up with
# a fast job reads its results in batches, not three Redis commands a result.
EVENTS, GATHER = 1000, 0.05


class JobIncomplete(GeminiTasksError):
    """The job's producer stopped before queueing every prompt: no more results will come."""


class JobRunning(GeminiTasksError):
    """The job still has prompts to run: cancel it first."""


@dataclass(frozen=True)
class JobStatus:
    """A job as it stands: `state` is one of submitting, running, paused, cancelled,
    finished, incomplete."""

    id: str
    state: str
    info: JobInfo
    counts: Counts
    waiting: int  # prompts in the job's queue, not yet fed to a worker
    in_flight: int  # prompts fed to workers (queued in the broker, waiting, or calling)
    batched: int  # prompts in the job's Batch Mode batches, until Gemini answers them
    first_done: float | None  # when its first and latest prompts finished
    last_done: float | None

    @property
    def total(self) -> int:
        return self.info.total

    @property
    def rate(self) -> float:
        """Prompts finished per second, over the time prompts have been finishing."""
        if not self.first_done or not self.last_done or self.last_done <= self.first_done:
            return 0.0
        return (self.counts.done - 1) / (self.last_done - self.first_done)

    @property
    def eta(self) -> float | None:
        """Seconds until every prompt has finished at the current rate (None: unknown)."""
        left = self.total - self.counts.done
        if self.state != "running" or not self.rate:
            return None
        return left / self.rate


class Job:
    """A submitted batch of prompts; `id` is its Celery group id."""

    def __init__(self, job_id: str, rt: runtime.Runtime | None = None):
        self.id = job_id
        self.rt = rt or runtime.current()
        ttl = self.rt.settings.result_expires
        self.scheduler = JobQueue(self.rt.broker, self.rt.keys, ttl)
        self.outcomes = Outcomes(self.rt.results, self.rt.keys, ttl, self.rt.settings.prices)
        self.batches = BatchBook(self.rt.broker, self.rt.keys)

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    @classmethod
    def restore(cls, job_id: str, rt: runtime.Runtime | None = None) -> Job:
        """The job with this id, from any process; raises `JobNotFound` if there is none."""
        job = cls(job_id, rt)
        job.rt.check_redis()
        job.info()
        return job

    @staticmethod
    def recent(limit: int = 20, rt: runtime.Runtime | None = None) -> list[Job]:
        """The most recently submitted jobs that have not expired, newest first."""
        rt = rt or runtime.current()
        rt.check_redis()
        queue = JobQueue(rt.broker, rt.keys, rt.settings.result_expires)
        return [Job(job_id, rt) for job_id in queue.recent(limit)]

    def task_id(self, index: int) -> str:
        return task_id(self.id, index)

    def info(self) -> JobInfo:
        info = self.scheduler.info(self.id)
        if info is None:
            raise JobNotFound(f"no job with id {self.id!r} (never submitted, or expired)")
        return info

    @property
    def total(self) -> int:
        return self.info().total

    def state(self, info: JobInfo | None = None, counts: Counts | None = None) -> str:
        info = info or self.info()
        if info.state is JobState.SUBMITTING and not self.scheduler.submitting(self.id):
            return str(JobState.INCOMPLETE)  # its producer died without saying so
        if info.state is not JobState.SUBMITTED:
            return str(info.state)
        counts = counts or self.outcomes.counts(self.id)
        return "finished" if counts.done >= info.total else "running"

    def status(self) -> JobStatus:
        info = self.info()
        counts = self.outcomes.counts(self.id)
        first, last = self.outcomes.finished_between(self.id)
        return JobStatus(
            id=self.id,
            state=self.state(info, counts),
            info=info,
            counts=counts,
            waiting=self.scheduler.waiting(self.id),
            in_flight=self.scheduler.in_flight(self.id),
            batched=self.batches.batched(self.id),
            first_done=first,
            last_done=last,
        )

    def count_done(self) -> tuple[int, int]:
        """How many prompts have a result, out of how many submitted so far."""
        return self.outcomes.counts(self.id).done, self.total

    # -- collecting -----------------------------------------------------------------------
    def _finished(self, after: str, wait: float, gather: bool) -> tuple[str, list[int]]:
        if gather:
            time.sleep(GATHER)
        return self.outcomes.events(self.id, after, EVENTS, block=wait)

    def _check_waiting(self, deadline: float | None, done: int, what: str) -> None:
        """Raise when no more results can come in time: a deadline passed, or the job's
        producer stopped early and everything it queued has finished."""
        if deadline is not None and time.monotonic() > deadline:
            raise JobTimeout(what)
        info = self.info()
        if self.state(info) == JobState.INCOMPLETE.value and done >= info.total:
            raise JobIncomplete(
                f"job {self.id} is incomplete: its producer stopped after {info.total} prompts "
                f"(all have results); finish it with `gemini-tasks submit --resume {self.id} FILE`"
            )

    def results(self, timeout: float | None = None, interval: float = 0.2) -> Iterator[Result]:
        """Every result in input order, waiting for each as needed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        position, finished, upcoming = "0-0", set(), 0
        indexes: list[int] = []
        while True:
            total = self.total
            if upcoming >= total and self.state() not in ("submitting", JobState.INCOMPLETE.value):
                return
            wait = 0 if upcoming in finished else interval
            gather = wait > 0 and 0 < len(indexes) < EVENTS
            position, indexes = self._finished(position, wait, gather)
            finished.update(indexes)
            ready: list[int] = []
            while upcoming in finished and len(ready) < FETCH:
                ready.append(upcoming)
                upcoming += 1
            if ready:
                found = self.outcomes.results(self.id, ready)
                for index in ready:
                    finished.discard(index)
                    if index not in found:  # retried since: its next result is to come
                        upcoming = index
                        break
                    yield found[index]
            elif not indexes:
                what = f"job {self.id}: timed out waiting for results from index {upcoming} on"
                self._check_waiting(deadline, upcoming, what)

    def as_completed(self, timeout: float | None = None, interval: float = 0.2) -> Iterator[Result]:
        """Every result, each as soon as it is found finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        position, yielded = "0-0", 0
        indexes: list[int] = []
        while True:
            if yielded >= self.total and self.state() not in ("submitting", "incomplete"):
                return
            position, indexes = self._finished(position, interval, 0 < len(indexes) < EVENTS)
            for start in range(0, len(indexes), FETCH):
                found = self.outcomes.results(self.id, indexes[start : start + FETCH])
                yield from found.values()
                yielded += len(found)
            if not indexes:
                what = f"job {self.id}: {self.total - yielded} of {self.total} not done"
                self._check_waiting(deadline, yielded, what)

    # -- steering -------------------------------------------------------------------------
    def cancel(self) -> int:
        """Send no more of this job's prompts: every prompt not yet sent ends as cancelled
        at once (calls in flight finish). Returns how many were cancelled here."""
        why = "cancelled: the job was cancelled before this prompt was sent"
        ended = end_unsent(
            self.scheduler, self.outcomes, self.id, JobState.CANCELLED, ErrorKind.CANCELLED, why
        )
        # Its Batch Mode batches are cancelled by whichever worker looks at them first.
        BatchBook(self.scheduler.redis, self.scheduler.keys).due_now(self.id)
        return ended

    def pause(self) -> None:
        """Feed no more of this job's prompts until `resume` (calls in flight finish)."""
        self.scheduler.pause(self.id)

    def resume(self) -> None:
        info = self.info()
        if info.state is JobState.PAUSED:
            state = (
                JobState.SUBMITTED
                if not self.scheduler.submitting(self.id)
                else JobState.SUBMITTING
            )
            self.scheduler.resume(self.id, state)

    def set_priority(self, priority: Priority) -> None:
        self.scheduler.reprioritise(self.id, priority)

    def set_budget(self, usd: float) -> None:
        """Raise (or set) the job's budget; prompts stopped by the old one run again."""
        self.outcomes.set_budget(self.id, usd)
        self.scheduler.update(self.id, budget=usd)
        self.retry([ErrorKind.BUDGET])

    def retry(self, kinds: list[ErrorKind] | None = None) -> int:
        """Run again, in place (same indexes, same job), the prompts that failed (with one
        of `kinds`, if given). Returns how many go again."""
        again = 0
        for kind in kinds or [k for k in ErrorKind]:
            while indexes := self.outcomes.forget_failures(self.id, kind):
                self.scheduler.requeue(self.id, sorted(indexes))
                again += len(indexes)
        if again and self.info().state in (JobState.CANCELLED, JobState.OVER_BUDGET):
            self.scheduler.resume(self.id, JobState.SUBMITTED)
        return again

    def forget(self, force: bool = False) -> None:
        """Delete this job's results, its record, and the media no other job uses; workers
        delete that media's uploaded files from Gemini. A job still running is refused
        unless `force` (which cancels it first)."""
        if self.state() in ("running", "submitting", "paused"):
            if not force:
                raise JobRunning(
                    f"job {self.id} is still running: cancel it first "
                    f"(`gemini-tasks cancel {self.id}`), or forget it with --cancel"
                )
            self.cancel()
        info = self.info()
        settings = self.rt.settings
        store = open_store(
            settings.media_store, self.rt.redis, self.rt.keys, settings.result_expires
        )
        files = holds.release(self.rt, self.id, store)
        if files:
            # The job's own workers hold keys of the projects its files were uploaded in.
            self.rt.app.send_task(DELETE_FILES, args=([list(f) for f in files],), queue=info.queue)
        self.outcomes.delete(self.id, info.total)
        self.scheduler.delete(self.id)
