"""`MediaRef`: a staged media file as a task argument names it.

Task arguments carry only references (content hash, mime type, size), never bytes. Only
the producer's stager makes them; a worker rebuilds each one with `MediaRef.from_json`,
which accepts nothing but a well-formed reference: a task message is data from the
broker, and a forged reference must not make a worker read or send anything else.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.media.fields import (
    AUDIO,
    VIDEO,
    MediaKind,
    check_mime,
    check_url,
    check_video_metadata,
)

# The Files API takes files of up to 2 GB.
MAX_MEDIA_BYTES = 2 * 1024**3
SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = ("kind", "mime_type", "size", "sha256", "uri", "video_metadata")


@dataclass(frozen=True)
class MediaRef:
    """A staged media file (`sha256`, `size`) or, for `video_url`, the URI Gemini fetches."""

    kind: MediaKind
    mime_type: str
    size: int = 0
    sha256: str | None = None
    uri: str | None = None
    video_metadata: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Any, where: str = "media") -> MediaRef:
        """Rebuild a reference from a task argument, refusing anything malformed."""
        if not isinstance(data, dict) or set(data) - set(_FIELDS):
            raise InvalidPrompt(f"{where} is not a staged media reference")
        kind = data.get("kind")
        if kind not in (AUDIO, VIDEO):
            raise InvalidPrompt(f"{where}.kind must be 'audio' or 'video'")
        sha256, uri, size = data.get("sha256"), data.get("uri"), data.get("size", 0)
        if (sha256 is None) == (uri is None):
            raise InvalidPrompt(f"{where} must name exactly one of sha256 and uri")
        if sha256 is not None and not (isinstance(sha256, str) and SHA256.match(sha256)):
            raise InvalidPrompt(f"{where}.sha256 must be 64 hexadecimal digits")
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or not 0 <= size <= MAX_MEDIA_BYTES
            or (sha256 is not None and size == 0)
        ):
            raise InvalidPrompt(f"{where}.size must be a whole number of bytes up to 2 GiB")
        metadata = data.get("video_metadata")
        return cls(
            kind=kind,
            mime_type=check_mime(kind, data.get("mime_type"), f"{where}.mime_type"),
            size=size,
            sha256=sha256,
            uri=None if uri is None else check_url(uri, f"{where}.uri"),
            video_metadata=(
                None
                if metadata is None
                else check_video_metadata(metadata, f"{where}.video_metadata")
            ),
        )
