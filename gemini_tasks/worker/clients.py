"""One long-lived google-genai Client per API key in each worker process, all sharing one
HTTP connection pool.

google-genai closes a Client's HTTP pool when the Client is garbage-collected, even
while a call made through it is still in flight, so clients are created once, under a
lock, and kept for the life of the process. The key travels in each request's header, not
in the connection, so every key's Client sends through one HTTP client per Gemini host,
made once with its TLS contexts: made per key, a 1,000-key worker spent milliseconds per
key loading CA bundles under that lock, and found the connections of a key it had not used
for a few seconds expired (docs/benchmarks.md, row 13).
"""

from __future__ import annotations

import threading
from typing import Any

from google import genai
from google.genai import _api_client, types
from httpx2 import AsyncClient, Client, Limits  # google-genai 3's HTTP client

from gemini_tasks.keys import ApiKey

_clients: dict[str, genai.Client] = {}
_pools: dict[str, tuple[Client, AsyncClient, dict[str, Any]]] = {}
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
            name = f"{base_url or ''}@{connections}"
            if name not in _pools:
                _pools[name] = _pool(options)
            options.httpx_client, options.httpx_async_client, ws_args = _pools[name]
            options.async_client_args = ws_args
            client = genai.Client(api_key=key.secret, http_options=options)
            _clients[cache_key] = client
        return client


def _pool(options: types.HttpOptions) -> tuple[Client, AsyncClient, dict[str, Any]]:
    """HTTP clients made as google-genai makes its own from `options` (its TLS contexts,
    SSL_CERT_FILE honoured), once a process, and the async args that carry its websocket
    TLS context: a Client given all three makes no TLS context of its own (milliseconds
    each, for every key), and leaves the clients open."""
    base = _api_client.BaseApiClient
    args, async_args = base._ensure_httpx_ssl_ctx(options)
    return Client(**args), AsyncClient(**async_args), base._ensure_websocket_ssl_ctx(options)
