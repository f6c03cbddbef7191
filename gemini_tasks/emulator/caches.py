"""The emulator's explicit context caching: CachedContent resources that a generateContent
request names instead of sending their contents again.

Speaks what google-genai's `client.caches` sends to the Gemini Developer API
(google/genai/caches.py; ai.google.dev/api/caching):

- `POST {version}/cachedContents` with `model` ("models/<m>"), `contents`,
  `systemInstruction`, `tools`, `toolConfig`, `displayName` and either `ttl` (a protobuf
  Duration, "300s") or `expireTime` (RFC 3339); answers the CachedContent.
- `GET {version}/cachedContents/{id}`: the CachedContent.
- `PATCH {version}/cachedContents/{id}` with a new `ttl` or `expireTime` (only the expiry
  can change); answers the CachedContent.
- `DELETE {version}/cachedContents/{id}`: `{}`.
- `GET {version}/cachedContents?pageSize=&pageToken=`: `{"cachedContents": [...],
  "nextPageToken"}`, or `{}` when the project has none.

A CachedContent is `{"name": "cachedContents/<id>", "model": "models/<m>", "displayName",
"createTime", "updateTime", "expireTime", "usageMetadata": {"totalTokenCount"}}`; what it
holds is never echoed back. A cache lives one hour unless told otherwise
(ai.google.dev/gemini-api/docs/caching), belongs to the project whose key created it, and
is gone once it expires: Gemini deletes expired caches, and a cache that is gone or another
project's is a 403 (payloads.cache_not_found) wherever it is named.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from gemini_tasks.emulator import payloads
from gemini_tasks.emulator.files import _rfc3339
from gemini_tasks.emulator.validate import Rejected

Body = dict[str, Any]
DEFAULT_TTL_SECONDS = 3600.0  # "If not set, the TTL defaults to 1 hour" (the caching docs)
# "The maximum value is 1000; values above 1000 will be coerced to 1000" (ai.google.dev/api/
# caching, cachedContents.list); the default when none is asked for is the emulator's.
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# What a create request may hold (CachedContent's fields); others are refused by name, as
# Gemini's protobuf JSON parser refuses them.
CREATE_FIELDS = frozenset(
    {"model", "contents", "systemInstruction", "tools", "toolConfig", "displayName", "ttl",
     "expireTime", "name"}
)  # fmt: skip
_DURATION = re.compile(r"(\d+(?:\.\d{1,9})?)s")
_FRACTION = re.compile(r"\.(\d+)")


def min_tokens(model: str) -> int:
    """The smallest cache `model` accepts. The caching docs list 1,024 tokens for Flash and
    4,096 for 2.5 Pro (ai.google.dev/gemini-api/docs/caching, as of mid 2025; the 400 says
    `min_total_token_count=4096` for Pro, zyddnys/manga-image-translator#929); Flash-Lite
    refuses under 2,048 (discuss.ai.google.dev/t/178942)."""
    if "flash-lite" in model:
        return 2048
    return 4096 if "pro" in model else 1024


def cache_id(name: str) -> str:
    """The id in `cachedContents/<id>` (the SDK always sends the full name)."""
    return name.rpartition("cachedContents/")[2]


def _duration(value: Any, field: str) -> float:
    match = _DURATION.fullmatch(str(value).strip())
    if match is None:
        raise Rejected(400, payloads.invalid_argument(
            f"Invalid value at '{field}' (type.googleapis.com/google.protobuf.Duration), "
            f'"{value}"'), "400")  # fmt: skip
    return float(match.group(1))


def _timestamp(value: Any, field: str) -> float:
    """An RFC 3339 time, as Gemini reads a protobuf Timestamp: `Z` or an offset, up to
    nanoseconds; a time without an offset (a naive datetime's isoformat, which google-genai
    sends as it is) is taken as UTC."""
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), str(value).strip())
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Rejected(400, payloads.invalid_argument(
            f"Invalid value at '{field}' (type.googleapis.com/google.protobuf.Timestamp), "
            f'"{value}"'), "400") from None  # fmt: skip
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def expiry(body: Body, now: float) -> float | None:
    """When a create or update body says the cache expires: `ttl` from now or `expireTime`
    (one or the other: they are the `expiration` oneof of CachedContent); None if neither."""
    ttl, expire_time = body.get("ttl"), body.get("expireTime")
    if ttl is not None and expire_time is not None:
        message = (
            "Invalid JSON payload received. Oneof field 'expiration' is already set. Cannot "
            "set 'expireTime'"
        )
        raise Rejected(400, payloads.invalid_argument(message), "400")
    if ttl is not None:
        at = now + _duration(ttl, "cached_content.ttl")
    elif expire_time is not None:
        at = _timestamp(expire_time, "cached_content.expire_time")
    else:
        return None
    if at <= now:  # the wording is the emulator's: a cache that is born expired is a mistake
        message = "* CachedContent.expiration: the expiration must be in the future.\n"
        raise Rejected(400, payloads.invalid_argument(message), "400")
    return at


@dataclass
class Cache:
    id: str
    project: str
    model: str
    display_name: str
    contents: list[Body]
    system_instruction: Body | None
    tools: list[Body] | None
    tool_config: Body | None
    tokens: int  # contents and system instruction, counted at creation
    created: float
    updated: float
    expires: float
    # The bytes of the uploaded files it holds, as they were when it was made: a cache keeps
    # what it cached after the files themselves expire or are deleted.
    files: dict[str, bytes]

    @property
    def name(self) -> str:
        return f"cachedContents/{self.id}"

    def to_json(self) -> Body:
        return {
            "name": self.name,
            "model": f"models/{self.model}",
            "displayName": self.display_name,
            "createTime": _rfc3339(self.created),
            "updateTime": _rfc3339(self.updated),
            "expireTime": _rfc3339(self.expires),
            "usageMetadata": {"totalTokenCount": self.tokens},
        }

    def summary(self) -> Body:
        """What `/_emulator/stats` shows of a live cache."""
        return {
            "name": self.name,
            "project": self.project,
            "model": self.model,
            "display_name": self.display_name,
            "tokens": self.tokens,
            "expires_in": round(self.expires - time.time(), 3),
        }


class CacheStore:
    """Caches by id; each belongs to the project whose key created it."""

    def __init__(self) -> None:
        self.caches: dict[str, Cache] = {}

    def add(self, cache_fields: Body) -> Cache:
        cache = Cache(id=uuid.uuid4().hex[:24], **cache_fields)
        self.caches[cache.id] = cache
        return cache

    def _drop_expired(self) -> None:
        now = time.time()
        for gone in [c.id for c in self.caches.values() if now >= c.expires]:
            del self.caches[gone]

    def get(self, cache_id: str, project: str) -> Cache | None:
        """The cache if it exists, has not expired and belongs to `project`."""
        self._drop_expired()
        cache = self.caches.get(cache_id)
        return cache if cache is not None and cache.project == project else None

    def live(self, project: str | None = None) -> list[Cache]:
        """Live caches, oldest first: `project`'s, or everyone's."""
        self._drop_expired()
        mine = [c for c in self.caches.values() if project is None or c.project == project]
        return sorted(mine, key=lambda c: (c.created, c.id))

    def delete(self, cache_id: str, project: str) -> bool:
        if self.get(cache_id, project) is None:
            return False
        del self.caches[cache_id]
        return True

    def expire_all(self) -> int:
        count = len(self.live())
        self.caches.clear()
        return count

    def file_data(self, file_id: str) -> bytes | None:
        """The bytes of an uploaded file some live cache holds, if any still does."""
        for cache in self.caches.values():
            if file_id in cache.files:
                return cache.files[file_id]
        return None


def page(caches: list[Cache], size: Any, token: Any) -> Body:
    """One page of a list answer; the page token is the offset of the next page."""
    try:
        start = int(token) if token else 0
        count = min(int(size), MAX_PAGE_SIZE) if size else DEFAULT_PAGE_SIZE
    except ValueError:
        raise Rejected(400, payloads.invalid_argument("Invalid page token or size."),
                       "400") from None  # fmt: skip
    count = count if count > 0 else DEFAULT_PAGE_SIZE
    chosen = caches[start : start + count]
    out: Body = {}
    if chosen:  # nothing at all is `{}`, as Gemini answers an empty list
        out["cachedContents"] = [c.to_json() for c in chosen]
    if start + count < len(caches):
        out["nextPageToken"] = str(start + count)
    return out
