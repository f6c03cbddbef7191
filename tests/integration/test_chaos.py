"""Chaos: workers killed, Redis restarted, Gemini failing or hanging. Nothing may be lost.

The chaos workers use a short visibility timeout (6 s, above their 5 s task limit) so the
broker redelivers a killed worker's unacknowledged tasks within the test's time.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from gemini_tasks import local
from gemini_tasks.jobs import submit
from tests.conftest import TEST_ENV

pytestmark = pytest.mark.integration

QUEUE = "chaos"
CONCURRENCY = 10
CHAOS_ENV = {
    **TEST_ENV,
    "GEMINI_TASKS_QUEUE": QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "chaos",
    "GEMINI_TASKS_VISIBILITY_TIMEOUT": "6",
    "GEMINI_TASKS_TASK_TIME_LIMIT": "5",
    "GEMINI_TASKS_REQUEST_TIMEOUT": "1",
    # Enough attempts, spaced enough, to outlast a stretch of failures.
    "GEMINI_TASKS_MAX_RETRIES": "8",
    "GEMINI_TASKS_RETRY_BACKOFF": "0.2",
    "GEMINI_TASKS_RETRY_BACKOFF_MAX": "2",
}


class ChaosWorkers:
    """Worker processes that a test may kill and replace."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.processes, self.started = run_dir, [], 0

    def start(self) -> subprocess.Popen:
        self.started += 1
        name = f"chaos{self.started}"
        process = local.start_worker(
            CHAOS_ENV, name, CONCURRENCY, self.run_dir / f"{name}.log", cwd=self.run_dir
        )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        process.kill()  # SIGKILL: no warm shutdown, nothing acknowledged
        process.wait()


@pytest.fixture(scope="module")
def chaos_workers(redis_server, emulator_process, tmp_path_factory):
    workers = ChaosWorkers(tmp_path_factory.mktemp("chaos"))
    workers.start()
    workers.start()
    yield workers
    for process in workers.processes:
        local.stop_process(process)


def records(n: int, tag: str) -> list[dict]:
    return [{"prompt": f"{tag} {i}", "metadata": {"i": i}} for i in range(n)]


def assert_every_prompt_answered_once(results, n: int, tag: str) -> None:
    assert [r.index for r in results] == list(range(n))
    bad = [(r.index, r.error) for r in results if r.response != f"echo: {tag} {r.index}"]
    assert not bad


def calls_per_prompt(emulator) -> Counter:
    return Counter(c["request_sha256"] for c in emulator.stats(calls=True)["calls"]
                   if c["outcome"] == "ok")  # fmt: skip


def test_workers_killed_mid_batch_lose_nothing(chaos_workers, emulator):
    emulator.configure(faults={"latency": 0.4})
    job = submit(records(200, "kill"), queue=QUEUE)
    for victim in list(chaos_workers.processes[:2]):
        time.sleep(1.5)
        chaos_workers.kill(victim)
        chaos_workers.start()

    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 200, "kill")
    calls = calls_per_prompt(emulator)
    assert len(calls) == 200
    again = [digest for digest, n in calls.items() if n > 1]
    # Only prompts in flight in a killed worker may be sent twice: at most its threads.
    assert 1 <= len(again) <= 2 * CONCURRENCY
    assert max(calls.values()) == 2


def test_redis_restarted_mid_batch_loses_nothing(chaos_workers, emulator, redis_server):
    emulator.configure(faults={"latency": 0.2})
    job = submit(records(200, "restart"), queue=QUEUE)
    time.sleep(1.5)
    redis_server.restart()  # append-only: queued tasks and stored results survive

    # A message popped in the instant Redis went down is recovered by the collector.
    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 200, "restart")
    assert all(process.poll() is None for process in chaos_workers.processes[-2:])


def test_a_stretch_of_server_errors_is_retried_with_backoff(chaos_workers, emulator):
    emulator.configure(faults={"error_500_rate": 0.15, "error_503_rate": 0.15, "latency": 0.05})
    job = submit(records(150, "flaky"), queue=QUEUE)
    healthy = {"faults": {"error_500_rate": 0, "error_503_rate": 0}}
    threading.Timer(2.0, emulator.configure, kwargs=healthy).start()

    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 150, "flaky")
    retried = [r for r in results if r.attempts > 1]
    assert retried and all(r.timings["backoff_seconds"] > 0 for r in retried)
    outcomes = emulator.stats()["by_outcome"]
    assert outcomes.get("500", 0) + outcomes.get("503", 0) >= len(retried)


def test_a_hanging_gemini_times_out_and_workers_go_on(chaos_workers, emulator):
    emulator.configure(faults={"hang_rate": 1.0, "hang_seconds": 30})
    job = submit(records(30, "hang"), queue=QUEUE)
    threading.Timer(2.5, emulator.configure, kwargs={"faults": {"hang_rate": 0}}).start()

    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 30, "hang")
    assert all(r.attempts > 1 for r in results[:CONCURRENCY])
    # No thread stalled for good: a later batch goes straight through.
    after = list(submit(records(40, "after"), queue=QUEUE).results(timeout=60))
    assert_every_prompt_answered_once(after, 40, "after")
    assert all(r.attempts == 1 for r in after)


def test_redis_unreachable_at_submit_is_a_clear_error(tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "x"}\n')
    closed = f"redis://127.0.0.1:{local.free_port()}/0"
    done = subprocess.run(
        [sys.executable, "-m", "gemini_tasks", "submit", str(prompts)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "REDIS_URL": closed},
    )  # fmt: skip
    assert done.returncode == 1
    assert f"cannot reach Redis at {closed}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_task_message_the_broker_lost_is_requeued(redis_url):
    import redis

    from gemini_tasks.jobs import Job

    broker = redis.Redis.from_url(redis_url)
    queue = "nobody-consumes-this"
    job = submit(records(5, "lost"), queue=queue)
    assert Job.restore(job.id).recover_lost() == 0  # all five are queued: none is lost
    broker.delete(queue)  # the broker loses every message

    assert job.recover_lost() == 5
    requeued = [json.loads(m)["headers"]["id"] for m in broker.lrange(queue, 0, -1)]
    assert sorted(requeued) == sorted(job.task_id(i) for i in range(5))
    assert job.recover_lost() == 0
    broker.delete(queue)
