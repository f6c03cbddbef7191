"""Gemini API keys as a worker knows them: a secret, the variable that named it, and a public id.

Only the id (a fingerprint of the secret) ever leaves the worker process: in Redis,
results, logs and metrics a key is known by `ApiKey.id`, never by its secret.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from gemini_tasks.errors import NoApiKeys

log = logging.getLogger(__name__)

_NUMBERED = re.compile(r"GEMINI_API_KEY_(\w+)")


def key_id(secret: str) -> str:
    """A stable, non-reversible id for a key: two machines that hold the same key agree on it."""
    return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ApiKey:
    label: str
    secret: str = field(repr=False)
    # Keys of one Google project share its quota; an undeclared key is a project of its own.
    declared_project: str | None = None

    @cached_property
    def id(self) -> str:
        return key_id(self.secret)  # hashed once: every lease and call names the key

    @property
    def project(self) -> str:
        return self.declared_project or self.id

    def __str__(self) -> str:
        return f"{self.id} ({self.label})"


def _natural_order(name: str) -> tuple[int, int | str]:
    suffix = _NUMBERED.fullmatch(name).group(1)  # type: ignore[union-attr]
    return (0, int(suffix)) if suffix.isdigit() else (1, suffix)


def key_variable_names(env: Mapping[str, str]) -> list[str]:
    """All `GEMINI_API_KEY_*` variables in numeric order, else `GEMINI_API_KEY` if set."""
    numbered = sorted((n for n in env if _NUMBERED.fullmatch(n)), key=_natural_order)
    if numbered:
        return numbered
    return ["GEMINI_API_KEY"] if "GEMINI_API_KEY" in env else []


def load_keys(
    names: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    projects: Mapping[str, str] | None = None,
) -> list[ApiKey]:
    """Read the keys named by `names` (default: every `GEMINI_API_KEY_*`) from `env`.

    `projects` maps a variable name to the Google project its key belongs to.

    A named variable that is unset or empty is skipped with a warning, as in the seed
    library; no usable key at all raises `NoApiKeys`.
    """
    env = os.environ if env is None else env
    names = list(names) if names else key_variable_names(env)
    keys: dict[str, ApiKey] = {}
    for name in names:
        secret = (env.get(name) or "").strip()
        if not secret:
            log.warning("API key variable %s is not set or empty; skipping it", name)
            continue
        key = ApiKey(label=name, secret=secret, declared_project=(projects or {}).get(name))
        keys.setdefault(key.id, key)
    if not keys:
        wanted = ", ".join(names) if names else "GEMINI_API_KEY_1, GEMINI_API_KEY_2, ..."
        raise NoApiKeys(f"No valid API keys found: set {wanted} in the environment or .env")
    return list(keys.values())


def redact(text: str, keys: Iterable[ApiKey]) -> str:
    """Replace every secret that appears in `text` with its key id."""
    for key in keys:
        if key.secret in text:
            text = text.replace(key.secret, key.id)
    return text
