"""Redis clients that ride out a Redis restart or failover.

Commands that fail to connect are retried with exponential backoff for about half a minute
before the error reaches the caller, so a restarted Redis (with append-only persistence)
costs a pause, not a failed batch.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def text(value: bytes | str) -> str:
    """A value read from Redis as text (clients here do not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=20),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=10,
    )
