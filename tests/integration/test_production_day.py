"""A production day in one job: 2,000 prompts through an overload that lasts, a stretch of
capacity 429s, a key Google revokes mid-run, blocked prompts, empty answers, and a worker
machine SIGKILLed mid-call with the default visibility timeout (an hour).

Every prompt must end with its answer, or (the blocked ones) with the right error; none
lost, none sent twice but those the dead worker had in flight, and few calls sent into
the bad windows. Windows are in seconds since the day's rules were installed; which
prompts meet them depends on timing, what each prompt ends with does not.
"""

import re
from collections import Counter

import pytest

from gemini_tasks.errors import ErrorKind
from gemini_tasks.keys import key_id
from gemini_tasks.ops import local
from gemini_tasks.producer import submit
from tests.conftest import FAKE_KEY, OTHER_PROJECT_KEY, TEST_ENV
from tests.integration.conftest import prove_keys, runtime_for

pytestmark = pytest.mark.integration

QUEUE = "day"
THREADS = 20
ENV = {
    **TEST_ENV,
    "GEMINI_API_KEY_2": OTHER_PROJECT_KEY,
    "GEMINI_TASKS_QUEUE": QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "day",
    "GEMINI_TASKS_CONCURRENCY": str(THREADS),
}
TOTAL, HELD = 2000, 2 * THREADS
OVERLOAD, CAPACITY = (2.0, 8.0), (11.0, 14.0)


def _prompt(i: int) -> str:
    if i < HELD:
        return f"held {i}"  # the calls in flight when a worker dies
    if i % 100 == 50:
        return f"unsafe {i}"
    return f"day {i}"


def test_a_production_day_loses_nothing_and_sends_little_into_the_storms(
    redis_url, emulator, run_dir
):
    logs = run_dir / "day"
    logs.mkdir()
    start = lambda name: local.start_worker(ENV, name, THREADS, logs / f"{name}.log")  # noqa: E731
    workers = [start("day1"), start("day2")]
    try:
        rt = runtime_for(ENV)
        prove_keys(QUEUE, rt)
        emulator.reset()
        emulator.configure(rules=[{"answer": "hold", "contains": "held"}])
        job = submit([{"prompt": _prompt(i)} for i in range(TOTAL)], queue=QUEUE, rt=rt)
        emulator.wait_until(lambda s: s["held"] == HELD, "every thread of both workers calling")

        workers[0].kill()  # SIGKILL: a machine gone, its 20 calls answered to nobody
        workers[0].wait()
        workers.append(start("day3"))  # its supervisor starts a fresh one
        emulator.configure(
            rules=[
                {"answer": "block_prompt", "contains": "unsafe", "reason": "SAFETY"},
                {"answer": "503", "start": OVERLOAD[0], "end": OVERLOAD[1]},
                {"answer": "429_capacity", "start": CAPACITY[0], "end": CAPACITY[1]},
                {"id": "empty", "answer": "empty_stop", "share": 0.03, "attempts": [1, 1]},
            ]
        )
        emulator.release()
        emulator.wait_until(lambda s: s["by_outcome"].get("ok", 0) >= 600, "600 answers")
        emulator.configure(revoked={OTHER_PROJECT_KEY: "leaked"})
        results = list(job.results(timeout=600))
    finally:
        for process in workers:
            local.stop_process(process)

    assert len(results) == TOTAL
    unsafe = {i for i in range(TOTAL) if _prompt(i).startswith("unsafe")}
    wrong = [
        (r.index, r.error)
        for r in results
        if (r.error_kind is ErrorKind.BLOCKED) != (r.index in unsafe)
        or (r.index not in unsafe and r.response != f"echo: {_prompt(r.index)}")
    ]
    assert not wrong, wrong[:5]

    calls = emulator.stats(calls=True)["calls"]
    answered = Counter(c["request_sha256"] for c in calls if c["outcome"] == "ok")
    # Answered twice: only what the dead worker had in flight (answered to nobody), run
    # again by the others once its heartbeat lapsed.
    assert sum(n > 1 for n in answered.values()) <= THREADS
    # Its key leases (an unproven key's one call among them) were given back then too, not
    # when they expired a minute later.
    assert re.search(
        r"gave back 20 key lease\(s\) \S+ held", "".join(p.read_text() for p in logs.glob("*.log"))
    )
    outcomes = Counter(c["outcome"] for c in calls)
    # Into a storm the cluster sends what was in flight when it began, the calls that open
    # the model's circuit, and a few probes: not one call per prompt and retry.
    assert outcomes["503"] <= 3 * THREADS + 20
    assert outcomes["429_capacity"] <= 3 * THREADS + 20
    revoked = [c for c in calls if c["key_id"] == key_id(OTHER_PROJECT_KEY)]
    assert sum(c["outcome"] == "key_leaked" for c in revoked) <= 2 * THREADS
    assert {r.key_id for r in results[-100:] if r.ok} == {key_id(FAKE_KEY)}
    print(
        f"production day: {TOTAL} prompts, {len(calls)} calls: {dict(outcomes)}; "
        f"{sum(n > 1 for n in answered.values())} answered twice"
    )
