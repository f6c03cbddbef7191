"""Many jobs on one fleet: fair share between jobs, priorities and per-job caps, decided in
Redis by the scheduler, against a worker whose key is bound by its quota (600 requests a
minute, paced by the pool).

Orderings, not timings, are asserted: which prompts finish before which.
"""

import time

import pytest

from gemini_tasks.producer import JobOptions, Priority, submit
from gemini_tasks.scheduler import Answers
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


def _held(jobs) -> int:
    """How many of `jobs`' prompts the fleet holds: fed to a worker and not yet finished."""
    return sum(job.status().in_flight for job in jobs)


def _last_end(job) -> float:
    """When the last of the job's prompts finished its run (the workers' clock, this
    machine's), as its results say."""
    return max(r.timings["finished_at"] for r in job.results(timeout=120))


def _ended_between(jobs, after: float, until: float) -> int:
    """How many of `jobs`' prompts finished their run after `after` and by `until`; cancels
    the jobs, so that their results are all there to look at."""
    for job in jobs:
        job.cancel()
    ends = [r.timings.get("finished_at", 0.0) for job in jobs for r in job.results(timeout=120)]
    return sum(after < end <= until for end in ends)


def _until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


def test_dedupe_sends_each_distinct_request_once_and_reuses_answers_across_jobs(fleet, emulator):
    # First in the module: no other job's prompt is in a thread when the calls are counted.
    records = [{"prompt": f"question {i % 30}", "metadata": {"row": i}} for i in range(300)]
    first = submit(records, options=JobOptions(queue=QUEUE, dedupe=True), rt=fleet)
    results = list(first.results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert [r.metadata["row"] for r in results] == list(range(300))  # each its own
    assert [r.response for r in results] == [f"echo: question {i % 30}" for i in range(300)]
    callers = [r for r in results if r.reused_from is None]
    assert {r.response for r in callers} == {f"echo: question {i}" for i in range(30)}
    assert len(callers) == 30 and emulator.stats()["by_outcome"] == {"ok": 30}
    reused = [r for r in results if r.reused_from is not None]
    assert all(r.attempts == 0 and r.cost == 0 for r in reused)
    assert {r.reused_from for r in reused} <= {r.task_id for r in callers}
    assert first.status().counts.reused == 270

    # The same file again, in another --dedupe job: every answer is reused, no call made.
    again = list(submit(records, options=JobOptions(queue=QUEUE, dedupe=True), rt=fleet)
                 .results(timeout=120))  # fmt: skip
    assert [r.response for r in again] == [r.response for r in results]
    assert all(r.reused_from is not None for r in again)
    assert emulator.stats()["by_outcome"] == {"ok": 30}
    # Without --dedupe, every prompt is its own call (sampling makes copies differ).
    plain = list(_job(fleet, "question", 5).results(timeout=120))
    assert all(r.reused_from is None for r in plain)
    assert emulator.stats()["by_outcome"] == {"ok": 35}
    # Forgetting the job that paid for the answers deletes them.
    first.forget()
    assert not list(fleet.results.scan_iter(match=fleet.keys.answer("*")))


def test_copies_of_a_request_in_flight_wait_in_redis_for_its_answer(fleet, emulator):
    emulator.configure(rules=[{"answer": "hold", "contains": "slow"}])
    records = [{"prompt": "a slow question", "metadata": {"copy": i}} for i in range(8)]
    job = submit(records, options=JobOptions(queue=QUEUE, dedupe=True), rt=fleet)
    emulator.wait_until(lambda s: s["held"] == 1, "the first copy's call held")
    carry = fleet.broker.hlen  # parked prompts keep what they go on from in the job's carry
    _until(lambda: carry(fleet.keys.job_carry(job.id)) > 0, "a copy waiting in Redis")
    assert emulator.stats()["held"] == 1  # the copies wait; none makes the call
    emulator.release()
    results = list(job.results(timeout=120))

    assert all(r.ok for r in results) and [r.metadata["copy"] for r in results] == list(range(8))
    assert sum(r.reused_from is None for r in results) == 1
    assert emulator.stats()["by_outcome"] == {"ok": 1}


def test_a_claim_is_its_holders_again_after_its_worker_died_and_lapses_when_shared(fleet):
    answers = Answers(fleet.results, fleet.keys, ttl=60, claim_ttl=60)
    assert answers.claim("d" * 64, "job-1").lead
    assert answers.claim("d" * 64, "job-2").holder == "job-1"
    assert answers.claim("d" * 64, "job-1").lead  # its prompt, run again elsewhere
    answers.share("d" * 64, "job-2", "job", None)  # not the holder: changes nothing
    assert answers.claim("d" * 64, "job-2").holder == "job-1"
    answers.share("d" * 64, "job-1", "job", None)  # its call failed: the next one makes it
    assert answers.claim("d" * 64, "job-2").lead
    answers.share("d" * 64, "job-2", "job", {"response": "yes"})
    assert answers.claim("d" * 64, "job-3").answer == {"response": "yes"}


def test_a_small_job_behind_a_large_one_gets_its_fair_share(fleet):
    large = _job(fleet, "large", 300)
    _until(lambda: _done(large) >= 10, "the large job under way")
    small = _job(fleet, "small", 20)
    held = _held([large])
    since = time.time()  # a prompt of the large job that ends after this was held, or fed after
    meanwhile = _ended_between([large], since, _last_end(small))

    # First come, first served, the small job would wait for all 300. With fair share the
    # two alternate: one of the large job's fed for each of the small one's, besides what
    # the fleet held when it came and what the threads its last prompts freed took.
    # (Counted by when each run ended, not by when the collector saw the small job done.)
    assert meanwhile <= held + 20 + 1 + THREADS, (meanwhile, held)
    print(f"fair share: the small job's 20 ran while {meanwhile} of the large job's did")


def test_a_high_priority_job_goes_ahead_of_running_ones(fleet):
    running = [_job(fleet, f"normal{j}", 100) for j in range(3)]
    _until(lambda: sum(_done(j) for j in running) >= 10, "the normal jobs under way")
    urgent = _job(fleet, "urgent", 30, priority=Priority.HIGH)
    held = _held(running)
    since = time.time()  # a normal prompt that ends after this was held, or fed after
    meanwhile = _ended_between(running, since, _last_end(urgent))

    # None of theirs is fed until the urgent job's last prompt is: what ended meanwhile is
    # what the fleet held when it came, and what the threads its last prompts freed took.
    # Fair share between the four jobs would have let about 90 through.
    assert meanwhile <= held + THREADS, (meanwhile, held)
    print(f"priority: 30 high-priority prompts ran while {meanwhile} normal ones did ({held} held)")


def test_capped_jobs_stay_under_their_caps_while_another_uses_the_rest(fleet):
    submitted = time.time()
    per_minute = _job(fleet, "rpm-capped", 100, max_rpm=15)
    at_once = _job(fleet, "concurrency-capped", 40, max_concurrency=2)
    free = _job(fleet, "uncapped", 120)
    assert all(r.ok for r in free.results(timeout=120))
    # Each prompt's call: `started_at` is its first run's start, and a prompt that waited for
    # its key in Redis was not running (nor counted against the cap) meanwhile.
    capped = [(r.timings["finished_at"] - r.timings["api_seconds"], r.timings["finished_at"])
              for r in at_once.results(120)]  # fmt: skip
    assert all(r.attempts == 1 for r in at_once.results(120))

    # All it may start in its first minute, however long this test takes: a prompt's run
    # starts after it is fed, and the cap counts what is fed.
    per_minute.cancel()
    starts = [r.timings["started_at"] for r in per_minute.results(120) if r.timings]
    assert 0 < sum(start < submitted + 60 for start in starts) <= 15, starts
    # Never more than two of the concurrency-capped job's prompts running at once.
    most = max(sum(s < end and start < e for s, e in capped) for start, end in capped)
    assert most <= 2, most
