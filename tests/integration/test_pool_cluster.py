"""The key pool across processes: many threads in several processes, and two real workers."""

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from gemini_tasks import runtime
from gemini_tasks.keys import ApiKey, key_id
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.limits import Limits, LimitTable
from gemini_tasks.ops import local
from gemini_tasks.pool import KeyPool, Lease, PoolConfig
from gemini_tasks.settings import load
from gemini_tasks.worker.classify import classify
from gemini_tasks.worker.clients import client_for
from tests.conftest import FAKE_KEY, OTHER_PROJECT_KEY, TEST_ENV
from tests.integration.conftest import runtime_for

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"
REVOKED_KEY = "fake-key-revoked-0003"
RPM = 15


def _hammer(redis_url: str, base_url: str, prefix: str, seconds: float, threads: int) -> None:
    """One process: `threads` threads leasing keys and calling the emulator until time is up."""
    keys = [ApiKey("GEMINI_API_KEY_1", FAKE_KEY), ApiKey("GEMINI_API_KEY_2", OTHER_PROJECT_KEY)]
    config = PoolConfig(
        cooldown=0,
        exhausted_wait=60,
        fully_exhausted_wait=43200,
        max_exhausted_retries=3,
        limits=LimitTable(MODEL, Limits(rpm=RPM)),
        lease_seconds=30,
    )
    pool = KeyPool(redis.Redis.from_url(redis_url), keys, config, Keyspace(prefix))
    pool.register()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        while (left := deadline - time.monotonic()) > 0:
            got = pool.acquire(MODEL, tokens=5)
            if not isinstance(got, Lease):
                time.sleep(min(got.seconds, left))
                continue
            try:
                client = client_for(got.key, base_url, 30)
                client.models.generate_content(model=MODEL, contents="hi")
            except Exception as exc:
                pool.release(got, classify(exc))
            else:
                pool.release(got, None, tokens_used=1)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()


def test_many_processes_never_exceed_the_per_minute_limit(redis_url, emulator):
    emulator.configure(limits={"rpm": RPM})
    prefix = "concurrency"
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=_hammer, args=(redis_url, emulator.url, prefix, 6.0, 20))
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0

    stats = emulator.stats()
    # The whole run lies inside one 60-second window: each project got its RPM, no more.
    assert stats["by_outcome"] == {"ok": 2 * RPM}
    assert stats["by_key"][key_id(FAKE_KEY)] == {"ok": RPM}
    assert stats["by_key"][key_id(OTHER_PROJECT_KEY)] == {"ok": RPM}
    pool = KeyPool(
        redis.Redis.from_url(redis_url), [], PoolConfig.from_settings(load()), Keyspace(prefix)
    )
    status = {s.key_id: s.seed_view() for s in pool.status(MODEL).keys}
    assert sum(s["successes"] for s in status.values()) == 2 * RPM
    assert all(s["requests"] == s["successes"] == RPM for s in status.values())
    assert all(s["in_flight"] == 0 for s in status.values())


@dataclass
class Workers:
    run_dir: Path
    rt: runtime.Runtime  # the workers' cluster (their key prefix), for submitting to them


@pytest.fixture(scope="module")
def pool_workers(redis_url, emulator_process, tmp_path_factory):
    run_dir: Path = tmp_path_factory.mktemp("pool-workers")
    env = {
        **TEST_ENV,
        "GEMINI_API_KEY_1": FAKE_KEY,
        "GEMINI_API_KEY_2": OTHER_PROJECT_KEY,
        "GEMINI_API_KEY_3": REVOKED_KEY,
        "GEMINI_TASKS_PROJECTS": "project-a=GEMINI_API_KEY_1; project-b=GEMINI_API_KEY_2",
        "GEMINI_TASKS_QUEUE": "pool-e2e",
        "GEMINI_TASKS_KEY_PREFIX": "pool_e2e",
    }
    with local.workers(2, env, concurrency=20, log_dir=run_dir, cwd=run_dir):
        yield Workers(run_dir, runtime_for(env))


def test_two_workers_avoid_invalid_and_exhausted_keys(pool_workers, emulator, quota_day):
    from gemini_tasks.producer import submit

    rt = pool_workers.rt
    emulator.configure(project_limits={"project-a": {"rpd": 3}}, rules=[{"answer": "hold"}])
    # Each unproven key is lent to one call: the first three go one to each key, and the
    # revoked one fails before Gemini holds it. Once the two good keys have answered, they
    # take turns, least recently used first.
    warm_up = submit([{"prompt": f"warm up {i}"} for i in range(3)], queue="pool-e2e", rt=rt)
    emulator.wait_until(
        lambda s: s["held"] == 2 and s["by_outcome"].get("key_invalid") == 1,
        "one call held with each good key and the revoked key refused",
    )
    emulator.configure(rules=[])
    emulator.release()
    assert all(r.ok for r in warm_up.results(timeout=60))
    records = [{"prompt": f"pool prompt {i}"} for i in range(40)]
    results = list(submit(records, queue="pool-e2e", rt=rt).results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len({r.worker for r in results}) == 2
    calls = emulator.stats(calls=True)["calls"]
    revoked, project_a, project_b = key_id(REVOKED_KEY), key_id(FAKE_KEY), key_id(OTHER_PROJECT_KEY)
    # An unproven key is probed with one call: the revoked key cost exactly one.
    assert [c["outcome"] for c in calls if c["key_id"] == revoked] == ["key_invalid"]
    # Project A's daily quota ran out after 3 calls; only calls already in flight then (at
    # most one per thread of the two workers) met its 429.
    a_calls = [c["outcome"] for c in calls if c["key_id"] == project_a]
    assert a_calls.count("ok") == 3 and 1 <= a_calls.count("429") <= 40
    assert {r.key_id for r in results} <= {project_a, project_b}
    # Once one call has met it, no worker sends project A anything more.
    again = list(submit(records[:20], queue="pool-e2e", rt=rt).results(timeout=120))
    assert all(r.ok and r.key_id == project_b for r in again)
    later = emulator.stats(calls=True)["calls"][len(calls) :]
    assert len(later) == 20 and {c["key_id"] for c in later} == {project_b}

    settings = load({**TEST_ENV, "GEMINI_TASKS_KEY_PREFIX": "pool_e2e"})
    client = redis.Redis.from_url(settings.redis_url)
    pool = KeyPool(client, [], PoolConfig.from_settings(settings), Keyspace("pool_e2e"))
    status = {s.key_id: s.seed_view() for s in pool.status(MODEL).keys}
    assert status[revoked]["status"] == "FAILED_INIT"
    assert "API key not valid" in status[revoked]["failed_reason"]
    assert status[project_a]["status"] == "FULLY_EXHAUSTED"
    assert status[project_b]["status"] == "AVAILABLE"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEMINI_TASKS_KEY_PREFIX": "pool_e2e", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "gemini_tasks", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_keys_command_shows_and_resets_the_pool(pool_workers):
    revoked = key_id(REVOKED_KEY)
    shown = _cli("keys", "--json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary[revoked]["status"] == "FAILED_INIT"
    assert summary[revoked]["label"] == "GEMINI_API_KEY_3"
    assert summary[key_id(FAKE_KEY)]["project"] == "project-a"

    table = _cli("keys")
    assert "FAILED_INIT" in table.stdout and "FULLY_EXHAUSTED" in table.stdout

    assert _cli("keys", "reset", revoked).returncode == 0
    assert json.loads(_cli("keys", "--json").stdout)[revoked]["status"] == "AVAILABLE"
    unknown = _cli("keys", "reset", "key-000000000000")
    assert unknown.returncode == 2 and "no key 'key-000000000000'" in unknown.stderr


def test_metrics_endpoint_serves_the_pool(pool_workers):
    port = local.free_port()
    env = {**os.environ, "GEMINI_TASKS_KEY_PREFIX": "pool_e2e"}
    command = [sys.executable, "-m", "gemini_tasks", "metrics", "--address", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        local.wait_for_port(port, 20, process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        process.terminate()
        process.wait(10)
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(name: str, **labels: str) -> float:
        [found] = [
            s.value for s in samples if s.name == name and labels.items() <= s.labels.items()
        ]
        return found

    project_a = key_id(FAKE_KEY)
    a = {"key_id": project_a, "label": "GEMINI_API_KEY_1", "project": "project-a", "model": MODEL}
    assert value("gemini_tasks_key_state", **a, state="FULLY_EXHAUSTED") == 1.0
    assert value("gemini_tasks_key_state", **a, state="AVAILABLE") == 0.0
    assert value("gemini_tasks_key_quota_errors_total", key_id=project_a) >= 1
    assert value("gemini_tasks_key_successes_total", key_id=project_a) == 3
    assert value("gemini_tasks_usable_keys") == 2  # project B's key and the reset one
    assert value("gemini_tasks_seconds_until_next_key") == 0
    for secret in (FAKE_KEY, OTHER_PROJECT_KEY, REVOKED_KEY):
        assert secret not in text


def test_pool_workers_never_write_a_secret(pool_workers, emulator):
    run_dir = pool_workers.run_dir
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    secrets = [s.encode() for s in (FAKE_KEY, OTHER_PROJECT_KEY, REVOKED_KEY)]
    for name in client.scan_iter(count=1000):
        blob = name + (client.dump(name) or b"")
        assert not any(s in blob for s in secrets), name
    for log in run_dir.glob("*.log"):
        text = log.read_bytes()
        assert not any(s in text for s in secrets), log


@pytest.fixture(scope="module")
def waiting_worker(redis_url, emulator_process, tmp_path_factory):
    """One worker whose two keys cool down for a second after each use."""
    run_dir: Path = tmp_path_factory.mktemp("waiting-worker")
    env = {
        **TEST_ENV,
        "GEMINI_API_KEY_1": FAKE_KEY,
        "GEMINI_API_KEY_2": OTHER_PROJECT_KEY,
        "GEMINI_TASKS_PROJECTS": "project-a=GEMINI_API_KEY_1; project-b=GEMINI_API_KEY_2",
        "GEMINI_TASKS_QUEUE": "pool-wait",
        "GEMINI_TASKS_KEY_PREFIX": "pool_wait",
        "GEMINI_TASKS_KEY_COOLDOWN_SECONDS": "1",
        "GEMINI_TASKS_SHORT_KEY_WAIT": "0.3",
        "GEMINI_TASKS_MAX_KEY_WAIT": "30",
    }
    with local.workers(1, env, concurrency=10, log_dir=run_dir, cwd=run_dir):
        yield Workers(run_dir, runtime_for(env))


def test_long_waits_wait_in_redis_and_short_ones_sleep(waiting_worker, emulator):
    from gemini_tasks.producer import submit

    rt = waiting_worker.rt
    results = list(
        submit([{"prompt": f"wait {i}"} for i in range(6)], queue="pool-wait", rt=rt).results(
            timeout=60
        )
    )

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert emulator.stats()["by_outcome"] == {"ok": 6}
    # Two keys, each usable once a second: most prompts waited for one.
    assert sum(r.timings["key_wait_seconds"] > 0 for r in results) >= 3
    log = (waiting_worker.run_dir / "worker-0.log").read_text()
    assert "waits in Redis: waiting" in log


def test_every_key_exhausted_past_the_limit_is_an_exhausted_error(waiting_worker, emulator):
    from gemini_tasks.producer import submit

    rt = waiting_worker.rt
    # A per-minute quota of one request: after it, each project waits about a minute,
    # longer than GEMINI_TASKS_MAX_KEY_WAIT=30 allows.
    emulator.configure(limits={"rpm": 1})
    time.sleep(1)  # let the keys' cooldowns from the previous test pass
    results = list(
        submit([{"prompt": f"x {i}"} for i in range(4)], queue="pool-wait", rt=rt).results(
            timeout=60
        )
    )

    failed = [r for r in results if not r.ok]
    assert len(failed) == 2  # one request per project went through
    for result in failed:
        assert result.error_kind == "quota"
        assert "exhausted" in result.error.lower()
        assert "GEMINI_TASKS_MAX_KEY_WAIT=30" in result.error
