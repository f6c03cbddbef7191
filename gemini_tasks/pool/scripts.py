"""The pool's Lua scripts (`lua/`), registered with a client."""

from __future__ import annotations

import redis
from redis.commands.core import Script

from gemini_tasks import scripts

NAMES = ("register", "acquire", "release", "reset", "status", "usable", "forfeit")


def register(client: redis.Redis) -> dict[str, Script]:
    return scripts.register(client, __package__ or "gemini_tasks.pool", NAMES)
