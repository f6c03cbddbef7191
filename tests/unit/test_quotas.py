from datetime import datetime

from gemini_tasks.emulator.quotas import QuotaBook
from gemini_tasks.limits import PACIFIC, Limits, next_daily_reset


def test_requests_per_minute_is_a_sliding_window():
    book = QuotaBook(Limits(rpm=2))
    assert book.admit("p", "m", 1, now=100.0) is None
    assert book.admit("p", "m", 1, now=130.0) is None
    refused = book.admit("p", "m", 1, now=150.0)
    assert refused and "PerMinute" in refused.quota_id and refused.retry_seconds == 10.0
    assert book.admit("p", "m", 1, now=160.5) is None  # the first request left the window


def test_quotas_are_per_project_and_model():
    book = QuotaBook(Limits(rpm=1), {"big": Limits(rpm=5)})
    assert book.admit("p", "m", 1, now=0) is None
    assert book.admit("q", "m", 1, now=0) is None
    assert book.admit("p", "m", 1, now=0) is not None
    assert all(book.admit("p", "big", 1, now=0) is None for _ in range(5))


def test_tokens_per_minute():
    book = QuotaBook(Limits(tpm=100))
    assert book.admit("p", "m", 60, now=0) is None
    refused = book.admit("p", "m", 60, now=10)
    assert refused and "Tokens" in refused.quota_id and refused.retry_seconds == 50
    assert book.admit("p", "m", 40, now=10) is None


def test_requests_per_day_reset_at_pacific_midnight():
    book = QuotaBook(Limits(rpd=1))
    evening = datetime(2026, 11, 25, 23, 0, tzinfo=PACIFIC).timestamp()
    assert book.admit("p", "m", 1, now=evening) is None
    refused = book.admit("p", "m", 1, now=evening + 60)
    assert refused and "PerDay" in refused.quota_id
    assert refused.retry_seconds == 3600 - 60
    assert book.admit("p", "m", 1, now=evening + 3601) is None


def test_daily_reset_follows_daylight_saving():
    # 2026-03-08 is 23 hours long in Los Angeles.
    before = datetime(2026, 3, 8, 0, 30, tzinfo=PACIFIC).timestamp()
    assert next_daily_reset(before) - before == 23 * 3600 - 1800
