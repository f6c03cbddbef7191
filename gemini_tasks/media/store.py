"""Where media waits between the producer that read it and the worker that sends it.

Content-addressed and deduplicated: in Redis by default, in chunks so a large file never
becomes one huge value, expiring with the results; or in a directory every machine mounts
(`GEMINI_TASKS_MEDIA_STORE=file:///shared/media`) for very large media. A store is asked
only by content hash, and checks the hash's form itself: whatever a task message says, it
never reads a key or a file outside its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import redis

from gemini_tasks.keyspace import Keyspace
from gemini_tasks.media.refs import SHA256

CHUNK = 1024 * 1024


def _checked(sha256: str) -> str:
    if not SHA256.match(sha256):
        raise ValueError("a media store is addressed by 64 hexadecimal digits")
    return sha256


class MediaStore(Protocol):
    def has(self, sha256: str) -> bool: ...
    def put(self, sha256: str, chunks: Iterator[bytes]) -> None: ...
    def get(self, sha256: str) -> bytes: ...
    def delete(self, sha256: str) -> None: ...


class RedisMediaStore:
    """Chunks under `{p}:blob:<sha256>:<n>`, expiring after `ttl` seconds."""

    def __init__(self, client: redis.Redis, keyspace: Keyspace, ttl: int):
        self.redis, self.keys, self.ttl = client, keyspace, ttl

    def has(self, sha256: str) -> bool:
        head = self.keys.blob(_checked(sha256))
        chunks = self.redis.hget(head, "chunks")
        if chunks is None:
            return False
        # Still wanted: keep it as long as the newest job that uses it.
        pipe = self.redis.pipeline()
        for key in [head, *(self.keys.blob_chunk(sha256, n) for n in range(int(chunks)))]:
            pipe.expire(key, self.ttl)
        pipe.execute()
        return True

    def put(self, sha256: str, chunks: Iterator[bytes]) -> None:
        head = self.keys.blob(_checked(sha256))
        count = size = 0
        for count, chunk in enumerate(chunks, start=1):
            self.redis.set(self.keys.blob_chunk(sha256, count - 1), chunk, ex=self.ttl)
            size += len(chunk)
        # The head goes last: a reader never sees a half-written file.
        self.redis.hset(head, mapping={"chunks": count, "size": size})
        self.redis.expire(head, self.ttl)

    def get(self, sha256: str) -> bytes:
        head = self.keys.blob(_checked(sha256))
        chunks = self.redis.hget(head, "chunks")
        if chunks is None:
            raise FileNotFoundError(f"staged media {sha256[:16]} has expired or was forgotten")
        values = self.redis.mget([self.keys.blob_chunk(sha256, n) for n in range(int(chunks))])
        parts = [v for v in values if isinstance(v, bytes)]
        if len(parts) != len(values):
            raise FileNotFoundError(f"staged media {sha256[:16]} is incomplete")
        return b"".join(parts)

    def delete(self, sha256: str) -> None:
        head = self.keys.blob(_checked(sha256))
        chunks = int(self.redis.hget(head, "chunks") or 0)
        self.redis.delete(head, *(self.keys.blob_chunk(sha256, n) for n in range(chunks)))


class DirectoryMediaStore:
    """Files named by their hash in a directory every producer and worker mounts."""

    def __init__(self, root: Path):
        self.root = root.resolve()

    def _path(self, sha256: str) -> Path:
        path = (self.root / _checked(sha256)[:2] / sha256).resolve()
        if path.parent.parent != self.root:  # a symlinked subdirectory leads elsewhere
            raise ValueError(f"media path {path} is outside the store {self.root}")
        return path

    def has(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def put(self, sha256: str, chunks: Iterator[bytes]) -> None:
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        with partial.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
        partial.replace(path)  # atomic: a reader never sees a half-written file

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        if not path.is_file():
            raise FileNotFoundError(f"staged media {sha256[:16]} is not in {self.root}")
        return path.read_bytes()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)


def open_store(url: str, client: redis.Redis, keyspace: Keyspace, ttl: int) -> MediaStore:
    """The store `GEMINI_TASKS_MEDIA_STORE` names: "redis" or "file:///path"."""
    if url == "redis":
        return RedisMediaStore(client, keyspace, ttl)
    return DirectoryMediaStore(Path(urlparse(url).path))
