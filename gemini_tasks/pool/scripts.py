"""The pool's Lua scripts, read from the installed package and registered once per client.

Each script is the shared prelude (`lua/prelude.lua`) followed by its own file; redis-py's
`Script` sends it by SHA and reloads it if Redis has forgotten it (`SCRIPT FLUSH`, a
restart).
"""

from __future__ import annotations

from importlib import resources

import redis
from redis.commands.core import Script

NAMES = ("register", "acquire", "release", "reset", "status")


def _text(name: str) -> str:
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def register(client: redis.Redis) -> dict[str, Script]:
    """Every pool script, registered with `client`."""
    prelude = _text("prelude")
    return {name: client.register_script(prelude + _text(name)) for name in NAMES}
