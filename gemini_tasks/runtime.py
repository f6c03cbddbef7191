"""The process's connections to gemini_tasks: its settings, Redis clients and Celery app.

Nothing here exists until first asked for. `current()` builds a `Runtime` from the
environment (and `.env`) on first use and keeps it; `reset()` drops it, so the next use
reads the environment again (local mode does, when it starts or stops its embedded Redis).
Code that is handed a `Runtime` uses it; code that is not asks `current()`.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import cast

from celery import Celery
from celery.backends.redis import RedisBackend
from redis import Redis, RedisError

from gemini_tasks import settings as settings_module
from gemini_tasks.app import celery_config, make_app
from gemini_tasks.connections import connect
from gemini_tasks.errors import RedisUnavailable
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.settings import Settings, mask_url


class Runtime:
    """Settings and the clients made from them; each client is created on first use."""

    def __init__(self, settings: Settings, patient: bool = True):
        self.settings = settings
        self.keys = Keyspace(settings.key_prefix)
        self.patient = patient  # ride out a Redis restart, or fail within seconds

    def impatient(self) -> Runtime:
        """The same cluster, for an operator's view: Redis away is an error at once."""
        return Runtime(self.settings, patient=False)

    @cached_property
    def redis(self) -> Redis:
        """Key state, media and job bookkeeping (`REDIS_URL`)."""
        return connect(self.settings.redis_url, self.patient)

    @cached_property
    def results(self) -> Redis:
        """The result backend's Redis."""
        return connect(self.settings.result_backend, self.patient)

    @cached_property
    def broker(self) -> Redis:
        """The broker's Redis, read to find tasks it lost."""
        return connect(self.settings.broker_url, self.patient)

    @cached_property
    def app(self) -> Celery:
        """A Celery app for publishing tasks and reading results."""
        return make_app(lambda: celery_config(self.settings), set_as_current=False)

    @property
    def backend(self) -> RedisBackend:
        """The result backend: where each task's result is stored, and its key names."""
        return cast(RedisBackend, self.app.backend)

    def check_redis(self) -> None:
        """Fail fast, and say why, when the result backend cannot be reached."""
        # Asked once, without the retries of the long-lived clients.
        try:
            Redis.from_url(self.settings.result_backend, socket_connect_timeout=5).ping()
        except RedisError as exc:
            url = mask_url(self.settings.result_backend)
            raise RedisUnavailable(f"cannot reach Redis at {url}: {exc}") from None

    def close(self) -> None:
        for name in ("redis", "results", "broker"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                client.close()
        app = self.__dict__.pop("app", None)
        if app is not None:
            app.close()


_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime:
    """This process's runtime, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            settings_module.load_env_file()
            _current = Runtime(settings_module.load())
        return _current


def reset() -> None:
    """Forget the current runtime (closing its clients); the next `current()` rebuilds it."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
        _current = None
