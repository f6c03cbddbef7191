"""gemini_tasks: run large batches of Gemini prompts on a fleet of Celery workers.

The Celery application lives in `gemini_tasks.celery` (found by `celery -A gemini_tasks`);
producers use `gemini_tasks.jobs`, workers run `gemini_tasks.tasks`. The seed library's API
(`AdvancedApiKeyManager`, `GeminiParallelProcessor`, `GeminiStreamingProcessor`) is
importable from here, as `from gemini_tasks import GeminiParallelProcessor`.
"""

from typing import Any

__version__ = "0.1.0"

_SEED_API = ("AdvancedApiKeyManager", "GeminiParallelProcessor", "GeminiStreamingProcessor")
__all__ = list(_SEED_API)


def __getattr__(name: str) -> Any:
    # Imported on first use: importing the package must not load settings or Celery.
    if name in _SEED_API:
        from gemini_tasks import processors

        return getattr(processors, name)
    raise AttributeError(f"module 'gemini_tasks' has no attribute {name!r}")
