"""A pool spent for the day: waiting prompts stay in Redis, not in workers, however often
and however long they wait, across a worker restart; a key reset sets them going again."""

from __future__ import annotations

from collections.abc import Callable

from gemini_tasks.keys import key_id
from gemini_tasks.ops import local
from gemini_tasks.pool import operator_pool
from gemini_tasks.producer import Job, JobStatus, submit
from tests.conftest import FAKE_KEY, TEST_ENV
from tests.integration.conftest import poll, prove_keys, runtime_for

QUEUE = "spent"
THREADS = 4
ENV = {
    **TEST_ENV,
    "GEMINI_TASKS_QUEUE": QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "spent",
    "GEMINI_TASKS_SHORT_KEY_WAIT": "0.3",
    "GEMINI_TASKS_MAX_KEY_WAIT": str(3 * 86400),  # a day's wait is a wait, not a failure
}
PROMPTS = 30


def _resting(job: Job, done: int) -> Callable[[JobStatus], bool]:
    """`done` prompts answered, and every other one waiting in the job's queue in Redis:
    none fed, none in the broker, none held by a worker."""
    broker = job.rt.broker

    def check(s: JobStatus) -> bool:
        waiting = s.counts.done == done and s.waiting == PROMPTS - done and s.in_flight == 0
        return waiting and broker.llen(QUEUE) == 0 and broker.hlen("unacked") == 0

    return check


def test_prompts_wait_for_a_spent_pool_in_redis_and_a_reset_sets_them_going(
    redis_url, emulator, run_dir, quota_day
):
    rt = runtime_for(ENV)
    worker = local.start_worker(ENV, "spent0", THREADS, run_dir / "spent0.log", cwd=run_dir)
    try:
        prove_keys(QUEUE, rt)
        emulator.reset()
        # Three requests a day: then Gemini answers 429 naming the per-day quota.
        emulator.configure(limits={"rpd": 3})
        job = submit([{"prompt": f"spent {i}"} for i in range(PROMPTS)], queue=QUEUE, rt=rt)
        poll(job.status, _resting(job, 3), "the quota spent and the rest waiting in Redis", 90)

        # Three more days, as it were: each time the quota returns (a reset tells the pool at
        # once), three more prompts go and the rest wait again. The worker is replaced
        # (SIGKILL) while they wait.
        for day in (2, 3, 4):
            if day == 3:
                worker.kill()
                worker.wait()
                worker = local.start_worker(ENV, f"spent{day}", THREADS,
                                            run_dir / f"spent{day}.log", cwd=run_dir)  # fmt: skip
            emulator.configure(limits={"rpd": 3 * day})
            operator_pool(rt).reset(key_id(FAKE_KEY))
            poll(job.status, _resting(job, 3 * day), f"day {day}'s three prompts answered", 90)
        emulator.configure(limits={})
        operator_pool(rt).reset(key_id(FAKE_KEY))
        results = list(job.results(timeout=120))
    finally:
        local.stop_process(worker)

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    # Each prompt was answered once, though most waited four times, one of them through a
    # worker's death.
    assert emulator.stats()["by_outcome"]["ok"] == PROMPTS
