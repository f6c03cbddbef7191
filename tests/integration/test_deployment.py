"""A deployment past one Redis: the broker, the result backend and the key pool each on a
redis-server of its own (`GEMINI_TASKS_BROKER_URL`, `GEMINI_TASKS_RESULT_BACKEND`,
`REDIS_URL`), each holding only its own part of the key layout (docs/architecture.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from redis.crc import key_slot

from gemini_tasks.ops import local
from gemini_tasks.producer import JobOptions, Mode, submit
from tests.conftest import TEST_ENV
from tests.integration.conftest import own_worker

QUEUE = "split"


@pytest.fixture(scope="module")
def split(redis_url, emulator_process, run_dir, tmp_path_factory):
    """A worker whose broker and result backend are Redis servers of their own."""
    servers = [local.RedisServer(tmp_path_factory.mktemp(name)) for name in ("broker", "results")]
    for server in servers:
        server.start()
    broker, results = servers
    env = {**TEST_ENV, "GEMINI_TASKS_QUEUE": QUEUE, "GEMINI_TASKS_KEY_PREFIX": "split",
           "GEMINI_TASKS_BROKER_URL": broker.url,
           "GEMINI_TASKS_RESULT_BACKEND": results.url}  # fmt: skip
    try:
        with own_worker(env, "split", 8, run_dir) as rt:
            yield rt, env
    finally:
        for server in servers:
            server.stop()


def test_three_redis_servers_each_hold_their_own_part_of_a_job(split, emulator):
    rt, env = split
    online = submit([{"prompt": f"split {i}"} for i in range(40)], queue=QUEUE, rt=rt)
    batched = submit([{"prompt": f"batched {i}"} for i in range(10)],
                     options=JobOptions(queue=QUEUE, mode=Mode.BATCH), rt=rt)  # fmt: skip
    for job, n in ((online, 40), (batched, 10)):
        results = list(job.results(timeout=120))
        assert len(results) == n and all(r.ok for r in results), [r.error for r in results]

    pool, broker, backend = rt.redis, rt.broker, rt.results
    for job in (online, batched):
        scheduled, counted = rt.keys.job(job.id), rt.keys.job_counts(job.id)
        meta = f"celery-task-meta-{job.id}-0"
        assert broker.exists(scheduled) and not pool.exists(scheduled)
        assert not backend.exists(scheduled)
        assert backend.exists(counted, meta) == 2
        assert not broker.exists(counted, meta) and not pool.exists(counted, meta)
    key_state = f"{rt.keys.tag}:key:*"
    assert next(pool.scan_iter(match=key_state), None) is not None
    assert next(broker.scan_iter(match=key_state), None) is None
    assert next(backend.scan_iter(match=key_state), None) is None
    assert broker.exists(f"_kombu.binding.{QUEUE}") and not pool.exists(f"_kombu.binding.{QUEUE}")

    # An operator's commands find each part where it is.
    command = [sys.executable, "-m", "gemini_tasks", "status", online.id]
    shown = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert shown.returncode == 0 and "40 of 40 done" in shown.stdout, shown.stderr


def test_every_key_of_the_project_is_in_one_hash_slot(split, emulator):
    # So each part's scripts, which touch many keys at once, run on a Redis Cluster node.
    rt, _ = split
    job = submit([{"prompt": f"slot {i}"} for i in range(10)], queue=QUEUE, rt=rt)
    assert all(r.ok for r in job.results(timeout=120))
    ours = [name for client in (rt.redis, rt.broker, rt.results)
            for name in client.scan_iter(match=f"{rt.keys.tag}*", count=1000)]  # fmt: skip
    assert len(ours) > 20  # the pool's, the scheduler's and the results' keys
    assert {key_slot(name) for name in ours} == {key_slot(rt.keys.tag.encode())}
