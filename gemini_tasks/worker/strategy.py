"""How the worker takes a prompt's message: Celery's own strategy, except that a prompt fed
again after waiting in Redis is not announced as received a second time.

Flower counts every `task-received` event as one more task processed, so a prompt parked
for a key and fed again would count once per wait. Its wait is announced instead as a
`task-retried` event (Flower: RETRY, with the reason) when it parks, and its next run goes
on as the same task: STARTED, then SUCCESS or FAILURE.
"""

from __future__ import annotations

from typing import Any

from celery.worker.strategy import default

from gemini_tasks.messages import RESUMED


class _Announcer:
    """The worker's event dispatcher, silent about a resumed prompt's arrival."""

    def __init__(self, dispatcher: Any):
        self._dispatcher = dispatcher
        self.enabled = dispatcher.enabled

    def send(self, type: str, **fields: Any) -> Any:
        if type == "task-received" and str(fields.get("kwargs", "")).startswith(RESUMED):
            return None
        return self._dispatcher.send(type, **fields)


class _Consumer:
    """The consumer as Celery's strategy reads it, with the event dispatcher above."""

    def __init__(self, consumer: Any):
        self._consumer = consumer
        dispatcher = consumer.event_dispatcher
        self.event_dispatcher = _Announcer(dispatcher) if dispatcher else dispatcher

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def once_per_prompt(task: Any, app: Any, consumer: Any, **options: Any) -> Any:
    """Celery's default strategy (`celery.worker.strategy.default`) for `generate`."""
    return default(task, app, _Consumer(consumer), **options)
