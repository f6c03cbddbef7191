"""Where media waits between the producer that read it and the worker that sends it.

Task arguments carry only references (`MediaRef`: content hash, mime type, size), never
bytes. The producer reads each path once and stages its content here, content-addressed
and deduplicated: in Redis by default, in chunks so a large file never becomes one huge
value, expiring with the results; or in a directory every machine mounts
(`GEMINI_TASKS_MEDIA_STORE=file:///shared/media`) for very large media.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import redis

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.media import MediaSource

CHUNK = 1024 * 1024
# The Files API takes files of up to 2 GB.
MAX_MEDIA_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class MediaRef:
    """A staged media file (or, for `video_url`, the URI Gemini fetches itself)."""

    kind: str
    mime_type: str
    size: int = 0
    sha256: str | None = None
    uri: str | None = None
    video_metadata: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Any) -> MediaRef:
        if not isinstance(data, dict) or data.get("kind") not in ("audio", "video"):
            raise InvalidPrompt("'media' entries must be staged media references")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


class MediaStore(Protocol):
    def has(self, sha256: str) -> bool: ...
    def put(self, sha256: str, chunks: Iterator[bytes]) -> None: ...
    def get(self, sha256: str) -> bytes: ...
    def delete(self, sha256: str) -> None: ...


class RedisMediaStore:
    """Chunks under `{prefix}:media:<sha256>:<n>`, expiring after `ttl` seconds."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int):
        self.redis, self.prefix, self.ttl = client, prefix, ttl

    def _head(self, sha256: str) -> str:
        return f"{self.prefix}:media:{sha256}"

    def has(self, sha256: str) -> bool:
        head = self._head(sha256)
        chunks = self.redis.hget(head, "chunks")
        if chunks is None:
            return False
        # Still wanted: keep it as long as the newest job that uses it.
        pipe = self.redis.pipeline()
        for key in [head, *(f"{head}:{n}" for n in range(int(chunks)))]:
            pipe.expire(key, self.ttl)
        pipe.execute()
        return True

    def put(self, sha256: str, chunks: Iterator[bytes]) -> None:
        head = self._head(sha256)
        count = size = 0
        for count, chunk in enumerate(chunks, start=1):
            self.redis.set(f"{head}:{count - 1}", chunk, ex=self.ttl)
            size += len(chunk)
        # The head goes last: a reader never sees a half-written file.
        self.redis.hset(head, mapping={"chunks": count, "size": size})
        self.redis.expire(head, self.ttl)

    def get(self, sha256: str) -> bytes:
        head = self._head(sha256)
        chunks = self.redis.hget(head, "chunks")
        if chunks is None:
            raise FileNotFoundError(f"staged media {sha256[:16]} has expired or was forgotten")
        values = self.redis.mget([f"{head}:{n}" for n in range(int(chunks))])
        if any(v is None for v in values):
            raise FileNotFoundError(f"staged media {sha256[:16]} is incomplete")
        return b"".join(values)

    def delete(self, sha256: str) -> None:
        head = self._head(sha256)
        chunks = int(self.redis.hget(head, "chunks") or 0)
        self.redis.delete(head, *(f"{head}:{n}" for n in range(chunks)))


class DirectoryMediaStore:
    """Files named by their hash in a directory every producer and worker mounts."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def put(self, sha256: str, chunks: Iterator[bytes]) -> None:
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        with partial.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
        partial.replace(path)  # atomic: a reader never sees a half-written file

    def get(self, sha256: str) -> bytes:
        return self._path(sha256).read_bytes()

    def delete(self, sha256: str) -> None:
        self._path(sha256).unlink(missing_ok=True)


def open_store(url: str, client: redis.Redis, prefix: str, ttl: int) -> MediaStore:
    """The store `GEMINI_TASKS_MEDIA_STORE` names: "redis" or "file:///path"."""
    if url == "redis":
        return RedisMediaStore(client, prefix, ttl)
    return DirectoryMediaStore(Path(urlparse(url).path))


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk


class Stager:
    """Stages a producer's media, reading and hashing each path once per submit."""

    def __init__(self, store: MediaStore):
        self.store = store
        self._paths: dict[tuple[str, int, int], tuple[str, int]] = {}

    def stage(self, source: MediaSource, where: str) -> MediaRef:
        meta = source.video_metadata
        if source.source == "url":
            return MediaRef(
                source.kind, source.mime_type, uri=str(source.value), video_metadata=meta
            )
        if source.source == "bytes":
            data = bytes(source.value)  # type: ignore[arg-type]
            self._check_size(len(data), where)
            digest = hashlib.sha256(data).hexdigest()
            if not self.store.has(digest):
                self.store.put(
                    digest, iter([data[i : i + CHUNK] for i in range(0, len(data), CHUNK)])
                )
            return MediaRef(source.kind, source.mime_type, len(data), digest, video_metadata=meta)
        digest, size = self._stage_path(Path(str(source.value)), where)
        return MediaRef(source.kind, source.mime_type, size, digest, video_metadata=meta)

    def _check_size(self, size: int, where: str) -> None:
        if size == 0:
            raise InvalidPrompt(f"{where} is empty")
        if size > MAX_MEDIA_BYTES:
            raise InvalidPrompt(
                f"{where} is {size / 1024**3:.1f} GiB, over the Files API limit of 2 GiB"
            )

    def _stage_path(self, path: Path, where: str) -> tuple[str, int]:
        try:
            stat = path.stat()
            if not path.is_file():
                raise InvalidPrompt(f"{where}: {str(path)!r} is not a file")
            self._check_size(stat.st_size, f"{where} ({str(path)!r})")
            cache_key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
            if cache_key not in self._paths:
                hasher = hashlib.sha256()
                for chunk in _file_chunks(path):
                    hasher.update(chunk)
                digest = hasher.hexdigest()
                if not self.store.has(digest):
                    self.store.put(digest, _file_chunks(path))
                self._paths[cache_key] = (digest, stat.st_size)
            return self._paths[cache_key]
        except OSError as exc:
            raise InvalidPrompt(f"{where}: cannot read {str(path)!r}: {exc.strerror}") from None
