"""A staged prompt record as the arguments of `client.models.generate_content`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.genai import types

from gemini_tasks.media.fields import arrange
from gemini_tasks.records import StagedRecord
from gemini_tasks.worker.caching import CACHED_FIELDS, CacheUse


@dataclass(frozen=True)
class GeminiRequest:
    model: str
    # One Content, not a list of one: google-genai re-validates a list of Content models on
    # every call, which cost 0.8 ms of CPU a call more (docs/benchmarks.md, row 2).
    content: types.Content
    config: types.GenerateContentConfig | None


def build_request(
    record: StagedRecord,
    model: str,
    timeout_seconds: float | None = None,
    media_parts: Sequence[types.Part] = (),
    label: str = "",
    flex: bool = False,
    cache: CacheUse | None = None,
) -> GeminiRequest:
    """The request for one attempt.

    `timeout_seconds`, when given, bounds this attempt's HTTP call below the client's own
    timeout. `media_parts[i]` is the part for `record.media[i]`; the prompt's `<audio>` and
    `<video>` tokens place them among the text. With `flex`, the call asks for the Flex tier.
    With `cache`, the request names it instead of sending the prefix it holds: Gemini
    refuses a request naming a cache that also sets a system instruction, tools or a tool
    config (ai.google.dev/gemini-api/docs/caching).
    """
    config = dict(record.generation_config)
    if flex:
        config["service_tier"] = types.ServiceTier.FLEX
    if cache is not None:
        config["cached_content"] = cache.name
        for name in CACHED_FIELDS:
            config.pop(name, None)
    elif record.system_instruction:
        config["system_instruction"] = record.system_instruction
    if timeout_seconds is not None:
        config["http_options"] = types.HttpOptions(timeout=max(1, int(timeout_seconds * 1000)))
    return GeminiRequest(
        model=model,
        content=types.Content(role="user", parts=_parts(record, media_parts, label, cache)),
        # The SDK converts every field of a config on every call: send none when none is set.
        config=types.GenerateContentConfig(**config) if config else None,
    )


def _parts(
    record: StagedRecord, media_parts: Sequence[types.Part], label: str, cache: CacheUse | None
) -> list[types.Part]:
    kinds = [m.kind for m in record.media]
    ordered = arrange(record.prompt, list(range(len(kinds))), lambda i: kinds[i], label)
    if cache is not None:
        ordered = ordered[cache.lead :]  # the cache holds them
    return [types.Part(text=x) if isinstance(x, str) else media_parts[x] for x in ordered]
