"""The emulator's explicit context caching, through google-genai's `client.caches` and
`cached_content` as users call them."""

import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import FAKE_KEY, OTHER_PROJECT_KEY

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"
BOOK = " ".join(f"Chapter {i}: the lighthouse keeper counts {i} ships." for i in range(40))
SYSTEM = "You answer as the lighthouse keeper."
QUESTION = "How many ships passed?"
GONE = "CachedContent not found (or permission denied)"
CONFLICT = (
    "CachedContent can not be used with GenerateContent request setting system_instruction, "
    "tools or tool_config.\n\nProposed fix: move those values to CachedContent from "
    "GenerateContent request."
)


@pytest.fixture
def caching(emulator):
    """The emulator with a small minimum cache size, so a test's caches need not be large;
    each model's own minimum again after."""
    emulator.configure(cache_min_tokens=100)
    yield emulator
    emulator.configure(cache_min_tokens=None)


def _client(emulator, key=FAKE_KEY):
    from google import genai
    from google.genai import types

    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=emulator.url))


def _book():
    from google.genai import types

    return [types.Content(role="user", parts=[types.Part(text=BOOK)])]


def _create(client, model=MODEL, **config):
    return client.caches.create(
        model=model, config={"contents": _book(), "system_instruction": SYSTEM, **config}
    )


def _ask(client, cache_name, model=MODEL, **config):
    from google.genai import types

    return client.models.generate_content(
        model=model,
        contents=QUESTION,
        config=types.GenerateContentConfig(cached_content=cache_name, **config),
    )


def _assert_gone(attempt):
    from google.genai import errors

    with pytest.raises(errors.ClientError) as info:
        attempt()
    assert (info.value.code, info.value.status, info.value.message) == (
        403, "PERMISSION_DENIED", GONE)  # fmt: skip


def _expire_caches(emulator) -> int:
    return emulator._post("/_emulator/expire_caches", {})["expired"]


def test_a_cached_prefix_is_answered_as_the_same_request_sent_whole(caching, tmp_path):
    from google.genai import types

    client = _client(caching)
    notes = tmp_path / "notes.txt"
    notes.write_text("harbour notes\n" * 20)
    uploaded = client.files.upload(file=notes, config={"mime_type": "text/plain"})
    prefix = [
        types.Content(role="user", parts=[
            types.Part(text=BOOK),
            types.Part.from_uri(file_uri=uploaded.uri, mime_type="text/plain"),
            # bytes the SDK sends as URL-safe base64
            types.Part.from_bytes(data=b"\xfb\xff\xfe" * 30, mime_type="image/png"),
        ])
    ]  # fmt: skip
    config = types.CreateCachedContentConfig(
        contents=prefix, system_instruction=SYSTEM, display_name="job-7:book", ttl="300s"
    )
    cache = client.caches.create(model=MODEL, config=config)
    assert cache.name.startswith("cachedContents/") and cache.model == f"models/{MODEL}"
    assert cache.display_name == "job-7:book" and cache.create_time == cache.update_time
    assert abs((cache.expire_time - cache.create_time).total_seconds() - 300) < 0.01
    question = types.Content(role="user", parts=[types.Part(text=QUESTION)])
    whole = client.models.generate_content(model=MODEL, contents=[*prefix, question],
                                           config={"system_instruction": SYSTEM})  # fmt: skip
    cached = _ask(client, cache.name)
    assert cached.text == whole.text
    assert "Chapter 39" in cached.text and QUESTION in cached.text and SYSTEM in cached.text
    usage = cached.usage_metadata
    assert usage.cached_content_token_count == cache.usage_metadata.total_token_count
    assert usage.prompt_token_count == whole.usage_metadata.prompt_token_count
    assert usage.prompt_token_count > usage.cached_content_token_count
    assert whole.usage_metadata.cached_content_token_count is None
    # A cache keeps what it cached: its answers do not change when the file is deleted.
    client.files.delete(name=uploaded.name)
    assert _ask(client, cache.name).text == cached.text


def test_a_cache_under_the_models_minimum_is_refused_with_geminis_message(emulator):
    from google.genai import errors

    client = _client(emulator)
    small = [{"role": "user", "parts": [{"text": "a short note " * 40}]}]
    tokens = client.models.count_tokens(model=MODEL, contents=small).total_tokens
    for model, minimum in ((MODEL, 1024), ("gemini-2.5-flash-lite", 2048),
                           ("gemini-2.5-pro", 4096)):  # fmt: skip
        with pytest.raises(errors.ClientError) as info:
            client.caches.create(model=model, config={"contents": small})
        assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
        assert info.value.message == (
            f"Cached content is too small. total_token_count={tokens}, "
            f"min_total_token_count={minimum}"
        )
    emulator.configure(cache_min_tokens=tokens)
    try:
        made = client.caches.create(model=MODEL, config={"contents": small})
    finally:
        emulator.configure(cache_min_tokens=None)
    assert made.usage_metadata.total_token_count == tokens
    stats = emulator.stats()
    assert stats["by_outcome"]["cache_too_small"] == 3
    assert stats["by_outcome"]["cache_create"] == 1


def test_a_cache_is_its_projects_alone(caching):
    client, other = _client(caching), _client(caching, OTHER_PROJECT_KEY)
    cache = _create(client)
    _assert_gone(lambda: other.caches.get(name=cache.name))
    _assert_gone(lambda: other.caches.update(name=cache.name, config={"ttl": "60s"}))
    _assert_gone(lambda: other.caches.delete(name=cache.name))
    _assert_gone(lambda: _ask(other, cache.name))
    assert [c.name for c in client.caches.list()] == [cache.name]
    assert list(other.caches.list()) == []
    assert client.caches.get(name=cache.name).expire_time == cache.expire_time


def test_an_expired_cache_is_gone(caching):
    client = _client(caching)
    cache = _create(client)
    assert _ask(client, cache.name).usage_metadata.cached_content_token_count
    assert _expire_caches(caching) == 1
    _assert_gone(lambda: client.caches.get(name=cache.name))
    _assert_gone(lambda: _ask(client, cache.name))
    assert list(client.caches.list()) == []
    stats = caching.stats()
    assert stats["by_outcome"]["cache_missing"] == 2 and stats["caches"] == {}


def test_a_cache_expires_when_its_ttl_runs_out(caching):
    from google.genai import errors

    client = _client(caching)
    cache = _create(client, ttl="0.5s")
    deadline = time.monotonic() + 30
    while True:  # until it has expired, however slowly this test runs
        try:
            client.caches.get(name=cache.name)
        except errors.ClientError as gone:
            assert (gone.code, gone.message) == (403, GONE)
            break
        assert time.monotonic() < deadline, "the cache never expired"
        time.sleep(0.1)
    _assert_gone(lambda: _ask(client, cache.name))


def test_a_request_naming_a_cache_may_not_set_what_the_cache_holds(caching):
    from google.genai import errors, types

    client = _client(caching)
    cache = _create(client)
    lookup = types.FunctionDeclaration(name="lookup", description="Look a word up.")
    tool = types.Tool(function_declarations=[lookup])
    calling = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="NONE"))
    for extra in ({"system_instruction": SYSTEM}, {"tools": [tool]}, {"tool_config": calling}):
        with pytest.raises(errors.ClientError) as info:
            _ask(client, cache.name, **extra)
        assert (info.value.code, info.value.status, info.value.message) == (
            400, "INVALID_ARGUMENT", CONFLICT)  # fmt: skip
    with pytest.raises(errors.ClientError) as info:
        _ask(client, cache.name, model="gemini-2.5-pro")
    assert info.value.code == 400 and "has to be the same" in info.value.message
    assert "models/gemini-2.5-pro" in info.value.message and f"models/{MODEL}" in info.value.message
    # A cache may hold tools and a tool config; the request naming it then sets neither.
    with_tools = _create(client, tools=[tool], tool_config=calling)
    assert QUESTION in _ask(client, with_tools.name).text


def test_updating_a_cache_moves_its_expiry(caching):
    client = _client(caching)
    cache = _create(client)  # no ttl: an hour
    assert abs((cache.expire_time - cache.create_time).total_seconds() - 3600) < 0.01
    updated = client.caches.update(name=cache.name, config={"ttl": "7200s"})
    assert updated.expire_time > cache.expire_time and updated.update_time >= cache.update_time
    assert abs((updated.expire_time - updated.update_time).total_seconds() - 7200) < 0.01
    assert updated.create_time == cache.create_time
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=10)
    moved = client.caches.update(name=cache.name, config={"expire_time": when})
    assert moved.expire_time == when == client.caches.get(name=cache.name).expire_time
    assert caching.stats()["by_outcome"]["cache_update"] == 2


def test_a_deleted_cache_is_gone_and_a_reset_forgets_every_cache(caching):
    client = _client(caching)
    cache = _create(client)
    client.caches.delete(name=cache.name)
    _assert_gone(lambda: _ask(client, cache.name))
    _assert_gone(lambda: client.caches.get(name=cache.name))
    _assert_gone(lambda: client.caches.delete(name=cache.name))
    kept = _create(client)
    caching.reset()
    _assert_gone(lambda: client.caches.get(name=kept.name))


def test_the_statistics_show_each_projects_live_caches_and_their_use(caching):
    clients = {"project-a": _client(caching), "project-b": _client(caching, OTHER_PROJECT_KEY)}
    made = {p: _create(c, display_name=f"{p}-book") for p, c in clients.items()}
    for project, client in clients.items():
        _ask(client, made[project].name)
        _ask(client, made[project].name)
    stats = caching.stats(calls=True)
    assert stats["by_outcome"]["cache_create"] == 2
    assert stats["caches"] == {"project-a": 1, "project-b": 1}
    assert stats["cache_uses"] == {"project-a": 2, "project-b": 2}
    listed = {c["project"]: c for c in stats["cached_contents"]}
    for project, cache in made.items():
        assert listed[project]["name"] == cache.name and listed[project]["model"] == MODEL
        assert listed[project]["display_name"] == f"{project}-book"
        assert listed[project]["tokens"] == cache.usage_metadata.total_token_count
        assert 3590 < listed[project]["expires_in"] <= 3600
    used = [c["cached_content"] for c in stats["calls"] if c["outcome"] == "ok"]
    assert sorted(used) == sorted([made["project-a"].name, made["project-b"].name] * 2)
    for project, client in clients.items():
        client.caches.delete(name=made[project].name)
    stats = caching.stats()
    assert stats["caches"] == {} and stats["cached_contents"] == []
    assert stats["by_outcome"]["cache_delete"] == 2


def test_a_batch_request_naming_a_cache_is_answered_with_it(caching):
    client = _client(caching)
    cache = _create(client)
    ask = [{"role": "user", "parts": [{"text": QUESTION}]}]
    src = [
        {"contents": ask, "config": {"cached_content": cache.name}, "metadata": {"key": "1"}},
        {"contents": ask, "config": {"cached_content": "cachedContents/gone"},
         "metadata": {"key": "2"}},
    ]  # fmt: skip
    created = client.batches.create(model=MODEL, src=src)
    deadline = time.monotonic() + 30
    while not (batch := client.batches.get(name=created.name)).done:
        assert time.monotonic() < deadline, f"{created.name} still {batch.state}"
        time.sleep(0.1)
    answers = {r.metadata["key"]: r for r in batch.dest.inlined_responses}
    assert "Chapter 0" in answers["1"].response.text and QUESTION in answers["1"].response.text
    usage = answers["1"].response.usage_metadata
    assert usage.cached_content_token_count == cache.usage_metadata.total_token_count
    assert (answers["2"].error.code, answers["2"].error.message) == (7, GONE)
    assert caching.stats()["cache_uses"] == {"project-a": 1}


def test_the_rest_api_takes_snake_case_fields_and_unpadded_url_safe_bytes(caching):
    body = {
        "model": f"models/{MODEL}",
        "contents": [{"role": "user", "parts": [
            {"text": BOOK}, {"inline_data": {"mime_type": "image/png", "data": "-_8"}}]}],
        "system_instruction": {"parts": [{"text": SYSTEM}]},
        "display_name": "raw",
        "ttl": "60s",
    }  # fmt: skip
    request = urllib.request.Request(
        f"{caching.url}/v1beta/cachedContents", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "x-goog-api-key": FAKE_KEY})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        made = json.load(response)
    assert made["displayName"] == "raw" and made["usageMetadata"]["totalTokenCount"] > 100
    assert SYSTEM in _ask(_client(caching), made["name"]).text
    both = {**body, "expireTime": "2099-01-01T00:00:00Z"}
    request = urllib.request.Request(request.full_url, data=json.dumps(both).encode(),
                                     method="POST", headers=request.headers)  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert "Oneof field 'expiration'" in json.load(refused.value)["error"]["message"]
