"""Execution modes of one pipeline: a Flex job's calls ask for the Flex tier and cost half;
Flex's shed answers are waited through like capacity answers, never counted as a key's
exhaustion, and with a fallback a prompt Flex keeps shedding runs on the standard tier.
Against the emulator, which names the tier that served each call as Gemini does."""

import pytest

from gemini_tasks import runtime
from gemini_tasks.keys import load_keys
from gemini_tasks.pool import KeyPool, PoolConfig
from gemini_tasks.producer import JobOptions, Mode, submit

pytestmark = pytest.mark.integration


def _records(tag: str, n: int) -> list[dict]:
    return [{"prompt": f"{tag} {i}", "metadata": {"i": i}} for i in range(n)]


def test_a_flex_job_sends_every_call_on_the_flex_tier_at_half_the_price(cluster):
    flex = list(submit(_records("cheap", 20), options=JobOptions(mode=Mode.FLEX)).results(60))
    online = list(submit(_records("cheap", 20)).results(timeout=60))

    assert all(r.ok for r in flex + online)
    assert {r.mode for r in flex} == {"flex"} and {r.mode for r in online} == {"online"}
    tiers = [c["tier"] for c in cluster.stats(calls=True)["calls"]]
    assert tiers.count("flex") == 20 and tiers.count("standard") == 20
    assert sum(r.cost for r in online) > 0
    assert sum(r.cost for r in flex) == pytest.approx(sum(r.cost for r in online) / 2)


def test_flex_sheds_are_waited_through_and_never_exhaust_a_key(cluster):
    # Flex sheds the first two tries of every request (a 429 without quota details, then
    # a 503), as it does under load; the third is served.
    cluster.configure(rules=[
        {"answer": "429_capacity", "tiers": ["flex"], "attempts": [1, 1]},
        {"answer": "503", "tiers": ["flex"], "attempts": [2, 2]},
    ])  # fmt: skip
    results = list(submit(_records("shed", 10), options=JobOptions(mode=Mode.FLEX)).results(120))

    assert all(r.ok and r.mode == "flex" for r in results), [r.error for r in results]
    outcomes = [c["outcome"] for c in cluster.stats(calls=True)["calls"]]
    assert outcomes.count("429_capacity") == 10 and outcomes.count("503") == 10
    rt = runtime.current()
    pool = KeyPool(rt.redis, load_keys(), PoolConfig.from_settings(rt.settings), rt.keys)
    keys = pool.status(rt.settings.model).keys
    assert all(k.exhausted_count == 0 and k.quota_errors == 0 for k in keys), keys


def test_a_prompt_flex_keeps_shedding_falls_back_to_the_standard_tier(cluster):
    cluster.configure(rules=[{"answer": "429_capacity", "tiers": ["flex"]}])  # Flex is full
    options = JobOptions(mode=Mode.FLEX, fallback_after=2.0)
    results = list(submit(_records("fallback", 10), options=options).results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results]
    assert {r.mode for r in results} == {"online"}  # served on the standard tier, billed so
    calls = cluster.stats(calls=True)["calls"]
    assert all(c["outcome"] == "429_capacity" for c in calls if c["tier"] == "flex")
    assert sum(c["tier"] == "standard" and c["outcome"] == "ok" for c in calls) == 10
