"""Estimating a prompt's input tokens before Gemini counts them.

Gemini's tokenizer averages about four characters per token for languages written with
spaces, and close to one token per character for Chinese, Japanese and Korean
(ai.google.dev/gemini-api/docs/tokens). A media part counts at least 258 tokens (an image,
or one second of video); audio counts 32 tokens a second and video about 263.
"""

from __future__ import annotations

import math
import re

MEDIA_PART = 258  # the least a media part counts
PER_SECOND = {"audio": 32, "video": 263}
# Typical bitrates, to time media by its size: 16 kB/s audio, 1 MB/s video.
BYTES_PER_SECOND = {"audio": 16_000, "video": 1_000_000}
_WIDE = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def text_tokens(text: str) -> int:
    """About how many tokens Gemini counts for `text`."""
    wide = len(_WIDE.findall(text))
    return wide + math.ceil((len(text) - wide) / 4)


def prompt_text_tokens(prompt: str, system_instruction: str | None) -> int:
    """About how many tokens a prompt's text counts, its system instruction included (Gemini
    counts that as input too)."""
    return text_tokens(prompt) + text_tokens(system_instruction or "")


def media_tokens(kind: str, size: int) -> int:
    """About how many tokens a media file of `size` bytes counts, timed by its size."""
    seconds = size / BYTES_PER_SECOND.get(kind, BYTES_PER_SECOND["video"])
    return max(MEDIA_PART, math.ceil(seconds * PER_SECOND.get(kind, PER_SECOND["video"])))
