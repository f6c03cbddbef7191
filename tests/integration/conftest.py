"""Real processes for integration tests: redis-server, the emulator, two workers."""

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from gemini_tasks import runtime, settings
from gemini_tasks.limits import next_daily_reset
from gemini_tasks.ops import local
from tests.conftest import EMULATOR_PORT, FAKE_KEY, OTHER_PROJECT_KEY, REDIS_PORT, TEST_ENV

T = TypeVar("T")


def poll(
    read: Callable[[], T], condition: Callable[[T], bool], what: str, timeout: float = 60
) -> T:
    """Read until `condition` holds of what `read()` gives; fail naming `what` and the last
    reading if it never does within a deadline far beyond what the condition needs."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if condition(value):
            return value
        assert time.monotonic() < deadline, f"never saw {what}: {value}"
        time.sleep(0.05)


class EmulatorControl:
    """The running emulator's own endpoints: statistics, reset and live configuration."""

    def __init__(self, url: str):
        self.url = url

    def _post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stats(self, calls: bool = False) -> dict:
        with urllib.request.urlopen(f"{self.url}/_emulator/stats?calls={int(calls)}") as r:
            return json.load(r)

    def reset(self) -> None:
        self._post("/_emulator/reset", {})

    def configure(self, **update: dict) -> dict:
        return self._post("/_emulator/config", update)

    def expire_files(self) -> int:
        return self._post("/_emulator/expire_files", {})["expired"]

    def expire_caches(self) -> int:
        return self._post("/_emulator/expire_caches", {})["expired"]

    def finish_batches(self) -> int:
        """Make every unfinished batch due: answered at its next look."""
        return self._post("/_emulator/finish_batches", {})["due"]

    def release(self) -> int:
        """Answer every call a "hold" rule is holding."""
        return self._post("/_emulator/release", {})["released"]

    def wait_until(self, condition, what: str, timeout: float = 60) -> dict:
        """Poll the statistics until `condition(stats)` holds (see `poll`)."""
        return poll(self.stats, condition, what, timeout)


DEFAULTS = {
    "rules": [],
    "latency": 0,
    "latency_jitter": 0,
    "limits": {},
    "model_limits": {},
    "project_limits": {},
    "project_model_limits": {},
    "tiers": {},
    "zero_quota": [],
    "revoked": {},
    "thoughts_tokens": 0,
    "request_limit_bytes": 20 * 1024 * 1024,
    "video_processing_seconds": 0.3,
    "storage_bytes": 20 * 1024**3,
    "batch_seconds": 1.0,
    "batch_expire_seconds": 48 * 3600,
    "batch_fails": False,
    "batch_concurrent": 100,
    "batch_tokens": 3_000_000,
    "hold_uploads": False,
    "cache_min_tokens": None,
}


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def redis_server(run_dir: Path) -> Iterator[local.RedisServer]:
    """The session's Redis, with append-only persistence, so a test can restart it."""
    server = local.RedisServer(run_dir, REDIS_PORT, appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: local.RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def emulator_process(run_dir: Path) -> Iterator[EmulatorControl]:
    keys = {FAKE_KEY: "project-a", OTHER_PROJECT_KEY: "project-b"}
    with local.emulator(keys, ["--seed", "7"], EMULATOR_PORT, run_dir / "emulator.log") as url:
        yield EmulatorControl(url)


def runtime_for(env: dict) -> runtime.Runtime:
    """A producer's view of the cluster whose workers run with `env` (its key prefix)."""
    return runtime.Runtime(settings.load(env))


def prove_keys(queue: str | None = None, rt: runtime.Runtime | None = None) -> None:
    """One answered prompt, so the workers' keys are proven: the pool lends an unproven key
    to one call at a time, which a test holding many calls at once must not meet."""
    from gemini_tasks.producer import submit

    [result] = submit([{"prompt": "warm up"}], queue=queue, rt=rt).results(timeout=60)
    assert result.ok, result.error


@contextmanager
def own_worker(env: dict, name: str, threads: int, run_dir: Path) -> Iterator[runtime.Runtime]:
    """One worker process of a test module's own (its queue and key prefix in `env`), its
    keys proven; yields the producer's runtime for it, and stops it after. Its log is
    `run_dir / f"{name}.log"`."""
    process = local.start_worker(env, name, threads, run_dir / f"{name}.log", cwd=run_dir)
    try:
        rt = runtime_for(env)
        prove_keys(env["GEMINI_TASKS_QUEUE"], rt)
        yield rt
    finally:
        local.stop_process(process)


@pytest.fixture(scope="session")
def worker_processes(redis_url: str, emulator_process: EmulatorControl, run_dir: Path):
    with local.workers(2, TEST_ENV, concurrency=50, log_dir=run_dir, cwd=run_dir) as processes:
        prove_keys()
        yield processes


@pytest.fixture
def emulator(emulator_process: EmulatorControl, redis_url: str) -> Iterator[EmulatorControl]:
    """The emulator with clean statistics and no faults, restored after the test; and the
    pool's memory of the models' health (their circuits) cleared, as a new day would."""
    emulator_process.configure(**DEFAULTS)
    emulator_process.reset()
    client = redis.Redis.from_url(redis_url)
    for name in client.scan_iter(match="*}:model:*", count=1000):
        client.delete(name)
    yield emulator_process
    emulator_process.configure(**DEFAULTS)
    emulator_process.release()


@pytest.fixture
def cluster(worker_processes, emulator: EmulatorControl) -> EmulatorControl:
    """Redis, the emulator and two running workers; yields the emulator's controls."""
    for process in worker_processes:
        assert process.poll() is None, "a worker process died"
    return emulator


# Longer than any test that spends a daily quota takes, on a busy machine.
DAY_MARGIN = 300.0


@pytest.fixture
def quota_day() -> None:
    """Daily quotas end at midnight Pacific time, Gemini's, the emulator's and the pool's
    alike: a test that spends one starts only when its day has DAY_MARGIN seconds left,
    waiting for the next day if need be, so that no reset lands mid-test."""
    now = time.time()
    left = next_daily_reset(now) - now
    if left < DAY_MARGIN:
        time.sleep(left + 2)
