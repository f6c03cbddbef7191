"""Counting tokens as Gemini does, not as the key pool estimates them.

Text: about four characters per token for scripts written with spaces, about one token per
character of Chinese, Japanese or Korean. Media by duration: about 263 tokens per second
of video and 32 per second of audio (ai.google.dev/gemini-api/docs/tokens). Test media can
declare its duration with a first line `EMULATED-MEDIA seconds=N`; other media is timed by
its size at a typical bitrate.
"""

from __future__ import annotations

import math
import re

VIDEO_PER_SECOND = 263
AUDIO_PER_SECOND = 32
# Typical bitrates, for media that does not declare its length: 1 MB/s video, 16 kB/s audio.
_BYTES_PER_SECOND = {"video": 1_000_000, "audio": 16_000}
_WIDE = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_HEADER = re.compile(rb"^EMULATED-MEDIA ([^\n]*)\n")


def text_tokens(text: str) -> int:
    wide = len(_WIDE.findall(text))
    return max(1, wide + math.ceil((len(text) - wide) / 4))


def media_header(data: bytes) -> dict[str, str]:
    """The `key=value` pairs of a test file's `EMULATED-MEDIA` first line."""
    match = _HEADER.match(data[:256])
    if not match:
        return {}
    return dict(item.split("=", 1) for item in match.group(1).decode().split() if "=" in item)


def media_seconds(data: bytes, kind: str) -> float:
    declared = media_header(data).get("seconds")
    if declared is not None:
        return float(declared)
    return max(1.0, len(data) / _BYTES_PER_SECOND.get(kind, _BYTES_PER_SECOND["video"]))


def media_tokens(data: bytes | None, mime_type: str) -> int:
    """Tokens of one media part; 258 (one image tile) when its bytes are unknown."""
    kind = mime_type.split("/", 1)[0]
    if data is None or kind not in _BYTES_PER_SECOND:
        return 258
    per_second = VIDEO_PER_SECOND if kind == "video" else AUDIO_PER_SECOND
    return math.ceil(media_seconds(data, kind) * per_second)
