"""The emulator's Batch Mode, through google-genai's `client.batches` as users call it."""

import json
import time

import pytest

from tests.conftest import FAKE_KEY, OTHER_PROJECT_KEY

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"


def _client(emulator, key=FAKE_KEY):
    from google import genai
    from google.genai import types

    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=emulator.url))


def _until_done(client, name, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.get(name=name)
        if batch.done:
            return batch
        assert time.monotonic() < deadline, f"{name} still {batch.state}"
        time.sleep(0.1)


def _request(text, key):
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], "metadata": {"key": key}}


def test_an_inline_batch_answers_each_request_with_its_metadata(emulator):
    client = _client(emulator)
    emulator.configure(
        rules=[
            {"answer": "finish", "reason": "SAFETY", "contains": "forbidden", "tiers": ["batch"]}
        ]
    )
    empty = {"contents": [{"role": "user", "parts": []}], "metadata": {"key": "9"}}
    requests = [_request("first question", "7"), _request("forbidden words", "3"), empty]
    created = client.batches.create(model=MODEL, src=requests,
                                    config={"display_name": "job-1:0"})  # fmt: skip
    assert created.state.name == "JOB_STATE_PENDING" and created.display_name == "job-1:0"
    batch = _until_done(client, created.name)
    assert batch.state.name == "JOB_STATE_SUCCEEDED"
    answers = {r.metadata["key"]: r for r in batch.dest.inlined_responses}
    assert "first question" in answers["7"].response.text
    assert answers["3"].response.candidates[0].finish_reason.name == "SAFETY"
    assert answers["9"].error is not None and answers["9"].response is None
    stats = emulator.stats(calls=True)
    assert stats["by_outcome"]["batch_create"] == 1
    assert sorted(c["outcome"] for c in stats["calls"] if c["tier"] == "batch") == [
        "400", "finish", "ok"]  # fmt: skip


def test_a_file_batch_writes_its_answers_to_a_file_to_download(emulator, tmp_path):
    client = _client(emulator)
    lines = [{"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"q{i}"}]}]}}
             for i in range(3)]  # fmt: skip
    source = tmp_path / "requests.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    uploaded = client.files.upload(file=source, config={"mime_type": "application/jsonl"})
    created = client.batches.create(model=MODEL, src=uploaded.name)
    batch = _until_done(client, created.name)
    assert batch.state.name == "JOB_STATE_SUCCEEDED" and batch.dest.file_name
    rows = [json.loads(r) for r in client.files.download(file=batch.dest.file_name).splitlines()]
    assert [r["key"] for r in rows] == ["k0", "k1", "k2"]
    assert all("q" in r["response"]["candidates"][0]["content"]["parts"][0]["text"] for r in rows)


def test_batches_belong_to_their_project_and_can_be_cancelled_listed_and_deleted(emulator):
    from google.genai import errors

    emulator.configure(batch_seconds=3600)
    client, other = _client(emulator), _client(emulator, OTHER_PROJECT_KEY)
    created = client.batches.create(model=MODEL, src=[_request("q", "0")])
    with pytest.raises(errors.ClientError) as info:
        other.batches.get(name=created.name)
    assert info.value.code == 404
    assert [b.name for b in client.batches.list()] == [created.name]
    assert list(other.batches.list()) == []
    client.batches.cancel(name=created.name)
    assert client.batches.get(name=created.name).state.name == "JOB_STATE_CANCELLED"
    client.batches.delete(name=created.name)
    with pytest.raises(errors.ClientError):
        client.batches.get(name=created.name)


def test_batches_expire_or_fail_and_a_project_has_a_limit_of_unfinished_ones(emulator):
    from google.genai import errors

    client = _client(emulator)
    emulator.configure(batch_seconds=3600, batch_expire_seconds=0.5, batch_concurrent=2)
    stuck = [client.batches.create(model=MODEL, src=[_request("q", "0")]) for _ in range(2)]
    with pytest.raises(errors.ClientError) as info:
        client.batches.create(model=MODEL, src=[_request("q", "0")])
    assert info.value.code == 429
    assert _until_done(client, stuck[0].name).state.name == "JOB_STATE_EXPIRED"
    emulator.configure(batch_seconds=0.2, batch_expire_seconds=3600, batch_fails=True)
    failed = client.batches.create(model=MODEL, src=[_request("q", "0")])  # the others ended
    assert _until_done(client, failed.name).state.name == "JOB_STATE_FAILED"
