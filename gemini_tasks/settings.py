"""Every setting of gemini_tasks, read once from the environment and `.env`.

Each setting is documented in the README's configuration table; a bad value raises a
`ConfigError` that names the variable (and never repeats a password it held). Nothing is
read at import: `load()` builds a `Settings` when asked, and `gemini_tasks.runtime` keeps
the process's current one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dotenv import find_dotenv, load_dotenv

from gemini_tasks.errors import ConfigError
from gemini_tasks.limits import Limits, LimitTable, parse_limits
from gemini_tasks.prices import DEFAULT_PRICES, Price, parse_prices

T = TypeVar("T")
N = TypeVar("N", int, float)

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_MODEL = "gemini-2.5-flash"


@dataclass(frozen=True)
class Settings:
    redis_url: str
    broker_url: str
    result_backend: str
    model: str
    task_time_limit: float
    visibility_timeout: int
    result_expires: int
    max_retries: int
    request_timeout: float
    retry_backoff: float
    retry_backoff_max: float
    concurrency: int
    queue: str
    key_prefix: str
    log_level: str
    gemini_base_url: str | None
    api_key_names: tuple[str, ...]
    projects: dict[str, str]
    key_cooldown_seconds: float
    exhausted_wait_seconds: float
    fully_exhausted_wait_seconds: float
    max_exhausted_retries: int
    limits: LimitTable
    max_key_wait: float
    short_key_wait: float
    batch_size: int  # prompts per Batch Mode batch, at most
    batch_poll: float  # seconds between looks at a pending batch, at most
    batch_inline_bytes: int  # a batch's requests beyond this go as a JSONL file, not inline
    batch_tokens: int  # Batch Mode's enqueued input tokens a project and model, at most
    batch_concurrent: int  # Batch Mode's unfinished batches a project, at most
    cache_ttl: int  # seconds a --cache job's context cache lives unless its job renews it
    outage_budget: float
    worker_dead_after: float
    lost_after: float
    prices: dict[str, Price]
    media_store: str
    inline_limit_bytes: int
    local_dir: Path  # local mode's Redis data and logs, kept between runs
    log_format: str
    # False when REDIS_URL was not set: the CLI then runs a local, embedded cluster.
    redis_url_configured: bool


def mask_url(url: str) -> str:
    """`url` with the credentials before its host masked, however malformed it is."""
    scheme, sep, rest = url.partition("//")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:**" if colon else "**"
    return f"{scheme}{sep}{masked}@{host}"


def _number(kind: Callable[[str], N], *, positive: bool) -> Callable[[str], N]:
    """A parser of `kind` values greater than 0 (`positive`), or of 0 or more."""

    def parse(raw: str) -> N:
        value = kind(raw)
        if value < 0 or (positive and value == 0):
            raise ValueError("must be greater than 0" if positive else "must be 0 or more")
        return value

    parse.__name__ = f"{'positive' if positive else 'non-negative'} {kind.__name__}"
    return parse


_POSITIVE_INT = _number(int, positive=True)
_POSITIVE_FLOAT = _number(float, positive=True)
_COUNT = _number(int, positive=False)
_SECONDS = _number(float, positive=False)


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return raw


def _names(raw: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in raw.split(",") if n.strip())


def _projects(raw: str) -> dict[str, str]:
    """`project=VAR,VAR; project=VAR` into {variable name: project}."""
    projects: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in raw.split(";"))):
        project, sep, names = entry.partition("=")
        if not sep or not project.strip() or not _names(names):
            raise ValueError(
                f"must look like project=GEMINI_API_KEY_1,GEMINI_API_KEY_2; got {entry!r}"
            )
        for name in _names(names):
            projects[name] = project.strip()
    return projects


def _log_format(raw: str) -> str:
    if raw not in ("text", "json"):
        raise ValueError("must be 'text' or 'json'")
    return raw


def _media_store(raw: str) -> str:
    if raw != "redis" and not raw.startswith("file:///"):
        raise ValueError("must be 'redis' or a shared directory as 'file:///path'")
    return raw


def _read(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except ValueError as exc:
        reason = str(exc) if "must" in str(exc) else f"expected a {parse.__name__} value"
        # A Redis URL may carry a password: the message shows it masked.
        shown = mask_url(raw) if parse is _redis_url else raw
        raise ConfigError(f"{name}={shown!r} is not valid: {reason}") from None


def load_env_file() -> None:
    """Load `.env` from the current directory upwards; real environment variables win."""
    load_dotenv(find_dotenv(usecwd=True), override=False)


PREFIX = "GEMINI_TASKS_"


class _Env:
    """Reads `GEMINI_TASKS_<name>` settings from one environment."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env

    def get(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        return _read(self.env, PREFIX + name, default, parse)


def _limits(e: _Env, model: str) -> LimitTable:
    no_limits: tuple[dict[str, Limits], dict[tuple[str, str], Limits]] = ({}, {})
    per_model, per_project = e.get("LIMITS", no_limits, parse_limits)
    return LimitTable(
        default_model=model,
        default=Limits(
            rpm=e.get("RPM", 0, _COUNT), tpm=e.get("TPM", 0, _COUNT), rpd=e.get("RPD", 0, _COUNT)
        ),
        per_model=per_model,
        per_project_model=per_project,
    )


def _time_limits(e: _Env) -> tuple[float, int, float]:
    """The task time limit, the visibility timeout above it, and the request timeout."""
    task_time_limit = e.get("TASK_TIME_LIMIT", 600.0, _POSITIVE_FLOAT)
    visibility_timeout = e.get("VISIBILITY_TIMEOUT", 3600, _POSITIVE_INT)
    if visibility_timeout <= task_time_limit:
        # The broker would hand a still-running task to a second worker.
        raise ConfigError(
            f"{PREFIX}VISIBILITY_TIMEOUT={visibility_timeout} must be greater than "
            f"{PREFIX}TASK_TIME_LIMIT={task_time_limit:g}"
        )
    request_timeout = e.get("REQUEST_TIMEOUT", 120.0, _POSITIVE_FLOAT)
    return task_time_limit, visibility_timeout, min(request_timeout, task_time_limit)


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `env` (default: `.env` merged under `os.environ`)."""
    if env is None:
        load_env_file()
        env = os.environ
    e = _Env(env)
    redis_url = _read(env, "REDIS_URL", DEFAULT_REDIS_URL, _redis_url)
    model = e.get("MODEL", DEFAULT_MODEL, str)
    task_time_limit, visibility_timeout, request_timeout = _time_limits(e)
    return Settings(
        redis_url=redis_url,
        broker_url=e.get("BROKER_URL", redis_url, _redis_url),
        result_backend=e.get("RESULT_BACKEND", redis_url, _redis_url),
        model=model,
        task_time_limit=task_time_limit,
        visibility_timeout=visibility_timeout,
        result_expires=e.get("RESULT_EXPIRES", 7 * 24 * 3600, _POSITIVE_INT),
        max_retries=e.get("MAX_RETRIES", 5, _COUNT),
        request_timeout=request_timeout,
        retry_backoff=e.get("RETRY_BACKOFF", 1.0, _POSITIVE_FLOAT),
        retry_backoff_max=e.get("RETRY_BACKOFF_MAX", 60.0, _POSITIVE_FLOAT),
        concurrency=e.get("CONCURRENCY", 100, _POSITIVE_INT),
        queue=e.get("QUEUE", "gemini_tasks", str),
        key_prefix=e.get("KEY_PREFIX", "gemini_tasks", str),
        log_level=e.get("LOG_LEVEL", "INFO", _log_level),
        gemini_base_url=env.get("GOOGLE_GEMINI_BASE_URL") or None,
        redis_url_configured=bool(env.get("REDIS_URL")),
        api_key_names=e.get("API_KEY_NAMES", (), _names),
        projects=e.get("PROJECTS", {}, _projects),
        key_cooldown_seconds=e.get("KEY_COOLDOWN_SECONDS", 0.0, _SECONDS),
        exhausted_wait_seconds=e.get("EXHAUSTED_WAIT_SECONDS", 60.0, _SECONDS),
        fully_exhausted_wait_seconds=e.get("FULLY_EXHAUSTED_WAIT_SECONDS", 43200.0, _SECONDS),
        max_exhausted_retries=e.get("MAX_EXHAUSTED_RETRIES", 3, _POSITIVE_INT),
        limits=_limits(e, model),
        max_key_wait=e.get("MAX_KEY_WAIT", 90000.0, _SECONDS),
        short_key_wait=e.get("SHORT_KEY_WAIT", 5.0, _SECONDS),
        batch_size=e.get("BATCH_SIZE", 500, _POSITIVE_INT),
        batch_poll=e.get("BATCH_POLL", 60.0, _POSITIVE_FLOAT),
        batch_inline_bytes=e.get("BATCH_INLINE_BYTES", 16 * 1024 * 1024, _POSITIVE_INT),
        # Tier 1's limits for gemini-2.5-flash (ai.google.dev/gemini-api/docs/rate-limits).
        batch_tokens=e.get("BATCH_TOKENS", 3_000_000, _POSITIVE_INT),
        batch_concurrent=e.get("BATCH_CONCURRENT", 100, _POSITIVE_INT),
        cache_ttl=e.get("CACHE_TTL", 900, _POSITIVE_INT),
        outage_budget=e.get("OUTAGE_BUDGET", 6 * 3600.0, _SECONDS),
        worker_dead_after=e.get("WORKER_DEAD_AFTER", 20.0, _POSITIVE_FLOAT),
        lost_after=e.get("LOST_AFTER", 30.0, _POSITIVE_FLOAT),
        prices={**DEFAULT_PRICES, **e.get("PRICES", {}, parse_prices)},
        media_store=e.get("MEDIA_STORE", "redis", _media_store),
        log_format=e.get("LOG_FORMAT", "text", _log_format),
        inline_limit_bytes=e.get("INLINE_LIMIT_BYTES", 20 * 1024 * 1024, _POSITIVE_INT),
        local_dir=e.get("LOCAL_DIR", _data_home(env) / "gemini-tasks", _path),
    )


def _data_home(env: Mapping[str, str]) -> Path:
    """Where the XDG base directory spec keeps a user's data."""
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"])
    return Path(env.get("HOME") or Path.home()) / ".local" / "share"


def _path(raw: str) -> Path:
    return Path(raw).expanduser()
