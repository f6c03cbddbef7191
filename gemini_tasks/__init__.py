"""gemini_tasks: run large batches of Gemini prompts on a fleet of Celery workers.

The package, by side (each subpackage's docstring says what it may import):

- bottom layer, shared by all: `settings`, `errors`, `keyspace`, `records`, `result`,
  `limits`, `keys`, `jsonvalue`, `connections`, `broker`, `app`, `runtime`, `logs`; and
  `media` (the seed's media fields, staged references, stores)
- `pool`: the cluster-wide key pool and its Lua scripts
- `producer`: `submit` and `Job` (collect, status, forget)
- `worker`: the Celery tasks and how one prompt is answered; `celery` is the worker app
- `emulator`: a Gemini API stand-in for tests and dry runs
- `ops` and `seed`: the CLI, local mode, metrics, and the seed library's API

The seed library's API (`AdvancedApiKeyManager`, `GeminiParallelProcessor`,
`GeminiStreamingProcessor`) and the producer API (`submit`, `Job`) are importable from
here. Importing the package reads no setting and opens no connection.
"""

from typing import Any

__version__ = "0.1.0"

_SEED_API = ("AdvancedApiKeyManager", "GeminiParallelProcessor", "GeminiStreamingProcessor")
_PRODUCER_API = ("Job", "submit")
__all__ = [*_SEED_API, *_PRODUCER_API]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import gemini_tasks` stays cheap for `celery -A gemini_tasks`.
    if name in _SEED_API:
        from gemini_tasks import seed

        return getattr(seed, name)
    if name in _PRODUCER_API:
        from gemini_tasks import producer

        return getattr(producer, name)
    raise AttributeError(f"module 'gemini_tasks' has no attribute {name!r}")
