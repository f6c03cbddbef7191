"""The cluster-wide key pool: every API key's state in Redis, changed only by Lua scripts.

Holds `KeyPool` (leases, releases, resets, status), the status view (`KeyState`) and the
scripts in `lua/`. May import only the bottom layer; workers lease keys through it, and
operators (`gemini-tasks keys`, metrics) read and reset it from any machine.
"""

from __future__ import annotations

from typing import Any

from gemini_tasks import runtime
from gemini_tasks.pool.pool import KeyPool, Lease, NoKeyYet, PoolConfig, Released
from gemini_tasks.pool.state import WINDOW, KeyState, KeyStatus, ModelState, PoolStatus

__all__ = [
    "WINDOW",
    "KeyPool",
    "KeyState",
    "KeyStatus",
    "Lease",
    "ModelState",
    "NoKeyYet",
    "PoolConfig",
    "PoolStatus",
    "Released",
    "get_keys_status_summary",
    "operator_pool",
]


def operator_pool(rt: runtime.Runtime | None = None) -> KeyPool:
    """A handle without keys, for status and reset from any machine."""
    rt = rt or runtime.current()
    return KeyPool(rt.redis, [], PoolConfig.from_settings(rt.settings), rt.keys)


def get_keys_status_summary(model: str | None = None) -> dict[str, dict[str, Any]]:
    """The seed's status view of every key any worker registered, for `model`
    (default `GEMINI_TASKS_MODEL`): per key id its `status`, `seconds_left`,
    `exhausted_count` and counters."""
    rt = runtime.current()
    status = operator_pool(rt).status(model or rt.settings.model)
    return {state.key_id: state.seed_view() for state in status.keys}
