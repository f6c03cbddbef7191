"""A prompt's input tokens before its call, as close to Gemini's own count as can be known.

TPM pacing admits a call by its input tokens before Gemini has counted them. Media is
counted by Gemini itself: the first call that sends a media part also asks countTokens for
it (free, and spends no generation quota: ai.google.dev/api/tokens), and the count is kept
in Redis for the whole cluster, so a video used by a million prompts is counted once; the
other prompts that need it meanwhile wait a few seconds for that count, and a count that
cannot be had (countTokens failed; a `media_resolution`, which countTokens does not take)
is estimated from the file's size. Text is estimated per script
(`gemini_tasks.tokens`) and calibrated by the usage Gemini reports: each worker keeps, per
model, the ratio of Gemini's count to its own estimate, so a language or a tokenizer the
estimate misjudges is paced by what Gemini counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import redis
from google import genai
from google.genai import types

from gemini_tasks import tokens
from gemini_tasks.connections import text
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.media.refs import MediaRef
from gemini_tasks.records import StagedRecord

log = logging.getLogger(__name__)

COUNTING, UNCOUNTED = "counting", "uncounted"
# How long one worker's countTokens call may take before another worker may try instead,
# and how long a prompt waits for another worker's count before it counts the part itself.
COUNT_CLAIM = 120
COUNT_WAIT = 10.0
# Each answer moves the text calibration this far towards what it showed; bounded so one odd
# answer cannot make the estimate absurd.
SMOOTHING = 0.2
RATIO_BOUNDS = (0.25, 8.0)


def media_identity(ref: MediaRef, resolution: object = None) -> str:
    """What a media part's token count depends on: its content, the video metadata (frame
    rate and clipping change it) and the request's media resolution."""
    described = {
        "media": ref.sha256 or ref.uri,
        "video_metadata": ref.video_metadata,
        "resolution": resolution,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def calibrated(ratio: float, estimated: int, counted: int) -> float:
    """The text ratio after an answer whose text Gemini counted as `counted` tokens where
    the estimate said `estimated`."""
    if estimated <= 0 or counted <= 0:
        return ratio
    moved = ratio + SMOOTHING * (counted / estimated - ratio)
    return min(max(moved, RATIO_BOUNDS[0]), RATIO_BOUNDS[1])


def estimate(text: int, ratio: float, media: Sequence[int]) -> int:
    """A prompt's input tokens from its text estimate, the model's ratio and its media's."""
    return max(1, round(text * ratio) + sum(media))


@dataclass
class MediaCounts:
    """Gemini's count of each media part of a prompt (None: not known), the Redis key each
    count is shared under, and the parts this prompt is to count (no other worker was
    counting them)."""

    counts: list[int | None]
    names: list[str] = field(default_factory=list)
    mine: set[int] = field(default_factory=set)


class TokenCounter:
    """Media token counts shared through Redis; the text ratio per model, in this process."""

    def __init__(self, client: redis.Redis, keyspace: Keyspace, ttl: int):
        self.redis, self.keys, self.ttl = client, keyspace, ttl
        self.ratios: dict[str, float] = {}
        self._lock = threading.Lock()

    def media(self, record: StagedRecord) -> MediaCounts:
        """What is known of the record's media counts; claims those nobody is counting.

        A part another worker is counting is waited for: the first prompts of a batch all
        reach here at once, and calls paced by a size estimate could take a minute's quota.
        """
        if record.generation_config.get("media_resolution"):
            # countTokens takes no generation config on the Gemini API, so it would count
            # these parts at the default resolution: they are estimated instead.
            return MediaCounts([None] * len(record.media))
        resolution = record.generation_config.get("media_resolution")
        names = [self.keys.media_tokens(media_identity(ref, resolution)) for ref in record.media]
        raw_counts = self.redis.mget(names) if names else []
        found = MediaCounts([_count_of(raw) for raw in raw_counts], names)
        deadline = time.monotonic() + COUNT_WAIT
        first: dict[str, int] = {}  # a part sent twice is claimed (and counted) once
        for i, name in enumerate(names):
            if found.counts[i] is not None:
                continue
            if name in first:
                found.counts[i] = found.counts[first[name]]
                continue
            first[name] = i
            if self.redis.set(name, COUNTING, nx=True, ex=COUNT_CLAIM):
                found.mine.add(i)
                continue
            raw = self.redis.get(name)
            while text(raw or UNCOUNTED) == COUNTING and time.monotonic() < deadline:
                time.sleep(0.05)
                raw = self.redis.get(name)
            found.counts[i] = _count_of(raw)
        return found

    def estimate(self, model: str, record: StagedRecord, media: MediaCounts) -> int:
        """The prompt's input tokens; media not yet counted is estimated by its size."""
        sizes = [
            tokens.media_tokens(ref.kind, ref.size) if count is None else count
            for ref, count in zip(record.media, media.counts, strict=True)
        ]
        text_tokens = tokens.prompt_text_tokens(record.prompt, record.system_instruction)
        return estimate(text_tokens, self.ratios.get(model, 1.0), sizes)

    def count_media(
        self,
        client: genai.Client,
        model: str,
        parts: Mapping[int, types.Part],
        media: MediaCounts,
        last_try: bool = True,
    ) -> None:
        """Ask countTokens for the parts this prompt claimed (of those in `parts`, by index),
        and share what it says. A part whose count fails stays claimed unless `last_try`."""
        for i in sorted(media.mine & set(parts)):
            name = media.names[i]
            try:
                total = client.models.count_tokens(model=model, contents=[parts[i]]).total_tokens
            except Exception as exc:  # advisory: the call itself reports a real failure
                # Named, not quoted: an SDK's error text is not ours to vouch for (secrets).
                log.info("countTokens failed for a media part: %s %s", type(exc).__name__,
                         getattr(exc, "code", ""))  # fmt: skip
                total = None
            if total:
                self.redis.set(name, total, ex=self.ttl)
            elif not last_try:
                continue
            else:  # not tried again before the claim would have expired: estimated meanwhile
                self.redis.set(name, UNCOUNTED, ex=COUNT_CLAIM)
            for j, other in enumerate(media.names):  # the same part sent again too
                if other == name:
                    media.counts[j] = total or None
            media.mine.discard(i)

    def unclaim(self, media: MediaCounts) -> None:
        """Let other prompts count the parts this one claimed and did not count."""
        if media.mine:
            self.redis.delete(*(media.names[i] for i in media.mine))
            media.mine.clear()

    def observe(self, model: str, record: StagedRecord, media: MediaCounts, counted: int) -> None:
        """Calibrate the model's text ratio from an answer's prompt token count, when every
        media part's count is known (so the text's share of it is too)."""
        if counted <= 0 or None in media.counts:
            return
        text_count = counted - sum(m for m in media.counts if m is not None)
        if text_count < counted / 2:  # mostly media: what is left says little of the text
            return
        with self._lock:
            ratio = self.ratios.get(model, 1.0)
            estimated = tokens.prompt_text_tokens(record.prompt, record.system_instruction)
            self.ratios[model] = calibrated(ratio, estimated, text_count)


def _count_of(raw: bytes | str | None) -> int | None:
    if raw is None or text(raw) in (COUNTING, UNCOUNTED):
        return None
    return int(raw)
