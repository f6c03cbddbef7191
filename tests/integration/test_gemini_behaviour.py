"""Gemini as it fails in production, end to end: each behaviour the emulator plays (its
sources are cited where it plays them) against a real worker with two keys.

The worker's pool is reset before each test, so one test's revoked key or learned limit
is not the next one's.
"""

import os
import subprocess
import sys
from collections import Counter

import pytest

from gemini_tasks.errors import ErrorKind
from gemini_tasks.keys import key_id
from gemini_tasks.pool import KeyPool, PoolConfig
from gemini_tasks.producer import submit
from tests.conftest import FAKE_KEY, OTHER_PROJECT_KEY, TEST_ENV
from tests.integration.conftest import own_worker, prove_keys

pytestmark = pytest.mark.integration

QUEUE = "behave"
ENV = {
    **TEST_ENV,
    "GEMINI_API_KEY_2": OTHER_PROJECT_KEY,
    "GEMINI_TASKS_QUEUE": QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "behave",
}
THREADS = 10
A, B = key_id(FAKE_KEY), key_id(OTHER_PROJECT_KEY)


@pytest.fixture(scope="module")
def behaving(redis_url, emulator_process, run_dir):
    with own_worker(ENV, "behave", THREADS, run_dir) as rt:
        yield rt


@pytest.fixture
def worker(behaving, emulator):
    pool = _pool(behaving)
    for key in (A, B):
        pool.reset(key)
    prove_keys(QUEUE, behaving)
    emulator.reset()
    return behaving


def _pool(rt) -> KeyPool:
    return KeyPool(rt.redis, [], PoolConfig.from_settings(rt.settings), rt.keys)


def _run(rt, records: list[dict]) -> list:
    return list(submit(records, queue=QUEUE, rt=rt).results(timeout=120))


def _keys_cli() -> str:
    env = {**os.environ, "GEMINI_TASKS_KEY_PREFIX": "behave", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "gemini_tasks", "keys", "--wide"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("reason", ["leaked", "suspended", "denied", "service_disabled"])
def test_a_key_google_revokes_leaves_rotation_and_its_prompts_go_to_the_other(
    worker, emulator, reason
):
    emulator.configure(revoked={OTHER_PROJECT_KEY: reason})
    results = _run(worker, [{"prompt": f"revoked {i}"} for i in range(30)])

    assert [r.error for r in results] == [None] * 30
    assert {r.key_id for r in results} == {A}
    calls = emulator.stats(calls=True)["calls"]
    assert 1 <= sum(c["key_id"] == B for c in calls) <= THREADS  # only calls already sent
    [state] = [k for k in _pool(worker).status("gemini-2.5-flash").keys if k.key_id == B]
    assert state.status.value == "FAILED_INIT" and state.reason
    shown = " ".join(_keys_cli().split())  # the reason, for the operator, wrapped to the screen
    assert " ".join(state.reason.split()) in shown


def test_blocked_prompts_end_blocked_with_the_reason_and_are_not_retried(worker, emulator):
    emulator.configure(
        rules=[
            {"answer": "block_prompt", "contains": "unsafe", "reason": "SAFETY"},
            {"answer": "finish", "contains": "recite", "reason": "RECITATION"},
            {"answer": "finish", "contains": "prohibited", "reason": "PROHIBITED_CONTENT"},
        ]
    )
    records = [{"prompt": p} for p in ("unsafe", "recite", "prohibited", "fine")]
    results = _run(worker, records)

    assert [r.error_kind for r in results] == [ErrorKind.BLOCKED] * 3 + [None]
    for result, reason in zip(
        results, ("SAFETY", "RECITATION", "PROHIBITED_CONTENT"), strict=False
    ):
        assert reason in result.error and result.attempts == 1
    assert emulator.stats()["total"] == 4


def test_empty_answers_are_retried_a_bounded_number_of_times(worker, emulator):
    emulator.configure(
        rules=[
            {"answer": "empty_stop", "contains": "twice", "attempts": [1, 2]},
            {"answer": "empty_stop", "contains": "always"},
            {"answer": "max_tokens_empty", "contains": "thinker"},
        ]
    )
    twice, always, thinker = _run(
        worker, [{"prompt": "empty twice"}, {"prompt": "empty always"}, {"prompt": "thinker"}]
    )

    assert twice.ok and twice.attempts == 3 and twice.response == "echo: empty twice"
    assert always.error_kind is ErrorKind.NO_CONTENT and always.attempts == 3
    assert "no text (finish reason STOP), 3 times" in always.error
    # A thinking model that spent its budget thinking: retrying the same request cannot help.
    assert thinker.error_kind is ErrorKind.NO_CONTENT and thinker.attempts == 1
    assert "max_output_tokens" in thinker.error


def test_max_tokens_with_text_is_a_success_that_says_it_was_truncated(worker, emulator):
    long = "a long prompt " * 40
    config = {"max_output_tokens": 5}
    [result] = _run(worker, [{"prompt": long, "generation_config": config}])
    assert result.ok and result.truncated and result.finish_reason == "MAX_TOKENS"


def test_thinking_tokens_are_in_the_usage_and_the_cost(worker, emulator):
    emulator.configure(thoughts_tokens=1000)
    [result] = _run(worker, [{"prompt": "think"}])
    assert result.usage["thoughts_token_count"] == 1000
    assert result.cost > 1000 * 2.5 / 1_000_000  # thinking is billed as output


def test_an_unknown_model_fails_at_once_as_an_invalid_request(worker, emulator):
    [result] = _run(worker, [{"prompt": "x", "model": "gemini-9.9-ultra"}])
    assert result.error_kind is ErrorKind.INVALID_REQUEST and result.attempts == 1
    assert "is not found for API version" in result.error
    assert emulator.stats()["by_outcome"] == {"404": 1}
    assert emulator.stats()["uploads"] == {}


def test_transient_answers_are_retried_to_success(worker, emulator):
    answers = ["499", "504", "502", "500", "503"]
    emulator.configure(
        rules=[{"answer": a, "contains": f"gets {a}", "attempts": [1, 2]} for a in answers]
    )
    results = _run(worker, [{"prompt": f"gets {a}"} for a in answers])

    assert [r.error for r in results] == [None] * len(answers)
    assert [r.attempts for r in results] == [3] * len(answers)
    outcomes = Counter(c["outcome"] for c in emulator.stats(calls=True)["calls"])
    assert outcomes == {**{a: 2 for a in answers}, "ok": len(answers)}


@pytest.mark.parametrize("answer", ["429_capacity", "429_help"])
def test_undetailed_429s_are_capacity_and_exhaust_no_key(worker, emulator, answer):
    emulator.configure(rules=[{"answer": answer, "times": 3}])
    results = _run(worker, [{"prompt": f"{answer} {i}"} for i in range(20)])

    assert [r.error for r in results] == [None] * 20
    assert sum(r.rate_limited for r in results) == 3
    states = _pool(worker).status("gemini-2.5-flash").keys
    assert {k.status.value for k in states} == {"AVAILABLE"}
    assert all(k.exhausted_count == 0 for k in states)


def test_a_quota_of_zero_takes_the_project_off_the_model_with_the_reason(worker, emulator):
    model = "gemini-2.5-pro"
    emulator.configure(zero_quota=[f"project-b/{model}"])
    results = _run(worker, [{"prompt": f"pro {i}", "model": model} for i in range(20)])

    assert [r.error for r in results] == [None] * 20
    assert {r.key_id for r in results} == {A}
    [state] = [k for k in _pool(worker).status(model).keys if k.key_id == B]
    assert state.status.value == "FULLY_EXHAUSTED" and "limit: 0" in (state.reason or "")
    zero = [c for c in emulator.stats(calls=True)["calls"] if c["key_id"] == B]
    assert 1 <= len(zero) <= THREADS


def test_json_answers_are_parsed_and_broken_ones_fail_as_invalid_json(worker, emulator):
    emulator.configure(rules=[{"answer": "malformed_json", "contains": "stray"}])
    schema = {"type": "OBJECT", "properties": {"echo": {"type": "STRING"}}}
    as_json = {"response_mime_type": "application/json", "response_schema": schema}
    records = [
        {"prompt": "structured", "generation_config": as_json},
        {"prompt": "stray fragment", "generation_config": as_json},
        {"prompt": "cut " * 40, "generation_config": {**as_json, "max_output_tokens": 5}},
        {"prompt": "plain text"},
    ]
    fine, stray, cut, plain = _run(worker, records)

    assert fine.ok and fine.parsed == {"echo": "echo: structured"}
    assert stray.error_kind is ErrorKind.INVALID_JSON and stray.parsed is None
    assert stray.response.startswith('{"echo"') and stray.attempts == 1
    assert cut.error_kind is ErrorKind.INVALID_JSON and "cut at max_output_tokens" in cut.error
    assert plain.ok and plain.parsed is None and plain.response == "echo: plain text"
