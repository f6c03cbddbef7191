"""Ending a job's unsent prompts at once: when it is cancelled or its budget is spent."""

from __future__ import annotations

from gemini_tasks.errors import ErrorKind
from gemini_tasks.messages import task_id
from gemini_tasks.result import Result
from gemini_tasks.scheduler.outcomes import Outcomes
from gemini_tasks.scheduler.queue import JobQueue, JobState


def end_unsent(
    queue: JobQueue, outcomes: Outcomes, job_id: str, state: JobState, kind: ErrorKind, why: str
) -> int:
    """Put the job in `state` (so no worker feeds it) and end every prompt still in its
    queue with `kind`: `collect` then returns at once. Prompts already fed end so when a
    worker takes them. Returns how many were ended here."""
    ended = 0
    while indexes := queue.stop(job_id, state):
        for index in indexes:
            result = Result(index=index, task_id=task_id(job_id, index))
            result.fail(kind, why)
            if outcomes.finish(job_id, result):
                queue.done(job_id, index, False)
                ended += 1
    return ended
