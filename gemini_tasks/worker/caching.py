"""Explicit context caches for `--cache` jobs (ai.google.dev/gemini-api/docs/caching).

A prompt's prefix is what it sends before its own words: its system instruction, its tools
and tool config, and the media its prompt places before any text. Prompts of one job with
the same prefix share one cache per project (a cache, like an upload, is its project's
alone) and model: the first worker to need it creates it under a Redis lock and records its
name, every call then names it (`cached_content`) instead of sending the prefix again, and
Gemini bills those tokens at the cached price. A cache is renewed while its job uses it,
created again if it expired anyway, and deleted by a worker holding a key of its project
once its job ends, is cancelled or is forgotten. A prefix under the model's minimum
cacheable size is sent uncached, and the job's summary says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gemini_tasks.connections import text
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.media.fields import arrange
from gemini_tasks.prices import Price, price_of, storage_cost
from gemini_tasks.records import StagedRecord

log = logging.getLogger(__name__)

# Fields of a prompt's config that Gemini takes only from the cache when a request names
# one (it refuses a request naming a cache that also sets them).
CACHED_FIELDS = ("tools", "tool_config")
LOCK_WAIT = 120.0
SWEEP_EVERY = 5.0  # seconds between looks for ended jobs' caches to delete
# "Cached content is too small. total_token_count=896, min_total_token_count=1024"
_TOO_SMALL = re.compile(r"too small.*?total_token_count=(\d+).*?min_total_token_count=(\d+)")


@dataclass(frozen=True)
class Prefix:
    """A prompt's cacheable prefix: the media parts `lead` (indexes into the record's
    media, in the order sent), the system instruction and `config` (tools, tool config);
    `digest` names it within its job and model."""

    digest: str
    model: str
    lead: tuple[int, ...]
    system_instruction: str | None
    config: dict[str, Any]


@dataclass(frozen=True)
class CacheUse:
    """A call naming cache `name`, which holds the first `lead` parts of its prompt."""

    name: str
    lead: int


def prefix_of(record: StagedRecord, model: str) -> Prefix | None:
    """The record's cacheable prefix, or None when it has none.

    The media before the prompt's first text are its lead; a prompt with no text after them
    keeps them (a request needs contents of its own).
    """
    kinds = [m.kind for m in record.media]
    ordered = arrange(record.prompt, list(range(len(kinds))), lambda i: kinds[i], "")
    lead = 0
    while lead < len(ordered) and not isinstance(ordered[lead], str):
        lead += 1
    if lead == len(ordered):
        lead = 0
    config = {f: record.generation_config[f] for f in CACHED_FIELDS
              if record.generation_config.get(f)}  # fmt: skip
    if not lead and not record.system_instruction and not config:
        return None
    media = tuple(int(i) for i in ordered[:lead])
    identity = {"model": model, "system": record.system_instruction, **config,
                "media": [record.media[i].to_json() for i in media]}  # fmt: skip
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    return Prefix(digest, model, media, record.system_instruction, config)


def too_small(message: str) -> tuple[int, int] | None:
    """(tokens, minimum) when Gemini refused a cache as under the model's minimum size."""
    match = _TOO_SMALL.search(message)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class JobCaches:
    """What a job's caches came to, for its summary and status."""

    created: int
    small: list[tuple[int, int]]  # (tokens, minimum) of each prefix sent uncached
    storage: float  # USD: Gemini bills a cache's tokens by the hour it is kept


def job_caches(
    client: redis.Redis, keyspace: Keyspace, job: str, price_list: dict[str, Price]
) -> JobCaches:
    """What the job's caches came to so far: those gone, and those kept until now."""
    raw = client.hgetall(keyspace.job_caches(job))
    fields = {text(k): text(v) for k, v in raw.items()}
    small = [json.loads(v) for k, v in fields.items() if k.startswith("small|")]
    live = [json.loads(v) for k, v in fields.items() if k.startswith("c|")]
    storage = float(fields.get("stored", 0)) + sum(_stored(e, price_list) for e in live)
    return JobCaches(int(fields.get("created", 0)), [(int(t), int(m)) for t, m in small],
                     storage)  # fmt: skip


def _stored(entry: dict[str, Any], price_list: dict[str, Price]) -> float:
    """What keeping the cache `entry` describes cost until now or its expiry."""
    kept = min(time.time(), float(entry["expires"])) - float(entry.get("made", 0) or 0)
    price = price_of(price_list, str(entry.get("model", "")))
    return storage_cost(price, int(entry.get("tokens", 0)), kept)


class Caches:
    """The cluster's context caches, recorded in Redis (`{p}:caches:<job>`)."""

    def __init__(
        self,
        client: redis.Redis,
        keyspace: Keyspace,
        ttl: int,
        record_ttl: int,
        price_list: dict[str, Price],
    ):
        self.redis, self.keys, self.ttl, self.record_ttl = client, keyspace, ttl, record_ttl
        self.prices = price_list

    def use(
        self,
        job: str,
        prefix: Prefix,
        project: str,
        client: genai.Client,
        parts: Sequence[Any],
        lasting: float = 0.0,
    ) -> CacheUse | None:
        """The cache of `prefix` in `project`, created with `client` if no worker has one
        (`parts[i]` is the part of the record's media i), renewed to live `lasting` seconds
        more at least (a Batch Mode batch may be answered that late); None when the prefix
        is too small to cache."""
        entries = self.keys.job_caches(job)
        if self.redis.hexists(entries, _small(prefix)):
            return None
        ttl = round(lasting) + self.ttl  # what a cache made or renewed now lives
        found = self._live(entries, _field(project, prefix))
        if found is None:
            lock = self.keys.cache_lock(job, project, prefix.digest)
            with self.redis.lock(lock, timeout=LOCK_WAIT, blocking_timeout=LOCK_WAIT):
                if self.redis.hexists(entries, _small(prefix)):  # found too small meanwhile
                    return None
                found = self._live(entries, _field(project, prefix))  # made meanwhile?
                if found is None:
                    return self._create(job, prefix, project, client, parts, ttl)
        name, expires = found
        if expires - time.time() < ttl - self.ttl / 2:
            self._renew(job, project, prefix, client, name, ttl)
        return CacheUse(name, len(prefix.lead))

    def _live(self, entries: str, field: str) -> tuple[str, float] | None:
        raw = self.redis.hget(entries, field)
        if raw is None:
            return None
        entry = json.loads(raw)
        # A cache about to lapse is made anew rather than named by calls Gemini may refuse.
        if float(entry["expires"]) - time.time() < 30:
            return None
        return str(entry["name"]), float(entry["expires"])

    def _create(
        self,
        job: str,
        prefix: Prefix,
        project: str,
        client: genai.Client,
        parts: Sequence[Any],
        ttl: int,
    ) -> CacheUse | None:
        lead = [parts[i] for i in prefix.lead]
        config = types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=lead)] if lead else None,
            system_instruction=prefix.system_instruction,
            ttl=f"{ttl}s",
            display_name=f"gemini-tasks {job}",
            **prefix.config,
        )
        try:
            cache = client.caches.create(model=prefix.model, config=config)
        except genai_errors.ClientError as exc:
            small = too_small(str(exc.message or ""))
            if small is None:
                raise  # the call's own outcome: the prompt's decision handles it
            self._note(job, _small(prefix), json.dumps(small))
            log.warning("job %s: a prefix of %d tokens is under %s's minimum of %d for a "
                        "cache; sent uncached", job, small[0], prefix.model, small[1])  # fmt: skip
            return None
        tokens = cache.usage_metadata.total_token_count if cache.usage_metadata else 0
        now = time.time()
        entry = {"name": cache.name, "model": prefix.model, "expires": now + ttl,
                 "made": now, "tokens": tokens or 0}  # fmt: skip
        replaced = self.redis.hget(self.keys.job_caches(job), _field(project, prefix))
        if replaced is not None:  # one about to lapse: what it was kept for is the job's
            self._gone(self.keys.job_caches(job), json.loads(replaced))
        self._note(job, _field(project, prefix), json.dumps(entry))
        self.redis.hincrby(self.keys.job_caches(job), "created", 1)
        log.info("job %s: cached a prefix in project %s as %s", job, project, cache.name)
        return CacheUse(str(cache.name), len(prefix.lead))

    def _note(self, job: str, field: str, value: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.job_caches(job), field, value)
        pipe.expire(self.keys.job_caches(job), self.record_ttl)
        pipe.sadd(self.keys.cache_jobs(), job)
        pipe.execute()

    def _renew(
        self,
        job: str,
        project: str,
        prefix: Prefix,
        client: genai.Client,
        name: str,
        ttl: int,
    ) -> None:
        """Push the cache's expiry out to `ttl` seconds from now; one worker at a time, the
        others go on with it."""
        renewing = self.keys.cache_renewing(job, project, prefix.digest)
        if not self.redis.set(renewing, "1", nx=True, ex=60):
            return
        try:
            client.caches.update(name=name, config=types.UpdateCachedContentConfig(
                ttl=f"{ttl}s"))  # fmt: skip
        except genai_errors.APIError as exc:  # it lapses, and is made again when it has
            log.info("could not renew cache %s: %s", name, exc.code)
            return
        entries, field = self.keys.job_caches(job), _field(project, prefix)
        raw = self.redis.hget(entries, field)
        if raw is not None and json.loads(raw)["name"] == name:
            entry = {**json.loads(raw), "expires": time.time() + ttl}
            self.redis.hset(entries, field, json.dumps(entry))

    def verify(self, job: str, project: str, prefix: Prefix, client: genai.Client) -> None:
        """Forget the recorded cache of `prefix` in `project` if Gemini no longer has it (a
        batch's requests naming it were refused): the next request makes it again."""
        raw = self.redis.hget(self.keys.job_caches(job), _field(project, prefix))
        if raw is None:
            return
        name = str(json.loads(raw)["name"])
        try:
            client.caches.get(name=name)
        except genai_errors.APIError as exc:
            if exc.code in (403, 404):
                self.forget(job, project, prefix, name)
            else:  # kept: a request naming it again tells once more
                log.info("could not look for cache %s: %s", name, exc.code)

    def forget(self, job: str, project: str, prefix: Prefix, name: str) -> None:
        """Drop the record of a cache Gemini no longer has, unless another worker already
        recorded a fresh one."""
        entries, field = self.keys.job_caches(job), _field(project, prefix)
        raw = self.redis.hget(entries, field)
        if raw is not None and json.loads(raw)["name"] == name and self.redis.hdel(entries, field):
            self._gone(entries, json.loads(raw))

    def _gone(self, entries: str, entry: dict[str, Any]) -> None:
        """A cache no longer kept: what its storage cost is the job's for good."""
        self.redis.hincrbyfloat(entries, "stored", _stored(entry, self.prices))

    def sweep(
        self, clients: Callable[[str], genai.Client | None], running: Callable[[str], bool]
    ) -> int:
        """Delete the caches of jobs that no longer run, in the projects `clients(project)`
        has a client for; returns how many went."""
        deleted = 0
        for raw_job in self.redis.smembers(self.keys.cache_jobs()):
            job = text(raw_job)
            if running(job):
                continue
            entries = self.keys.job_caches(job)
            left = 0
            for raw_field, raw_entry in self.redis.hgetall(entries).items():
                field = text(raw_field)
                if not field.startswith("c|"):
                    continue
                client = clients(field.split("|")[1])
                if client is None:
                    left += 1  # a worker with a key of that project will
                elif self.redis.hdel(entries, field):  # one worker deletes each
                    entry = json.loads(raw_entry)
                    self._gone(entries, entry)
                    deleted += _delete(client, entry)
            if not left:
                self.redis.srem(self.keys.cache_jobs(), job)
        return deleted


def _field(project: str, prefix: Prefix) -> str:
    return f"c|{project}|{prefix.digest}"


def _small(prefix: Prefix) -> str:
    return f"small|{prefix.digest}"


def _delete(client: genai.Client, entry: dict[str, Any]) -> int:
    if float(entry["expires"]) < time.time():
        return 0  # Gemini deleted it when it expired
    try:
        client.caches.delete(name=str(entry["name"]))
    except genai_errors.APIError as exc:
        log.info("could not delete cache %s: %s", entry["name"], exc.code)
        return 0
    return 1


class Janitor(threading.Thread):
    """Deletes the caches of jobs that ended, in the projects this worker holds keys of."""

    def __init__(self, caches: Caches, clients: Callable[[str], genai.Client | None],
                 running: Callable[[str], bool]):  # fmt: skip
        super().__init__(name="gemini-tasks-caches", daemon=True)
        self.caches, self.clients, self.running = caches, clients, running
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(SWEEP_EVERY):
            try:
                self.caches.sweep(self.clients, self.running)
            except Exception as exc:  # Redis away, say: the next sweep tries again
                log.warning("deleting ended jobs' caches failed (%s); trying again", exc)

    def stop(self) -> None:
        self.stopping.set()
