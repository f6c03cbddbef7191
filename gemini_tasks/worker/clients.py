"""One long-lived google-genai Client per API key in each worker process.

google-genai closes a Client's HTTP pool when the Client is garbage-collected, even
while a call made through it is still in flight, so clients are created once, under a
lock, and kept for the life of the process.
"""

from __future__ import annotations

import threading

from google import genai
from google.genai import types
from httpx2 import Limits  # google-genai 3's HTTP client

from gemini_tasks.keys import ApiKey

_clients: dict[str, genai.Client] = {}
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
            # thread of the worker may call with this key, so size it to them.
            limits = Limits(max_connections=connections, max_keepalive_connections=connections)
            options = types.HttpOptions(
                base_url=base_url,
                timeout=int(timeout_seconds * 1000),
                client_args={"limits": limits},
                async_client_args={"limits": limits},
            )
            client = genai.Client(api_key=key.secret, http_options=options)
            _clients[cache_key] = client
        return client
