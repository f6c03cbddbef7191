"""`gemini-tasks submit --dry-run`: what a file of prompts would cost, without running it.

Text tokens are estimated (`gemini_tasks.tokens`). Each distinct media file is counted
once by Gemini's countTokens, which is free and spends no generation quota
(ai.google.dev/api/tokens), with the first configured key: a million prompts sharing ten
videos cost ten calls. Without a key, and for a file too large to send inline, media is
estimated from its size. Output cannot be counted before Gemini answers: the estimate
takes each prompt's `max_output_tokens`, or `answer_tokens` where it sets none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.genai import types

from gemini_tasks import prices, tokens
from gemini_tasks.errors import InvalidPrompt, NoApiKeys
from gemini_tasks.keys import load_keys
from gemini_tasks.media.fields import MediaSource
from gemini_tasks.records import PromptRecord
from gemini_tasks.settings import Settings
from gemini_tasks.worker.clients import client_for


@dataclass
class DryRun:
    prompts: int = 0
    refused: int = 0  # records that would fail as invalid prompts
    input_tokens: int = 0
    output_tokens: int = 0
    media_counted: int = 0  # distinct media files Gemini counted
    media_estimated: int = 0  # distinct media files estimated from their size
    cost: float = 0.0
    unpriced: set[str] = field(default_factory=set)  # models with no price


class _MediaCounter:
    """Tokens per distinct media file, counted by Gemini once each when it can be."""

    def __init__(self, settings: Settings, model: str, result: DryRun):
        self.settings, self.model, self.result = settings, model, result
        self.known: dict[str, int] = {}
        try:
            key = load_keys(settings.api_key_names or None, projects=settings.projects)[0]
        except NoApiKeys:
            self.client = None
        else:
            self.client = client_for(key, settings.gemini_base_url, settings.request_timeout)

    def tokens(self, media: MediaSource) -> int:
        identity, size, data = self._read(media)
        if identity not in self.known:
            self.known[identity] = self._count(media, size, data)
        return self.known[identity]

    def _read(self, media: MediaSource) -> tuple[str, int, bytes | None]:
        if media.source == "url":
            return f"url:{media.value!s}", 0, None
        if isinstance(media.value, bytes):
            return (
                "sha256:" + hashlib.sha256(media.value).hexdigest(),
                len(media.value),
                media.value,
            )
        path = Path(media.value)
        size = path.stat().st_size
        data = path.read_bytes() if size <= self.settings.inline_limit_bytes else None
        return f"path:{path.resolve()}", size, data

    def _count(self, media: MediaSource, size: int, data: bytes | None) -> int:
        if self.client is not None and (data is not None or media.source == "url"):
            part = (
                types.Part.from_bytes(data=data, mime_type=media.mime_type)
                if data is not None
                else types.Part.from_uri(file_uri=str(media.value), mime_type=media.mime_type)
            )
            counted = self.client.models.count_tokens(model=self.model, contents=[part])
            if counted.total_tokens is not None:
                self.result.media_counted += 1
                return counted.total_tokens
        self.result.media_estimated += 1
        return tokens.media_tokens(media.kind, size)


def dry_run(
    records: Iterable[PromptRecord | InvalidPrompt], settings: Settings, answer_tokens: int
) -> DryRun:
    """Count what `records` would send and estimate their cost, calling nothing but
    countTokens."""
    result = DryRun()
    counters: dict[str, _MediaCounter] = {}
    for record in records:
        result.prompts += 1
        if isinstance(record, InvalidPrompt):
            result.refused += 1
            continue
        model = record.model or settings.model
        counter = counters.setdefault(model, _MediaCounter(settings, model, result))
        text = tokens.prompt_text_tokens(record.prompt, record.system_instruction)
        given = sum(counter.tokens(m) for m in record.media) + text
        answer = int(record.generation_config.get("max_output_tokens") or answer_tokens)
        result.input_tokens += given
        result.output_tokens += answer
        price = prices.price_of(settings.prices, model)
        if price is None:
            result.unpriced.add(model)
        else:
            result.cost += prices.estimate(price, given, answer)
    return result
