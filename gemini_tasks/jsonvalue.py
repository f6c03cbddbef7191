"""What a prompt record may hold: JSON values that survive Redis, Celery and JSON Lines.

A record is data from anywhere (a file, a Python caller), and it will be serialised several
times on its way to Gemini and back. `clean` checks it once, up front, so nothing later can
fail on it: objects have string keys, numbers are finite, nesting is bounded, and strings
are valid Unicode (a lone surrogate, which UTF-8 cannot encode, becomes U+FFFD).
"""

from __future__ import annotations

import math
import re
from typing import Any

from gemini_tasks.errors import InvalidPrompt

# Far deeper than any real metadata or generation_config; shallow enough that no JSON
# encoder or decoder on the way recurses out of its stack.
MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def clean(value: Any, where: str, depth: int = 0) -> Any:
    """`value` as plain JSON data, or `InvalidPrompt` naming the first part that is not."""
    if depth > MAX_DEPTH:
        raise InvalidPrompt(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidPrompt(f"{where} is {value!r}: JSON has no NaN or Infinity")
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (list, tuple)):
        return [clean(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPrompt(f"{where} has a key that is not a string: {key!r}")
            key = clean_text(key)
            out[key] = clean(item, f"{where}.{key}", depth + 1)
        return out
    raise InvalidPrompt(f"{where} holds a {type(value).__name__}, which is not JSON")
