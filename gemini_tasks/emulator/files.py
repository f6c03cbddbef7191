"""The emulator's Files API: resumable uploads, get, delete, per-project visibility, expiry.

Speaks the protocol google-genai uses: `POST /upload/{version}/files` with
`X-Goog-Upload-Command: start` answers with an `x-goog-upload-url`; chunks go to that URL
with `upload` and, last, `upload, finalize`. Video files are `PROCESSING` for a while
before they are `ACTIVE`, as Gemini's are, or `FAILED` when a test file declares
`state=FAILED` in its `EMULATED-MEDIA` line; files expire after 48 hours. A file may hold
2 GB and a project 20 GB (ai.google.dev/gemini-api/docs/files).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from gemini_tasks.emulator.tokens import media_header

MAX_FILE_BYTES = 2 * 1024**3
PROJECT_STORAGE_BYTES = 20 * 1024**3


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StoredFile:
    id: str
    project: str
    mime_type: str
    data: bytes
    created: float
    expires: float
    ready_at: float
    display_name: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def state(self, now: float) -> str:
        if now < self.ready_at:
            return "PROCESSING"
        return "FAILED" if media_header(self.data).get("state") == "FAILED" else "ACTIVE"

    def to_json(self, base_url: str, version: str, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": f"files/{self.id}",
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": _rfc3339(self.created),
            "updateTime": _rfc3339(max(self.created, min(now, self.ready_at))),
            "expirationTime": _rfc3339(self.expires),
            "sha256Hash": base64.b64encode(self.sha256.encode()).decode(),
            "uri": f"{base_url}/{version}/files/{self.id}",
            "state": self.state(now),
            "source": "UPLOADED",
        }
        if self.display_name:
            out["displayName"] = self.display_name
        if out["state"] == "FAILED":
            out["error"] = {"code": 400, "message": "The file could not be processed."}
        return out


@dataclass
class PendingUpload:
    project: str
    mime_type: str
    size: int
    display_name: str | None
    file_id: str | None = None  # the id the uploader chose, if it did
    data: bytearray = field(default_factory=bytearray)


class FileStore:
    """Files by id; each belongs to the project whose key uploaded it."""

    def __init__(self, ttl: float, video_processing_seconds: float, storage_limit: int):
        self.ttl = ttl
        self.video_processing_seconds = video_processing_seconds
        self.storage_limit = storage_limit
        self.files: dict[str, StoredFile] = {}
        self.pending: dict[str, PendingUpload] = {}

    def stored_bytes(self, project: str) -> int:
        now = time.time()
        return sum(
            len(f.data) for f in self.files.values() if f.project == project and now < f.expires
        )

    def start(
        self,
        project: str,
        mime_type: str,
        size: int,
        display_name: str | None,
        file_id: str | None = None,
    ) -> str:
        upload_id = uuid.uuid4().hex
        self.pending[upload_id] = PendingUpload(project, mime_type, size, display_name, file_id)
        return upload_id

    def finish(self, upload_id: str) -> StoredFile:
        upload = self.pending.pop(upload_id)
        return self.add(upload.project, upload.mime_type, bytes(upload.data), upload.display_name,
                        upload.file_id)  # fmt: skip

    def add(
        self,
        project: str,
        mime_type: str,
        data: bytes,
        display_name: str | None = None,
        file_id: str | None = None,
    ) -> StoredFile:
        """Store a file of `project`'s: uploaded, or written by Gemini (a batch's answers)."""
        now = time.time()
        processing = self.video_processing_seconds if mime_type.startswith("video/") else 0
        stored = StoredFile(
            id=file_id or uuid.uuid4().hex[:12],
            project=project,
            mime_type=mime_type,
            data=data,
            created=now,
            expires=now + self.ttl,
            ready_at=now + processing,
            display_name=display_name,
        )
        self.files[stored.id] = stored
        return stored

    def data_of(self, file_id: str) -> bytes | None:
        """The content of a file, whoever owns it (for describing it in an answer)."""
        stored = self.files.get(file_id)
        return stored.data if stored else None

    def get(self, file_id: str, project: str) -> StoredFile | None:
        """The file if it exists, has not expired and belongs to `project`."""
        stored = self.files.get(file_id)
        if stored is not None and time.time() >= stored.expires:
            del self.files[file_id]
            stored = None
        return stored if stored is not None and stored.project == project else None

    def delete(self, file_id: str, project: str) -> bool:
        if self.get(file_id, project) is None:
            return False
        del self.files[file_id]
        return True

    def expire_all(self) -> int:
        count = len(self.files)
        self.files.clear()
        return count
