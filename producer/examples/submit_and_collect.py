"""Submit a JSONL file of prompts, then collect the results by job id, in input order.

    REDIS_URL=redis://host:6379/0 python producer/examples/submit_and_collect.py prompts.jsonl

The collecting half can run later, on another machine: it needs only the job id.
"""

import sys
from pathlib import Path

from gemini_tasks.ops.prompt_files import read_records
from gemini_tasks.producer import Job, submit

job = submit(read_records(Path(sys.argv[1])))
print(f"job id: {job.id}")

for result in Job.restore(job.id).results(timeout=3600):
    metadata, response, error = result.as_tuple()
    if error:
        print(f"#{result.index} {metadata} failed: {error}")
    else:
        print(f"#{result.index} {metadata} ({result.key_id}): {response[:100]}")
