"""One long-lived google-genai Client per API key in each worker process, all sharing one
HTTP connection pool.

google-genai closes a Client's HTTP pool when the Client is garbage-collected, even
while a call made through it is still in flight, so clients are created once, under a
lock, and kept for the life of the process. The key travels in each request's header, not
in the connection, so every key's Client sends through one pool per Gemini host: with a
pool of each key's own, a cluster of many keys (each used now and then as the pool rotates
them) found its connections expired and opened a new one for most calls.
"""

from __future__ import annotations

import threading

from google import genai
from google.genai import _api_client, types
from httpx2 import Client, Limits  # google-genai 3's HTTP client

from gemini_tasks.keys import ApiKey

_clients: dict[str, genai.Client] = {}
_pools: dict[str, Client] = {}
_lock = threading.Lock()


def client_for(
    key: ApiKey, base_url: str | None, timeout_seconds: float, connections: int = 100
) -> genai.Client:
    """The shared Client for `key`, pointed at `base_url` (the real API when None), whose
    calls time out after `timeout_seconds`, with room for `connections` calls at once."""
    cache_key = f"{key.id}@{base_url or ''}@{timeout_seconds}"
    client = _clients.get(cache_key)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(cache_key)
        if client is None:
            # The HTTP client's default pool holds 100 connections and keeps 20 alive: every
            # thread of the worker may call at once, so size it to them.
            limits = Limits(max_connections=connections, max_keepalive_connections=connections)
            options = types.HttpOptions(
                base_url=base_url,
                timeout=int(timeout_seconds * 1000),
                client_args={"limits": limits},
                async_client_args={"limits": limits},
            )
            options.httpx_client = _pool(options, f"{base_url or ''}@{connections}")
            client = genai.Client(api_key=key.secret, http_options=options)
            _clients[cache_key] = client
        return client


def _pool(options: types.HttpOptions, name: str) -> Client:
    """The process's HTTP client for `name` (a host and pool size), made as google-genai
    makes its own from `options` (its TLS context, SSL_CERT_FILE honoured); never closed:
    google-genai leaves a client it was given open."""
    pool = _pools.get(name)
    if pool is None:
        args, _ = _api_client.BaseApiClient._ensure_httpx_ssl_ctx(options)
        pool = _pools[name] = Client(**args)
    return pool
