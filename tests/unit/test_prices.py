"""What a call cost, what it would have cost online and uncached, and a cache's storage."""

import pytest

from gemini_tasks import prices
from gemini_tasks.prices import Price

FLASH = Price(input=0.30, output=2.50, cached=0.075, storage=1.00)
USAGE = {"prompt_token_count": 3_000_000, "cached_content_token_count": 2_000_000,
         "candidates_token_count": 1_000_000}  # fmt: skip


def test_cached_tokens_cost_the_cached_price_and_a_tier_its_share():
    online = 1 * 0.30 + 2 * 0.075 + 1 * 2.50
    assert prices.call_cost(FLASH, USAGE) == pytest.approx(online)
    assert prices.call_cost(FLASH, USAGE, "batch") == pytest.approx(online / 2)


def test_online_cost_counts_neither_the_tier_discount_nor_the_cache():
    cost = prices.call_cost(FLASH, USAGE, "batch")
    uncached = 3 * 0.30 + 1 * 2.50
    assert prices.online_cost(FLASH, cost, "batch", USAGE) == pytest.approx(uncached)
    assert prices.online_cost(None, 1.0, "flex", None) == pytest.approx(2.0)


def test_a_cache_is_billed_by_its_tokens_and_hours_stored():
    assert prices.storage_cost(FLASH, 500_000, 7200) == pytest.approx(1.00)
    assert prices.storage_cost(None, 500_000, 7200) == 0.0


def test_prices_parse_with_a_storage_price():
    parsed = prices.parse_prices("m=input:1,output:2,cached:0.5,storage:3; n=input:1")
    assert parsed == {"m": Price(1, 2, 0.5, 3), "n": Price(1, 0, 1, 0)}
    with pytest.raises(ValueError, match="storage:N"):
        prices.parse_prices("m=input:1,speed:2")
