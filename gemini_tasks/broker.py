"""Celery's Redis broker transport: kombu's, which also records which worker holds which
message, with one known kombu failure contained.

`install()` makes it the transport of `redis://` and `rediss://` URLs, so broker URLs keep
their usual scheme (Flower, for one, recognises a broker by its URL's scheme).

A worker process names, with `hold_as`, the Redis set where the delivery tags of the
messages it holds go (added as kombu records a message as unacknowledged, removed as it is
acknowledged, in the same pipelines), so a dead worker's messages can be found and given
back at once (`gemini_tasks.scheduler.Liveness`), whatever the visibility timeout.

When Redis goes away, kombu closes the consumer's channel and tries to put back the
messages the worker holds. With the connection already torn down that raises
AttributeError ('NoneType' object has no attribute 'hostname'; celery/kombu#582, #970),
which Celery treats as unrecoverable: the worker exits. Those messages are still recorded
as unacknowledged in Redis, and the periodic visibility sweep requeues them, so skipping
the restore here loses nothing and keeps the worker alive to reconnect. Redis refusing
writes (at maxmemory, or a replica after a failover) is, to the consumer, Redis going away,
not an unrecoverable error; and an acknowledgement Redis refuses is recorded later
(`settle_acks`) instead of stopping the worker.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import redis
from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

log = logging.getLogger(__name__)


_held: str | None = None
# kombu's names for the messages delivered and not yet acknowledged (kombu.transport.redis).
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"


def hold_as(key: str | None) -> None:
    """Record the messages this process holds in the Redis set `key` (None: do not)."""
    global _held
    _held = key


# Redis refusing a write or not answering: what waits for Redis to take writes again.
REDIS_TROUBLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
)

# Delivery tags of the messages whose acknowledgement Redis refused.
_unsettled: set[str] = set()
_unsettled_lock = threading.Lock()


def settle_acks(client: redis.Redis) -> int:
    """Record, through `client`, the acknowledgements Redis refused earlier (what kombu's
    ack writes); returns how many are still due."""
    with _unsettled_lock:
        due = sorted(_unsettled)
    if not due:
        return 0
    pipe = client.pipeline(transaction=False)
    pipe.zrem(UNACKED_INDEX, *due)
    pipe.hdel(UNACKED, *due)
    if _held is not None:
        pipe.srem(_held, *due)
    try:
        pipe.execute()
    except REDIS_TROUBLE:
        return len(due)
    with _unsettled_lock:
        _unsettled.difference_update(due)
        return len(_unsettled)


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        # kombu's ack, except that a refused write does not stop the worker: the message
        # stays recorded as held in Redis (nobody else runs it) until `settle_acks`.
        try:
            self._remove_from_indices(delivery_tag).execute()
        except REDIS_TROUBLE as exc:
            with _unsettled_lock:
                _unsettled.add(delivery_tag)
            log.warning("Redis refused to record an acknowledgement (%s); it is recorded "
                        "once Redis takes writes again", exc)  # fmt: skip
        virtual.QoS.ack(self, delivery_tag)  # frees its prefetch slot either way

    def append(self, message: Any, delivery_tag: str) -> None:
        # kombu's append, with the message recorded as this worker's in the same
        # transaction: one round trip a message, not two, and never unacked without a holder.
        delivery = message.delivery_info
        raw = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()})
            pipe.hset(self.unacked_key, delivery_tag, raw)
            if _held is not None:
                pipe.sadd(_held, delivery_tag)
            pipe.execute()
        virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        removed = super()._remove_from_indices(delivery_tag, pipe)  # type: ignore[misc]
        if _held is not None:
            removed = removed.srem(_held, delivery_tag)
        return removed

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except AttributeError:
            delivered: dict[str, Any] = self._delivered or {}
            log.warning(
                "Redis is unreachable: %d unacknowledged message(s) return to the queue "
                "after the visibility timeout instead",
                len(delivered),
            )
            delivered.clear()


class Channel(kombu_redis.Channel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel
    # Redis refusing writes (at maxmemory, or a replica after a failover) is, to the
    # consumer, a connection it must re-establish, not an unrecoverable error: without
    # this, Celery exits on the first acknowledgement Redis refuses.
    connection_errors = (*kombu_redis.Transport.connection_errors, *REDIS_TROUBLE)


def install() -> None:
    """Serve `redis://` and `rediss://` URLs in this process with this transport."""
    for scheme in ("redis", "rediss"):
        kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"


_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def ssl_options(url: str) -> dict[str, Any] | None:
    """TLS options for a `rediss://` broker URL, from its query string.

    Left to itself, kombu connects to a `rediss://` broker without verifying its
    certificate; with these options it verifies unless the URL says `ssl_cert_reqs=none`.
    """
    parsed = urlparse(url)
    if parsed.scheme != "rediss":
        return None
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    options: dict[str, Any] = {
        "ssl_cert_reqs": _CERT_REQS.get(
            query.get("ssl_cert_reqs", "required").lower().removeprefix("cert_"), ssl.CERT_REQUIRED
        )
    }
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if name in query:
            options[name] = query[name]
    return options
