"""Staged media as Gemini request parts: inline when small, through the Files API when not.

Files uploaded with one project's key are invisible to every other project, so uploads
are per project: the worker holding a key of project P uploads the file with that key,
waits until Gemini has processed it (`ACTIVE`), and records `(content hash, project) ->
file` in Redis, so the same video used by 1,000 prompts is uploaded once per project.
A Redis lock keeps two workers from uploading the same file at the same moment.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence

import redis
from google import genai
from google.genai import types

from gemini_tasks.errors import TransientError
from gemini_tasks.media_store import MediaRef, MediaStore

log = logging.getLogger(__name__)

# Gemini keeps uploaded files for 48 hours; forget them well before it does.
UPLOAD_TTL = 46 * 3600
ACTIVE_WAIT = 600.0


class Uploads:
    """Turns media references into parts for a call made with a key of `project`."""

    def __init__(self, client: redis.Redis, store: MediaStore, prefix: str, inline_limit: int):
        self.redis, self.store, self.prefix, self.inline_limit = client, store, prefix, inline_limit

    def _cache_key(self, project: str, sha256: str) -> str:
        return f"{self.prefix}:upload:{project}:{sha256}"

    def plan_uploads(self, refs: Sequence[MediaRef]) -> set[int]:
        """Indexes of the refs that go through the Files API: the largest, until the rest
        fits inline."""
        staged = sorted((i for i, r in enumerate(refs) if r.sha256), key=lambda i: -refs[i].size)
        inline_total = sum(refs[i].size for i in staged)
        chosen: set[int] = set()
        for i in staged:
            if inline_total <= self.inline_limit:
                break
            chosen.add(i)
            inline_total -= refs[i].size
        return chosen

    def inline_data(self, refs: Sequence[MediaRef], uploads: set[int]) -> dict[int, bytes]:
        """The bytes of every ref sent inline; raises FileNotFoundError if staging expired.

        Refs to upload are only checked here: their bytes are read if an upload is needed.
        """
        data: dict[int, bytes] = {}
        for i, ref in enumerate(refs):
            if ref.sha256 is None:
                continue
            if i not in uploads:
                data[i] = self.store.get(ref.sha256)
            elif not self.store.has(ref.sha256):
                raise FileNotFoundError(f"staged media {ref.sha256[:16]} has expired")
        return data

    def part(
        self, ref: MediaRef, inline: bytes | None, client: genai.Client, project: str
    ) -> types.Part:
        """The part for `ref`: its bytes inline, or its file uploaded in `project`."""
        metadata = types.VideoMetadata(**ref.video_metadata) if ref.video_metadata else None
        if inline is not None:
            blob = types.Blob(data=inline, mime_type=ref.mime_type)
            return types.Part(inline_data=blob, video_metadata=metadata)
        uri = ref.uri or self.file_uri(ref, client, project)
        data = types.FileData(file_uri=uri, mime_type=ref.mime_type)
        return types.Part(file_data=data, video_metadata=metadata)

    def file_uri(self, ref: MediaRef, client: genai.Client, project: str) -> str:
        """The URI of `ref`'s file in `project`, uploading it first if no worker has."""
        cache_key = self._cache_key(project, ref.sha256)  # type: ignore[arg-type]
        cached = self.redis.get(cache_key)
        if cached:
            return json.loads(cached)["uri"]
        with self.redis.lock(
            f"{cache_key}:lock", timeout=ACTIVE_WAIT + 60, blocking_timeout=ACTIVE_WAIT + 60
        ):
            cached = self.redis.get(cache_key)  # another worker may have uploaded it meanwhile
            if cached:
                return json.loads(cached)["uri"]
            uploaded = client.files.upload(
                file=io.BytesIO(self.store.get(ref.sha256)),  # type: ignore[arg-type]
                config=types.UploadFileConfig(mime_type=ref.mime_type),
            )
            active = self._wait_until_active(client, uploaded)
            entry = json.dumps({"name": active.name, "uri": active.uri})
            self.redis.set(cache_key, entry, ex=UPLOAD_TTL)
            self.redis.hset(f"{self.prefix}:media:{ref.sha256}:uploads", project, active.name or "")
            log.info(
                "uploaded media %s for project %s as %s", ref.sha256[:16], project, active.name
            )
            return active.uri or ""

    def _wait_until_active(self, client: genai.Client, file: types.File) -> types.File:
        deadline = time.monotonic() + ACTIVE_WAIT
        delay = 0.2
        while file.state == types.FileState.PROCESSING:
            if time.monotonic() > deadline:
                raise TransientError(
                    f"uploaded file {file.name} still PROCESSING after {ACTIVE_WAIT:g}s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            file = client.files.get(name=file.name)  # type: ignore[arg-type]
        if file.state == types.FileState.FAILED:
            raise TransientError(
                f"Gemini failed to process uploaded file {file.name}: {file.error}"
            )
        return file

    def forget(self, project: str, refs: Sequence[MediaRef], failed_uris: set[str | None]) -> None:
        """Drop cached uploads that Gemini no longer knows, so they are uploaded again.

        Only entries still naming a file that failed go: another worker may already have
        uploaded a fresh copy.
        """
        for ref in refs:
            cache_key = self._cache_key(project, ref.sha256)  # type: ignore[arg-type]
            cached = self.redis.get(cache_key)
            if cached and json.loads(cached)["uri"] in failed_uris:
                self.redis.delete(cache_key)
