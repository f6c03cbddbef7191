"""Staging a producer's media in the media store, so task arguments carry only references.

The producer reads each path once per submit, hashes it, and stores its content under that
hash (skipping what the store already has); the worker then finds it by hash, on any
machine, even after the producer's file is gone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.media.fields import MediaSource
from gemini_tasks.media.refs import MAX_MEDIA_BYTES, MediaRef
from gemini_tasks.media.store import CHUNK, MediaStore


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk


def _check_size(size: int, where: str) -> None:
    if size == 0:
        raise InvalidPrompt(f"{where} is empty")
    if size > MAX_MEDIA_BYTES:
        raise InvalidPrompt(
            f"{where} is {size / 1024**3:.1f} GiB, over the Files API limit of 2 GiB"
        )


class Stager:
    """Stages the media of one submit, reading and hashing each path once."""

    def __init__(self, store: MediaStore):
        self.store = store
        self._paths: dict[tuple[str, int, int], tuple[str, int]] = {}

    def stage(self, source: MediaSource) -> MediaRef:
        meta = source.video_metadata
        if source.source == "url":
            return MediaRef(
                source.kind, source.mime_type, uri=str(source.value), video_metadata=meta
            )
        if isinstance(source.value, bytes):
            data = source.value
            _check_size(len(data), source.where)
            digest = hashlib.sha256(data).hexdigest()
            if not self.store.has(digest):
                self.store.put(
                    digest, iter([data[i : i + CHUNK] for i in range(0, len(data), CHUNK)])
                )
            return MediaRef(source.kind, source.mime_type, len(data), digest, video_metadata=meta)
        digest, size = self._stage_path(Path(source.value), source.where)
        return MediaRef(source.kind, source.mime_type, size, digest, video_metadata=meta)

    def _stage_path(self, path: Path, where: str) -> tuple[str, int]:
        try:
            stat = path.stat()
            if not path.is_file():
                raise InvalidPrompt(f"{where}: {str(path)!r} is not a file")
            _check_size(stat.st_size, f"{where} ({str(path)!r})")
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
