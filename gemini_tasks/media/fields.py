"""Media in prompt records: the seed's fields, their order, and the `<audio>`/`<video>` tokens.

A record names media with the seed library's fields, each a single value or a list:
`audio_path`, `audio_bytes`, `audio_mime_type`, `video_url`, `video_path`, `video_bytes`,
`video_mime_type`, `video_metadata`. Within one type, files are taken in the seed's order
(videos: URLs, then paths, then bytes; audio: paths, then bytes), and mime types and video
metadata follow that order. `arrange` then places them as the tokens in the prompt say.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import mimetypes
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from gemini_tasks.errors import InvalidPrompt

log = logging.getLogger(__name__)

MediaKind = Literal["audio", "video"]
AUDIO: MediaKind = "audio"
VIDEO: MediaKind = "video"
MEDIA_FIELDS = (
    "audio_path", "audio_bytes", "audio_mime_type",
    "video_url", "video_path", "video_bytes", "video_mime_type", "video_metadata",
)  # fmt: skip
DEFAULT_MIME = {AUDIO: "audio/mp3", VIDEO: "video/mp4"}
# What Python's mimetypes says, and the names Gemini documents for them.
_GEMINI_MIME = {"audio/mpeg": "audio/mp3", "audio/x-wav": "audio/wav", "audio/x-aiff": "audio/aiff"}
_OFFSET = re.compile(r"^\d+(\.\d+)?s$")
_MIME = re.compile(r"^(audio|video)/[A-Za-z0-9][A-Za-z0-9.+-]{0,126}$")
_TOKEN = re.compile(r"<(audio|video)>")
VIDEO_METADATA_FIELDS = ("start_offset", "end_offset", "fps")
# Gemini fetches these itself (a YouTube link, a Files API URI); nothing else is a URL here.
URL_SCHEMES = ("https://",)


@dataclass(frozen=True)
class MediaSource:
    """One media file as the record names it, before the producer stages it."""

    kind: MediaKind
    source: Literal["path", "bytes", "url"]
    value: str | bytes
    mime_type: str
    video_metadata: dict[str, Any] | None = None
    where: str = ""  # the field and index that named it, e.g. "audio_path[1]"


def check_mime(kind: str, mime: Any, where: str) -> str:
    """A mime type of `kind` ("audio/..." or "video/..."), or `InvalidPrompt`."""
    if not isinstance(mime, str) or not _MIME.match(mime) or not mime.startswith(kind + "/"):
        raise InvalidPrompt(f'{where} must be a mime type like "{kind}/...", got {mime!r}')
    return mime


def check_url(value: Any, where: str) -> str:
    """A URL Gemini may fetch itself: https only, no spaces or control characters."""
    if (
        not isinstance(value, str)
        or not value.startswith(URL_SCHEMES)
        or len(value) > 2048
        or any(c.isspace() or ord(c) < 32 for c in value)
    ):
        raise InvalidPrompt(f"{where} must be an https:// URL, got {str(value)[:80]!r}")
    return value


def check_video_metadata(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidPrompt(f"{where} must be an object, got {type(value).__name__}")
    unknown = sorted(str(k) for k in set(value) - set(VIDEO_METADATA_FIELDS))
    if unknown:
        raise InvalidPrompt(f"{where} has unknown field(s) {', '.join(unknown)}")
    for name in ("start_offset", "end_offset"):
        if name in value and not (isinstance(value[name], str) and _OFFSET.match(value[name])):
            raise InvalidPrompt(f'{where}.{name} must look like "1250s", got {value[name]!r}')
    fps = value.get("fps")
    if fps is not None and (
        isinstance(fps, bool)
        or not isinstance(fps, (int, float))
        or not math.isfinite(fps)
        or fps <= 0
    ):
        raise InvalidPrompt(f"{where}.fps must be a positive number, got {fps!r}")
    return dict(value)


def _as_list(record: dict[str, Any], name: str) -> list[Any]:
    value = record.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _bytes(value: Any, where: str) -> bytes:
    """Raw bytes from Python, or `{"base64": "..."}` from JSON."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidPrompt(f"{where} is not valid base64") from None
    raise InvalidPrompt(
        f'{where} must be bytes (in JSON: {{"base64": "..."}}), got {type(value).__name__}'
    )


def guess_mime(kind: MediaKind, name: str | None) -> str:
    guessed = mimetypes.guess_type(name)[0] if name else None
    if guessed and guessed.startswith(kind + "/"):
        return _GEMINI_MIME.get(guessed, guessed)
    return DEFAULT_MIME[kind]


def _named(record: dict[str, Any], kind: MediaKind) -> list[tuple[str, str | bytes, str]]:
    """(source, value, where) of each file of `kind`, in the seed's order."""
    order = ("url", "path", "bytes") if kind == VIDEO else ("path", "bytes")
    found: list[tuple[str, str | bytes, str]] = []
    for source in order:
        for i, value in enumerate(_as_list(record, f"{kind}_{source}")):
            where = f"{kind}_{source}[{i}]"
            if source == "bytes":
                found.append((source, _bytes(value, where), where))
            elif source == "url":
                found.append((source, check_url(value, where), where))
            elif not isinstance(value, str) or not value.strip() or "\x00" in value:
                raise InvalidPrompt(f"{where} must be a non-empty string")
            else:
                found.append((source, value, where))
    return found


def media_sources(record: dict[str, Any]) -> list[MediaSource]:
    """The record's media in the seed's order: videos (URLs, paths, bytes), then audio."""
    sources: list[MediaSource] = []
    for kind in (VIDEO, AUDIO):
        found = _named(record, kind)
        mimes = _as_list(record, f"{kind}_mime_type")
        if mimes and len(mimes) != len(found):
            raise InvalidPrompt(
                f"{kind}_mime_type has {len(mimes)} entries but there are {len(found)} {kind} files"
            )
        mimes = [check_mime(kind, m, f"{kind}_mime_type[{i}]") for i, m in enumerate(mimes)]
        metadata = _as_list(record, "video_metadata") if kind == VIDEO else []
        if len(metadata) > len(found):
            raise InvalidPrompt(
                f"video_metadata has {len(metadata)} entries but there are only {len(found)} videos"
            )
        for i, (source, value, where) in enumerate(found):
            name = value if isinstance(value, str) else None
            sources.append(
                MediaSource(
                    kind=kind,
                    source=source,  # type: ignore[arg-type]
                    value=value,
                    mime_type=mimes[i] if mimes else guess_mime(kind, name),
                    video_metadata=(
                        check_video_metadata(metadata[i], f"video_metadata[{i}]")
                        if i < len(metadata)
                        else None
                    ),
                    where=where,
                )
            )
    return sources


M = TypeVar("M")


def arrange(
    prompt: str, media: Sequence[M], kind_of: Callable[[M], str], label: str
) -> list[str | M]:
    """Text segments (str) and media, in the order the prompt's tokens give.

    Tokens take the next file of their type; files no token took are appended at the end;
    with no tokens at all, media comes first (videos, then audio), then the text.
    `kind_of(item)` tells an item's type; `label` names the prompt in warnings.
    """
    queues: dict[str, list[M]] = {
        kind: [m for m in media if kind_of(m) == kind] for kind in (AUDIO, VIDEO)
    }
    pieces = _TOKEN.split(prompt)
    if len(pieces) == 1:
        text = prompt.strip()
        return [*queues[VIDEO], *queues[AUDIO], *([text] if text else [])]
    out: list[str | M] = []
    missing = 0
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            if piece.strip():
                out.append(piece.strip())
        elif queues[piece]:
            out.append(queues[piece].pop(0))
        else:
            missing += 1
    if missing:
        log.warning("prompt %s has %d more media tokens than files; ignoring them", label, missing)
    return [*out, *queues[VIDEO], *queues[AUDIO]]
