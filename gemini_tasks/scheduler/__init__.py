"""The scheduler: where a job's prompts wait, in what order they are fed to the workers, and
where their outcomes are counted, all in Redis and changed by Lua scripts.

Producers put prompts in a job's queue (`JobQueue.add`); each worker feeds the broker
from the jobs' queues as its threads free up (`JobQueue.dispatch`: priorities, fair share,
per-job caps), so the broker and the workers only ever hold what is about to run, and a
higher-priority job goes ahead of everything still waiting. Outcomes are recorded once per
prompt (`Outcomes.finish`), with counts and a completion stream, so status and collection
cost what finished since the last look. Workers keep a heartbeat; what a dead one held goes
back within seconds (`Liveness.sweep`).

The queue side runs on the broker's Redis, the outcome side on the result backend's. May
import only the bottom layer.
"""

from gemini_tasks.scheduler.answers import Answers, Claimed, request_digest
from gemini_tasks.scheduler.batches import BatchBook, BatchRecord, BatchState
from gemini_tasks.scheduler.liveness import Liveness
from gemini_tasks.scheduler.outcomes import Counts, JobMetrics, Outcomes
from gemini_tasks.scheduler.queue import (
    Control,
    Dispatched,
    Fed,
    JobInfo,
    JobQueue,
    JobState,
    Mode,
    Priority,
    Suspect,
)

__all__ = [
    "Answers",
    "BatchBook",
    "BatchRecord",
    "BatchState",
    "Claimed",
    "Control",
    "Counts",
    "Dispatched",
    "Fed",
    "JobInfo",
    "JobMetrics",
    "JobQueue",
    "JobState",
    "Liveness",
    "Mode",
    "Outcomes",
    "Priority",
    "Suspect",
    "request_digest",
]
