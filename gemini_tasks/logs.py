"""Log lines of gemini_tasks processes: the seed's readable format, or JSON lines.

Every line written while a task runs names the task and its job (Celery group), so one
prompt's story can be found across machines. Keys appear only by id: secrets are never
passed to a logger.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from celery import current_task

SEED_FORMAT = "%(asctime)s - %(levelname)s - [%(threadName)s] - %(message)s%(task_ids)s"


class TaskContext(logging.Filter):
    """Adds `task_id` and `job_id` (None outside a task) and a readable `task_ids` suffix."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(current_task, "request", None) if current_task else None
        task_id, job_id = getattr(request, "id", None), getattr(request, "group", None)
        record.__dict__.update(
            task_id=task_id,
            job_id=job_id,
            task_ids=f" [task {task_id} job {job_id}]" if task_id else "",
        )
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
            "task_id": getattr(record, "task_id", None),
            "job_id": getattr(record, "job_id", None),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Send every log line to stderr in `fmt` ("text" or "json") at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TaskContext())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(SEED_FORMAT))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
