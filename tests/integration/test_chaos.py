"""Chaos: workers killed, Redis restarted, Gemini failing. Nothing may be lost.

A kill or a restart meant to land mid-call lands while the emulator holds every worker's
calls. A killed worker's messages go back at once (its heartbeat lapses after 4 s), not
after the visibility timeout; the request timeout (60 s) outlasts the held calls, however
long replacement workers take to start on a busy machine, so no held call is sent twice.
"""

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from gemini_tasks.ops import local
from gemini_tasks.producer import submit
from gemini_tasks.scheduler import JobQueue
from tests.conftest import FAKE_KEY, TEST_ENV
from tests.integration.conftest import prove_keys, runtime_for

pytestmark = pytest.mark.integration

QUEUE = "chaos"
LOST_QUEUE = "chaos-lost"
FILE_QUEUE = "chaos-files"
CONCURRENCY = 10
CHAOS_ENV = {
    **TEST_ENV,
    "GEMINI_TASKS_QUEUE": QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "chaos",
    "GEMINI_TASKS_VISIBILITY_TIMEOUT": "120",
    "GEMINI_TASKS_TASK_TIME_LIMIT": "90",
    "GEMINI_TASKS_REQUEST_TIMEOUT": "60",
    # Dead after 4 s without a heartbeat, and lost messages looked for every 3 s: the
    # tests see what a dead worker held run again within seconds.
    "GEMINI_TASKS_WORKER_DEAD_AFTER": "4",
    "GEMINI_TASKS_LOST_AFTER": "3",
    # Enough attempts, spaced enough, to outlast a stretch of failures.
    "GEMINI_TASKS_MAX_RETRIES": "8",
    "GEMINI_TASKS_RETRY_BACKOFF": "0.2",
    "GEMINI_TASKS_RETRY_BACKOFF_MAX": "2",
}


class ChaosWorkers:
    """Worker processes that a test may kill and replace."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.processes, self.started = run_dir, [], 0
        self.rt = runtime_for(CHAOS_ENV)  # the chaos workers' cluster (their key prefix)

    def start(self, queue: str = QUEUE, **settings: str) -> subprocess.Popen:
        self.started += 1
        name = f"chaos{self.started}"
        env = {**CHAOS_ENV, "GEMINI_TASKS_QUEUE": queue, **settings}
        process = local.start_worker(
            env, name, CONCURRENCY, self.run_dir / f"{name}.log", cwd=self.run_dir
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
    prove_keys(QUEUE, workers.rt)
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
    """How often each prompt reached Gemini, answered or not."""
    return Counter(c["request_sha256"] for c in emulator.stats(calls=True)["calls"])


def held(emulator, count: int) -> None:
    emulator.wait_until(lambda s: s["held"] == count, f"{count} calls held")


def test_workers_killed_mid_batch_lose_nothing(chaos_workers, emulator):
    emulator.configure(rules=[{"answer": "hold"}])
    job = submit(records(200, "kill"), queue=QUEUE, rt=chaos_workers.rt)
    held(emulator, 2 * CONCURRENCY)  # every thread of both workers has a call in flight
    for round_, victim in enumerate(list(chaos_workers.processes[-2:]), start=1):
        chaos_workers.kill(victim)  # its calls stay held, answered to nobody
        chaos_workers.start()
        held(emulator, (2 + round_) * CONCURRENCY)  # the replacement's calls are in flight
    emulator.configure(rules=[])
    emulator.release()

    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 200, "kill")
    calls = calls_per_prompt(emulator)
    assert len(calls) == 200
    # Exactly the prompts in flight in the two killed workers were sent again.
    assert Counter(calls.values()) == {1: 200 - 2 * CONCURRENCY, 2: 2 * CONCURRENCY}


def test_redis_restarted_mid_batch_loses_nothing(chaos_workers, emulator, redis_server):
    emulator.configure(rules=[{"answer": "hold"}])
    job = submit(records(200, "restart"), queue=QUEUE, rt=chaos_workers.rt)
    held(emulator, 2 * CONCURRENCY)
    redis_server.restart()  # append-only: queued tasks and stored results survive
    emulator.configure(rules=[])
    emulator.release()

    # A message popped in the instant Redis went down is recovered by the collector.
    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 200, "restart")
    assert all(process.poll() is None for process in chaos_workers.processes[-2:])


def test_a_stretch_of_server_errors_is_retried_with_backoff(chaos_workers, emulator):
    # A fifth of the prompts fail up to three times in a row, with 500s and 503s: errors,
    # not an outage (which would be twenty failures in a row, odds of about 1e-9 here).
    emulator.configure(
        rules=[
            {"id": "a", "answer": "500", "attempts": [1, 2], "share": 0.2},
            {"id": "b", "answer": "503", "attempts": [1, 3], "share": 0.2},
        ]
    )
    results = list(
        submit(records(150, "flaky"), queue=QUEUE, rt=chaos_workers.rt).results(timeout=120)
    )

    assert_every_prompt_answered_once(results, 150, "flaky")
    retried = [r for r in results if r.attempts > 1]
    assert retried and all(r.timings["backoff_seconds"] > 0 for r in retried)
    outcomes = emulator.stats()["by_outcome"]
    assert outcomes["500"] + outcomes["503"] == sum(r.attempts - 1 for r in results)


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


def test_a_task_message_the_broker_lost_is_fed_again(chaos_workers, emulator):
    rt = chaos_workers.rt
    job = submit(records(5, "lost"), queue=LOST_QUEUE, rt=rt)
    # A feeder takes all five and publishes them, and the broker loses every message: the
    # prompts are in flight, with no result, and no worker will ever see them.
    scheduler = JobQueue(rt.broker, rt.keys, 3600)
    fed = scheduler.dispatch(LOST_QUEUE, 5, 0, "a-feeder", None).fed
    assert [f.index for f in fed] == [0, 1, 2, 3, 4]
    scheduler.published("a-feeder", fed)
    worker = chaos_workers.start(LOST_QUEUE)

    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 5, "lost")
    # Whichever worker of the cluster swept first found them.
    logs = "".join(p.read_text() for p in chaos_workers.run_dir.glob("chaos*.log"))
    assert "fed again 5 prompt(s) the broker lost" in logs
    local.stop_process(worker)
    chaos_workers.processes.remove(worker)  # the tests after it count the main queue's


def test_redis_at_maxmemory_pauses_the_workers_and_they_carry_on(
    chaos_workers, emulator, redis_server
):
    client = redis.Redis.from_url(redis_server.url)
    emulator.configure(rules=[{"answer": "hold"}])
    job = submit(records(200, "full"), queue=QUEUE, rt=chaos_workers.rt)
    held(emulator, 2 * CONCURRENCY)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used // 2))  # every write refused: OOM
    try:
        emulator.release()  # the held calls answer while Redis refuses to store anything
        emulator.configure(rules=[])
        held_until = time.monotonic() + 5
        while time.monotonic() < held_until:  # a stretch of refused writes, however long
            assert all(p.poll() is None for p in chaos_workers.processes[-2:])
            time.sleep(0.2)
    finally:
        client.config_set("maxmemory", "0")

    results = list(job.results(timeout=180))
    assert_every_prompt_answered_once(results, 200, "full")
    assert all(process.poll() is None for process in chaos_workers.processes[-2:])


def test_redis_away_longer_than_a_heartbeat_evicts_nobody_and_loses_nothing(
    chaos_workers, emulator, redis_server
):
    emulator.configure(rules=[{"answer": "hold"}])
    job = submit(records(200, "away"), queue=QUEUE, rt=chaos_workers.rt)
    held(emulator, 2 * CONCURRENCY)
    redis_server.stop()
    emulator.release()  # the held calls answer while Redis is away
    emulator.configure(rules=[])
    # Away for twice the time after which a silent worker is taken for dead: every
    # worker's heartbeat failed alike, so none may take another for dead once it is back.
    time.sleep(2 * float(CHAOS_ENV["GEMINI_TASKS_WORKER_DEAD_AFTER"]))
    redis_server.start()

    results = list(job.results(timeout=180))
    assert_every_prompt_answered_once(results, 200, "away")
    assert all(process.poll() is None for process in chaos_workers.processes[-2:])
    rt = chaos_workers.rt
    alive = [w.decode() for w in rt.redis.hkeys(rt.keys.workers())]
    assert len(alive) == 2 and not any(rt.redis.exists(rt.keys.evicted(w)) for w in alive)


def test_a_worker_killed_while_its_batch_is_pending_loses_nothing_and_sends_it_once(
    chaos_workers, emulator
):
    from gemini_tasks.producer import JobOptions, Mode
    from gemini_tasks.scheduler import BatchBook, BatchState

    emulator.configure(batch_seconds=6)
    options = JobOptions(queue=QUEUE, mode=Mode.BATCH)
    job = submit(records(30, "batched"), options=options, rt=chaos_workers.rt)
    book = BatchBook(chaos_workers.rt.broker, chaos_workers.rt.keys)
    broker = chaos_workers.rt.broker
    deadline = time.monotonic() + 60
    while True:  # until its batch is pending at Gemini
        ids = [i.decode() for i in broker.smembers(chaos_workers.rt.keys.job_batches(job.id))]
        batch = book.get(ids[0]) if ids else None
        if batch is not None and batch.state is BatchState.PENDING:
            break
        assert time.monotonic() < deadline, "the batch never became pending"
        time.sleep(0.05)
    owner = broker.hget(chaos_workers.rt.keys.batch(batch.id), "owner").decode()
    victim = next(p for p in chaos_workers.processes if f":{p.pid}:" in owner)
    chaos_workers.kill(victim)
    chaos_workers.start()

    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 30, "batched")
    assert all(r.mode == "batch" for r in results)
    stats = emulator.stats(calls=True)
    assert stats["by_outcome"]["batch_create"] == 1
    assert sum(c["tier"] == "batch" for c in stats["calls"]) == 30


def test_a_worker_killed_as_it_uploads_a_file_batch_leaves_no_file_behind(chaos_workers, emulator):
    from google import genai
    from google.genai import errors

    from gemini_tasks.producer import JobOptions, Mode
    from gemini_tasks.scheduler import BatchBook

    # Two workers of their own, whose batches of a few prompts go as a JSONL file.
    files = {"GEMINI_TASKS_BATCH_INLINE_BYTES": "500"}
    workers = [chaos_workers.start(FILE_QUEUE, **files) for _ in range(2)]
    emulator.configure(hold_uploads=True)
    options = JobOptions(queue=FILE_QUEUE, mode=Mode.BATCH)
    job = submit(records(20, "filed"), options=options, rt=chaos_workers.rt)
    emulator.wait_until(lambda s: s["held"] == 1, "the batch's file stored, its upload unanswered")
    book, rt = BatchBook(chaos_workers.rt.broker, chaos_workers.rt.keys), chaos_workers.rt
    [batch_id] = [i.decode() for i in rt.broker.smembers(rt.keys.job_batches(job.id))]
    batch = book.get(batch_id)
    assert batch is not None and batch.input_file  # named before it was uploaded
    owner = rt.broker.hget(rt.keys.batch(batch_id), "owner").decode()
    victim = next(p for p in workers if f":{p.pid}:" in owner)
    chaos_workers.kill(victim)
    emulator.configure(hold_uploads=False)
    emulator.release()

    results = list(job.results(timeout=120))

    assert_every_prompt_answered_once(results, 20, "filed")
    stats = emulator.stats()
    # Created once, by whichever worker took the batch up (the module's own workers, whose
    # inline limit is Gemini's, send it inline).
    assert stats["by_outcome"]["batch_create"] == 1
    client = genai.Client(api_key=FAKE_KEY, http_options={"base_url": emulator.url})
    deadline = time.monotonic() + 60  # the worker that took the batch up deleted the file
    while True:
        try:
            client.files.get(name=batch.input_file)
        except errors.ClientError:
            break
        assert time.monotonic() < deadline, f"{batch.input_file} was left behind"
        time.sleep(0.2)
    for process in workers:
        if process is not victim:
            local.stop_process(process)
