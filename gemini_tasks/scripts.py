"""Lua scripts read from the installed package and registered once per Redis client.

A package's scripts live in its `lua/` folder; each is that folder's `prelude.lua` (what
they all need, written once) followed by its own file. redis-py's `Script` sends a script
by its SHA and loads it again if Redis has forgotten it (`SCRIPT FLUSH`, a restart).
"""

from __future__ import annotations

from importlib import resources

import redis
from redis.commands.core import Script


def text(package: str, name: str) -> str:
    return (resources.files(package) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def register(client: redis.Redis, package: str, names: tuple[str, ...]) -> dict[str, Script]:
    """The scripts `names` of `package`, registered with `client`."""
    prelude = text(package, "prelude")
    return {name: client.register_script(prelude + text(package, name)) for name in names}
