"""gemini_tasks: run large batches of Gemini prompts on a fleet of Celery workers.

The Celery application lives in `gemini_tasks.celery` (found by `celery -A gemini_tasks`);
producers use `gemini_tasks.jobs`, workers run `gemini_tasks.tasks`.
"""

__version__ = "0.1.0"
