"""The producer side: submit prompts as a job, then collect, inspect or forget it.

`submit` queues one task per prompt (publishing by task name: nothing here imports the
worker); `Job` collects results from any process. May import the bottom layer and
`media`; never `worker`, `pool`, `ops` or `emulator`.
"""

from gemini_tasks.producer.job import Job
from gemini_tasks.producer.submission import submit

__all__ = ["Job", "submit"]
