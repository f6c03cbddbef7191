"""`Job`: a submitted batch of prompts, collected later by its id from any process.

Task ids are derived from the job id and the prompt's position (`<job>-<index>`), so any
process that knows the id can collect the results in input order or as they complete.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from gemini_tasks import runtime
from gemini_tasks.app import DELETE_FILES
from gemini_tasks.connections import text
from gemini_tasks.errors import JobNotFound, JobTimeout
from gemini_tasks.media.store import open_store
from gemini_tasks.producer import holds, recovery
from gemini_tasks.producer.fetch import ResultReader, chunks, task_id
from gemini_tasks.result import Result


def _sleep_or_timeout(deadline: float | None, interval: float, what: str) -> None:
    if deadline is not None and time.monotonic() + interval > deadline:
        raise JobTimeout(what)
    time.sleep(interval)


class Job:
    """A submitted batch of prompts; `id` is its Celery group id."""

    def __init__(self, job_id: str, rt: runtime.Runtime | None = None):
        self.id = job_id
        self.rt = rt or runtime.current()
        self._reader = ResultReader(self.rt, job_id)

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    @classmethod
    def restore(cls, job_id: str, rt: runtime.Runtime | None = None) -> Job:
        """The job with this id, from any process; raises `JobNotFound` if there is none."""
        job = cls(job_id, rt)
        job.rt.check_redis()
        if not job.rt.results.exists(job.rt.keys.job(job_id)):
            raise JobNotFound(f"no job with id {job_id!r} (never submitted, or expired)")
        return job

    def task_id(self, index: int) -> str:
        return task_id(self.id, index)

    def info(self) -> dict[str, str]:
        raw = self.rt.results.hgetall(self.rt.keys.job(self.id))
        return {text(k): text(v) for k, v in raw.items()}

    @property
    def total(self) -> int:
        return int(self.info().get("total", 0))

    @property
    def queue(self) -> str:
        return self.info().get("queue", self.rt.settings.queue)

    def _wait_for_total(self, deadline: float | None, interval: float) -> int:
        """The number of prompts, once the producer has finished submitting them."""
        while True:
            info = self.info()
            if not info:
                raise JobNotFound(f"no job with id {self.id!r} (never submitted, or expired)")
            if info.get("state") == "submitted":
                return int(info["total"])
            _sleep_or_timeout(deadline, interval, f"job {self.id} is still being submitted")

    def count_done(self) -> tuple[int, int]:
        """How many prompts have a result, out of how many submitted so far."""
        total = self.total
        return sum(len(self._reader.finished(c)) for c in chunks(range(total))), total

    def results(self, timeout: float | None = None, interval: float = 0.2) -> Iterator[Result]:
        """Every result in input order, waiting for each as needed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        total = self._wait_for_total(deadline, interval)
        stall = recovery.Stall(self.rt, self.id, total, self.queue)
        for window in chunks(range(total)):
            start = window[0]
            ready: dict[int, Result] = {}
            while True:
                found = self._reader.finished([i for i in window if i not in ready])
                ready.update(found)
                # Yield the finished head of the window at once: a caller showing progress moves.
                while window and window[0] in ready:
                    yield ready.pop(window.pop(0))
                if not window:
                    break
                stall.observe(bool(found))
                what = f"job {self.id}: timed out waiting for results from index {start} on"
                _sleep_or_timeout(deadline, interval, what)

    def as_completed(self, timeout: float | None = None, interval: float = 0.2) -> Iterator[Result]:
        """Every result, each as soon as it is found finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        total = self._wait_for_total(deadline, interval)
        pending = list(range(total))
        stall = recovery.Stall(self.rt, self.id, total, self.queue)
        while pending:
            still: list[int] = []
            found = 0
            for chunk in chunks(pending):
                done = self._reader.finished(chunk)
                found += len(done)
                yield from done.values()
                still.extend(i for i in chunk if i not in done)
            pending = still
            stall.observe(bool(found))
            if pending and not found:
                _sleep_or_timeout(deadline, interval, f"{len(pending)} of {total} not done")

    def recover_lost(self) -> int:
        """Re-queue prompts whose task message the broker lost; returns how many."""
        return recovery.recover_lost(self.rt, self.id, self.total, self.queue)

    def forget(self) -> None:
        """Delete this job's results, its record, and the media no other job uses; workers
        delete that media's uploaded files from Gemini."""
        settings = self.rt.settings
        store = open_store(
            settings.media_store, self.rt.redis, self.rt.keys, settings.result_expires
        )
        files = holds.release(self.rt, self.id, store)
        if files:
            # The job's own workers hold keys of the projects its files were uploaded in.
            self.rt.app.send_task(DELETE_FILES, args=([list(f) for f in files],), queue=self.queue)
        for chunk in chunks(range(self.total)):
            self._reader.delete(chunk)
        self.rt.results.delete(self.rt.keys.job(self.id), self.rt.keys.job_args(self.id))
