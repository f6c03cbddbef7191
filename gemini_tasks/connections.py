"""Redis clients that ride out a Redis restart or failover.

Commands that fail to connect are retried with exponential backoff for about half a minute
before the error reaches the caller, so a restarted Redis (with append-only persistence)
costs a pause, not a failed batch. An operator's view (a metrics scrape, `keys`) is not
worth that wait: its clients (`patient=False`) say within seconds that Redis is away.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry


def text(value: bytes | str) -> str:
    """A value read from Redis as text (clients here do not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value


def connect(url: str, patient: bool = True) -> redis.Redis:
    if not patient:
        return redis.Redis.from_url(
            url, retry=Retry(NoBackoff(), retries=0), socket_connect_timeout=2, socket_timeout=3
        )
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=20),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=10,
    )
