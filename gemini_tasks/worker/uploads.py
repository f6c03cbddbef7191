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
from collections.abc import Callable, Sequence

import redis
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gemini_tasks.connections import text
from gemini_tasks.errors import InvalidRequest, TransientError
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.media.refs import MediaRef
from gemini_tasks.media.store import MediaStore

log = logging.getLogger(__name__)

# Gemini keeps uploaded files for 48 hours; forget them well before it does.
UPLOAD_TTL = 46 * 3600
ACTIVE_WAIT = 600.0


def _staged(ref: MediaRef) -> str:
    if ref.sha256 is None:
        raise ValueError("only staged media is uploaded; a URI is sent as it is")
    return ref.sha256


class Uploads:
    """Turns media references into parts for a call made with a key of `project`."""

    def __init__(
        self, client: redis.Redis, store: MediaStore, keyspace: Keyspace, inline_limit: int
    ):
        self.redis, self.store, self.keys, self.inline_limit = client, store, keyspace, inline_limit

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
        self, ref: MediaRef, inline: bytes | None, client: genai.Client | None, project: str
    ) -> types.Part:
        """The part for `ref`: its bytes inline, or its file uploaded in `project` with
        `client` (None for a part that needs no upload: inline, or a URI)."""
        metadata = types.VideoMetadata(**ref.video_metadata) if ref.video_metadata else None
        if inline is not None:
            blob = types.Blob(data=inline, mime_type=ref.mime_type)
            return types.Part(inline_data=blob, video_metadata=metadata)
        if ref.uri is not None:
            uri = ref.uri
        elif client is not None:
            uri = self.file_uri(ref, client, project)
        else:
            raise ValueError("a part to upload needs a client of its project")
        data = types.FileData(file_uri=uri, mime_type=ref.mime_type)
        return types.Part(file_data=data, video_metadata=metadata)

    def file_uri(self, ref: MediaRef, client: genai.Client, project: str) -> str:
        """The URI of `ref`'s file in `project`, uploading it first if no worker has."""
        sha256 = _staged(ref)
        cache_key = self.keys.upload(project, sha256)
        cached = self.redis.get(cache_key)
        if cached:
            return str(json.loads(cached)["uri"])
        lock = self.keys.upload_lock(project, sha256)
        with self.redis.lock(lock, timeout=ACTIVE_WAIT + 60, blocking_timeout=ACTIVE_WAIT + 60):
            cached = self.redis.get(cache_key)  # another worker may have uploaded it meanwhile
            if cached:
                return str(json.loads(cached)["uri"])
            uploaded = client.files.upload(
                file=io.BytesIO(self.store.get(sha256)),
                config=types.UploadFileConfig(mime_type=ref.mime_type),
            )
            active = self._wait_until_active(client, uploaded)
            entry = json.dumps({"name": active.name, "uri": active.uri})
            self.redis.set(cache_key, entry, ex=UPLOAD_TTL)
            self.redis.hset(self.keys.media_uploads(sha256), project, active.name or "")
            self.redis.sadd(self.keys.project_uploads(project), sha256)
            self.redis.expire(self.keys.project_uploads(project), UPLOAD_TTL)
            log.info("uploaded media %s for project %s as %s", sha256[:16], project, active.name)
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
            file = client.files.get(name=file.name or "")
        if file.state == types.FileState.FAILED:
            # The media's own fault (a corrupt or unsupported file): it fails the same way
            # however often it is uploaded.
            message = file.error.message if file.error else "no reason given"
            raise InvalidRequest(
                f"Gemini could not process the uploaded media ({file.name}): {message}"
            )
        return file

    def forget(self, project: str, refs: Sequence[MediaRef], failed_uris: set[str | None]) -> None:
        """Drop cached uploads that Gemini no longer knows, so they are uploaded again.

        Only entries still naming a file that failed go: another worker may already have
        uploaded a fresh copy.
        """
        for ref in refs:
            cache_key = self.keys.upload(project, _staged(ref))
            cached = self.redis.get(cache_key)
            if cached and json.loads(cached)["uri"] in failed_uris:
                self.redis.delete(cache_key)

    def free_storage(
        self, client: genai.Client, project: str, running: Callable[[str], bool]
    ) -> int:
        """Delete the project's uploaded files that no running job needs (`running(job id)`
        says whether a job still has prompts to run); returns how many went."""
        freed = 0
        for raw in self.redis.smembers(self.keys.project_uploads(project)):
            sha256 = text(raw)
            holders = self.redis.smembers(self.keys.media_jobs(sha256))
            if any(running(text(job)) for job in holders):
                continue
            cached = self.redis.get(self.keys.upload(project, sha256))
            if cached:
                try:
                    client.files.delete(name=json.loads(cached)["name"])
                    freed += 1
                except genai_errors.APIError as exc:
                    log.info("could not delete an upload of %s: %s", sha256[:16], exc)
            self.redis.delete(self.keys.upload(project, sha256))
            self.redis.hdel(self.keys.media_uploads(sha256), project)
            self.redis.srem(self.keys.project_uploads(project), sha256)
        return freed
