"""What Gemini charges: a price per million tokens for each model, and what a call cost.

The defaults are Google's published prices for text on the paid tier
(ai.google.dev/gemini-api/docs/pricing, read 2026-11): input, output (thinking tokens
are billed as output) and cached input, per million tokens, for prompts under 200k
tokens, and a context cache's storage per million tokens an hour. Batch Mode and the Flex
tier cost half (docs/batch-mode, docs/flex-inference).
`GEMINI_TASKS_PRICES` overrides or adds models; a model with no price costs 0 and the
summary says its cost is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MILLION = 1_000_000
# A call's share of the interactive price, by the tier it ran on.
DISCOUNTS = {"online": 1.0, "flex": 0.5, "batch": 0.5}


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached: float
    storage: float = 0.0  # a context cache's, per million tokens an hour


DEFAULT_PRICES = {
    "gemini-2.5-pro": Price(1.25, 10.00, 0.31, 4.50),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.075, 1.00),
    "gemini-2.5-flash-lite": Price(0.10, 0.40, 0.025, 1.00),
    "gemini-2.0-flash": Price(0.10, 0.40, 0.025, 1.00),
    "gemini-2.0-flash-001": Price(0.10, 0.40, 0.025, 1.00),
    "gemini-2.0-flash-lite": Price(0.075, 0.30, 0.01875, 1.00),
}


def parse_prices(text: str) -> dict[str, Price]:
    """`model=input:N,output:N,cached:N,storage:N; ...` into prices; ValueError names a bad
    entry."""
    prices: dict[str, Price] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        model, sep, spec = entry.partition("=")
        values: dict[str, float] = {}
        for item in filter(None, (i.strip() for i in spec.split(","))):
            name, _, number = item.partition(":")
            try:
                values[name] = float(number)
            except ValueError:
                raise ValueError(f"entry {entry!r}: {item!r} is not a number") from None
        if not sep or not model.strip() or set(values) - {"input", "output", "cached", "storage"}:
            raise ValueError(
                f"entry {entry!r} must look like model=input:N,output:N,cached:N,storage:N"
            )
        inp = values.get("input", 0.0)
        prices[model.strip()] = Price(inp, values.get("output", 0.0), values.get("cached", inp),
                                      values.get("storage", 0.0))  # fmt: skip
    return prices


def _base(model: str) -> str:
    return model.removeprefix("models/")


def price_of(prices: dict[str, Price], model: str) -> Price | None:
    """The model's price; a dated or preview variant takes its family's."""
    name = _base(model)
    if name in prices:
        return prices[name]
    family = max((m for m in prices if name.startswith(m)), key=len, default=None)
    return prices[family] if family else None


def call_cost(price: Price | None, usage: dict[str, Any] | None, mode: str = "online") -> float:
    """What a call with `usage` (usageMetadata, snake_case) cost, in USD."""
    if price is None or not usage:
        return 0.0
    cached = int(usage.get("cached_content_token_count") or 0)
    prompt = int(usage.get("prompt_token_count") or 0) - cached
    output = int(usage.get("candidates_token_count") or 0) + int(
        usage.get("thoughts_token_count") or 0
    )
    usd = (prompt * price.input + cached * price.cached + output * price.output) / MILLION
    return usd * DISCOUNTS.get(mode, 1.0)


def online_cost(
    price: Price | None, cost: float, mode: str | None, usage: dict[str, Any] | None
) -> float:
    """What calls that cost `cost` in `mode`, the last with `usage`, would have cost online
    and uncached: no tier discount, cached tokens at the input price."""
    cached = int((usage or {}).get("cached_content_token_count") or 0)
    saved = cached * (price.input - price.cached) / MILLION if price else 0.0
    return cost / DISCOUNTS.get(mode or "online", 1.0) + saved


def storage_cost(price: Price | None, tokens: int, seconds: float) -> float:
    """What a context cache of `tokens` stored for `seconds` cost."""
    return tokens * max(0.0, seconds) / 3600 * price.storage / MILLION if price else 0.0


def estimate(
    price: Price | None, input_tokens: int, output_tokens: int, mode: str = "online"
) -> float:
    """A call's cost before it is made, from estimated token counts."""
    if price is None:
        return 0.0
    usd = (input_tokens * price.input + output_tokens * price.output) / MILLION
    return usd * DISCOUNTS.get(mode, 1.0)
