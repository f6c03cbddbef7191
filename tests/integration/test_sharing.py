"""Many jobs on one fleet: fair share between jobs, priorities and per-job caps, decided in
Redis by the scheduler, against a worker whose key is bound by its quota (600 requests a
minute, paced by the pool).

Orderings, not timings, are asserted: which prompts finish before which.
"""

import time

import pytest

from gemini_tasks.producer import JobOptions, Priority, submit
from tests.conftest import TEST_ENV
from tests.integration.conftest import own_worker

pytestmark = pytest.mark.integration

QUEUE = "share"
THREADS = 6
RPM = 600
ENV = {
    **TEST_ENV,
    "GEMINI_TASKS_QUEUE": QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "share",
    "GEMINI_TASKS_RPM": str(RPM),
}


@pytest.fixture(scope="module")
def sharing(redis_url, emulator_process, run_dir):
    with own_worker(ENV, "share", THREADS, run_dir) as rt:
        yield rt


@pytest.fixture
def fleet(sharing, emulator):
    emulator.configure(project_limits={"project-a": {"rpm": RPM}})
    return sharing


def _job(rt, tag: str, n: int, **options):
    records = [{"prompt": f"{tag} {i}"} for i in range(n)]
    return submit(records, options=JobOptions(queue=QUEUE, **options), rt=rt)


def _done(job) -> int:
    return job.status().counts.done


def _until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def test_a_small_job_behind_a_large_one_gets_its_fair_share(fleet):
    large = _job(fleet, "large", 300)
    _until(lambda: _done(large) >= 10, "the large job under way")
    small = _job(fleet, "small", 20)
    list(small.results(timeout=120))
    large_done = _done(large)

    # First come, first served, the small job would wait for all 300. With fair share the
    # two alternate: about as many of the large job's finished meanwhile, plus what the
    # threads already held when the small one came.
    assert large_done <= 10 + 20 + 2 * THREADS + 5, large_done
    print(f"fair share: the small job's 20 finished with {large_done} of the large job's 300")
    large.cancel()


def test_a_high_priority_job_goes_ahead_of_running_ones(fleet):
    running = [_job(fleet, f"normal{j}", 100) for j in range(3)]
    _until(lambda: sum(_done(j) for j in running) >= 10, "the normal jobs under way")
    before = sum(_done(j) for j in running)
    urgent = _job(fleet, "urgent", 30, priority=Priority.HIGH)
    list(urgent.results(timeout=120))
    meanwhile = sum(_done(j) for j in running) - before

    # Only what the worker's threads held when it came: nothing more of theirs is fed.
    assert meanwhile <= 2 * THREADS, meanwhile
    print(f"priority: 30 high-priority prompts finished while {meanwhile} normal ones did")
    for job in running:
        job.cancel()


def test_capped_jobs_stay_under_their_caps_while_another_uses_the_rest(fleet):
    per_minute = _job(fleet, "rpm-capped", 100, max_rpm=15)
    at_once = _job(fleet, "concurrency-capped", 40, max_concurrency=2)
    free = _job(fleet, "uncapped", 120)
    assert all(r.ok for r in free.results(timeout=120))
    capped = [(r.timings["started_at"], r.timings["finished_at"]) for r in at_once.results(120)]

    assert _done(per_minute) <= 15  # all it may start in its first minute
    # Never more than two of the concurrency-capped job's prompts running at once.
    most = max(sum(s < end and start < e for s, e in capped) for start, end in capped)
    assert most <= 2, most
    per_minute.cancel()
