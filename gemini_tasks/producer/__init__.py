"""The producer side: submit prompts as a job, then collect, inspect and steer it.

`submit` puts a job's prompts in its queue in Redis (the scheduler; workers feed the
broker from it); `Job` collects, reports on and steers a job from any process. May import
the bottom layer, `media` and `scheduler`; never `worker`, `pool`, `ops` or `emulator`.
"""

from gemini_tasks.producer.job import Job, JobIncomplete, JobRunning, JobStatus
from gemini_tasks.producer.submission import JobOptions, submit
from gemini_tasks.scheduler import Mode, Priority

__all__ = [
    "Job",
    "JobIncomplete",
    "JobOptions",
    "JobRunning",
    "JobStatus",
    "Mode",
    "Priority",
    "submit",
]
