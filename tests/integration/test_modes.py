"""Execution modes of one pipeline: a Flex job's calls ask for the Flex tier and cost half;
Flex's shed answers are waited through like capacity answers, never counted as a key's
exhaustion, and with a fallback a prompt Flex keeps shedding runs on the standard tier.
A batch job's prompts go to Gemini in Batch Mode batches, each answer to its own prompt;
batches that expire or pass their deadline are sent again or, with a fallback, run online.
Against the emulator, which names the tier that served each call as Gemini does, and
serves Batch Mode as google-genai speaks it."""

import hashlib
import itertools
import json
import time
import urllib.request

import pytest

from gemini_tasks import runtime
from gemini_tasks.keys import load_keys
from gemini_tasks.pool import KeyPool, PoolConfig
from gemini_tasks.producer import JobOptions, Mode, submit
from tests.conftest import FAKE_KEY, TEST_ENV
from tests.integration.conftest import own_worker

pytestmark = pytest.mark.integration


def _records(tag: str, n: int) -> list[dict]:
    return [{"prompt": f"{tag} {i}", "metadata": {"i": i}} for i in range(n)]


def test_a_flex_job_sends_every_call_on_the_flex_tier_at_half_the_price(cluster):
    flex = list(submit(_records("cheap", 20), options=JobOptions(mode=Mode.FLEX)).results(60))
    online = list(submit(_records("cheap", 20)).results(timeout=60))

    assert all(r.ok for r in flex + online)
    assert {r.mode for r in flex} == {"flex"} and {r.mode for r in online} == {"online"}
    tiers = [c["tier"] for c in cluster.stats(calls=True)["calls"]]
    assert tiers.count("flex") == 20 and tiers.count("standard") == 20
    assert sum(r.cost for r in online) > 0
    assert sum(r.cost for r in flex) == pytest.approx(sum(r.cost for r in online) / 2)


def test_flex_sheds_are_waited_through_and_never_exhaust_a_key(cluster):
    # Flex sheds the first two tries of every request (a 429 without quota details, then
    # a 503), as it does under load; the third is served.
    cluster.configure(rules=[
        {"answer": "429_capacity", "tiers": ["flex"], "attempts": [1, 1]},
        {"answer": "503", "tiers": ["flex"], "attempts": [2, 2]},
    ])  # fmt: skip
    results = list(submit(_records("shed", 10), options=JobOptions(mode=Mode.FLEX)).results(120))

    assert all(r.ok and r.mode == "flex" for r in results), [r.error for r in results]
    outcomes = [c["outcome"] for c in cluster.stats(calls=True)["calls"]]
    assert outcomes.count("429_capacity") == 10 and outcomes.count("503") == 10
    rt = runtime.current()
    pool = KeyPool(rt.redis, load_keys(), PoolConfig.from_settings(rt.settings), rt.keys)
    keys = pool.status(rt.settings.model).keys
    assert all(k.exhausted_count == 0 and k.quota_errors == 0 for k in keys), keys


def test_a_prompt_flex_keeps_shedding_falls_back_to_the_standard_tier(cluster):
    cluster.configure(rules=[{"answer": "429_capacity", "tiers": ["flex"]}])  # Flex is full
    options = JobOptions(mode=Mode.FLEX, fallback_after=2.0)
    results = list(submit(_records("fallback", 10), options=options).results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results]
    assert {r.mode for r in results} == {"online"}  # served on the standard tier, billed so
    calls = cluster.stats(calls=True)["calls"]
    assert all(c["outcome"] == "429_capacity" for c in calls if c["tier"] == "flex")
    assert sum(c["tier"] == "standard" and c["outcome"] == "ok" for c in calls) == 10


def _operations(cluster) -> list[dict]:
    """The test key's project's batches as Gemini's REST API lists them."""
    request = urllib.request.Request(f"{cluster.url}/v1beta/batches",
                                     headers={"x-goog-api-key": FAKE_KEY})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.load(response)["operations"])


def _batch_calls(cluster) -> list[dict]:
    return [c for c in cluster.stats(calls=True)["calls"] if c["tier"] == "batch"]


def test_a_batch_job_goes_in_one_batch_and_each_answer_to_its_own_prompt(cluster, tmp_path):
    cluster.configure(rules=[{"answer": "finish", "reason": "SAFETY", "contains": "forbidden",
                              "tiers": ["batch"]}])  # fmt: skip
    sound = tmp_path / "note.mp3"
    sound.write_bytes(b"EMULATED-MEDIA seconds=3\n" + bytes(200))
    records = _records("batched", 20)
    records[5] = {"prompt": "forbidden words", "metadata": {"i": 5}}
    records[7] = {"prompt": "listen: <audio>", "audio_path": str(sound), "metadata": {"i": 7}}
    records[9] = {"prompt": "", "metadata": {"i": 9}}  # refused at submit: no text
    job = submit(records, options=JobOptions(mode=Mode.BATCH))
    results = list(job.results(timeout=120))
    counts = job.status().counts
    online = list(submit(_records("batched", 20)).results(timeout=60))

    assert [r.metadata["i"] for r in results] == list(range(20))
    good = [r for r in results if r.index not in (5, 9)]
    assert all(r.ok and r.mode == "batch" for r in good), [r.error for r in good]
    assert all(f"batched {r.index}" in r.response for r in good if r.index != 7)
    assert "audio" in results[7].response
    assert results[5].error_kind == "blocked" and results[9].error_kind == "invalid_prompt"
    stats = cluster.stats(calls=True)
    assert stats["by_outcome"]["batch_create"] == 1  # 19 prompts in one batch
    assert len(_batch_calls(cluster)) == 19
    plain = [r for r in online if r.index not in (5, 7, 9)]
    batched = [r for r in good if r.index != 7]
    assert sum(r.cost for r in batched) == pytest.approx(sum(r.cost for r in plain) / 2)
    assert counts.online_cost == pytest.approx(2 * counts.cost)  # what the summary shows


def test_an_expired_batch_is_sent_again_and_with_a_fallback_runs_online(cluster):
    # Gemini keeps the batches pending until they expire (googleapis/python-genai#1482).
    cluster.configure(batch_seconds=3600, batch_expire_seconds=0.5)
    again = submit(_records("expiring", 5), options=JobOptions(mode=Mode.BATCH))
    fallback = JobOptions(mode=Mode.BATCH, fallback_after=1.0)
    online = list(submit(_records("falling", 5), options=fallback).results(timeout=120))
    failed = list(again.results(timeout=120))

    assert all(r.ok and r.mode == "online" for r in online), [r.error for r in online]
    assert all(r.error_kind == "server" and "EXPIRED" in r.error for r in failed), failed
    assert all("3 batches failed it" in r.error for r in failed)
    creates = [c for c in cluster.stats(calls=True)["calls"] if c["outcome"] == "batch_create"]
    assert len(creates) == 3 + 1  # three rounds for one job, one for the other


def test_a_batch_past_its_deadline_is_cancelled_and_its_prompts_run_online(cluster):
    cluster.configure(batch_seconds=3600)
    options = JobOptions(mode=Mode.BATCH, fallback_after=1.0, batch_deadline=2.0)
    results = list(submit(_records("late", 5), options=options).results(timeout=120))

    assert all(r.ok and r.mode == "online" for r in results), [r.error for r in results]
    assert _states(cluster) == ["JOB_STATE_CANCELLED"]


def test_cancelling_a_batch_job_cancels_its_batch(cluster):
    cluster.configure(batch_seconds=3600)
    job = submit(_records("cancelled", 5), options=JobOptions(mode=Mode.BATCH))
    deadline = time.monotonic() + 60
    while "batch_create" not in cluster.stats()["by_outcome"]:
        assert time.monotonic() < deadline, "no batch was created"
        time.sleep(0.1)
    status = job.status()  # its prompts wait in its batch, not in its queue or workers
    assert (status.batched, status.waiting, status.in_flight) == (5, 0, 0)
    job.cancel()
    results = list(job.results(timeout=60))

    assert all(r.error_kind == "cancelled" for r in results), [r.error for r in results]
    assert _states(cluster) == ["JOB_STATE_CANCELLED"]


def _states(cluster) -> list[str]:
    """The states of the batches the test key's project has at Gemini."""
    client = _client(cluster)  # held: a client closes its connections when collected
    return [str(b.state.name) for b in client.batches.list() if b.state]


def _client(cluster):
    """A google-genai client with the test key, as the workers' (its project's batches)."""
    from google import genai
    from google.genai import types

    return genai.Client(api_key=FAKE_KEY, http_options=types.HttpOptions(base_url=cluster.url))


def test_a_batch_gemini_refuses_for_now_is_created_once_the_project_has_room(cluster):
    # A project's unfinished batches are limited; batches.create answers 429 beyond that.
    cluster.configure(batch_concurrent=0)
    job = submit(_records("crowded", 5), options=JobOptions(mode=Mode.BATCH))
    cluster.wait_until(lambda s: s["by_outcome"].get("429", 0) >= 2, "batch creation refused")
    cluster.configure(batch_concurrent=100)
    results = list(job.results(timeout=120))

    assert all(r.ok and r.mode == "batch" for r in results), [r.error for r in results]
    assert cluster.stats()["by_outcome"]["batch_create"] == 1


TOKENS_QUEUE = "token-batches"
TOKENS_ENV = {
    **TEST_ENV,
    "GEMINI_TASKS_QUEUE": TOKENS_QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "token_batches",
    # Room for two of the test's prompts (about 100 tokens each) enqueued at a time, and a
    # batch cut at 80% of it: two prompts a batch.
    "GEMINI_TASKS_BATCH_TOKENS": "260",
}


def test_batches_are_cut_and_held_to_the_projects_enqueued_token_limit(
    redis_url, emulator, run_dir
):
    emulator.configure(batch_tokens=260, batch_seconds=2.0)
    records = [{"prompt": f"{i} " + "word " * 80, "metadata": {"i": i}} for i in range(6)]
    with own_worker(TOKENS_ENV, "tokenbatch", 4, run_dir) as rt:
        options = JobOptions(mode=Mode.BATCH, queue=TOKENS_QUEUE)
        results = list(submit(records, options=options, rt=rt).results(timeout=180))

    assert all(r.ok and r.mode == "batch" for r in results), [r.error for r in results]
    stats = emulator.stats()
    # Three batches of two, each created once the one before had ended: Gemini never had
    # to refuse one.
    assert stats["by_outcome"]["batch_create"] == 3 and "429" not in stats["by_outcome"]
    batches = [o["metadata"] for o in _operations(emulator)]
    assert [int(b["batchStats"]["requestCount"]) for b in batches] == [2, 2, 2]
    spans = sorted((b["createTime"], b["endTime"]) for b in batches)
    assert all(ended <= created for (_, ended), (created, _) in itertools.pairwise(spans))


FILE_QUEUE = "file-batches"
FILE_ENV = {
    **TEST_ENV,
    "GEMINI_TASKS_QUEUE": FILE_QUEUE,
    "GEMINI_TASKS_KEY_PREFIX": "file_batches",
    # A few hundred bytes a request: a batch of more than a few passes it and goes as a file.
    "GEMINI_TASKS_BATCH_INLINE_BYTES": "2000",
}


@pytest.fixture(scope="module")
def file_worker(redis_url, emulator_process, run_dir):
    """A worker whose batches go as a JSONL file past a small inline limit."""
    with own_worker(FILE_ENV, "filebatch", 4, run_dir) as rt:
        yield rt


def _input_files(cluster) -> list[str]:
    """The input file of each batch of the test key's project, as Gemini's REST API names
    it (`inputConfig.fileName`; google-genai does not read it back)."""
    operations = _operations(cluster)
    return [o["metadata"].get("inputConfig", {}).get("fileName", "") for o in operations]


def _gone(client, name: str) -> bool:
    from google.genai import errors

    try:
        client.files.get(name=name)
    except errors.ClientError:
        return True
    return False


def test_a_batch_past_the_inline_limit_goes_as_a_file_each_answer_to_its_own_prompt(
    file_worker, emulator, tmp_path
):
    emulator.configure(rules=[{"answer": "finish", "reason": "SAFETY", "contains": "forbidden",
                               "tiers": ["batch"]}])  # fmt: skip
    sound = tmp_path / "note.mp3"  # inline media: base64 in its line, every symbol of it
    sound.write_bytes(b"EMULATED-MEDIA seconds=3\n" + bytes(range(256)))
    records = [{"prompt": f"filed {i}", "system_instruction": "be brief", "metadata": {"i": i}}
               for i in range(12)]  # fmt: skip
    records[3]["generation_config"] = {"response_mime_type": "application/json"}
    records[5]["prompt"] = "forbidden words"
    records[7] = {"prompt": "listen: <audio>", "audio_path": str(sound), "metadata": {"i": 7}}
    records[9]["generation_config"] = {"temperature": 5}  # Gemini refuses that request alone
    options = JobOptions(mode=Mode.BATCH, queue=FILE_QUEUE)
    results = list(submit(records, options=options, rt=file_worker).results(timeout=120))

    assert [r.metadata["i"] for r in results] == list(range(12))
    good = [r for r in results if r.index not in (5, 9)]
    assert all(r.ok and r.mode == "batch" for r in good), [r.error for r in good]
    # Each prompt's own answer; its system instruction and generation config where Gemini
    # reads them (misplaced, the emulator refuses the request as Gemini does).
    assert all(f"filed {r.index} [system: be brief]" in r.response for r in good if r.index != 7)
    sha256 = hashlib.sha256(sound.read_bytes()).hexdigest()[:16]  # its bytes arrived whole
    assert f"[inline audio/mp3 sha256:{sha256}]" in results[7].response
    assert results[3].parsed == {"echo": "echo: filed 3 [system: be brief]"}
    assert results[5].error_kind == "blocked"
    assert results[9].error_kind == "invalid_request" and "temperature" in results[9].error
    stats = emulator.stats()
    assert stats["by_outcome"]["batch_create"] == 1 and stats["uploads"] == {"project-a": 1}
    client = _client(emulator)
    [batch] = client.batches.list()
    [input_file] = _input_files(emulator)
    assert input_file.startswith("files/") and batch.dest.file_name  # a file in, a file out
    deadline = time.monotonic() + 60  # both are deleted once the answers are recorded
    while not (_gone(client, input_file) and _gone(client, batch.dest.file_name)):
        assert time.monotonic() < deadline, "the batch's files were not deleted"
        time.sleep(0.1)
