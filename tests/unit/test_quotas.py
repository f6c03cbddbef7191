from datetime import datetime

from gemini_tasks.emulator.quotas import QuotaBook
from gemini_tasks.limits import PACIFIC, Limits, LimitTable, daily_resets, next_daily_reset


def book(default: Limits, **table) -> QuotaBook:
    return QuotaBook(LimitTable(None, default, **table))


def test_requests_per_minute_is_a_sliding_window():
    quotas = book(Limits(rpm=2))
    assert quotas.admit("p", "m", 1, now=100.0) == []
    assert quotas.admit("p", "m", 1, now=130.0) == []
    [refused] = quotas.admit("p", "m", 1, now=150.0)
    assert "PerMinute" in refused.quota_id and refused.retry_seconds == 10.0
    assert quotas.admit("p", "m", 1, now=160.5) == []  # the first request left the window


def test_quotas_are_per_project_and_model_most_specific_first():
    quotas = book(
        Limits(rpm=1),
        per_model={"big": Limits(rpm=5)},
        per_project={"vip": Limits(rpm=3)},
        per_project_model={("vip", "big"): Limits(rpm=7)},
    )
    assert quotas.admit("p", "m", 1, now=0) == []
    assert quotas.admit("q", "m", 1, now=0) == []
    assert quotas.admit("p", "m", 1, now=0) != []
    assert all(quotas.admit("p", "big", 1, now=0) == [] for _ in range(5))
    assert all(quotas.admit("vip", "m", 1, now=0) == [] for _ in range(3))
    assert all(quotas.admit("vip", "big", 1, now=0) == [] for _ in range(7))
    assert quotas.admit("vip", "big", 1, now=0) != []


def test_tokens_per_minute():
    quotas = book(Limits(tpm=100))
    assert quotas.admit("p", "m", 60, now=0) == []
    [refused] = quotas.admit("p", "m", 60, now=10)
    assert "Tokens" in refused.quota_id and refused.retry_seconds == 50
    assert quotas.admit("p", "m", 40, now=10) == []


def test_requests_per_day_reset_at_pacific_midnight():
    quotas = book(Limits(rpd=1))
    evening = datetime(2026, 11, 25, 23, 0, tzinfo=PACIFIC).timestamp()
    assert quotas.admit("p", "m", 1, now=evening) == []
    [refused] = quotas.admit("p", "m", 1, now=evening + 60)
    assert "PerDay" in refused.quota_id
    assert refused.retry_seconds == 3600 - 60
    assert quotas.admit("p", "m", 1, now=evening + 3601) == []


def test_every_violated_quota_is_named_with_the_tiers_ids():
    quotas = book(Limits(rpm=1, rpd=1, tpm=10))
    quotas.tiers["paid"] = "paid"
    assert quotas.admit("paid", "m", 5, now=0) == []
    violations = quotas.admit("paid", "m", 20, now=1)
    assert [v.quota_id for v in violations] == [
        "GenerateRequestsPerDayPerProjectPerModel",
        "GenerateRequestsPerMinutePerProjectPerModel",
        "GenerateContentPaidTierInputTokensPerModelPerMinute",
    ]
    assert quotas.admit("free", "m", 5, now=0) == []
    assert all(v.quota_id.endswith("-FreeTier") for v in quotas.admit("free", "m", 5, now=1))


def test_a_model_without_quota_on_the_tier_is_a_limit_of_zero():
    quotas = book(Limits())
    quotas.zero_quota = {"gemini-2.5-pro"}
    [violation] = quotas.admit("p", "gemini-2.5-pro", 1, now=0)
    assert violation.limit == 0 and "PerDay" in violation.quota_id


def test_daily_reset_follows_daylight_saving():
    # 2026-03-08 is 23 hours long in Los Angeles.
    before = datetime(2026, 3, 8, 0, 30, tzinfo=PACIFIC).timestamp()
    assert next_daily_reset(before) - before == 23 * 3600 - 1800


def test_the_daily_resets_named_to_the_scripts_are_those_of_the_moment_asked():
    # Worked out once an hour: every moment of the hour, across a daylight-saving change
    # and on both sides of midnight, gets what working them out there and then gives.
    start = datetime(2026, 3, 7, 22, 0, tzinfo=PACIFIC).timestamp()
    for now in range(int(start), int(start) + 6 * 3600, 599):
        first = next_daily_reset(now - 2 * 86400)
        resets = [first]
        while len(resets) < 5:
            resets.append(next_daily_reset(resets[-1] + 1))
        assert daily_resets(now) == ",".join(f"{r:.0f}" for r in resets)
